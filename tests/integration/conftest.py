"""
Integration tests: a real salt-master (pytest-salt-factories) and real salt-minions
in systemd-nspawn machines of the lab, applying the ``salt/`` tree.

These tests run inside the lab's mgmt namespace (``python -m lab within mgmt --
pytest tests/integration``, as ``scripts/test`` does), so that the master and
salt-factories' own listeners share it with the lab's mgmt host (192.0.2.5),
which the minions reach. Nothing runs in the host's own network namespace.
"""

import copy
import pathlib
import subprocess
import sys
import time

import pytest
import yaml

from lab import netns, topology
from tests.conftest import REPO

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
def state_tree(tmp_path_factory):
    """file_roots as an operator sets them up: the extension folders and salt/'s tree."""
    root = tmp_path_factory.mktemp("file_roots")
    for name, target in (
        ("_modules", REPO / "_modules"),
        ("_states", REPO / "_states"),
        ("lbpair", REPO / "salt" / "lbpair"),
        ("top.sls", REPO / "salt" / "top.sls"),
    ):
        (root / name).symlink_to(target)
    return root


class Pillar:
    """The master's lbpair pillar file; tests change it and put it back."""

    def __init__(self, directory, seed):
        self.directory, self.seed = directory, seed
        (directory / "top.sls").write_text("base:\n  'lb*':\n    - lbpair\n")
        self.write(seed)

    def write(self, lbpair):
        (self.directory / "lbpair.sls").write_text(yaml.safe_dump({"lbpair": lbpair}))

    def restore(self):
        self.write(self.seed)


@pytest.fixture(scope="session")
def pillar(tmp_path_factory, seed_pillar_session):
    return Pillar(tmp_path_factory.mktemp("pillar"), copy.deepcopy(seed_pillar_session))


@pytest.fixture(scope="session")
def salt_master(salt_factories, state_tree, pillar):
    overrides = {
        "interface": "0.0.0.0",
        "auto_accept": True,
        "file_roots": {"base": [str(state_tree)]},
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


class Load:
    """``lab/http_load.py`` running in the client's namespace until :meth:`stop`."""

    def __init__(self, lab, urls):
        script = str(REPO / "lab" / "http_load.py")
        self.process = lab.popen("client", [sys.executable, script, *urls], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self):
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return yaml.safe_load(out.strip().splitlines()[-1])
