"""
Two hot masters running lbpair's reactions for one pair: the storm rig (lab/storm_rig.py: real
salt-minions running the unmodified beacon on a driver of keepalived's D-Bus interface) with its
second master. The minions have ``master: [m1, m2]`` and ``beacons_before_connect: True``, as
docs/operations.md asks. Each master keeps its own history; both send to the same webhook
receiver, mail server and BIND, so a message or DNS update sent twice shows.
"""

import pytest

from lab.beacon_rig import master_events, salt_namespace, vrrp_factories  # noqa: F401  (the rig's namespace and master set-up)
from lab.storm_rig import *  # noqa: F401,F403  (the rig's fixtures; tests/conftest.py gives the session's)


@pytest.fixture(scope="module")
def storm_pairs():
    return 1


@pytest.fixture(scope="module")
def storm_masters():
    return 2


@pytest.fixture(scope="module")
def storm_damping_window():
    return 0  # each transition is one message, counted
