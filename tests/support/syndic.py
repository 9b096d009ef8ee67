"""
Syndics below the session's salt-master (:mod:`.session`), which is then a master of masters: each
syndic a salt-master of its own with a salt-syndic connected up to the top master, its minions
connected to it, all on loopback and stopped at the end of the session (or when one fails to start).

A suite describes them by overriding:

- ``salt_master_overrides`` (of :mod:`.session`): with ``order_masters: True`` and ``transport:
  tcp`` (which the syndics and their minions take from it): over Salt 3008.4's zeromq a syndic
  forwards nothing up (docs/facts-syndic.md);
- ``syndic_overrides``: ``{syndic id: {"master": options of its salt-master, "minions": {minion
  id: options}}}`` (none by default).
"""

import contextlib

import pytest

from lab.salt_rig import started_minions, started_syndic


@pytest.fixture(scope="session")
def syndic_overrides():
    return {}


@pytest.fixture(scope="session")
def syndics(salt_master, syndic_overrides):
    """``{syndic id: started salt-syndic}``; its salt-master is ``.master``."""
    if syndic_overrides and not (salt_master.config["order_masters"] and salt_master.config["transport"] == "tcp"):
        pytest.fail("a master with syndics below it needs order_masters: True and transport: tcp in salt_master_overrides")
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(started_syndic(salt_master, name, spec.get("master", {})))
            for name, spec in syndic_overrides.items()
        }


@pytest.fixture(scope="session")
def syndic_minions(syndics, syndic_overrides):
    """``{minion id: started salt-minion}``, the minions of every syndic's master."""
    with contextlib.ExitStack() as stack:
        started = {}
        for name, syndic in syndics.items():
            started.update(stack.enter_context(started_minions(syndic.master, syndic_overrides[name].get("minions", {}))))
        yield started
