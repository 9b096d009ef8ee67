"""
pytest set-up for the benchmark that runs under pytest (``bench/beacon_latency.py``): the beacon's
rig from ``lab/beacon_rig.py``, with the session's set-up the tests take from tests/conftest.py.
A conftest, not ``-p lab.beacon_rig``: its fixtures must override salt-factories' own
``event_listener`` and ``salt_factories_config`` (on every address, long socket paths), which a
``-p`` plugin, registered before salt-factories, cannot.
"""

from lab.beacon_rig import *  # noqa: F401,F403  (the rig's fixtures)
from lab.beacon_rig import (  # noqa: F401  (the session's set-up)
    event_listener,
    pytest_sessionstart,
    pytest_unconfigure,
    salt_factories_config,
    seed_pillar_session,
)
