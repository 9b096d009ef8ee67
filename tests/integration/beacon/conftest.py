"""The beacon's tests: real keepalived, dbus-daemon, salt-master and minions (the rig: lab/beacon_rig.py)."""

from lab.beacon_rig import *  # noqa: F401,F403  (the rig's fixtures; tests/conftest.py gives the session's)
