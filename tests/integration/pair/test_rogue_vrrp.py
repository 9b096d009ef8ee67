"""
A rogue VRRP router on the pair's segment: real keepalived in a namespace of its own on the lab's
bridge (:mod:`lab.rogue`) sends VRID 51 with priority 254 and the pair's VIPs. Without lbpair's
firewall rules this takes the VIPs from both nodes (seen by hand: both dropped all of them until
it stopped). With the rules the highstate put in place, and the lab's INPUT policy ACCEPT, nothing
changes: no transition, the VIPs stay on lb1, no client request fails; each node reports the
sender (``lbpair_firewall.rogue_senders`` and a ``rogue_vrrp`` beacon warning, recorded by the
master).
"""

import time

from lab import netns, rogue, topology
from lab.demo import history_records
from lab.load import ClientLoad
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, VIPS, wait_for_vips
from tests.support.journal import last_seq, transitions

ROGUE = f"{netns.PREFIX}rogue"
ROGUE_ADDRESS = "192.0.2.66"
WATCHED = 12  # s the pair is watched under attack: a takeover would take about 3 s


def vips_where_they_were(lab):
    return {node: lab.vips_on(node, VIPS) for node in NODES} == {"lb1": VIPS, "lb2": []}


def warned(events, node, since):
    tag = f"salt/beacon/{node}/lbpair_vrrp/warning/rogue_vrrp"
    return events.first(lambda event_tag, data: event_tag == tag and ROGUE_ADDRESS in data["message"], since)


def test_a_rogue_vrrp_router_changes_nothing_and_is_reported(lab, highstated, salt_cli, events, history_path, tmp_path):
    wait_for_vips(lab, "lb1")
    peers = {"lb1": "192.0.2.12", "lb2": "192.0.2.11"}
    for node in NODES:
        rules = salt_cli.run("lbpair_firewall.vrrp_rules", minion_tgt=node).data
        assert rules == {
            f"lbpair-vrrp {peers[node]} to 224.0.0.18": True,  # the peer's adverts accepted, then ours from others recorded
            **{f"lbpair-vrrp record {family} vrid 51 on eth0": True for family in ("ipv4", "ipv6")},
            **{f"lbpair-vrrp drop {family} on eth0": True for family in ("ipv4", "ipv6")},  # and any other VRRP dropped
        }, (node, rules)
    seq = {node: last_seq(salt_cli, node) for node in NODES}
    started = time.monotonic()
    load = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS])
    try:
        with rogue.on_segment(topology.SWITCH, topology.BRIDGE, ROGUE, f"{ROGUE_ADDRESS}/24"):
            with rogue.RogueRouter(ROGUE, tmp_path / "rogue", vrid=51, priority=254, vips=VIPS) as router:
                wait_until(router.is_master, 10, what="the rogue router MASTER")
                deadline = time.monotonic() + WATCHED
                while time.monotonic() < deadline:
                    assert vips_where_they_were(lab), {node: lab.vips_on(node, VIPS) for node in NODES}
                    time.sleep(0.2)
                assert router.is_master(), router.log()  # it claimed the VRID the whole time
                for node in NODES:
                    assert salt_cli.run("lbpair_firewall.rogue_senders", minion_tgt=node).data == [ROGUE_ADDRESS]
                    wait_until(lambda node=node: warned(events, node, started), 30, what=f"{node}'s rogue_vrrp warning")
    finally:
        counts = load.stop()
    assert counts["requests"] > 100 and counts["failures"] == 0, counts
    for node in NODES:
        assert transitions(salt_cli, node, since=seq[node]) == [], node
    assert not events.first(lambda tag, data: "/lbpair_vrrp/lbpair_51/" in tag, started)
    recorded = [r for r in history_records(history_path) if r.get("kind") == "warning" and r.get("code") == "rogue_vrrp"]
    assert {r["minion"] for r in recorded} == set(NODES), recorded
