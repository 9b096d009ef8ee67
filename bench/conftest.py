"""
pytest set-up for the benchmark that runs under pytest (``bench/beacon_latency.py``): the session's
set-up of ``lab/salt_rig.py`` (the tests load the same plugin) and the beacon's rig,
``lab/beacon_rig.py``. Plugins named here register after salt-factories, so their fixtures
override its own of the same names (``event_listener``, ``salt_factories_config``).
"""

pytest_plugins = ["lab.salt_rig", "lab.beacon_rig"]
