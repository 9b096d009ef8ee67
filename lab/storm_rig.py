"""
The storm's rig, as pytest fixtures: many pairs on one real salt-master, each node a real salt-minion
running the unmodified ``lbpair_vrrp`` beacon on its own dbus-daemon, where :mod:`lab.vrrp_driver`
plays keepalived (``storm_driver.set({...})`` fails pairs over at will).

The master learns the pairs from the nodes' pillar (its ``lbpair_reactions`` lists no nodes): pair
``pNN`` is the seed's pillar on nodes ``pNNa`` (192.0.2.NN) and ``pNNb`` (198.51.100.1NN), ``a`` the
MASTER at first, with a DNS record of its own, ``pNN-active``, through ``lbpair_reactions:pairs``.
BIND9, the SMTP server and the webhook receiver (:class:`lab.services.ReactionServices`) listen
beside the master on the loopback of the beacon rig's namespace (:mod:`lab.beacon_rig`, whose
``salt_namespace``, ``master_events`` and ``vrrp_factories`` this rig uses).

Module-scoped; ``storm_pairs`` (2 here) says how many pairs, ``storm_damping_window`` the flap
damping, ``storm_masters`` whether a second hot master (``second_master``) serves them too.
Users: ``bench/storm.py``, ``tests/integration/storm`` and ``tests/integration/twomasters``.
"""

import copy
import pathlib
import shutil
import time

import psutil
import pytest
import yaml

from lab.beacon_rig import minion_overrides
from lab.salt_master import EXTENSION_DIRS, reactor_settings, state_tree
from lab.salt_rig import keepalived_renderer, started_master, started_minions
from lab.services import ReactionServices
from lab.util import work_dir
from lab.vrrp_driver import Driver

DAMPING_WINDOW = 60  # the shipped default
PARALLEL_STARTS = 8  # minions started at once
MAX_PAIRS = 150  # a node address each in 192.0.2.0/24 and in 198.51.100.101-250


def pair_names(count):
    """``p01``, ``p02``, ...: *count* pair names (at most :data:`MAX_PAIRS`)."""
    if not 1 <= count <= MAX_PAIRS:
        raise ValueError(f"between 1 and {MAX_PAIRS} pairs")
    return [f"p{index:0{max(2, len(str(count)))}d}" for index in range(1, count + 1)]


def pair_nodes(pair):
    """``{node: address}`` of *pair*: ``pNNa`` 192.0.2.NN, ``pNNb`` 198.51.100.1NN (the seed's servers are below .100)."""
    index = int(pair[1:])
    return {f"{pair}a": f"192.0.2.{index}", f"{pair}b": f"198.51.100.{100 + index}"}


def pair_pillar(seed, pair):
    """The seed's ``lbpair`` pillar as pair *pair*'s."""
    first, second = pair_nodes(pair).items()
    pillar = copy.deepcopy(seed)
    pillar["pair"] = pair
    pillar["nodes"] = {first[0]: {"address": first[1], "priority": 101}, second[0]: {"address": second[1], "priority": 100}}
    return pillar


def record_name(pair):
    """The DNS record that follows *pair*'s MASTER."""
    return f"{pair}-active"


@pytest.fixture(scope="module")
def storm_pairs():
    return 2


@pytest.fixture(scope="module")
def storm_masters():
    """1, or 2: hot multi-master, the minions connected to both (``storm_master`` and ``second_master``)."""
    return 1


@pytest.fixture(scope="module")
def storm_dir():
    """A short-named folder (Unix socket paths stay short), outside /tmp, removed after."""
    with work_dir("lbpair-storm-") as path:
        yield path


@pytest.fixture(scope="module")
def storm_driver(storm_pairs, storm_dir, vrrp_factories, seed_pillar_session):
    """Every node's bus served by the driver, ``a`` MASTER and ``b`` BACKUP; each node's keepalived.conf rendered."""
    pairs = pair_names(storm_pairs)
    nodes = {node: (address, "MASTER" if node.endswith("a") else "BACKUP") for pair in pairs for node, address in pair_nodes(pair).items()}
    with Driver(storm_dir / "nodes", nodes) as driver:
        # the beacon reads the instance's VIPs from the keepalived.conf installed
        with keepalived_renderer(vrrp_factories, seed_pillar_session) as render:
            for pair in pairs:
                pillar = pair_pillar(seed_pillar_session, pair)
                for node in pair_nodes(pair):
                    driver.nodes[node].write_config(render(node, pillar))
        yield driver


@pytest.fixture(scope="module")
def storm_services(salt_namespace, storm_dir):
    with ReactionServices(storm_dir / "services") as services:
        yield services


@pytest.fixture(scope="module")
def storm_damping_window():
    return DAMPING_WINDOW


@pytest.fixture(scope="module")
def storm_reactions(storm_pairs, storm_services, storm_dir, storm_damping_window):
    """No nodes (the master learns the pairs from their pillar); each pair's own DNS record."""
    (storm_dir / "history").mkdir()
    block = storm_services.reactions_block(None, storm_dir / "history" / "history.jsonl", damping_window=storm_damping_window)
    block["pairs"] = {
        pair: {"dns": {**block["dns"], "records": [{"name": record_name(pair), "type": "A", "ttl": 30}]}}
        for pair in pair_names(storm_pairs)
    }
    return block


@pytest.fixture(scope="module")
def storm_pillar_tree(storm_pairs, storm_dir, seed_pillar_session):
    root = storm_dir / "pillar"
    root.mkdir()
    pairs = pair_names(storm_pairs)
    top = {"base": {",".join(pair_nodes(pair)): [{"match": "list"}, pair] for pair in pairs}}
    (root / "top.sls").write_text(yaml.safe_dump(top))
    for pair in pairs:
        (root / f"{pair}.sls").write_text(yaml.safe_dump({"lbpair": pair_pillar(seed_pillar_session, pair)}))
    return root


@pytest.fixture(scope="module")
def storm_master(vrrp_factories, storm_dir, storm_pillar_tree, storm_reactions):
    overrides = {
        **EXTENSION_DIRS,
        "file_roots": {"base": [str(state_tree(storm_dir / "file_roots"))]},
        "pillar_roots": {"base": [str(storm_pillar_tree)]},
        **reactor_settings(storm_reactions),
    }
    with started_master(vrrp_factories, "lbpair-storm-master", overrides) as master:
        yield master


@pytest.fixture(scope="module")
def second_reactions(storm_reactions, storm_dir):
    """The second master's block: the first's, with a history of its own."""
    block = copy.deepcopy(storm_reactions)
    (storm_dir / "history2").mkdir()
    block["history"]["path"] = str(storm_dir / "history2" / "history.jsonl")
    return block


@pytest.fixture(scope="module")
def second_master(vrrp_factories, storm_master, storm_dir, storm_pillar_tree, second_reactions):
    """
    A second hot master on 127.0.0.2 (the namespace's loopback holds all of 127/8: no address is
    added), on the first's ports and with its key pair, as in docs/facts-multimaster.md.
    """
    ports = {key: storm_master.config[key] for key in ("ret_port", "publish_port")}
    overrides = {
        **EXTENSION_DIRS, "interface": "127.0.0.2", "auto_accept": True, **ports,
        "file_roots": {"base": [str(state_tree(storm_dir / "file_roots2"))]},
        "pillar_roots": {"base": [str(storm_pillar_tree)]},
        **reactor_settings(second_reactions),
    }  # fmt: skip
    factory = vrrp_factories.salt_master_daemon("lbpair-storm-master2", overrides=overrides)
    for name in ("master.pem", "master.pub"):
        shutil.copyfile(pathlib.Path(storm_master.config["pki_dir"], name), pathlib.Path(factory.config["pki_dir"], name))
    with factory.started():
        yield factory


def both_masters(first, second):
    """A minion's options for hot multi-master (both masters), with ``beacons_before_connect`` as docs/operations.md asks."""
    port = first.config["ret_port"]
    return {
        "master": [f"{first.config['interface']}:{port}", f"{second.config['interface']}:{port}"],
        "publish_port": first.config["publish_port"],
        "beacons_before_connect": True,
    }


class StartedMinions(dict):
    """``{minion id: started salt-minion}``; ``seconds``: how long starting them took, ``rss``: their memory after (bytes)."""

    seconds = 0.0
    rss = 0


@pytest.fixture(scope="module")
def storm_minion_settings():
    """Minion settings of every node beyond the beacon's (none: Salt's defaults)."""
    return {}


@pytest.fixture(scope="module")
def storm_minions(storm_master, storm_driver, storm_dir, storm_masters, storm_minion_settings, request):
    """
    A salt-minion per node, :data:`PARALLEL_STARTS` started at once, beacon on, each journalling
    into a file of its own; with ``storm_masters`` 2, connected to both masters.
    """
    journals = storm_dir / "journals"
    journals.mkdir()
    masters = both_masters(storm_master, request.getfixturevalue("second_master")) if storm_masters == 2 else {}
    overrides = {name: {**minion_overrides(node, journals / f"{name}.jsonl", pair=name[:-1]), **masters, **storm_minion_settings}
                 for name, node in storm_driver.nodes.items()}  # fmt: skip
    started = time.monotonic()
    with started_minions(storm_master, overrides, parallel=PARALLEL_STARTS, start_timeout=300) as factories:
        minions = StartedMinions(factories)
        minions.seconds = time.monotonic() - started
        minions.rss = sum(tree_rss(factory.pid) for factory in factories.values())
        yield minions


def tree(pid):
    """The process *pid* and its descendants (psutil), those still there."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid):
    """The resident memory of *pid*'s process tree (bytes)."""
    total = 0
    for process in tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


__all__ = [
    "storm_pairs",
    "storm_minion_settings",
    "storm_damping_window",
    "storm_dir",
    "storm_driver",
    "storm_services",
    "storm_reactions",
    "storm_pillar_tree",
    "storm_master",
    "storm_masters",
    "second_reactions",
    "second_master",
    "storm_minions",
]
