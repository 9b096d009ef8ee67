"""
Integration tests: a real salt-master (pytest-salt-factories) and real salt-minions
in systemd-nspawn machines of the lab, applying the ``salt/`` tree.

These tests run inside the lab's mgmt namespace (``python -m lab within mgmt --
pytest tests/integration``, as ``scripts/test`` does), so that the master and
salt-factories' own listeners share it with the lab's mgmt host (192.0.2.5),
which the minions reach. Nothing runs in the host's own network namespace.
"""

import pathlib
import time

import pytest

from lab import netns, topology
from lab.salt_master import Pillar, seed_pillar, state_tree

HOSTS = ("mgmt", "lb1", "lb2", "foo1", "foo2", "bar1", "bar2", "baz1", "baz2", "client")
NODES = ("lb1", "lb2")


def pytest_collection_modifyitems(config, items):
    if not netns.is_current(f"{netns.PREFIX}mgmt"):
        skip = pytest.mark.skip(reason="run inside the lab's mgmt namespace: python -m lab within mgmt -- pytest ...")
        here = pathlib.Path(__file__).parent
        for item in items:
            if here in item.path.parents:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def pillar(tmp_path_factory):
    return Pillar(tmp_path_factory.mktemp("pillar"), seed_pillar())


@pytest.fixture(scope="session")
def salt_master(salt_factories, tmp_path_factory, pillar):
    overrides = {
        "interface": "0.0.0.0",
        "auto_accept": True,
        "file_roots": {"base": [str(state_tree(tmp_path_factory.mktemp("file_roots")))]},
        "pillar_roots": {"base": [str(pillar.directory)]},
    }
    factory = salt_factories.salt_master_daemon("lbpair-master", overrides=overrides)
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=180)


@pytest.fixture(scope="session")
def lab(salt_master, salt_cli):
    ports = f"master_port: {salt_master.config['ret_port']}\npublish_port: {salt_master.config['publish_port']}\n"
    files = {node: {"/etc/salt/minion.d/ports.conf": ports} for node in NODES}
    with topology.Lab(hosts=HOSTS, files=files) as lab:
        for node in NODES:
            wait_for_minion(salt_cli, node)
        yield lab


def wait_for_minion(salt_cli, node, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if salt_cli.run("test.ping", minion_tgt=node, _timeout=10).data is True:
            return
        time.sleep(1)
    raise TimeoutError(f"minion {node} did not answer within {timeout} s")


def apply_state(salt_cli, node, **kwargs):
    """``state.apply`` on a node; returns ``{state id: result dict}``."""
    ret = salt_cli.run("state.apply", minion_tgt=node, _timeout=300, **kwargs)
    assert isinstance(ret.data, dict), ret.stdout + ret.stderr
    return {result["__id__"]: result for result in ret.data.values()}


@pytest.fixture(scope="session")
def highstated(lab, salt_cli):
    """Both nodes synced and highstated with the seed pillar."""
    for node in NODES:
        synced = salt_cli.run("saltutil.sync_all", minion_tgt=node, _timeout=120)
        assert "modules.lbpair_config" in synced.data["modules"], synced.stdout
    first = {node: apply_state(salt_cli, node) for node in NODES}
    return first
