"""
The beacon against the real programs: two keepalived nodes in network namespaces,
each on its own dbus-daemon, a real salt-master, and a salt-minion per node.
"""

import itertools
import statistics
import time

from lab.util import wait_until
from saltext.lbpair.node import vrrp_dbus
from tests.support.journal import journal, states_of, wait_beacon_events

CONTRACT_KEYS = {"id", "instance", "interface", "vrid", "family", "state", "previous_state", "received_at", "time",
                 "seq", "source", "vips", "meta"}
VIPS = ["203.0.113.10", "203.0.113.20", "203.0.113.30"]


def last_state(minion):
    entries = journal(minion)
    return entries[-1]["state"] if entries else None


def wait_last_states(minions, expected, timeout=25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {name: last_state(minion) for name, minion in minions.items()} == expected:
            return
        time.sleep(0.1)
    raise AssertionError({name: states_of(journal(minion)) for name, minion in minions.items()})


def test_failover_and_recovery_reach_the_master_in_order(nodes, minions, salt_master, master_events):
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})
    since = time.time()
    before = {name: len(journal(minion)) for name, minion in minions.items()}

    nodes["lb1"].set_healthy(False)
    wait_last_states(minions, {"lb1": "BACKUP", "lb2": "MASTER"})
    nodes["lb1"].set_healthy(True)
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})

    expected = {
        "lb1": [("MASTER", "BACKUP"), ("BACKUP", "MASTER")],
        "lb2": [("BACKUP", "MASTER"), ("MASTER", "BACKUP")],
    }
    delays = []
    for name, minion in minions.items():
        new = journal(minion)[before[name]:]
        assert states_of(new) == expected[name]
        assert {entry["source"] for entry in new} == {"live"}
        seqs = [entry["seq"] for entry in new]
        events = wait_beacon_events(master_events, salt_master, name, seqs, since=since, kind="*", timeout=10)
        assert [(event.data["previous_state"], event.data["state"]) for event in events] == expected[name]
        assert [event.data["seq"] for event in events] == [entry["seq"] for entry in new]
        for event in events:
            assert event.tag == f"salt/beacon/{name}/lbpair_vrrp/lbpair_51/{event.data['state']}"
            assert set(event.data) >= CONTRACT_KEYS, event.data
            assert event.data["id"] == name
            assert (event.data["interface"], event.data["vrid"], event.data["family"]) == ("eth0", 51, "IPv4")
            assert event.data["vips"] == VIPS
            assert event.data["meta"] == {"pair": "test", "node": name}
            delays.append(event.stamp.timestamp() - event.data["time"])
    # Sent at once from the D-Bus thread, not at the next one-second beacon tick.
    assert statistics.median(delays) < 0.3, delays


def assert_chain_without_gaps(entries):
    """Sequence numbers 1..n, and each transition starts where the previous one ended."""
    assert [entry["seq"] for entry in entries] == list(range(1, len(entries) + 1)), entries
    for before, after in itertools.pairwise(entries):
        assert after["previous_state"] == before["state"], (before, after)
        assert after["state"] != before["state"], (before, after)


def new_entries(minion, count):
    return journal(minion)[count:]


def test_transitions_during_bus_keepalived_and_minion_outages_are_reported_once(
    nodes, minions, salt_master, master_events
):
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})
    lb1, lb2 = nodes["lb1"], nodes["lb2"]

    # dbus-daemon restarts while lb1's check fails: keepalived never comes back on the bus
    since = time.time()
    mark = {name: len(journal(minion)) for name, minion in minions.items()}
    for node in nodes.values():
        node.stop_bus()
    lb1.set_healthy(False)
    time.sleep(2)
    for node in nodes.values():
        node.start_bus()
    wait_last_states(minions, {"lb1": "BACKUP", "lb2": "MASTER"})
    for name, minion in minions.items():
        assert {entry["source"] for entry in new_entries(minion, mark[name])} == {"reconstructed"}
        warnings = master_events.wait_for_events(
            [(salt_master.id, f"salt/beacon/{name}/lbpair_vrrp/warning/keepalived_not_on_bus")], timeout=10,
            after_time=since,
        )
        assert warnings.found_all_events
        assert "restart keepalived" in next(iter(warnings)).data["message"]

    # keepalived restarts (back on the bus) while lb1 recovers
    for node in nodes.values():
        node.stop_keepalived()
    lb1.set_healthy(True)
    for node in nodes.values():
        node.start_keepalived()
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})

    # the minions are down while lb1 fails
    mark = {name: len(journal(minion)) for name, minion in minions.items()}
    for minion in minions.values():
        minion.terminate()
    lb1.set_healthy(False)
    wait_until(lambda: vrrp_dbus.read_states(lb2.bus_address)["lbpair_51"]["state"] == "MASTER", 20, what="lb2 MASTER")
    for minion in minions.values():
        minion.start()
    wait_last_states(minions, {"lb1": "BACKUP", "lb2": "MASTER"})
    for name, minion in minions.items():
        assert [entry["source"] for entry in new_entries(minion, mark[name])] == ["reconstructed"]
    lb1.set_healthy(True)
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})

    for name, minion in minions.items():
        entries = journal(minion)
        assert_chain_without_gaps(entries)
        events = wait_beacon_events(master_events, salt_master, name, [entry["seq"] for entry in entries])
        seqs = [event.data["seq"] for event in events]
        assert sorted(seqs) == [entry["seq"] for entry in entries], "every transition reached the master once"


def test_flapping_check_gives_every_transition_in_order(nodes, minions):
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})
    lb1 = nodes["lb1"]
    logged_before = len(lb1.vrrp_log())
    mark = len(journal(minions["lb1"]))
    started = time.monotonic()
    for flip in range(20):  # 20 transitions in about 3 s
        lb1.set_flap(flip % 2 == 0)
        time.sleep(0.15)
    elapsed = time.monotonic() - started
    lb1.set_flap(False)
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})
    truth = [state for instance, state in lb1.vrrp_log()[logged_before:] if instance == "lbpair_51"]
    reported = [entry["state"] for entry in new_entries(minions["lb1"], mark)]
    assert reported == truth, (reported, truth)
    assert len(reported) >= 20 and len(reported) / elapsed > 5
    assert {entry["source"] for entry in new_entries(minions["lb1"], mark)} == {"live"}
    assert_chain_without_gaps(journal(minions["lb1"]))


def test_status_reads_the_node_bus_and_falls_back_to_the_json_dump(nodes, minions, salt_master):
    wait_last_states(minions, {"lb1": "MASTER", "lb2": "BACKUP"})
    cli = salt_master.salt_cli(timeout=60)
    over_dbus = cli.run("lbpair_keepalived.status", minion_tgt="lb1").data
    assert over_dbus == {"lbpair_51": {"state": "MASTER", "interface": "eth0", "vrid": 51, "family": "IPv4",
                                       "source": "dbus"}}
    nodes["lb1"].stop_bus()  # left off: this is the module's last test
    from_json = cli.run("lbpair_keepalived.status", minion_tgt="lb1").data
    assert from_json["lbpair_51"]["state"] == "MASTER" and from_json["lbpair_51"]["source"] == "json", from_json
    assert from_json["lbpair_51"]["vips"] == VIPS
