"""
The beacon's rig, as pytest fixtures: a real salt-master, two real keepalived nodes (see
:mod:`lab.vrrp_node`) and a real salt-minion per node running the ``lbpair_vrrp`` beacon on its
node's bus.

The master, the minions and salt-factories' event listener run inside a network namespace of
their own (``lbpair-vb-salt``), on its loopback: nothing listens in the host's namespace. The
minions reach their node's D-Bus through the unix socket, which is not bound to any network
namespace.

Its fixtures are module-scoped (a test module may start a master and minions of its own on the
same nodes). Two users, both with the session's set-up of :mod:`lab.salt_rig`, whose conftests
star-import the fixtures (``__all__``): the beacon's tests (there they override the
session-scoped master and minions of ``tests/support/session.py``) and ``bench/beacon_latency.py``.
"""

import pytest
import yaml

from lab import netns
from lab.salt_master import EXTENSION_DIRS
from lab.salt_rig import keepalived_renderer, loopback_listener, started_master, started_minions
from lab.vrrp_node import linked_nodes, tracked_file_pillar

NODES = {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}
SALT_NAMESPACE = "lbpair-vb-salt"
BEACON = "lbpair_vrrp"
FLAP = "lbpair_flap"


@pytest.fixture(scope="module")
def salt_namespace():
    """This process's main thread lives in ``lbpair-vb-salt`` for the module."""
    netns.add(SALT_NAMESPACE)
    try:
        with netns.enter(SALT_NAMESPACE):
            yield SALT_NAMESPACE
    finally:
        netns.delete(SALT_NAMESPACE)


@pytest.fixture(scope="module")
def master_events(salt_namespace):
    """
    salt-factories' event listener, on the namespace's loopback, for this module's master.
    It keeps events for 10 minutes (2 by default), long enough for the benchmark.
    """
    with loopback_listener(timeout=600) as listener:
        yield listener


@pytest.fixture(scope="module")
def vrrp_factories(master_events, stats_processes, _salt_factories_config, tmp_path_factory):
    """A salt-factories manager whose daemons live in the namespace and report to ``master_events``."""
    from saltfactories.manager import FactoriesManager

    config = {**_salt_factories_config, "root_dir": tmp_path_factory.mktemp("salt", numbered=True)}
    return FactoriesManager(stats_processes=stats_processes, event_listener=master_events, **config)


def with_flap(text, node):
    """keepalived.conf *text* with a track_file following ``node``'s flap file."""
    # The check's interval cannot go below 1 s; a tracked file flips keepalived at once (inotify).
    flap = f"\nvrrp_track_file {FLAP} {{\n    file {node.flap_file}\n    weight 0\n}}\n"
    text = text.replace("\nvrrp_instance", flap + "\nvrrp_instance", 1)
    return text.replace("    track_script {", f"    track_file {{\n        {FLAP}\n    }}\n    track_script {{", 1)


@pytest.fixture(scope="module")
def notify_script():
    """A keepalived ``notify`` script given the node's name (the benchmark's baseline); None: none."""
    return None


@pytest.fixture(scope="module")
def nodes(vrrp_factories, seed_pillar_session, tmp_path_factory, notify_script):
    """Both nodes up: buses, keepalived with lb1 MASTER and lb2 BACKUP."""
    with keepalived_renderer(vrrp_factories, tracked_file_pillar(seed_pillar_session)) as render:
        texts = {name: render(name) for name in NODES}
    with linked_nodes("lbpair-vb", tmp_path_factory.mktemp("nodes"), NODES) as started:
        for node in started.values():
            node.set_healthy(True)
            node.set_flap(False)
            text = with_flap(texts[node.name], node)
            if notify_script:
                text = text.replace("    track_script {", f'    notify "{notify_script} {node.name}"\n    track_script {{', 1)
            node.start(text)
        yield started


@pytest.fixture(scope="module")
def pillar_tree(seed_pillar_session, nodes, tmp_path_factory):
    root = tmp_path_factory.mktemp("pillar")
    (root / "top.sls").write_text(yaml.safe_dump({"base": {name: [name] for name in nodes}}))
    for name in nodes:
        (root / f"{name}.sls").write_text(yaml.safe_dump({"lbpair": tracked_file_pillar(seed_pillar_session)}))
    return root


@pytest.fixture(scope="module")
def salt_master(vrrp_factories, pillar_tree):
    with started_master(vrrp_factories, "lbpair-vb-master", {"pillar_roots": {"base": [str(pillar_tree)]}}) as master:
        yield master


def minion_overrides(node, journal_path, beacon=True, pair="test", metrics="none"):
    """
    A minion's options for ``node``: the extension, the node's keepalived and journal, the beacon (its meta naming *pair*,
    its metrics file *metrics*: none by default, as the host's node_exporter directory is not the node's).
    """
    overrides = {
        **EXTENSION_DIRS,
        "lbpair_keepalived": node.minion_options(),
        "lbpair_journal": {"path": str(journal_path)},
    }
    if beacon:
        overrides["beacons"] = {BEACON: [{"bus": node.bus_address}, {"meta": {"pair": pair, "node": node.name}}, {"metrics": metrics}]}
    return overrides


@pytest.fixture(scope="module")
def minions(salt_master, nodes, tmp_path_factory):
    """A started salt-minion per node, beacon on, each journalling into a file of its own."""
    journals = tmp_path_factory.mktemp("journals")
    overrides = {name: minion_overrides(node, journals / f"{name}.jsonl") for name, node in nodes.items()}
    with started_minions(salt_master, overrides) as started:
        yield started


__all__ = [
    "salt_namespace",
    "master_events",
    "vrrp_factories",
    "notify_script",
    "nodes",
    "pillar_tree",
    "salt_master",
    "minions",
]
