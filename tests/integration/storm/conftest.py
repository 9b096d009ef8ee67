"""The storm rig's tests: the D-Bus driver of lab/vrrp_driver.py under real salt-minions (the rig: lab/storm_rig.py)."""

from lab.beacon_rig import master_events, salt_namespace, vrrp_factories  # noqa: F401  (the rig's namespace and master set-up)
from lab.storm_rig import *  # noqa: F401,F403  (the rig's fixtures; tests/conftest.py gives the session's)
