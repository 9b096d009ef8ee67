"""
The beacon's rig, as pytest fixtures: a real salt-master, two real keepalived nodes (see
:mod:`lab.vrrp_node`) and a real salt-minion per node running the ``lbpair_vrrp`` beacon on its
node's bus.

The master, the minions and salt-factories' event listener run inside a network namespace of
their own (``lbpair-vb-salt``), on its loopback: nothing listens in the host's namespace. The
minions reach their node's D-Bus through the unix socket, which is not bound to any network
namespace.

Two users, each through its conftest:

- the beacon's tests: ``tests/integration/beacon/conftest.py`` star-imports the rig's fixtures
  (``__all__``); ``tests/conftest.py`` gives them the session's set-up;
- ``bench/beacon_latency.py``, outside ``tests/``: ``bench/conftest.py`` imports the rig's
  fixtures and the session's set-up at the end of this module (the same as ``tests/conftest.py``'s).
"""

import contextlib
import json
import logging
import shutil
import tempfile

import pytest
import yaml

from lab import netns
from lab.salt_master import EXTENSION_DIRS, seed_pillar
from lab.vrrp_node import linked_nodes, tracked_file_pillar

NODES = {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}
SALT_NAMESPACE = "lbpair-vb-salt"
BEACON = "lbpair_vrrp"
FLAP = "lbpair_flap"


def loopback_listener(**kwargs):
    """salt-factories' event listener bound to 127.0.0.1 (it binds every address by default)."""
    from saltfactories.plugins.event_listener import EventListener

    listener = EventListener(**kwargs)
    listener.host, listener.address = "127.0.0.1", f"tcp://127.0.0.1:{listener.port}"  # before it binds
    return listener


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


def render(factories, seed_pillar_session, node):
    """keepalived.conf for ``node`` through lbpair_keepalived.render, with a flappable track_file."""
    from saltfactories.utils.functional import Loaders

    overrides = {**EXTENSION_DIRS, "file_client": "local"}
    opts = factories.salt_minion_daemon(f"render-{node.name}", overrides=overrides).config.copy()
    opts["id"] = node.name
    loaders = Loaders(opts)
    try:
        text = loaders.modules.lbpair_keepalived.render(pillar=tracked_file_pillar(seed_pillar_session))
    finally:
        loaders.reset_state()
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
    workdir = tmp_path_factory.mktemp("nodes")
    with linked_nodes("lbpair-vb", workdir, NODES) as started:
        for node in started.values():
            node.set_healthy(True)
            node.set_flap(False)
            text = render(vrrp_factories, seed_pillar_session, node)
            if notify_script:
                text = text.replace("    track_script {", f'    notify "{notify_script} {node.name}"\n    track_script {{', 1)
            node.write_config(text)
            node.start_bus()
            node.start_keepalived()
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
    overrides = {"interface": "127.0.0.1", "auto_accept": True, "pillar_roots": {"base": [str(pillar_tree)]}}
    factory = vrrp_factories.salt_master_daemon("lbpair-vb-master", overrides=overrides)
    with factory.started():
        yield factory


def minion_overrides(node, journal_path, beacon=True):
    """A minion's options for ``node``: the extension, the node's keepalived and journal, the beacon."""
    overrides = {
        **EXTENSION_DIRS,
        "lbpair_keepalived": node.minion_options(),
        "lbpair_journal": {"path": str(journal_path)},
    }
    if beacon:
        overrides["beacons"] = {BEACON: [{"bus": node.bus_address}, {"meta": {"pair": "test", "node": node.name}}]}
    return overrides


@pytest.fixture(scope="module")
def minions(salt_master, nodes, tmp_path_factory):
    """A started salt-minion per node, beacon on; ``minions[name].journal`` is its journal path."""
    journals = tmp_path_factory.mktemp("journals")
    factories = {}
    with contextlib.ExitStack() as stack:
        for name, node in nodes.items():
            factory = salt_master.salt_minion_daemon(name, overrides=minion_overrides(node, journals / f"{name}.jsonl"))
            factory.journal = journals / f"{name}.jsonl"
            stack.enter_context(factory.started())
            factories[name] = factory
        yield factories


def journal(minion):
    """The transitions in a minion's journal, oldest first."""
    if not minion.journal.exists():
        return []
    return [json.loads(line) for line in minion.journal.read_text().splitlines() if line.strip()]


def beacon_events(listener, master, minion_id, since, kind="*"):
    """The beacon's events of ``minion_id`` that reached ``master``'s bus after ``since``, by seq."""
    pattern = (master.id, f"salt/beacon/{minion_id}/{BEACON}/{kind}")
    events = list(listener.get_events([pattern], after_time=since))
    return sorted(events, key=lambda event: (event.data.get("seq", 0), event.stamp))


def states_of(entries, instance="lbpair_51"):
    return [(entry["previous_state"], entry["state"]) for entry in entries if entry["instance"] == instance]


# The session's set-up, for tests/conftest.py and bench/conftest.py (not in __all__: each conftest
# imports it once). From a conftest, event_listener and salt_factories_config override
# salt-factories' own fixtures of those names.


# salt-factories listens on 0.0.0.0 for its daemons' logs and events: keep both on loopback.
@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    log_server = session.config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:  # the library's unit tests run without salt-factories
        log_server.log_host = "127.0.0.1"


def pytest_unconfigure(config):
    """
    Salt keeps a copy of every log record in a handler it flushes at exit into the stderr pytest
    had when Salt was imported, closed by then: pages of "--- Logging error ---". pytest has
    reported those records already; drop the copies and stop keeping more.
    """
    from salt._logging.handlers import DeferredStreamHandler

    for handler in list(logging.root.handlers):
        if isinstance(handler, DeferredStreamHandler):
            logging.root.removeHandler(handler)
            handler.sync_with_handlers(())


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' own event listener (used by its autouse fixtures), on 127.0.0.1 only."""
    with loopback_listener() as listener:
        yield listener


@pytest.fixture(scope="session")
def salt_factories_config():
    """The daemons' directories in one short-named directory (Unix socket paths stay short), removed after."""
    root = tempfile.mkdtemp(prefix="lbpair-sf-")
    yield {"root_dir": root}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def seed_pillar_session():
    """The seed scenario's ``lbpair`` pillar (salt/pillar.example)."""
    return seed_pillar()


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
