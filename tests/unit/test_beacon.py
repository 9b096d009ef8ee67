"""The beacon's pure logic: configuration checks, transitions, D-Bus paths, keepalived's build."""

import queue

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_model
from saltext.lbpair.node import beacon, beacon_config, keepalived_process, vrrp_dbus
from saltext.lbpair.node.journal import Journal

INSTANCE = {"name": "lbpair_51", "interface": "eth0", "vrid": 51, "family": "IPv4"}


@pytest.mark.parametrize(
    "config",
    [
        [{"bus": "system"}],
        [{"bus": "unix:path=/run/lb1/bus.sock"}, {"meta": {"site": "paris"}}],
        [{"bus": "none"}],
        [{"interval": 5}, {"disable_during_state_run": True}, {"enabled": True}, {"_beacon_name": "lbpair_vrrp"}],
        {"bus": "system"},
        [],
    ],
)
def test_good_configurations_are_accepted(config):
    assert beacon_config.check_config(config) == (True, "")


@pytest.mark.parametrize(
    "config, words",
    [
        ("bus: system", "list of mappings"),
        ([{"buss": "system"}], "unknown key(s) buss"),
        ([{"bus": "/run/bus.sock"}], "D-Bus address"),
        ([{"bus": 5}], "D-Bus address"),
        ([{"meta": ["a"]}], "meta must be a mapping"),
        ([{"meta": {"smtp_password": "x"}}], "keep secrets out of it (smtp_password)"),
    ],
)
def test_bad_configurations_say_what_is_wrong(config, words):
    valid, message = beacon_config.check_config(config)
    assert not valid
    assert words in message


def test_keepalived_without_dbus_is_named_plainly_and_json_only_still_works():
    valid, message = beacon_config.check_config([{"bus": "system"}], dbus_built=False)
    assert not valid and "built without D-Bus" in message and "bus: none" in message
    assert beacon_config.check_config([{"bus": "none"}], dbus_built=False) == (True, "")


def test_keepalived_build_features_are_read_from_its_version():
    text = "configure options: --enable-snmp --enable-dbus --enable-json --enable-bfd"
    assert keepalived_process.parse_version(text) == {"dbus": True, "json": True}
    assert keepalived_process.parse_version("configure options: --enable-json") == {"dbus": False, "json": True}


def test_first_state_has_unknown_previous_state_and_carries_the_contract():
    tracker = beacon.Tracker(meta={"site": "paris"}, vips={"lbpair_51": ["203.0.113.10"]})
    transition = tracker.observe(INSTANCE, "MASTER", "live", 1795698683.398471)
    assert transition == {
        "instance": "lbpair_51",
        "interface": "eth0",
        "vrid": 51,
        "family": "IPv4",
        "state": "MASTER",
        "previous_state": "UNKNOWN",
        "received_at": "2026-11-26T13:11:23.398471+00:00",
        "time": 1795698683.398471,
        "source": "live",
        "vips": ["203.0.113.10"],
        "meta": {"site": "paris"},
    }
    assert beacon.event_tag(transition) == "lbpair_51/MASTER"


def test_same_state_seen_again_is_not_a_transition():
    tracker = beacon.Tracker()
    assert tracker.observe(INSTANCE, "BACKUP", "live", 1.0)
    assert tracker.observe(INSTANCE, "BACKUP", "reconstructed", 2.0) is None
    assert tracker.observe(INSTANCE, "MASTER", "live", 3.0)["previous_state"] == "BACKUP"


def test_state_journalled_before_a_restart_is_the_last_known_state(tmp_path):
    journal = Journal(str(tmp_path / "journal.jsonl"))
    for instance, state in (("lbpair_51", "BACKUP"), ("lbpair_51", "MASTER"), ("lbpair_52", "BACKUP")):
        journal.append({"instance": instance, "state": state})
    tracker = beacon.Tracker(journal.last_known())
    assert tracker.observe(INSTANCE, "MASTER", "reconstructed", 1.0) is None
    changed = tracker.observe(INSTANCE, "BACKUP", "reconstructed", 2.0)
    assert (changed["previous_state"], changed["state"], changed["source"]) == ("MASTER", "BACKUP", "reconstructed")


def test_instance_paths_give_interface_vrid_and_family():
    path = "/org/keepalived/Vrrp1/Instance/eth0/51/IPv4"
    assert vrrp_dbus.parse_instance_path(path) == {"interface": "eth0", "vrid": 51, "family": "IPv4"}
    assert vrrp_dbus.parse_instance_path("/org/keepalived/Vrrp1/Vrrp") is None
    assert vrrp_dbus.parse_instance_path("/org/keepalived/Vrrp1/Instance/eth0/x/IPv4") is None


def test_state_numbers_have_keepalived_names():
    assert [keepalived_model.state_name(n) for n in (0, 1, 2, 3, 97, 98, 42)] == [
        "INIT", "BACKUP", "MASTER", "FAULT", "DELETED", "STOP", "42"
    ]


def test_json_dump_vips_are_plain_addresses():
    text = '[{"data": {"iname": "lbpair_51", "state": 2, "ifp_ifname": "eth0", "vrid": 51, "vips": ["203.0.113.10 dev eth0 scope global set"]}}]'
    assert keepalived_process.parse_json_dump(text)["lbpair_51"]["vips"] == ["203.0.113.10"]


class JournalInMemory:
    """An in-memory stand-in for the journal (the real one is tested in test_journal)."""

    def __init__(self):
        self.entries = []

    def append(self, entry):
        entry = {**entry, "seq": len(self.entries) + 1}
        self.entries.append(entry)
        return entry

    def last_known(self):
        return {}


class KeepalivedStandIn:
    """keepalived's local side as the runner uses it: whether it runs, and its JSON dump."""

    def __init__(self, running):
        self.is_running = running

    def running(self):
        return self.is_running

    def request_json(self):
        return 1

    def read_json(self, token):
        return {"lbpair_51": {**INSTANCE, "state": "MASTER"}} if token == 1 else None


def runner_without_bus(journal, running=False):
    return beacon.Runner({"bus": "none", "meta": {"a": 1}}, journal, KeepalivedStandIn(running), {}, fire=list)


def test_queued_records_become_journalled_events_in_order():
    journal = JournalInMemory()
    runner = runner_without_bus(journal)
    runner.records.put(("seen", {**INSTANCE, "state": 1}, 1.0))
    runner.records.put(("signal", {**INSTANCE, "state": 1}, 2.0))
    runner.records.put(("signal", {**INSTANCE, "state": 2}, 3.0))
    events = runner.drain()
    assert [(e["tag"], e["seq"], e["source"]) for e in events] == [
        ("lbpair_51/BACKUP", 1, "reconstructed"),
        ("lbpair_51/MASTER", 2, "live"),
    ]
    assert [entry["seq"] for entry in journal.entries] == [1, 2]
    runner.close()
    runner.close()


def test_json_dump_is_followed_only_while_keepalived_runs():
    journal = JournalInMemory()
    assert runner_without_bus(journal, running=False).follow_json() == []
    runner = runner_without_bus(journal, running=True)
    assert runner.follow_json() == [], "the first tick only asks keepalived for its dump"
    events = runner.follow_json()
    assert [(e["tag"], e["source"]) for e in events] == [("lbpair_51/MASTER", "reconstructed")]


def test_watcher_stops_even_when_the_bus_does_not_exist():
    records = queue.Queue()
    watcher = beacon.BusWatcher("unix:path=/nonexistent/bus.sock", records)
    watcher.start()
    kind, payload, _ = records.get(timeout=5)
    assert (kind, payload) == ("bus", {"connected": False, "owner": False})
    watcher.stop()
    watcher.stop()
    assert not watcher.is_alive()


def test_json_dump_is_read_only_once_keepalived_wrote_it_after_the_request(tmp_path):
    dump = tmp_path / "keepalived.json"
    local = keepalived_process.Local({"json_file": str(dump), "pid_file": str(tmp_path / "none.pid")})
    assert local.read_json(0) is None, "no dump yet"
    dump.write_text('[{"data": {"iname": "lbpair_51", "state": 2, "vips": []}}]')
    token = dump.stat().st_mtime_ns
    assert local.read_json(token) is None, "the dump that was there before the request"
    assert local.read_json(0)["lbpair_51"]["state"] == "MASTER"
    dump.write_text('[{"data": {"iname": "lbpair_51", "sta')  # keepalived still writing
    assert local.read_json(0) is None
    assert local.running() is False


def test_unknown_local_options_are_named():
    with pytest.raises(InvalidValue, match="lbpair_keepalived:json_path"):
        keepalived_process.Local({"json_path": "/tmp/x.json"})
