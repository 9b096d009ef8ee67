"""
The seed scenario end to end: the salt/ tree applied by a real master to two
real systemd machines leaves HAProxy serving foo, bar and baz, and keepalived
holding the VIPs on lb1.
"""

import copy
import time

from lab.load import ClientLoad
from tests.integration.pair.conftest import NODES, apply_state
from tests.integration.pair.conftest import VIPS as ALL_VIPS  # sorted; VIPS below names their services
from tests.support.journal import last_seq, transitions

VIPS = {"foo": "203.0.113.10", "bar": "203.0.113.20", "baz": "203.0.113.30"}
CONFIGS = ("/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf")


def vips_on(lab, node):
    return lab.vips_on(node, ALL_VIPS)


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def files_and_workers(lab, node):
    configs = [lab.exec(node, ["cat", path]).stdout for path in CONFIGS]
    workers = lab.exec(node, ["pgrep", "-d,", "-x", "haproxy"]).stdout.strip()
    keepalived = lab.exec(node, ["systemctl", "show", "-p", "MainPID", "keepalived"]).stdout.strip()
    return configs, workers, keepalived


def test_highstate_succeeds_on_both_nodes(highstated):
    for node, states in highstated.items():
        failed = {name: state["comment"] for name, state in states.items() if state["result"] is not True}
        assert not failed, f"{node}: {failed}"
        assert states["HAProxy configuration is managed"]["changes"]["diff"]
        assert states["keepalived configuration is managed"]["changes"]["diff"]


def test_lb1_holds_the_vips_and_lb2_stands_by(lab, highstated):
    assert wait_for(lambda: vips_on(lab, "lb1") == ALL_VIPS), vips_on(lab, "lb1")
    assert vips_on(lab, "lb2") == []


def test_haproxy_balances_round_robin_with_cookie_persistence(lab, highstated):
    assert wait_for(lambda: vips_on(lab, "lb1") == ALL_VIPS)
    for service, vip in VIPS.items():
        seen = {lab.curl(f"http://{vip}/") for _ in range(4)}
        assert seen == {f"{service}1", f"{service}2"}
        jar = f"/tmp/{service}.cookies"
        first = lab.curl(f"http://{vip}/", "-c", jar, "-b", jar)
        assert {lab.curl(f"http://{vip}/", "-b", jar) for _ in range(4)} == {first}


def test_second_highstate_reports_no_changes(salt_cli, highstated):
    for node in NODES:
        changed = {name: state["changes"] for name, state in apply_state(salt_cli, node).items() if state["changes"]}
        assert not changed, f"{node}: {changed}"


def test_keepalived_status_names_the_master(salt_cli, highstated, lab):
    assert wait_for(lambda: vips_on(lab, "lb1") == ALL_VIPS)
    states = {node: salt_cli.run("lbpair_keepalived.status", minion_tgt=node).data for node in NODES}
    assert states["lb1"]["lbpair_51"]["state"] == "MASTER", states
    assert states["lb2"]["lbpair_51"]["state"] == "BACKUP", states


def test_server_can_be_drained_and_made_ready(salt_cli, highstated):
    drained = salt_cli.run("lbpair_haproxy.set_server", "foo", "foo1", "drain", minion_tgt="lb1").data
    assert drained["status"] == "DRAIN", drained
    ready = salt_cli.run("lbpair_haproxy.set_server", "foo", "foo1", "ready", minion_tgt="lb1").data
    assert ready["status"] != "DRAIN", ready
    servers = salt_cli.run("lbpair_haproxy.servers", "bar", minion_tgt="lb1").data
    assert set(servers) == {"bar1", "bar2"}


def test_bad_pillar_leaves_the_running_daemons_untouched(salt_cli, highstated, lab, pillar):
    before = {node: files_and_workers(lab, node) for node in NODES}
    hostile = copy.deepcopy(pillar.seed)
    hostile["services"]["foo"]["servers"]["foo1"]["address"] = "198.51.100.11\n    bind 0.0.0.0:22"
    pillar.write(hostile)
    try:
        for node in NODES:
            states = apply_state(salt_cli, node)
            for name in ("HAProxy configuration is managed", "keepalived configuration is managed"):
                assert states[name]["result"] is False
                assert "lbpair:services:foo:servers:foo1:address" in states[name]["comment"]
    finally:
        pillar.restore()
    assert {node: files_and_workers(lab, node) for node in NODES} == before


def test_adding_a_service_under_load_drops_no_request(salt_cli, highstated, lab, pillar):
    assert wait_for(lambda: vips_on(lab, "lb1") == ALL_VIPS)
    seq_before = {node: last_seq(salt_cli, node) for node in NODES}
    load = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS.values()])
    try:
        with_qux = copy.deepcopy(pillar.seed)
        with_qux["services"]["qux"] = {
            "vip": "203.0.113.40",
            "port": 80,
            "cookie": "qux-server-id",
            "servers": {"qux1": {"address": "198.51.100.11", "port": 80}, "qux2": {"address": "198.51.100.12", "port": 80}},
        }
        pillar.write(with_qux)
        for node in NODES:
            states = apply_state(salt_cli, node)
            assert "+listen qux" in states["HAProxy configuration is managed"]["changes"]["diff"]
            time.sleep(5)  # one node at a time (salt -b 1): longer than lb2's master-down timer (3.6 s)
    finally:
        summary = load.stop()
    try:
        assert summary["requests"] > 100
        assert summary["failures"] == 0, summary
        # the nodes' configurations differ between the two reloads: lb2 must not take over meanwhile
        assert {node: transitions(salt_cli, node, since=seq_before[node]) for node in NODES} == {"lb1": [], "lb2": []}
        assert wait_for(lambda: lab.curl("http://203.0.113.40/") in ("foo1", "foo2"))
    finally:
        pillar.restore()
        seq_before = {node: last_seq(salt_cli, node) for node in NODES}
        for node in reversed(NODES):  # now the BACKUP first
            apply_state(salt_cli, node)
            time.sleep(5)
    assert {node: transitions(salt_cli, node, since=seq_before[node]) for node in NODES} == {"lb1": [], "lb2": []}
