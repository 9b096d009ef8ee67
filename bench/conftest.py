"""
pytest set-up for the benchmarks that run under pytest (``bench/beacon_latency.py``,
``bench/storm.py``): the beacon's rig, ``lab/beacon_rig.py``, the storm's, ``lab/storm_rig.py``,
and the session's set-up of ``lab/salt_rig.py`` (which the tests load as a plugin). Imported here
rather than named in ``pytest_plugins``: ``python -m bench.beacon_latency`` has imported them
before pytest starts, too late for pytest to rewrite them as plugins. Fixtures of a conftest override salt-factories' own of the same names
(``event_listener``, ``salt_factories_config``).
"""

from lab.beacon_rig import *  # noqa: F401,F403  (the rig's fixtures)
from lab.salt_rig import (  # noqa: F401  (the session's set-up)
    event_listener,
    pytest_sessionstart,
    pytest_unconfigure,
    salt_factories_config,
    seed_pillar_session,
)
from lab.storm_rig import *  # noqa: F401,F403  (the storm's rig, on the beacon rig's namespace and master set-up)
