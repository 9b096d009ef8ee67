"""
The node's metrics file as the real beacon writes it (real keepalived, dbus-daemon, salt-master and
minions: :mod:`lab.beacon_rig`), and as the real node_exporter's textfile collector serves it.
"""

import re
import shutil
import statistics
import subprocess
import time
import urllib.request

import pytest

from lab.beacon_rig import minion_overrides
from lab.salt_rig import started_minions
from lab.util import free_port, stop_process, wait_until
from saltext.lbpair.node import keepalived_process, metrics_file, metrics_sources
from tests.support.journal import journal

pytestmark = pytest.mark.timeout(300)
INSTANCE = "lbpair_51"
PAIR = "lb1+lb2"  # the example pillar names no pair: its nodes' names
TICK = 1.0  # the minions' loop_interval
SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$', re.MULTILINE)


@pytest.fixture(scope="module")
def metrics_dirs(tmp_path_factory):
    """A textfile directory per node."""
    return {name: tmp_path_factory.mktemp(f"textfile-{name}") for name in ("lb1", "lb2")}


@pytest.fixture(scope="module")
def minions(salt_master, nodes, tmp_path_factory, metrics_dirs):
    """The rig's minions, each beacon writing its node's metrics into that node's textfile directory."""
    journals = tmp_path_factory.mktemp("journals")
    overrides = {
        name: minion_overrides(node, journals / f"{name}.jsonl", metrics=str(metrics_dirs[name] / "lbpair.prom"))
        for name, node in nodes.items()
    }
    with started_minions(salt_master, overrides) as started:
        yield started


def parsed(text):
    """``{(name, frozenset of label pairs): value}`` of a metrics text's samples."""
    return {
        (match["name"], frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))): float(match["value"])
        for match in SAMPLE.finditer(text)
    }


def read_metrics(metrics_dirs, name):
    try:
        return parsed((metrics_dirs[name] / "lbpair.prom").read_text())
    except FileNotFoundError:
        return {}


def state_of(found, node, instance=INSTANCE):
    """The state whose gauge is 1 for ``instance`` in a node's metrics (None if none is)."""
    labels = frozenset({("pair", PAIR), ("node", node), ("vrrp_instance", instance)})
    states = [name.removeprefix("lbpair_vrrp_state_").upper() for (name, key), value in found.items()
              if name.startswith("lbpair_vrrp_state_") and key == labels and value == 1]  # fmt: skip
    return states[0] if len(states) == 1 else None


def wait_states(metrics_dirs, expected, timeout=25):
    return wait_until(lambda: all(state_of(read_metrics(metrics_dirs, name), name) == state for name, state in expected.items()),
                      timeout, interval=0.02, what=f"metrics showing {expected}")  # fmt: skip


def test_the_file_shows_a_transition_within_a_tick_of_its_journal_entry(nodes, minions, metrics_dirs):
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})
    marks = {name: len(journal(minion)) for name, minion in minions.items()}
    nodes["lb1"].set_healthy(False)
    seen = {}
    deadline = time.monotonic() + 25
    while len(seen) < 2 and time.monotonic() < deadline:
        for name, state in (("lb1", "BACKUP"), ("lb2", "MASTER")):
            if name not in seen and state_of(read_metrics(metrics_dirs, name), name) == state:
                seen[name] = time.time()
        time.sleep(0.01)
    assert set(seen) == {"lb1", "lb2"}, seen
    for name, minion in minions.items():
        (entry,) = journal(minion)[marks[name]:]
        print(f"{name}: {entry['state']} in the metrics file {(seen[name] - entry['time']) * 1000:.0f} ms after the beacon got it")
        assert seen[name] - entry["time"] < TICK, (name, seen[name] - entry["time"])
    found = read_metrics(metrics_dirs, "lb2")
    base = {("pair", PAIR), ("node", "lb2")}
    assert found[("lbpair_vrrp_transitions_total", frozenset({*base, ("vrrp_instance", INSTANCE), ("state", "MASTER")}))] >= 1
    assert found[("lbpair_beacon_dbus", frozenset(base))] == 1
    assert found[("lbpair_keepalived_up", frozenset(base))] == 1
    assert abs(found[("lbpair_vrrp_last_transition_timestamp_seconds", frozenset({*base, ("vrrp_instance", INSTANCE)}))]
               - journal(minions["lb2"])[-1]["time"]) < 0.001  # fmt: skip
    nodes["lb1"].set_healthy(True)
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})


def test_the_effective_priority_follows_the_check(nodes, minions, metrics_dirs):
    """lb1's priority is 101, and its check's weight 2 (lab.vrrp_node.tracked_file_pillar): 103 while the check passes."""
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})
    key = ("lbpair_vrrp_effective_priority", frozenset({("pair", PAIR), ("node", "lb1"), ("vrrp_instance", INSTANCE)}))
    wait_until(lambda: read_metrics(metrics_dirs, "lb1").get(key) == 103, 15, what="lb1's priority with its check passing")
    nodes["lb1"].set_healthy(False)
    try:
        wait_until(lambda: read_metrics(metrics_dirs, "lb1").get(key) == 101, 15, what="lb1's priority with its check failing")
    finally:
        nodes["lb1"].set_healthy(True)
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})


def test_a_stopped_keepalived_shows_stop_and_down(nodes, minions, metrics_dirs):
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})
    nodes["lb2"].stop_keepalived()
    try:
        wait_states(metrics_dirs, {"lb2": "STOP"}, timeout=15)
        down = ("lbpair_keepalived_up", frozenset({("pair", PAIR), ("node", "lb2")}))
        wait_until(lambda: read_metrics(metrics_dirs, "lb2").get(down) == 0, 5, what="keepalived down")
    finally:
        nodes["lb2"].start_keepalived()
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})


def test_a_tick_with_metrics_on_a_real_node_is_cheap(nodes, tmp_path):
    """The write the beacon makes at each tick, timed against lb1's real keepalived (its dump, its pid)."""
    local = keepalived_process.Local(nodes["lb1"].minion_options())
    written = metrics_file.NodeMetrics(str(tmp_path / "lbpair.prom"), PAIR, "lb1", local, metrics_sources.CertificateExpiry([]),
                                       metrics_sources.HaproxyProbe(str(tmp_path / "none.sock")), counts={})  # fmt: skip
    durations = []
    for tick in range(100):
        started = time.perf_counter()
        written.write({INSTANCE: "MASTER" if tick % 2 else "BACKUP"}, True)  # a change, and so a write, every tick
        durations.append(time.perf_counter() - started)
    print(f"metrics write per tick: median {statistics.median(durations) * 1000:.2f} ms, first {durations[0] * 1000:.2f} ms, "
          f"max after it {max(durations[1:]) * 1000:.2f} ms")
    assert statistics.median(durations) < 0.01 and max(durations) < 0.1


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) is not installed")
def test_promtool_checks_the_beacons_file(minions, metrics_dirs):
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})
    text = (metrics_dirs["lb1"] / "lbpair.prom").read_text()
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr + text


@pytest.mark.skipif(not shutil.which("prometheus-node-exporter"), reason="Debian's prometheus-node-exporter is not installed")
def test_node_exporter_serves_the_file_without_a_parse_error(minions, metrics_dirs):
    wait_states(metrics_dirs, {"lb1": "MASTER", "lb2": "BACKUP"})
    port = free_port()
    exporter = subprocess.Popen(
        ["prometheus-node-exporter", f"--collector.textfile.directory={metrics_dirs['lb1']}", f"--web.listen-address=127.0.0.1:{port}",
         "--collector.disable-defaults", "--collector.textfile"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    return answer.read().decode()
            except OSError:
                return None

        text = wait_until(scrape, 15, what="node_exporter's /metrics")
    finally:
        stop_process(exporter)
    found = parsed(text)
    assert found[("node_textfile_scrape_error", frozenset())] == 0, text
    assert state_of(found, "lb1") == "MASTER"
    names = {name for name, _labels in found}
    assert {"lbpair_vrrp_transitions_total", "lbpair_keepalived_up", "lbpair_beacon_dbus", "lbpair_track_file_set",
            "lbpair_metrics_written_timestamp_seconds"} <= names  # fmt: skip
