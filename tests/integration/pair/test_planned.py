"""
Planned moves on the whole lab: ``lbpair.switchover`` under client load fails no request and
says "planned" in the history and the messages; maintenance keeps a node out across a highstate
until released; both are refused while the peer is not healthy.
"""

import time

import pytest

from lab.demo import history_records
from lab.load import ClientLoad
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, VIPS, apply_state, wait_for_vips

MIN_REQUESTS = 1000


@pytest.fixture(scope="module")
def salt_run(salt_master):
    return salt_master.salt_run_cli(timeout=180)


@pytest.fixture
def back_on_lb1(lab, highstated, salt_run):
    """Each test starts and ends with lb1 MASTER, nothing deferring, nobody in maintenance."""
    yield
    for node in NODES:
        salt_run.run("lbpair.maintenance", node, "release=True")
    salt_run.run("lbpair.switchover", "lb1")
    wait_for_vips(lab, "lb1")


def _keepalived_state(salt_cli, node):
    return salt_cli.run("lbpair_keepalived.status", minion_tgt=node, _timeout=30).data["lbpair_51"]["state"]


def test_a_planned_switchover_under_load_fails_no_request(lab, highstated, back_on_lb1, salt_run, history_path, services):
    wait_for_vips(lab, "lb1")
    load = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS])
    try:
        time.sleep(3)
        moved = salt_run.run("lbpair.switchover", "lb2")
        assert moved.returncode == 0 and moved.data["moved"] is True, moved.stdout + moved.stderr
        assert lab.vips_on("lb2", VIPS) == VIPS and lab.vips_on("lb1", VIPS) == []
        back = salt_run.run("lbpair.switchover", "lb1")
        assert back.returncode == 0 and back.data["moved"] is True, back.stdout + back.stderr
        wait_until(lambda: load.counts()["requests"] >= MIN_REQUESTS, 60, what=f"{MIN_REQUESTS} requests")
        time.sleep(2.1)  # the last requests end (2 s timeout)
    finally:
        counts = load.stop()
    assert counts["requests"] >= MIN_REQUESTS and counts["failures"] == 0, counts
    assert "planned" in "\n".join(moved.data["timeline"]), moved.data["timeline"]
    planned = [r for r in history_records(history_path) if r.get("kind") == "transition" and r.get("planned")]
    assert {(r["minion"], r["state"]) for r in planned} >= {("lb2", "MASTER"), ("lb1", "BACKUP")}
    wait_until(lambda: [t for t in services.webhook.texts() if "lb2 is MASTER" in t and "planned" in t], 30, what="planned message")


def test_maintenance_keeps_a_node_out_across_highstate_until_released(lab, highstated, back_on_lb1, salt_run, salt_cli):
    wait_for_vips(lab, "lb1")
    out = salt_run.run("lbpair.maintenance", "lb1")
    assert out.returncode == 0 and out.data["out"] is True, out.stdout + out.stderr
    assert lab.vips_on("lb2", VIPS) == VIPS
    apply_state(salt_cli, "lb1")
    time.sleep(3)  # keepalived reloaded by the highstate: still out
    assert _keepalived_state(salt_cli, "lb1") == "FAULT" and lab.vips_on("lb2", VIPS) == VIPS
    refused = salt_run.run("lbpair.switchover", "lb1")
    assert refused.returncode != 0 and "lb1 is FAULT" in refused.stdout + refused.stderr
    released = salt_run.run("lbpair.maintenance", "lb1", "release=True")
    assert released.returncode == 0, released.stdout + released.stderr
    wait_until(lambda: _keepalived_state(salt_cli, "lb1") == "BACKUP", 15, what="lb1 BACKUP again")
    assert lab.vips_on("lb2", VIPS) == VIPS  # released, the VIPs stay where they are


def test_a_switchover_to_a_node_whose_haproxy_is_down_is_refused(lab, highstated, back_on_lb1, salt_run, salt_cli):
    wait_for_vips(lab, "lb1")
    lab.exec("lb2", ["systemctl", "stop", "haproxy"])
    try:
        wait_until(lambda: _keepalived_state(salt_cli, "lb2") == "FAULT", 15, what="lb2 in FAULT")
        refused = salt_run.run("lbpair.switchover", "lb2")
        assert refused.returncode != 0 and "lb2 is FAULT" in refused.stdout + refused.stderr
        assert lab.vips_on("lb1", VIPS) == VIPS
    finally:
        lab.exec("lb2", ["systemctl", "start", "haproxy"])
    wait_until(lambda: _keepalived_state(salt_cli, "lb2") == "BACKUP", 15, what="lb2 BACKUP again")
