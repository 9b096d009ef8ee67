"""
Integration and end-to-end tests: a real salt-master (pytest-salt-factories) with lbpair's
reactor, real salt-minions in systemd-nspawn machines of the lab applying the ``salt/`` tree
(the example pillar, beacons included), and the real BIND9, SMTP server and webhook receiver the
reactions reach (:class:`lab.services.ReactionServices`) -- the demo's lab, driven by tests.

These tests run inside the lab's mgmt namespace (``python -m lab within mgmt --
pytest tests/integration/pair``, as ``scripts/test`` does), so that the master and
salt-factories' own listeners share it with the lab's mgmt host (192.0.2.5),
which the minions reach. Nothing runs in the host's own network namespace. The master and the
servers are the shared rigs of ``tests/support/``, set up here.
"""

import pathlib

import pytest

from lab import demo, netns, prometheus, scenarios, topology
from lab.salt_master import EventLog, Pillar, reactor_settings, seed_pillar, state_tree
from lab.util import wait_until
from tests.support.session import wait_for_minion

HOSTS = ("mgmt", "lb1", "lb2", "foo1", "foo2", "bar1", "bar2", "baz1", "baz2", "client")
NODES = ("lb1", "lb2")
DAMPING_WINDOW = 2  # s: the failover and the failback each get their own messages
VIPS = sorted(service["vip"] for service in seed_pillar()["services"].values())
ADDRESSES6 = {node: topology.seed_host(node).ip6 for node in NODES}


def pytest_collection_modifyitems(config, items):
    if not netns.is_current(f"{netns.PREFIX}mgmt"):
        skip = pytest.mark.skip(reason="run inside the lab's mgmt namespace: python -m lab within mgmt -- pytest ...")
        here = pathlib.Path(__file__).parent
        for item in items:
            if here in item.path.parents:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def pillar(tmp_path_factory):
    return Pillar.example(tmp_path_factory.mktemp("pillar"))


@pytest.fixture(scope="session")
def history_path(tmp_path_factory):
    return tmp_path_factory.mktemp("history") / "history.jsonl"


@pytest.fixture(scope="session")
def master_textfile_dir(tmp_path_factory):
    """Where the master writes its metrics (``lbpair_master.prom``) for the lab's node_exporter on mgmt."""
    return tmp_path_factory.mktemp("master-textfile")


@pytest.fixture(scope="session")
def salt_master_overrides(tmp_path_factory, pillar, services, history_path, master_textfile_dir):
    """On every address of mgmt (the machines' minions reach it at 192.0.2.5), with the reactions on."""
    # no nodes: the master learns the pair from its nodes' pillar, as a fleet's master does
    block = services.reactions_block(None, history_path, damping_window=DAMPING_WINDOW, records=scenarios.LAB_RECORDS)
    block.update(prometheus.master_metrics_settings(master_textfile_dir))  # once the reactions know metrics_file
    return {
        "interface": "0.0.0.0",
        "file_roots": {"base": [str(state_tree(tmp_path_factory.mktemp("file_roots")))]},
        "pillar_roots": {"base": [str(pillar.directory)]},
        **reactor_settings(block),
    }


@pytest.fixture(scope="session")
def salt_master(salt_master):
    """
    The shared master, with lbpair's runner, engine and library synced from its file_roots, then
    restarted as an operator does (a master starts its engines, lbpair's worker, at its start).
    """
    synced = salt_master.salt_run_cli().run("saltutil.sync_all")
    assert "runners.lbpair" in synced.data["runners"], synced.stdout
    assert "engines.lbpair" in synced.data["engines"], synced.stdout
    assert "utils.saltext.lbpair.master.reactions" in synced.data["utils"], synced.stdout
    salt_master.terminate()
    salt_master.start()
    return salt_master


@pytest.fixture(scope="session")
def events(salt_master):
    """The master's beacon events as they arrive (:class:`lab.salt_master.EventLog`)."""
    log = EventLog(salt_master.config_dir, "salt/beacon/")
    yield log
    log.stop()


@pytest.fixture(scope="session")
def reactions(services, history_path, pillar, events):
    return demo.Reactions(services, history_path, pillar.node_addresses, events)


@pytest.fixture(scope="session")
def lab(salt_master, salt_cli):
    ports = f"master_port: {salt_master.config['ret_port']}\npublish_port: {salt_master.config['publish_port']}\n"
    files = {node: {"/etc/salt/minion.d/ports.conf": ports} for node in NODES}
    with topology.Lab(hosts=HOSTS, files=files) as lab:
        for node in NODES:
            wait_for_minion(salt_cli, node)
        yield lab


def wait_for_vips(lab, node, timeout=30):
    """Wait until *node* holds every VIP of the seed."""
    wait_until(lambda: lab.vips_on(node, VIPS) == VIPS, timeout, what=f"the VIPs on {node}")


def apply_state(salt_cli, node, **kwargs):
    """``state.apply`` on a node; returns ``{state id: result dict}``."""
    ret = salt_cli.run("state.apply", minion_tgt=node, _timeout=300, **kwargs)
    assert isinstance(ret.data, dict), ret.stdout + ret.stderr
    return {result["__id__"]: result for result in ret.data.values()}


class CliMaster:
    """salt-factories' salt CLI with the ``salt(target, function, *args)`` of :class:`lab.salt_master.Master`."""

    def __init__(self, salt_cli):
        self.salt_cli = salt_cli

    def salt(self, target, function, *args, timeout=120):
        return {target: self.salt_cli.run(function, *args, minion_tgt=target, _timeout=timeout).data}


@pytest.fixture(scope="session")
def highstated(lab, salt_cli):
    """Both nodes synced and highstated with the seed pillar, and their beacons running."""
    for node in NODES:
        synced = salt_cli.run("saltutil.sync_all", minion_tgt=node, _timeout=120)
        assert "modules.lbpair_config" in synced.data["modules"], synced.stdout
    first = {node: apply_state(salt_cli, node) for node in NODES}
    demo.start_beacons(CliMaster(salt_cli), NODES)
    return first
