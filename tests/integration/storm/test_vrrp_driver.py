"""
The D-Bus driver (lab/vrrp_driver.py) stands in for keepalived well enough: the unmodified beacon
journals and sends a driven transition, ``lbpair_keepalived.status`` reads the state from D-Bus,
and the master, which learns the two pairs from their pillar, records the failover.
"""

import time

import pytest

from lab.storm_rig import pair_nodes
from lab.util import wait_until
from saltext.lbpair.master.history import History

pytestmark = pytest.mark.timeout(120)


def status(cli, node):
    ret = cli.run("lbpair_keepalived.status", minion_tgt=node, _timeout=30)
    assert ret.returncode == 0, ret.stdout + ret.stderr
    return ret.data["lbpair_51"]


def test_the_beacon_sends_a_driven_transition_and_status_reads_it_from_dbus(
    storm_driver, storm_minions, storm_master, master_events, storm_reactions
):
    cli = storm_master.salt_cli(timeout=60)
    assert sorted(storm_minions) == sorted([*pair_nodes("p01"), *pair_nodes("p02")])
    assert status(cli, "p01a")["state"] == "MASTER" and status(cli, "p01a")["source"] == "dbus"
    since = time.time()
    storm_driver.set({"p01a": "BACKUP", "p01b": "MASTER"})
    tag = "salt/beacon/p01b/lbpair_vrrp/lbpair_51/MASTER"
    events = wait_until(lambda: master_events.get_events([(storm_master.id, tag)], after_time=since), 20, what=tag)
    data = min(events, key=lambda event: event.stamp).data
    assert (data["previous_state"], data["source"], data["meta"]["pair"]) == ("BACKUP", "live", "p01"), data
    assert data["vips"], data  # from the node's rendered keepalived.conf
    journalled = cli.run("lbpair_keepalived.transitions", minion_tgt="p01b", _timeout=30).data
    assert (journalled[-1]["state"], journalled[-1]["seq"]) == ("MASTER", data["seq"]), journalled
    assert status(cli, "p01b") == {**status(cli, "p01b"), "state": "MASTER", "source": "dbus"}
    assert status(cli, "p01a")["state"] == "BACKUP"
    history = History(storm_reactions["history"]["path"])

    def failover_recorded():
        moves = {(r["pair"], r["minion"], r["previous_state"], r["state"]) for r in history.read() if r["kind"] == "transition"}
        return {("p01", "p01a", "MASTER", "BACKUP"), ("p01", "p01b", "BACKUP", "MASTER")} <= moves

    wait_until(failover_recorded, 60, interval=0.5, what="p01's failover in the master's history")
