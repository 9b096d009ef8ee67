"""The node's metrics file: the contract's names and labels, hostile names, atomic and cheap writes, a write that fails."""

import copy
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from saltext.lbpair.core.prometheus_text import escape_label_value, render
from saltext.lbpair.model import pillar
from saltext.lbpair.node import beacon, beacon_config, keepalived_process, metrics, metrics_file, metrics_sources, track
from tests.unit.clock import Clock
from tests.unit.test_beacon import INSTANCE, JournalInMemory, KeepalivedStandIn
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca

#: the contract (METRICS-CONTRACT.md, docs/metrics.md): each node metric and its labels besides pair and node
CONTRACT = {
    **{f"lbpair_vrrp_state_{state}": {"vrrp_instance"} for state in ("master", "backup", "fault", "init", "stop", "unknown")},
    "lbpair_vrrp_transitions_total": {"vrrp_instance", "state"},
    "lbpair_vrrp_last_transition_timestamp_seconds": {"vrrp_instance"},
    "lbpair_vrrp_effective_priority": {"vrrp_instance"},
    "lbpair_beacon_dbus": set(),
    "lbpair_keepalived_up": set(),
    "lbpair_haproxy_up": set(),
    "lbpair_track_file_set": {"file"},
    "lbpair_rogue_vrrp_senders": set(),
    "lbpair_certificate_expiry_timestamp_seconds": {"certificate"},
    "lbpair_metrics_written_timestamp_seconds": set(),
}
COUNTERS = {"lbpair_vrrp_transitions_total"}
HOSTILE_NAMES = ['a"b', "a\\b", "x\nlbpair_vrrp_state_master{pair=\"web\"} 1", '"} 1\nlbpair_fake 1', "é✓", ""]
SAMPLE = re.compile(r'(?P<name>[a-z_]+)\{(?P<labels>(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\} (?P<value>\S+)\Z')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """``[(name, {label: escaped value}, value)]`` of the text's sample lines; every line must parse."""
    found = []
    for line in text.splitlines():
        if line.startswith("# "):
            continue
        match = SAMPLE.match(line)
        assert match, line
        found.append((match["name"], dict(LABEL.findall(match["labels"])), float(match["value"])))
    return found


def facts(**changes):
    known = {
        "pair": "web", "node": "lb1", "states": {"lbpair_51": "MASTER", "lbpair_51_6": "BACKUP"},
        "transitions": {("lbpair_51", "MASTER"): 2, ("lbpair_51", "BACKUP"): 1}, "last_transition": {"lbpair_51": 1795698683.5},
        "priorities": {"lbpair_51": 101, "lbpair_51_6": 100}, "dbus": True, "keepalived_up": True, "haproxy_up": True,
        "track_files": {"maintenance": True}, "rogue_senders": 1, "certificates": {"shop/shop": 1800000000},
    }  # fmt: skip
    return metrics.NodeFacts(**{**known, **changes})


def full_text(node_facts, written=1795698690):
    return render([*metrics.families(node_facts), metrics.written_family(node_facts, written)])


def test_every_contract_metric_is_there_with_pair_node_and_its_own_labels():
    found = samples(full_text(facts()))
    assert {name for name, _labels, _value in found} == set(CONTRACT)
    for name, labels, _value in found:
        assert set(labels) == {"pair", "node"} | CONTRACT[name], (name, labels)
        assert (labels["pair"], labels["node"]) == ("web", "lb1")


def test_types_are_gauges_but_the_transition_counter():
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", full_text(facts()), re.MULTILINE))
    assert types == {name: "counter" if name in COUNTERS else "gauge" for name in CONTRACT}


def state_values(text, instance):
    return {name: value for name, labels, value in samples(text) if name.startswith("lbpair_vrrp_state_") and labels["vrrp_instance"] == instance}


@pytest.mark.parametrize("state", [*metrics.STATES, "DELETED?", "7", "UNKNOWN"])
def test_one_state_gauge_is_1_and_the_others_0(state):
    shown = state_values(full_text(facts(states={"lbpair_51": state})), "lbpair_51")
    assert sorted(shown.values()) == [0] * 5 + [1]
    expected = state.lower() if state in metrics.STATES else "unknown"
    assert shown[f"lbpair_vrrp_state_{expected}"] == 1


@pytest.mark.parametrize("state, shown", [("MASTER", "unknown"), ("BACKUP", "unknown"), ("STOP", "stop")])
def test_without_keepalived_a_node_is_not_reported_master(state, shown):
    values = state_values(full_text(facts(states={"lbpair_51": state}, keepalived_up=False)), "lbpair_51")
    assert values[f"lbpair_vrrp_state_{shown}"] == 1 and sum(values.values()) == 1


def test_a_deleted_instance_has_no_gauges_but_keeps_its_counter():
    text = full_text(facts(states={"lbpair_51": "DELETED"}, transitions={("lbpair_51", "DELETED"): 1}))
    assert not state_values(text, "lbpair_51")
    counted = {labels["state"]: value for name, labels, value in samples(text) if name == "lbpair_vrrp_transitions_total"}
    assert counted == {"MASTER": 0, "BACKUP": 0, "FAULT": 0, "INIT": 0, "STOP": 0, "DELETED": 1}


def test_every_state_of_every_instance_is_counted_from_zero():
    found = samples(full_text(facts()))
    counted = {(labels["vrrp_instance"], labels["state"]): value for name, labels, value in found if name == "lbpair_vrrp_transitions_total"}
    assert counted == {
        (instance, state): {("lbpair_51", "MASTER"): 2, ("lbpair_51", "BACKUP"): 1}.get((instance, state), 0)
        for instance in ("lbpair_51", "lbpair_51_6")
        for state in metrics.STATES
    }


def test_track_files_are_all_listed_set_or_not():
    found = {labels["file"]: value for name, labels, value in samples(full_text(facts())) if name == "lbpair_track_file_set"}
    assert found == {"haproxy": 0, "maintenance": 1, "handover": 0, "defer": 0}


def test_what_is_not_known_yet_has_no_sample():
    text = full_text(facts(haproxy_up=None, rogue_senders=None, priorities={}, certificates={}, last_transition={}))
    names = {name for name, _labels, _value in samples(text)}
    absent = {"lbpair_haproxy_up", "lbpair_rogue_vrrp_senders", "lbpair_vrrp_effective_priority",
              "lbpair_certificate_expiry_timestamp_seconds", "lbpair_vrrp_last_transition_timestamp_seconds"}  # fmt: skip
    assert names == set(CONTRACT) - absent
    assert not any(f" {name} " in text for name in absent), "no HELP or TYPE without a sample"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_instance_or_certificate_name_stays_one_label_value(name):
    hostile = facts(states={name: "MASTER"}, transitions={}, last_transition={name: 1.0}, priorities={name: 100},
                    certificates={name: 1800000000}, pair=name, node=name)  # fmt: skip
    text = full_text(hostile)
    found = samples(text)
    assert {sample_name for sample_name, _labels, _value in found} == set(CONTRACT)
    for sample_name, labels, _value in found:
        assert labels["pair"] == labels["node"] == escape_label_value(name)
        for label in ("vrrp_instance", "certificate"):
            if label in labels:
                assert labels[label] == escape_label_value(name), (sample_name, labels)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) is not installed")
@pytest.mark.parametrize("node_facts", [facts(), facts(states={HOSTILE_NAMES[2]: "FAULT"}, certificates={HOSTILE_NAMES[3]: 1.5})],
                         ids=["plain", "hostile"])
def test_promtool_checks_the_file(node_facts):
    checked = subprocess.run(["promtool", "check", "metrics"], input=full_text(node_facts), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the file ---------------------------------------------------------------------


class Keepalived(KeepalivedStandIn):
    """keepalived's local side as the metrics read it: running, its dump (priorities) and its installed instances."""

    def __init__(self, running=True, instances=("lbpair_51",)):
        super().__init__(running)
        self.instances = instances

    def read_json(self, token):
        return {"lbpair_51": {**INSTANCE, "state": "MASTER", "priority": 103}} if token == 1 else None

    def request_json(self):
        if not self.is_running:
            raise keepalived_process.LbpairError("keepalived is not running")
        self.requests = getattr(self, "requests", 0) + 1
        return 1

    def installed_vips(self):
        return {name: [] for name in self.instances}


def node_metrics(tmp_path, clock=None, path=None, local=None, haproxy=None, files=()):
    (tmp_path / "track").mkdir(exist_ok=True)
    return metrics_file.NodeMetrics(
        str(path or tmp_path / "lbpair.prom"), "web", "lb1", local or Keepalived(), metrics_sources.CertificateExpiry(list(files)),
        haproxy, {"lbpair_51": {"time": 1795698683.5, "state": "MASTER"}},
        track_directory=str(tmp_path / "track"), counts={}, clock=clock or Clock(),
    )  # fmt: skip


def file_samples(path):
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples(path.read_text())}


def test_the_file_is_rewritten_only_when_it_changes_or_is_a_minute_old(tmp_path):
    clock = Clock()
    written = node_metrics(tmp_path, clock)
    assert written.write({"lbpair_51": "BACKUP"}, True)
    assert written.write({"lbpair_51": "BACKUP"}, True), "the priorities, from the dump asked for at the first tick"
    written.wait_written()
    first = (tmp_path / "lbpair.prom").stat().st_mtime_ns
    clock.sleep(1)
    assert not written.write({"lbpair_51": "BACKUP"}, True), "nothing changed"
    written.wait_written()
    assert (tmp_path / "lbpair.prom").stat().st_mtime_ns == first
    written.record({"instance": "lbpair_51", "state": "MASTER", "time": clock()})
    assert written.write({"lbpair_51": "MASTER"}, True)
    written.wait_written()
    found = file_samples(tmp_path / "lbpair.prom")
    labels = (("node", "lb1"), ("pair", "web"), ("vrrp_instance", "lbpair_51"))
    assert found[("lbpair_vrrp_state_master", labels)] == 1
    assert found[("lbpair_vrrp_transitions_total", (*labels[:2], ("state", "MASTER"), labels[2]))] == 1
    assert found[("lbpair_vrrp_last_transition_timestamp_seconds", labels)] == pytest.approx(clock())
    assert found[("lbpair_metrics_written_timestamp_seconds", labels[:2])] == pytest.approx(clock())
    clock.sleep(metrics_file.REFRESH)
    assert written.write({"lbpair_51": "MASTER"}, True), "a minute later the timestamp is new"
    written.wait_written()
    assert sorted(os.listdir(tmp_path)) == ["lbpair.prom", "track"], "no temporary file left"
    assert file_samples(tmp_path / "lbpair.prom")[("lbpair_vrrp_effective_priority", labels)] == 103


def test_instances_not_in_the_installed_keepalived_conf_are_left_out(tmp_path):
    written = node_metrics(tmp_path)
    written.write({"lbpair_51": "MASTER", "lbpair_99": "BACKUP"}, True)
    written.wait_written()
    assert "lbpair_99" not in (tmp_path / "lbpair.prom").read_text()


def test_priorities_come_from_the_dump_asked_for_at_the_tick_before(tmp_path):
    clock = Clock()
    priorities = metrics_sources.Priorities(Keepalived(), clock=clock)
    assert priorities.read() == {}, "the first tick only asks"
    assert priorities.read() == {"lbpair_51": 103}
    assert metrics_sources.Priorities(Keepalived(running=False), clock=clock).read() == {}


def test_a_dump_is_asked_for_every_half_minute_or_soon_after_a_change():
    """keepalived logs a line per JSON dump: not one a second."""
    clock, keepalived = Clock(), Keepalived()
    priorities = metrics_sources.Priorities(keepalived, clock=clock)
    for _tick in range(29):
        priorities.read()
        clock.sleep(1)
    assert keepalived.requests == 1
    clock.sleep(1)
    priorities.read()
    assert keepalived.requests == 2
    priorities.read(changed=True)
    assert keepalived.requests == 2, "not twice within a second"
    clock.sleep(1)
    priorities.read()
    assert keepalived.requests == 3, "the change is not forgotten"


def test_track_files_are_read_as_keepalived_reads_them(tmp_path):
    track.write(track.MAINTENANCE, 1, str(tmp_path))
    track.write(track.DEFER, 0, str(tmp_path))
    (tmp_path / track.HANDOVER).write_text("not a number\n")
    assert metrics_sources.track_files(str(tmp_path)) == {"haproxy": False, "maintenance": True, "handover": False, "defer": False}


@pytest.mark.parametrize("where", ["no directory", "a directory in its place"])
def test_a_failing_write_warns_once_and_never_raises(tmp_path, caplog, where):
    target = tmp_path / "absent" / "lbpair.prom"
    if where == "a directory in its place":
        target = tmp_path / "lbpair.prom"
        target.mkdir()  # the rename cannot replace a directory
    written = node_metrics(tmp_path, path=target)
    for _tick in range(3):
        assert written.write({"lbpair_51": "MASTER"}, True), "a failed write is tried again at the next tick"
        written.wait_written()
    assert written.publisher.failing
    assert not (tmp_path / "absent").exists()
    assert len([record for record in caplog.records if "cannot write the metrics file" in record.message]) == 1


def test_a_failing_metrics_write_does_not_stop_the_beacons_events(tmp_path):
    journal = JournalInMemory()
    written = node_metrics(tmp_path, path=tmp_path / "absent" / "lbpair.prom")
    fired = []
    runner = beacon.Runner({"bus": "none"}, journal, Keepalived(), {}, fired.extend, metrics=written)
    runner.records.put(("signal", {**INSTANCE, "state": 2}, 1.0))
    runner.flush()
    written.wait_written()
    assert [event["tag"] for event in fired] == ["lbpair_51/MASTER"]
    assert written.counts == {("lbpair_51", "MASTER"): 1} and written.publisher.failing
    runner.close()


def test_the_runner_writes_its_transitions_and_json_mode(tmp_path):
    written = node_metrics(tmp_path)
    runner = beacon.Runner({"bus": "none"}, JournalInMemory(), Keepalived(), {}, list, metrics=written)
    runner.records.put(("signal", {**INSTANCE, "state": 1}, 1.0))
    runner.records.put(("signal", {**INSTANCE, "state": 2}, 2.0))
    runner.flush()
    written.wait_written()
    found = file_samples(tmp_path / "lbpair.prom")
    base = (("node", "lb1"), ("pair", "web"))
    assert found[("lbpair_beacon_dbus", base)] == 0
    assert found[("lbpair_keepalived_up", base)] == 1
    assert found[("lbpair_vrrp_state_master", (*base, ("vrrp_instance", "lbpair_51")))] == 1
    assert found[("lbpair_vrrp_transitions_total", (*base, ("state", "BACKUP"), ("vrrp_instance", "lbpair_51")))] == 1
    runner.close()


def test_the_beacon_tick_with_metrics_stays_cheap_and_leaves_the_disk_to_its_thread(tmp_path):
    written = node_metrics(tmp_path, clock=time.time)
    states = {"lbpair_51": "MASTER"}
    started = time.perf_counter()
    for tick in range(200):
        written.write(states if tick % 2 else {"lbpair_51": "BACKUP"}, True)  # a change every tick: a write every tick
    assert (time.perf_counter() - started) / 200 < 0.005
    written.wait_written()
    assert state_values((tmp_path / "lbpair.prom").read_text(), "lbpair_51")["lbpair_vrrp_state_master"] == 1, "the newest text"


# --- HAProxy and the certificates ---------------------------------------------------


def unix_server(path, answer):
    """A listening unix socket; ``answer`` (bytes, or None: hung) is sent to each client, then it is closed."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def serve():
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            client.recv(1024)
            if answer is None:
                continue
            client.sendall(answer)
            client.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def wait_answer(probe, clock, seconds=2.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        clock.sleep(0.1)
        if probe.pending is None and probe.answer is not None:
            return probe.answer
        probe.up()
        time.sleep(0.01)
    return probe.answer


def test_haproxy_is_up_when_its_stats_socket_answers_and_down_when_it_hangs_or_is_gone(tmp_path):
    clock = Clock()
    answering = unix_server(str(tmp_path / "up.sock"), b"Name: HAProxy\nVersion: 2.6.12\n")
    probe = metrics_sources.HaproxyProbe(str(tmp_path / "up.sock"), clock=clock)
    assert probe.up() is None, "asked, not read yet: the loop does not wait"
    assert wait_answer(probe, clock) is True
    hung = unix_server(str(tmp_path / "hung.sock"), None)
    probe = metrics_sources.HaproxyProbe(str(tmp_path / "hung.sock"), clock=clock)
    started = time.perf_counter()
    probe.up()
    clock.sleep(metrics_sources.PROBE_TIMEOUT + 1)
    assert probe.up() is False
    assert time.perf_counter() - started < 0.1
    assert metrics_sources.HaproxyProbe(str(tmp_path / "gone.sock"), clock=clock).up() is False
    for server in (answering, hung):
        server.close()


@pytest.fixture
def ca():
    return shared_ca()


def test_certificate_expiry_is_read_once_per_change_and_never_from_the_key(tmp_path, ca, seed_pillar):
    lbpair = copy.deepcopy(seed_pillar)
    lbpair["services"]["shop"] = copy.deepcopy(SHOP)
    lbpair["services"]["shop"]["tls"] = {"certificates": {"shop": {"pem": ca.shop}}}
    model = pillar.for_node(pillar.normalize(lbpair), "lb1")
    (label, path, key), = metrics_sources.certificate_files(model, str(tmp_path))
    assert (label, key) == ("shop/shop", None)
    expiry = metrics_sources.CertificateExpiry([(label, path, key)])
    assert expiry.read() == {}, "not installed yet"
    # the key first: its lines are skipped, only the certificate's block is parsed
    certificate, private_key = ca.shop.split("-----BEGIN PRIVATE KEY-----")
    with open(path, "w", encoding="ascii") as handle:
        handle.write("-----BEGIN PRIVATE KEY-----" + private_key + certificate)
    not_after = model["services"]["shop"]["tls"]["certificates"]["shop"]["bundle"].description["not_after"]
    from saltext.lbpair.core import times

    assert expiry.read() == {"shop/shop": times.parse(not_after).timestamp()}
    os.chmod(path, 0)  # read from the cache: the file did not change
    assert expiry.read() == {"shop/shop": times.parse(not_after).timestamp()}


def test_a_certificate_file_that_is_a_symlink_or_no_certificate_is_left_out(tmp_path, ca):
    (tmp_path / "real.pem").write_text(ca.shop)
    (tmp_path / "link.pem").symlink_to(tmp_path / "real.pem")
    (tmp_path / "key.pem").write_text(ca.shop.split("-----END CERTIFICATE-----\n")[1])
    files = [("a/link", str(tmp_path / "link.pem"), None), ("a/key", str(tmp_path / "key.pem"), None), ("a/real", str(tmp_path / "real.pem"), None)]
    assert list(metrics_sources.CertificateExpiry(files).read()) == ["a/real"]


# --- the beacon option ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["none", "/var/lib/prometheus/node-exporter/lbpair.prom", "/srv/x@y/lb-1.prom"])
def test_good_metrics_options_are_accepted(value):
    assert beacon_config.check_config([{"metrics": value}]) == (True, "")


@pytest.mark.parametrize("value", ["lbpair.prom", "/etc/cron.d/evil", "/var/lib/../../etc/x.prom", "/a//b.prom", "/a/.prom", "/a/b.prom\n",
                                   "/a b.prom", 5, ""])
def test_bad_metrics_options_are_refused(value):
    valid, message = beacon_config.check_config([{"metrics": value}])
    assert not valid and ".prom file" in message


@pytest.mark.parametrize(
    "merged, own, expected, warned",
    [
        ({"metrics": "/srv/m/lbpair.prom"}, [{"metrics": "/srv/m/lbpair.prom"}], "/srv/m/lbpair.prom", False),
        ({"metrics": "none"}, {"metrics": "none"}, "none", False),
        ({}, None, None, False),
        ({"metrics": "/etc/cron.d/x.prom"}, [{"bus": "system"}], None, True),  # from a pillar's beacons
        ({"metrics": "/etc/cron.d/x.prom"}, [{"metrics": "/srv/m/lbpair.prom"}], "/srv/m/lbpair.prom", True),
        ({}, [{"metrics": "/etc/passwd"}], "none", True),
        ({"metrics": "none"}, [{"bus": "system"}], "none", False),  # a pillar may turn it off
    ],
)
def test_the_metrics_path_is_read_from_the_minions_own_configuration_only(merged, own, expected, warned):
    option, warning = beacon_config.own_metrics(merged, own)
    assert option == expected and bool(warning) == warned


def test_the_default_file_is_used_only_where_node_exporter_reads_one(tmp_path):
    assert metrics_file.configured_path(None, str(tmp_path / "lbpair.prom")) == str(tmp_path / "lbpair.prom")
    assert metrics_file.configured_path(None, str(tmp_path / "absent" / "lbpair.prom")) is None
    assert metrics_file.configured_path("none") is None
    assert metrics_file.configured_path("/x/y.prom") == "/x/y.prom"
