"""
Salt's daemons under pytest (pytest-salt-factories), kept on loopback: a pytest plugin with the
session's set-up, and the helpers that start a master, its minions and syndics, and render a node's
keepalived.conf through Salt's loader.

Loaded with ``pytest_plugins`` by ``tests/conftest.py`` (every test suite); ``bench/conftest.py``
(the beacon's benchmark, which may not import the tests) imports its hooks and fixtures. A plugin
named in a conftest's ``pytest_plugins`` registers after salt-factories, so its ``event_listener``
and ``salt_factories_config`` override salt-factories' own fixtures of those names (on every
address, long socket paths); ``-p lab.salt_rig`` would register before it.
"""

import concurrent.futures
import contextlib
import logging
import shutil
import tempfile

import pytest

from lab.salt_master import EXTENSION_DIRS, seed_pillar

#: what every test master gets unless its suite says otherwise
MASTER_DEFAULTS = {"interface": "127.0.0.1", "auto_accept": True}


def loopback_listener(**kwargs):
    """salt-factories' event listener bound to 127.0.0.1 (it binds every address by default)."""
    from saltfactories.plugins.event_listener import EventListener  # noqa: PLC0415  (a test-side dependency)

    listener = EventListener(**kwargs)
    listener.host, listener.address = "127.0.0.1", f"tcp://127.0.0.1:{listener.port}"  # before it binds
    return listener


@contextlib.contextmanager
def started_master(factories, master_id, overrides):
    """A salt-master of *factories* with :data:`MASTER_DEFAULTS` and *overrides*, started for the block."""
    factory = factories.salt_master_daemon(master_id, overrides={**MASTER_DEFAULTS, **overrides})
    with factory.started():
        yield factory


@contextlib.contextmanager
def started_minions(master, overrides, parallel=1, **factory_options):
    """
    A salt-minion of *master* per ``{minion id: options}`` in *overrides*, started for the block,
    *parallel* at a time (and stopped so); *factory_options* go to salt-factories (``start_timeout``).
    """
    factories = {name: master.salt_minion_daemon(name, overrides=options, **factory_options) for name, options in overrides.items()}
    started = []

    def start(factory):
        factory.start()
        started.append(factory)

    try:
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            for future in [pool.submit(start, factory) for factory in factories.values()]:
                future.result()
        yield factories
    finally:
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda factory: factory.terminate(), started))


@contextlib.contextmanager
def started_syndic(top_master, syndic_id, master_overrides):
    """
    A salt-syndic below *top_master* (a master with ``order_masters``), started for the block with
    its own salt-master (:data:`MASTER_DEFAULTS` and *master_overrides*) and the salt-minion
    salt-factories gives it, all three of id *syndic_id*; its minions: ``started_minions(syndic.master, ...)``.
    """
    # The syndic subscribes to the publish port in its options (its minion's, else its master's),
    # unless that is 4506, Salt's "the one the master reports": the top master's, not its own.
    syndic = top_master.salt_syndic_daemon(
        syndic_id, master_overrides={**MASTER_DEFAULTS, **master_overrides}, minion_overrides={"publish_port": 4506}
    )
    with contextlib.ExitStack() as stack:
        # salt-factories starts the syndic's master and minion before it but never stops them
        for factory in (syndic.master, syndic.minion, syndic):
            stack.enter_context(factory.started())
        yield syndic


@contextlib.contextmanager
def keepalived_renderer(factories, pillar):
    """
    ``render(node) -> keepalived.conf`` through ``lbpair_keepalived.render`` in Salt's loader, for
    the ``lbpair`` *pillar* (``render(node, other)``: for pillar *other*); the loader lives for the block.
    """
    from saltfactories.utils.functional import Loaders  # noqa: PLC0415  (a test-side dependency)

    overrides = {**EXTENSION_DIRS, "file_client": "local"}
    # salt-factories hands out its options as an ImmutableDict: the loader gets a copy of its own.
    loaders = Loaders(dict(factories.salt_minion_daemon("render", overrides=overrides).config))
    try:
        yield lambda node, other=None: loaders.modules.lbpair_keepalived.render(node=node, pillar=other or pillar)
    finally:
        loaders.reset_state()


# --- the session's set-up -------------------------------------------------------------------


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
    from salt._logging.handlers import DeferredStreamHandler  # noqa: PLC0415  (Salt only once pytest ends)

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
