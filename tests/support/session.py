"""
The suites' salt-master and salt-minions (pytest-salt-factories), for the whole session, on
loopback unless a suite says otherwise (the session's set-up is :mod:`lab.salt_rig`, loaded first).

A suite describes its daemons by overriding these fixtures in its conftest:

- ``salt_master_id`` and ``salt_master_overrides``: the master's id and options (over
  :data:`lab.salt_rig.MASTER_DEFAULTS`);
- ``minion_overrides``: ``{minion id: options}``, one started minion each (none by default).

``state_tree`` is a master's file_roots with lbpair's reactor SLS.

The beacon's suite, whose modules each start their own master and minions on the same nodes,
takes its module-scoped rig from :mod:`lab.beacon_rig` (shared with the benchmark) instead.
"""

import pytest

from lab.salt_master import REPO
from lab.salt_rig import started_master, started_minions
from lab.util import wait_until


@pytest.fixture(scope="session")
def salt_master_id():
    return "lbpair-master"


@pytest.fixture(scope="session")
def salt_master_overrides():
    return {}


@pytest.fixture(scope="session")
def state_tree(tmp_path_factory):
    """A master's file_roots with lbpair's reactor SLS (``salt://reactor/lbpair/*.sls``)."""
    root = tmp_path_factory.mktemp("file_roots")
    (root / "reactor").symlink_to(REPO / "salt" / "reactor")
    return root


@pytest.fixture(scope="session")
def salt_master(salt_factories, salt_master_id, salt_master_overrides):
    with started_master(salt_factories, salt_master_id, salt_master_overrides) as master:
        yield master


@pytest.fixture(scope="session")
def minion_overrides():
    return {}


@pytest.fixture(scope="session")
def minions(salt_master, minion_overrides):
    """``{minion id: started salt-minion}``, one per entry of ``minion_overrides``."""
    with started_minions(salt_master, minion_overrides) as started:
        yield started


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=180)


@pytest.fixture(scope="session")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=60)


def wait_for_minion(salt_cli, node, timeout=90):
    """
    Wait until *node* answers ``test.ping`` (a minion just started, or restarted, takes a while).
    Each ping gives up after 10 s: a ping published while the minion was still connecting is
    never seen by it, and the CLI's own timeout (180 s, which ``_timeout`` does not lower) would
    outlast the whole wait.
    """
    answers = lambda: salt_cli.run("--timeout=10", "test.ping", minion_tgt=node).data is True  # noqa: E731
    wait_until(answers, timeout, interval=1, what=f"minion {node} answering")
