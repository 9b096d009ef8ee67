"""
Benchmark: how fast a real VRRP failover reaches the salt-master as an event,
through the ``lbpair_vrrp`` beacon and through the common alternative, a
keepalived ``notify`` script running ``salt-call event.send``, measured in the
same run; and the beacon's idle CPU next to a minion without it.

    .venv/bin/python -m bench.beacon_latency [--cycles 12] [--idle 120]   # root

Set-up (the beacon's rig, ``lab/beacon_rig.py``, through ``bench/conftest.py``): two keepalived
nodes in network namespaces, each on its own dbus-daemon, a real salt-master,
a salt-minion per node running the beacon with Salt's default one-second
``loop_interval``, and a third minion without the beacon. Each cycle fails lb1's
tracked check (lb1 MASTER -> BACKUP, lb2 BACKUP -> MASTER), then recovers it
(and back): two failovers, four transitions.

Delay = the time the event carries on the master's bus (``_stamp``, set by the
master when it fires it) minus the time a separate D-Bus listener in this
process received keepalived's ``VrrpStatusChange`` signal. The notify script
runs in the node's namespace and enters the master's namespace for salt-call.
Idle CPU = user + system time of each minion's process tree over a quiet
window, scaled to an hour. Prints figures; asserts nothing.
"""

import argparse
import asyncio
import functools
import json
import os
import pathlib
import statistics
import sys
import threading
import time

import pytest

from lab.beacon_rig import SALT_NAMESPACE, minion_overrides
from saltext.lbpair.node import vrrp_dbus

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTIFY_DIR = pathlib.Path("/run/lbpair-vbench")
SALT_CALL = REPO / ".venv" / "bin" / "salt-call"
OPTIONS = {"cycles": 12, "idle": 120}

NOTIFY = """#!/bin/sh
# keepalived notify: $1 node (ours), then keepalived's TYPE NAME STATE PRIORITY
conf="{dir}/$1.confdir"
[ -f "$conf" ] || exit 0
exec nsenter --net=/run/netns/{namespace} {salt_call} -c "$(cat "$conf")" --log-level=quiet \\
    event.send "lbpair/notify/$1/$4" > /dev/null 2>&1
"""


@pytest.fixture(scope="module")
def notify_script():
    NOTIFY_DIR.mkdir(mode=0o755, exist_ok=True)
    script = NOTIFY_DIR / "notify.sh"
    script.write_text(NOTIFY.format(dir=NOTIFY_DIR, namespace=SALT_NAMESPACE, salt_call=SALT_CALL))
    script.chmod(0o755)
    try:
        yield str(script)
    finally:
        for path in NOTIFY_DIR.iterdir():
            path.unlink()
        NOTIFY_DIR.rmdir()


@pytest.fixture(scope="module")
def idle_minion(salt_master, nodes, tmp_path_factory):
    """A minion like the others, without the beacon: the CPU baseline."""
    journal = tmp_path_factory.mktemp("idle") / "journal.jsonl"
    factory = salt_master.salt_minion_daemon("idle", overrides=minion_overrides(nodes["lb1"], journal, beacon=False))
    with factory.started():
        yield factory


class SignalClock:
    """Records when keepalived's VrrpStatusChange signals reach a D-Bus client here."""

    def __init__(self, buses):
        self.buses = buses
        self.seen = []  # (node, state number, time)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = None
        self.loop = None

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as exc:
            print(f"signal clock failed: {exc!r}", file=sys.stderr)
            self.ready.set()

    async def _main(self):
        from dbus_next import Message
        from dbus_next.aio import MessageBus

        self.stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        connections = []
        for node, address in self.buses.items():
            bus = await MessageBus(bus_address=address).connect()
            rule = "type='signal',path_namespace='/org/keepalived/Vrrp1',member='VrrpStatusChange'"
            await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                   interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))
            bus.add_message_handler(functools.partial(self._record, node))
            connections.append(bus)
        self.ready.set()
        await self.stop.wait()
        for bus in connections:
            bus.disconnect()

    def _record(self, node, message):
        if message.member == "VrrpStatusChange":
            self.seen.append((node, message.body[0], time.time()))

    def __enter__(self):
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the D-Bus signal clock did not start")
        return self

    def __exit__(self, *_):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


STATES = {1: "BACKUP", 2: "MASTER"}


def delays(signals, events, tag_of, window=(-0.5, 20.0)):
    """
    For each BACKUP/MASTER signal, the delay (seconds) to the earliest event of the
    same node and state stamped within ``window`` of it that no earlier signal took.
    """
    taken, found, missing = set(), [], 0
    for node, state, at in sorted(signals, key=lambda signal: signal[2]):
        if state not in STATES:
            continue
        tag = tag_of(node, STATES[state])
        candidates = [
            (stamp, index) for index, (event_tag, stamp) in enumerate(events)
            if event_tag == tag and index not in taken and window[0] <= stamp - at <= window[1]
        ]
        if not candidates:
            missing += 1
            continue
        stamp, index = min(candidates)
        taken.add(index)
        found.append(stamp - at)
    return found, missing


def events_on_master(listener, master_id, since):
    pattern = [(master_id, "salt/beacon/*/lbpair_vrrp/lbpair_51/*"), (master_id, "lbpair/notify/*")]
    return [(event.tag, event.stamp.timestamp()) for event in listener.get_events(pattern, after_time=since)]


def tree_cpu(pid):
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def figures(name, values, missing):
    if not values:
        return f"{name:<34} no events ({missing} missing)"
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return (f"{name:<34} median {statistics.median(values) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
            f"max {values[-1] * 1000:7.1f} ms   n={len(values)} missing={missing}")


def wait_states(nodes, expected, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = {name: vrrp_dbus.read_states(node.bus_address)["lbpair_51"]["state"]
                      for name, node in nodes.items()}
        except Exception:
            states = None
        if states == expected:
            return
        time.sleep(0.05)
    raise TimeoutError(f"states not {expected}")


def test_failover_latency_and_idle_cpu(nodes, minions, idle_minion, salt_master, master_events):
    for name, minion in minions.items():
        (NOTIFY_DIR / f"{name}.confdir").write_text(str(minion.config_dir))
    wait_states(nodes, {"lb1": "MASTER", "lb2": "BACKUP"})
    time.sleep(3)
    since = time.time()
    with SignalClock({name: node.bus_address for name, node in nodes.items()}) as clock:
        for _ in range(OPTIONS["cycles"]):
            nodes["lb1"].set_healthy(False)
            wait_states(nodes, {"lb1": "BACKUP", "lb2": "MASTER"})
            time.sleep(3)  # let the notify scripts' salt-call finish: they compete for the same 2 cores
            nodes["lb1"].set_healthy(True)
            wait_states(nodes, {"lb1": "MASTER", "lb2": "BACKUP"})
            time.sleep(3)
        time.sleep(5)
    events = events_on_master(master_events, salt_master.id, since)
    if os.environ.get("LBPAIR_BENCH_DUMP"):
        with open(os.environ["LBPAIR_BENCH_DUMP"], "w", encoding="utf-8") as handle:
            json.dump({"signals": clock.seen, "events": sorted(events, key=lambda event: event[1])}, handle, indent=1)
    beacon, beacon_missing = delays(clock.seen, events, lambda node, state: f"salt/beacon/{node}/lbpair_vrrp/lbpair_51/{state}")
    notify, notify_missing = delays(clock.seen, events, lambda node, state: f"lbpair/notify/{node}/{state}")

    window = OPTIONS["idle"]
    pids = {"beacon (lb1)": minions["lb1"].pid, "beacon (lb2)": minions["lb2"].pid, "no beacon (idle)": idle_minion.pid}
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    time.sleep(window)
    cpu = {name: (tree_cpu(pid) - before[name]) * 3600 / window for name, pid in pids.items()}

    failovers = 2 * OPTIONS["cycles"]
    lines = [
        "",
        f"VRRP transition -> event on the salt-master's bus ({failovers} real failovers, "
        f"{len(clock.seen)} D-Bus signals, loop_interval 1 s):",
        figures("lbpair_vrrp beacon", beacon, beacon_missing),
        figures("notify script + salt-call event.send", notify, notify_missing),
    ]
    if beacon and notify:
        lines.append(f"{'notify / beacon (medians)':<34} {statistics.median(notify) / statistics.median(beacon):7.0f} x")
    lines.append(f"Idle CPU over {window} s, per hour (minion process tree):")
    lines.extend(f"  {name:<32} {seconds:6.1f} s/h" for name, seconds in cpu.items())
    print("\n".join(lines), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=OPTIONS["cycles"], help="fail/recover cycles (2 failovers each)")
    parser.add_argument("--idle", type=int, default=OPTIONS["idle"], help="seconds of the idle CPU window")
    args = parser.parse_args()
    os.environ["LBPAIR_BENCH_OPTIONS"] = f"{args.cycles},{args.idle}"
    os.chdir(REPO)
    return pytest.main(
        ["-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(REPO), f"{__file__}::test_failover_latency_and_idle_cpu"]
    )


if "LBPAIR_BENCH_OPTIONS" in os.environ:
    OPTIONS["cycles"], OPTIONS["idle"] = (int(value) for value in os.environ["LBPAIR_BENCH_OPTIONS"].split(","))

if __name__ == "__main__":
    sys.exit(main())
