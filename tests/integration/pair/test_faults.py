"""
Failovers while a piece of the stack is down, on the whole lab: the master, the system D-Bus of
the active node, the minions. Each time the transition still reaches the master's history once,
DNS follows and the operator is told; afterwards the pair fails back as usual.
"""

import time

import pytest

from lab.demo import history_records
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, wait_for_vips
from tests.support.journal import last_seq, transitions
from tests.support.session import wait_for_minion


def fail_over(lab):
    """HAProxy on lb1 stopped for good: lb1 goes to FAULT, lb2 takes the VIPs."""
    lab.exec("lb1", ["systemctl", "stop", "haproxy"])
    wait_for_vips(lab, "lb2")


def transitions_recorded(history_path, minion, since_seq):
    return [r for r in history_records(history_path) if r.get("kind") == "transition" and r["minion"] == minion and r["seq"] > since_seq]


def status_on(salt_cli, node):
    return salt_cli.run("lbpair_keepalived.status", minion_tgt=node, _timeout=30).data["lbpair_51"]


@pytest.fixture
def pair(lab, highstated, salt_cli, reactions):
    """The pair as the seed leaves it (lb1 MASTER); afterwards HAProxy, keepalived, the minions and the VIPs are back."""
    wait_for_vips(lab, "lb1")
    seq = {node: last_seq(salt_cli, node) for node in NODES}
    reactions.mark()
    yield seq
    for node in NODES:
        lab.exec(node, ["systemctl", "start", "salt-minion", "keepalived"])
        wait_for_minion(salt_cli, node)
    lab.exec("lb1", ["systemctl", "start", "haproxy"])
    wait_for_vips(lab, "lb1")
    reactions.awaited("lb1")


def test_failover_while_the_master_is_down_is_recorded_once_when_it_is_back(pair, lab, salt_master, history_path, services):
    texts_before = len(services.webhook.texts())
    with salt_master.stopped():
        fail_over(lab)
        time.sleep(2)  # the beacons' events are sent into the void
    # back up: each transition reaches the history once, confirmed by its node's journal: caught up
    # from the journal (on the minion's reconnection), or its event resent by the minion ("live")
    for node, move in (("lb2", ("BACKUP", "MASTER")), ("lb1", ("MASTER", "FAULT"))):
        wait_until(lambda node=node: transitions_recorded(history_path, node, pair[node]), 90, what=f"{node}'s transition recorded")
        time.sleep(2)  # both ways may deliver it: still recorded once
        records = transitions_recorded(history_path, node, pair[node])
        assert [(r["previous_state"], r["state"], r["confirmed"]) for r in records] == [(*move, True)], records
        assert records[0]["seen"] in ("late", "live")
    wait_until(lambda: services.named.query("active", "A") == ["192.0.2.12"], 30, what="DNS pointing at lb2")
    wait_until(lambda: [text for text in services.webhook.texts()[texts_before:] if "lb2 is MASTER" in text], 30,
               what="the webhook message")  # fmt: skip


def test_dbus_daemon_killed_on_the_active_node(pair, lab, salt_cli, events, history_path, reactions, services):
    killed = time.monotonic()
    lab.exec("lb1", ["pkill", "-KILL", "-x", "dbus-daemon"])
    warning = wait_until(
        lambda: events.first(lambda tag, data: tag == "salt/beacon/lb1/lbpair_vrrp/warning/keepalived_not_on_bus", killed),
        60, what="the beacon's warning on the master",
    )  # fmt: skip
    assert "restart keepalived" in warning[2]["message"]
    # the operator is told, and the central history has it
    wait_until(lambda: [t for t in services.webhook.texts() if t.startswith("[lb1+lb2] WARNING lbpair: lb1 keepalived not on bus")], 30,
               what="the warning's webhook message")  # fmt: skip
    assert [r["code"] for r in history_records(history_path) if r.get("kind") == "warning"][-1:] == ["keepalived_not_on_bus"]
    assert status_on(salt_cli, "lb1")["source"] == "json"  # keepalived stays off the bus: the JSON dump answers

    fail_over(lab)
    reactions.awaited("lb2")  # lb2's bus is fine: event, history, DNS, webhook, mail
    lb1 = wait_until(lambda: transitions_recorded(history_path, "lb1", pair["lb1"]), 30, what="lb1's transition recorded")
    assert [(r["previous_state"], r["state"], r["source"], r["confirmed"]) for r in lb1] == [("MASTER", "FAULT", "reconstructed", True)]

    lab.exec("lb1", ["systemctl", "restart", "keepalived"])  # what the warning says to do
    wait_until(lambda: status_on(salt_cli, "lb1").get("source") == "dbus", 30, what="keepalived on lb1 back on D-Bus")


def test_minions_down_across_a_failover_report_it_once_when_back(pair, lab, salt_cli, history_path, reactions):
    for node in NODES:
        lab.exec(node, ["systemctl", "stop", "salt-minion"])
    fail_over(lab)
    for node in NODES:
        lab.exec(node, ["systemctl", "start", "salt-minion"])
    seen = [what for _, what in reactions.awaited("lb2")]
    assert "event on the master" in seen and "transition in the master's history" in seen
    for node, move in (("lb1", ("MASTER", "FAULT")), ("lb2", ("BACKUP", "MASTER"))):
        entries = transitions(salt_cli, node, since=pair[node])
        assert [(e["previous_state"], e["state"], e["source"], e["seq"]) for e in entries] == [(*move, "reconstructed", pair[node] + 1)]
        wait_until(lambda node=node: transitions_recorded(history_path, node, pair[node]), 30, what=f"{node}'s transition recorded")
        time.sleep(2)  # the minion's start-up catch-up and its beacon event both came: recorded once all the same
        assert len(transitions_recorded(history_path, node, pair[node])) == 1
