"""
A node back from FAULT takes the VIPs handed back only at its full priority (the graceful
failback): keepalived's own JSON dump, read by ``keepalived_process.Local``, has a node whose check fails
below it until the check has risen again.
"""

import time

from lab.util import wait_until
from saltext.lbpair.node import keepalived_config, keepalived_process
from tests.functional.rigs import keepalived_on, node_model, node_with_eth0

NAMESPACE = "lbpair-priority"
INSTANCE = "lbpair_51"


def test_a_node_is_below_its_full_priority_until_its_check_has_risen(tmp_path, seed_pillar):
    haproxy_up = tmp_path / "haproxy-up"
    seed_pillar["vrrp"]["check"] = {"script": f"/usr/bin/test -e {haproxy_up}", "interval": 1, "fall": 1, "rise": 2}
    model = node_model(seed_pillar, "lb1")
    with node_with_eth0(NAMESPACE) as namespace, keepalived_on({"lb1": namespace}, seed_pillar, tmp_path):
        local = keepalived_process.Local({"pid_file": str(tmp_path / "lb1" / "pid.pid")})
        wait_until(lambda: local.running() and INSTANCE in local.json_status(), 10, what="keepalived's JSON dump")
        wait_until(lambda: local.json_status()[INSTANCE]["priority"] == 101, 10, what="the failing check taken off")
        assert local.wait_for_full_priority(model, [INSTANCE], 1.5) == [INSTANCE]
        haproxy_up.touch()
        started = time.monotonic()
        assert local.wait_for_full_priority(model, [INSTANCE], 5) == []
        assert time.monotonic() - started >= 1  # rise 2 x interval 1
        assert local.json_status()[INSTANCE]["priority"] == keepalived_config.full_priorities(model)[INSTANCE] == 103
