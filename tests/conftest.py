"""Shared test set-up: the repository's paths, the seed pillar, salt-factories on loopback."""

import copy
import logging
import pathlib
import shutil
import tempfile

import pytest
from saltfactories.plugins.event_listener import EventListener

from lab.salt_master import EXTENSION_DIRS  # noqa: F401  (the suites' minion and master options)
from lab.salt_master import seed_pillar as example_lbpair_pillar

REPO = pathlib.Path(__file__).resolve().parent.parent


# salt-factories listens on 0.0.0.0 for its daemons' logs and events: keep both on loopback
# (the daemons run in the same network namespace as pytest).
@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    session.config.pluginmanager.get_plugin("saltfactories-log-server").log_host = "127.0.0.1"


def pytest_unconfigure(config):
    """
    Salt keeps a copy of every log record in a handler it flushes at exit into the stderr pytest
    had when Salt was imported, closed by then: pages of "--- Logging error ---". pytest has
    reported those records already; drop the copies and stop keeping more.
    """
    from salt._logging.handlers import DeferredStreamHandler  # pylint: disable=import-outside-toplevel

    for handler in list(logging.root.handlers):
        if isinstance(handler, DeferredStreamHandler):
            logging.root.removeHandler(handler)
            handler.sync_with_handlers(())


@pytest.fixture(scope="session")
def event_listener():
    listener = EventListener()
    listener.host, listener.address = "127.0.0.1", f"tcp://127.0.0.1:{listener.port}"  # before it binds
    with listener:
        yield listener


@pytest.fixture(scope="session")
def salt_factories_config():
    """The daemons' directories in one short-named directory (Unix socket paths stay short), removed after."""
    root = tempfile.mkdtemp(prefix="lbpair-sf-")
    yield {"root_dir": root}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def seed_pillar_session():
    return example_lbpair_pillar()


@pytest.fixture
def seed_pillar(seed_pillar_session):
    """The seed scenario's ``lbpair`` pillar (foo, bar, baz), a fresh copy per test."""
    return copy.deepcopy(seed_pillar_session)
