"""The beacon's tests: pure logic, and real keepalived, dbus-daemon, salt-master and minions."""

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "_modules"))
sys.path.insert(0, str(REPO / "_beacons"))

from tests.beacon.fixtures import *  # noqa: E402,F401,F403

