"""
Unplanned failures of the MASTER on the lab, without polling for a process: HAProxy stopped for
good (systemd's drop-in sets keepalived's track file), hung (the probe asks HAProxy itself),
killed and healed by systemd (nothing moves), and a split brain healed by keepalived's own
remedies. Order of events and failed requests are asserted; timings are the bench's.
"""

import time

import pytest

from lab import drills, scenarios
from lab.demo import history_records
from lab.load import ClientLoad
from lab.util import wait_until
from tests.integration.pair.conftest import VIPS, apply_state, wait_for_vips

MASTER, PEER = drills.MASTER, drills.PEER


@pytest.fixture
def load(lab, highstated):
    """The client's requests to the three VIPs, lb1 MASTER (and lb2 BACKUP) at the start, lb1 MASTER at the end."""
    wait_for_vips(lab, MASTER)
    drills.peer_settled(lab)  # a graceful failback ends with a moment of FAULT on lb2: not a transition of the test's
    client = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS])
    yield client
    client.stop()
    wait_for_vips(lab, MASTER, timeout=60)


def _track(lab, node, name):
    return lab.exec(node, ["cat", f"/var/lib/lbpair/track/{name}"]).stdout.strip()


def _served_meanwhile(load, seconds=2.0):
    """The requests sent in the next *seconds*, and how many failed."""
    before = load.counts()
    time.sleep(seconds)
    after = load.counts()
    time.sleep(drills.REQUEST_TIMEOUT)
    failed = [number for number in load.counts()["failed"] if before["requests"] < number <= after["requests"]]
    return after["requests"] - before["requests"], len(failed)


def test_haproxy_stopped_for_good_puts_the_master_in_fault_and_the_peer_takes_over(lab, load):
    since = {node: drills.now_on(lab, node) for node in (MASTER, PEER)}
    drills.haproxy(lab, MASTER, "stop")
    drills.moment_vips_on(lab, PEER, VIPS)
    assert _track(lab, MASTER, "haproxy") == "1"
    assert drills.transitions(lab, MASTER, since[MASTER])[:1] == ["FAULT"]
    assert drills.transitions(lab, PEER, since[PEER]) == ["MASTER"]
    sent, failed = _served_meanwhile(load)
    assert sent > 0 and failed == 0  # the peer serves every request once it holds the VIPs
    drills.haproxy(lab, MASTER, "start")
    wait_for_vips(lab, MASTER)
    assert _track(lab, MASTER, "haproxy") == "0"
    assert drills.transitions(lab, MASTER, since[MASTER])[-1] == "MASTER"


def test_a_crash_systemd_heals_moves_nothing(lab, load):
    for _ in range(3):
        crash = drills.healed_crash(lab, load, VIPS)
        assert crash["transitions"] == {MASTER: [], PEER: []} and crash["vips_on_master"], crash
        assert crash["requests"]["failures"] < crash["requests"]["requests"], crash
    assert _track(lab, MASTER, "haproxy") == "0"


def test_a_keepalived_restart_is_a_failover_and_a_graceful_failback(lab, load, history_path):
    """What a package upgrade does: keepalived stops (priority 0: lb2 takes over), starts in FAULT, is handed the VIPs back."""
    since = drills.now_on(lab, PEER)
    records_before = len(history_records(history_path))
    lab.exec(MASTER, ["systemctl", "restart", "keepalived"])
    drills.moment_vips_on(lab, PEER, VIPS)
    moved = load.counts()
    drills.moment_vips_on(lab, MASTER, VIPS, timeout=30)
    back = load.counts()
    time.sleep(drills.REQUEST_TIMEOUT)
    failback = drills.sent_between(moved, back, load.counts())
    assert failback["requests"] > 0 and failback["failures"] == 0, failback
    assert drills.transitions(lab, PEER, since, scenarios.SEED_INSTANCE) == ["MASTER", "FAULT", "BACKUP"]  # the hand-over's FAULT
    planned = [r for r in history_records(history_path)[records_before:] if r.get("kind") == "planned"]
    assert [r["message"] for r in planned] == ["planned failback: the VIPs move to lb1"]


def test_a_hung_haproxy_is_found_by_the_probe_and_the_peer_takes_over(lab, load):
    since = {node: drills.now_on(lab, node) for node in (MASTER, PEER)}
    drills.haproxy(lab, MASTER, "STOP")
    try:
        drills.moment_vips_on(lab, PEER, VIPS)
        assert drills.transitions(lab, MASTER, since[MASTER])[:1] == ["FAULT"]
        assert drills.transitions(lab, PEER, since[PEER]) == ["MASTER"]
        assert _track(lab, MASTER, "haproxy") == "0"  # the process is there: only the probe knows
        sent, failed = _served_meanwhile(load)
        assert sent > 0 and failed == 0
    finally:
        drills.haproxy(lab, MASTER, "CONT")
    wait_for_vips(lab, MASTER, timeout=30)


def test_after_a_split_brain_one_master_remains_and_the_client_reaches_it(lab, load, services):
    alarms_before = len([text for text in services.webhook.texts() if "split brain" in text])
    cut = time.monotonic()
    with drills.vrrp_cut(lab):
        drills.moment_vips_on(lab, PEER, VIPS)
        assert lab.vips_on(MASTER, VIPS) == VIPS  # both MASTER
        wait_until(lambda: len([t for t in services.webhook.texts() if "split brain" in t]) > alarms_before, 30, what="the split-brain alarm")
        time.sleep(max(0.0, 10 - (time.monotonic() - cut)))  # VRRP stays cut for 10 s
    wait_until(lambda: lab.vips_on(PEER, VIPS) == [], 2, what="one MASTER within 2 s of VRRP passing again")
    assert lab.vips_on(MASTER, VIPS) == VIPS
    lb1_mac = lab.exec(MASTER, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    time.sleep(0.5)
    for vip in VIPS:
        assert lab.curl(f"http://{vip}/") in {"foo1", "foo2", "bar1", "bar2", "baz1", "baz2"}
        neighbour = lab.exec("client", ["ip", "neigh", "show", vip]).stdout
        assert lb1_mac in neighbour, (vip, neighbour)
    sent, failed = _served_meanwhile(load)
    assert sent > 0 and failed == 0


def test_highstate_never_overwrites_a_track_file(lab, highstated, salt_cli):
    wait_for_vips(lab, MASTER)
    drills.peer_settled(lab)
    lab.exec(PEER, ["sh", "-c", "echo 1 > /var/lib/lbpair/track/maintenance"])
    try:
        wait_until(lambda: drills.transitions(lab, PEER, drills.now_on(lab, PEER) - 30)[-1:] == ["FAULT"], 10, what="lb2 in FAULT")
        states = apply_state(salt_cli, PEER)
        assert states["HAProxy is watched for keepalived"]["result"] is True
        assert _track(lab, PEER, "maintenance") == "1"
    finally:
        lab.exec(PEER, ["sh", "-c", "echo 0 > /var/lib/lbpair/track/maintenance"])
    wait_until(lambda: drills.transitions(lab, PEER, drills.now_on(lab, PEER) - 30)[-1:] == ["BACKUP"], 10, what="lb2 BACKUP again")
    assert lab.vips_on(MASTER, VIPS) == VIPS
