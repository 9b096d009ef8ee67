"""
Benchmark: a failover storm. Many pairs fail over within one second (a switch reboots); how long
until the master has recorded every transition, pointed every pair's DNS record at its new MASTER
and sent its messages, and what each event costs the master.

    flock /tmp/lbpair-netns.lock .venv/bin/python -m bench.storm [--pairs 20] [--masters 2] [--minion-threads]   # root

Set-up (the storm's rig, ``lab/storm_rig.py``, through ``bench/conftest.py``): a real salt-master
with lbpair's engine and reactor, learning the pairs from the nodes' pillar; BIND9, an SMTP server and a
webhook receiver; a real salt-minion per node (two per pair) running the unmodified
``lbpair_vrrp`` beacon on the node's own dbus-daemon, where ``lab/vrrp_driver.py`` plays keepalived
(forty keepalived would not fit on two cores). The driver flips every pair at once (``a`` MASTER ->
BACKUP, ``b`` BACKUP -> MASTER): each minion journals and sends its transition as it would from
keepalived's signal.

Before the storm the master is left quiet for longer than the damping window and the minute it
keeps what it learnt of a node's pillar (as a fleet that was stable), and its idle CPU measured.
Measured from the master's side, all on one clock: the beacon events on the master's bus (their
stamp), the history's records (``recorded_at``: transitions, DNS updates), what the webhook
receiver and the SMTP server received (arrival), the reactor's ``lbpair.on_beacon`` jobs if any
(from their ``salt/run/<jid>/new`` to ``.../ret`` events: the time a reactor worker thread is held;
the shipped config leaves the beacon's events to the ``lbpair`` engine), and the CPU time (user +
system) of the salt-master's process tree (the ``lbpair`` engine, which queues the events and
reacts to them in batches, included; each process named as the master's log names it) and of any background
``lbpair.flush`` job, less its idle rate. Prints the figures and the model for 1,000 pairs; its last line
is ``storm: <pairs> pairs, all done <seconds> s after the last transition``.

With ``--masters 2`` the minions are connected to two hot masters (``master: [m1, m2]``), each
keeping its own history: both must record every transition, and the messages are counted: each
channel must mention each transition once (one by one, or in a storm or flap-damping summary).

The forty minions share the host's two cores: a salt-minion forks a process for each job (Salt's
default), so a job to all of them takes seconds here that forty hosts would answer in a fraction of
a second each. ``--minion-threads`` runs their jobs in threads (``multiprocessing: False``) to come
closer to that; the report says which.
"""

import argparse
import collections
import datetime
import os
import pathlib
import re
import statistics
import sys
import threading
import time

import psutil
import pytest

from lab.storm_rig import DAMPING_WINDOW, pair_names, pair_nodes, record_name, tree, tree_rss
from lab.util import pids_mentioning, wait_until
from saltext.lbpair.master import reaction_state
from saltext.lbpair.master.history import History
from saltext.lbpair.master.scheduler import Scheduler
from saltext.lbpair.master.storm import PAIRS_BEFORE_A_STORM
from saltext.lbpair.master.storm import WINDOW as STORM_WINDOW

REPO = pathlib.Path(__file__).resolve().parent.parent
OPTIONS = {"pairs": 20, "masters": 1, "minion_threads": False}
IDLE = 20  # s of the idle CPU measurement
QUIET = 10  # s without a new runner job before the master counts as settled
COMPLETE_TIMEOUT = 180  # s for every transition and DNS record
MODEL_PAIRS, SYNDICS = 1000, 10
BEACON_EVENTS = "salt/beacon/*/lbpair_vrrp/lbpair_51/*"
#: named's log line of an RFC 2136 update that adds an A record: its time and the record
NAMED_UPDATE = re.compile(r"^(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d\.\d{3}) .*updating zone '[^']+': adding an RR at '([^']+)' A ")


@pytest.fixture(scope="module")
def storm_pairs():
    return OPTIONS["pairs"]


@pytest.fixture(scope="module")
def storm_masters():
    return OPTIONS["masters"]


@pytest.fixture(scope="module")
def storm_minion_settings():
    # jobs in a thread of the minion rather than a process forked from it: forty minions sharing two
    # cores then answer a job about as fast as forty hosts would, each on its own
    return {"multiprocessing": False} if OPTIONS["minion_threads"] else {}


class MasterCpu:
    """
    CPU seconds (user + system) of the salt-master's process tree, its reaped children's included,
    and of the processes outside it that mention its configuration (the background ``salt-run
    lbpair.flush`` jobs, detached with setsid), sampled every 0.2 s by a thread: a detached job's
    last fifth of a second may be missed. ``by_title()`` splits the tree's by process title.
    """

    def __init__(self, master):
        self.pid, self.config_dir, self.log_file = master.pid, str(master.config_dir), master.config["log_file"]
        self.detached = {}  # pid -> last CPU seen
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join(5)

    def _sample(self):
        while not self.stop.wait(0.2):
            inside = {process.pid for process in tree(self.pid)}
            for pid in set(pids_mentioning(self.config_dir)) - inside:
                try:
                    self.detached[pid] = cpu(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass

    def total(self):
        return sum(self.by_title().values()) + sum(self.detached.values())

    def by_title(self):
        """``{process name: CPU seconds}`` of the master's tree (Salt names its processes: ReqServer, Reactor...)."""
        found, logged = {}, logged_names(self.log_file)
        for process in tree(self.pid):
            try:
                name = logged.get(process.pid) or title(process.cmdline())
                found[name] = found.get(name, 0.0) + cpu(process)
            except psutil.NoSuchProcess:
                pass
        return found


def title(cmdline):
    """A salt-master process's name: what Salt appended to its title (setproctitle), after the options."""
    options = [index for index, word in enumerate(cmdline) if word.startswith("-")]
    return " ".join(cmdline[options[-1] + 1 :] if options else cmdline) or "salt-master"


# Salt names an engine's process Engine(<module>): salt.loaded.int.engines.reactor for the reactor,
# salt.loaded.int.engines.pytest_engine for salt-factories', salt.loaded.ext.engines.lbpair for lbpair's;
# the title is cut short (setproctitle has only the room of the original command line), the name in
# the master's log lines is whole.
LOGGED_PROCESS = re.compile(r"\]\[([^\[\]]+)\((\d+)\)\]")  # a master log line's [<process name>(<pid>)]


def logged_names(log_file):
    """``{pid: process name}`` of the master's processes that wrote to its log."""
    names = {}
    with open(log_file, errors="replace") as log:
        for line in log:
            names.update((int(pid), name.strip()) for name, pid in LOGGED_PROCESS.findall(line))
    return names


def instrumentation(name):
    """Whether a salt-master process is salt-factories' (its engine forwards every event to the benchmark)."""
    return "pytest" in name


def worker_process(name):
    """Whether a salt-master process is the ``lbpair`` engine (the resident worker)."""
    return "engines.lbpair" in name


def reactor_process(name):
    return "reactor" in name.lower()


def cpu(process):
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def epoch(iso):
    return datetime.datetime.fromisoformat(iso).timestamp()


def runner_jobs(listener, master_id, since, fun=None):
    """``{jid: (fun, started, ended or None)}`` of the runner jobs (the reactor's) since *since* (epoch)."""
    jobs = {}
    for event in listener.get_events([(master_id, "salt/run/*/new"), (master_id, "salt/run/*/ret")], after_time=since):
        jid, kind = event.tag.split("/")[2], event.tag.rsplit("/", 1)[1]
        name = event.data.get("fun", "")
        started, ended = jobs.get(jid, (name, None, None))[1:]
        if kind == "new":
            started = event.stamp.timestamp()
        else:
            ended = event.stamp.timestamp()
        jobs[jid] = (name, started, ended)
    return {jid: job for jid, job in jobs.items() if fun is None or job[0] == fun}


def settle(listener, master_id, since):
    """Wait until every runner job the reactor started has returned, and none started for :data:`QUIET` s."""

    def settled():
        jobs = runner_jobs(listener, master_id, since)
        if any(ended is None for _, _, ended in jobs.values()):
            return False
        last = max((started or 0 for _, started, _ in jobs.values()), default=0)
        return time.time() - last > QUIET

    wait_until(settled, 600, interval=1, what="the master settled")


class Outcome:
    """
    What the master did after the storm started at *since* (epoch), read from what it left behind;
    the history's first *skip* records are from before.
    """

    def __init__(self, pairs, since, skips, services, listener, master_id):
        self.pairs, self.since, self.skips = pairs, since, skips  # skips: {history path: its records from before}, the first master's first
        self.history_path = next(iter(skips))
        self.services, self.listener, self.master_id = services, listener, master_id

    def records(self, kind=None, path=None):
        """The history's records since the storm (of *kind*, if given; of the history at *path*, by default the first master's)."""
        path = path or self.history_path
        return [r for r in History(path).read()[self.skips[path] :] if kind in (None, r["kind"])]

    def dns_updates(self):
        """``{record: when}`` (epoch): the last update of each pair's record since the storm, from named's log."""
        found = {}
        for line in (self.services.named.dir / "named.log").read_text().splitlines():
            match = NAMED_UPDATE.match(line)
            if match and match.group(2).split(".", 1)[0] in {record_name(pair) for pair in self.pairs}:
                at = datetime.datetime.strptime(match.group(1), "%d-%b-%Y %H:%M:%S.%f").timestamp()  # named logs local time
                if at >= self.since:
                    found[match.group(2)] = at
        return found

    def nothing_held(self):
        """Whether no master holds a message for a later summary nor has other work due (successive storm windows)."""
        return all(Scheduler(reaction_state.ReactionStore(f"{path}.state.json"), wake=None).idle() for path in self.skips)

    def state_size(self):
        """The size of the reactions' state database, its write-ahead log included (bytes)."""
        database = reaction_state.database_path(f"{self.history_path}.state.json")
        return sum(os.path.getsize(path) for path in (database, f"{database}-wal") if os.path.exists(path))

    def dns_follows(self):
        """Whether BIND answers each pair's record with its ``b`` node's address."""
        return all(self.services.named.query(record_name(pair), "A") == [pair_nodes(pair)[f"{pair}b"]] for pair in self.pairs)

    def messages(self):
        """``[(arrival, channel, text)]`` since the storm: webhook posts and mail."""
        posts = [(post["at"], "webhook", post["json"]["text"]) for post in list(self.services.webhook.posts)]
        mails = [(mail["at"], "mail", mail["text"]) for mail in list(self.services.smtp.mailbox.messages)]
        return sorted(message for message in posts + mails if message[0] >= self.since)

    def events(self):
        return [event.stamp.timestamp() for event in self.listener.get_events([(self.master_id, BEACON_EVENTS)], after_time=self.since)]

    def returns(self):
        """What the reactor's ``lbpair.on_beacon`` jobs returned since the storm, counted (as text)."""
        events = self.listener.get_events([(self.master_id, "salt/run/*/ret")], after_time=self.since)
        return collections.Counter(str(event.data.get("return")) for event in events if event.data.get("fun") == "runner.lbpair.on_beacon")

    def reactions(self):
        return runner_jobs(self.listener, self.master_id, self.since, fun="runner.lbpair.on_beacon")

    def complete(self):
        """Every transition recorded (by both masters, with two), every DNS record moved, every reaction returned."""
        done = all(len(self.records("transition", path)) >= 2 * len(self.pairs) for path in self.skips) and self.dns_follows()
        return done and all(ended is not None for _, _, ended in self.reactions().values())

    def mentions(self):
        """``{channel: transitions its messages mention}``: one by one, or counted in a storm or flap-damping summary."""
        found = collections.Counter()
        for _, channel, text in self.messages():
            held = re.search(r"lbpair (?:storm|\S+): (\d+) more transitions", text)  # after the "[pair] " a pair's messages start with
            found[channel] += int(held.group(1)) if held else int(" is " in text.split(";")[0] and "CRITICAL" not in text)
        return found


def kind_of(text):
    if "held back by flap damping" in text:  # sent when the damping window ends: alone, or in a storm's summary
        return "damping storm summary" if "lbpair storm:" in text else "damping summary"
    if "lbpair storm:" in text:
        return "storm summary"
    return "one by one"


def test_storm(
    storm_pairs, storm_masters, storm_driver, storm_minions, storm_master, storm_services, storm_reactions, master_events, request
):
    pairs = pair_names(storm_pairs)
    paths = [storm_reactions["history"]["path"]]
    if storm_masters == 2:
        paths.append(request.getfixturevalue("second_reactions")["history"]["path"])
    master_rss = tree_rss(storm_master.pid)
    print(f"\n{len(storm_minions)} salt-minions started in {storm_minions.seconds:.0f} s "
          f"({storm_minions.rss / len(storm_minions) / 2**20:.0f} MiB each, {storm_minions.rss / 2**30:.1f} GiB in all; "
          f"salt-master {master_rss / 2**20:.0f} MiB)", flush=True)  # fmt: skip
    settle(master_events, storm_master.id, 0.0)
    # a stable fleet: damping windows and the minute the master keeps what a node's pillar said are over
    time.sleep(DAMPING_WINDOW + 5)
    settle(master_events, storm_master.id, time.time() - DAMPING_WINDOW)
    with MasterCpu(storm_master) as master_cpu:
        idle_start, idle_cpu = time.monotonic(), master_cpu.total()
        time.sleep(IDLE)
        idle_rate = (master_cpu.total() - idle_cpu) / (time.monotonic() - idle_start)

        before, before_titles, started = master_cpu.total(), master_cpu.by_title(), time.monotonic()
        detached_before = sum(master_cpu.detached.values())
        skips = {path: len(History(path).read()) for path in paths}
        flips = {node: state for pair in pairs for node, state in zip(pair_nodes(pair), ("BACKUP", "MASTER"), strict=True)}
        first, last = storm_driver.set(flips)
        outcome = Outcome(pairs, first, skips, storm_services, master_events, storm_master.id)
        try:
            wait_until(outcome.complete, COMPLETE_TIMEOUT, interval=0.5, what="every transition recorded and every DNS record moved")
        except TimeoutError:
            not_done(pairs, outcome)
        # what is sent later by design: the storm's summary (window end), flap damping's (damping window end), and
        # the storm's summary of the flap-damping summaries it held
        time.sleep(max(0.0, first + DAMPING_WINDOW + STORM_WINDOW + 10 - time.time()))
        wait_until(outcome.nothing_held, COMPLETE_TIMEOUT, interval=0.5, what="every master's held messages sent")
        settle(master_events, storm_master.id, first)
        elapsed = time.monotonic() - started
        titles = {name: seconds - before_titles.get(name, 0.0) for name, seconds in master_cpu.by_title().items()}
        forwarding = sum(seconds for name, seconds in titles.items() if instrumentation(name))
        spent = master_cpu.total() - before - idle_rate * elapsed - forwarding

    report(pairs, first, last, outcome, spent, idle_rate, titles, storm_master, sum(master_cpu.detached.values()) - detached_before)


def not_done(pairs, outcome):
    """Say what the master did not do, and why its reactions say it did not; fail."""
    moved = [pair for pair in pairs if outcome.services.named.query(record_name(pair), "A") == [pair_nodes(pair)[f"{pair}b"]]]
    lines = [f"\nNot done within {COMPLETE_TIMEOUT} s. What the reactions to the storm's events returned:"]
    lines.extend(f"  {count} x {text}" for text, count in outcome.returns().most_common())
    lines.append(f"storm: {len(pairs)} pairs, not done: {len(outcome.records('transition'))} of {2 * len(pairs)} transitions "
                 f"recorded, {len(moved)} of {len(pairs)} DNS records moved within {COMPLETE_TIMEOUT} s")  # fmt: skip
    print("\n".join(lines), flush=True)
    pytest.fail("the storm was not handled", pytrace=False)


def report(pairs, first, last, outcome, spent, idle_rate, titles, master, detached):
    events = sorted(outcome.events())
    kinds = collections.Counter(r["kind"] for r in outcome.records())
    last_record = max(epoch(r["recorded_at"]) for r in outcome.records("transition"))  # only transitions carry a time
    dns = outcome.dns_updates()
    messages = outcome.messages()
    reactions = outcome.reactions()
    blocks = sorted(ended - started for _, started, ended in reactions.values())
    storm_messages = [at for at, _, text in messages if not kind_of(text).startswith("damping")]
    finished = max([last_record, *dns.values(), *storm_messages])
    per_event = spent / max(1, len(events))
    counts = collections.Counter((channel, kind_of(text)) for _, channel, text in messages)

    def since_first(moments):
        return f"{max(moments) - events[0]:.2f} s" if moments else "none"

    lines = [
        "",
        f"Storm: {len(pairs)} pairs ({2 * len(pairs)} minions, jobs in {'threads' if OPTIONS['minion_threads'] else 'processes'}) "
        f"failed over; the driver sent the {2 * len(pairs)} D-Bus signals within {(last - first) * 1000:.1f} ms.",
        f"  beacon events on the master's bus     {len(events)} of {2 * len(pairs)}, "
        f"first {events[0] - first:.2f} s, last {events[-1] - first:.2f} s after the first signal",
        "  history records                      " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())),
        f"  first event -> last history record    {last_record - events[0]:.2f} s (the last transition recorded)",
        f"  first event -> last DNS update        {since_first(list(dns.values()))}  ({len(dns)} records updated, "
        f"named's log; BIND answers every pair's record with its new MASTER: {outcome.dns_follows()})",
        f"  first event -> last message           {since_first(storm_messages)}  (storm summaries included; "
        f"flap damping's summaries are sent when its {DAMPING_WINDOW} s window ends)",
        f"  messages (the first {PAIRS_BEFORE_A_STORM} pairs' one by one, the rest in one summary per channel after "
        f"{STORM_WINDOW} s): " + ", ".join(f"{channel} {kind} {count}" for (channel, kind), count in sorted(counts.items())),
        reactor_blocks(blocks),
        f"  the reaction state                    {outcome.state_size() / 1024:.0f} KiB after the storm (SQLite, WAL: "
        "a transaction per change, writers take turns)",
        f"  master CPU over the storm             {spent:.1f} s (idle {idle_rate * 100:.1f} % of a core subtracted) "
        f"= {per_event * 1000:.0f} ms per event (salt-factories' event forwarding engine left out)",
        "  by process: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in busiest(titles))
        + f"; background lbpair.flush jobs {detached:.2f} s",
    ]
    lines.extend(two_masters(pairs, outcome))
    lines.extend(model(per_event, statistics.median(blocks) if blocks else 0.0, titles, len(events), master))
    lines.append(f"storm: {len(pairs)} pairs, all done {finished - last:.1f} s after the last transition")
    print("\n".join(lines), flush=True)


def reactor_blocks(blocks):
    """What the reactor's ``lbpair.on_beacon`` jobs held its worker threads (none: the engine reads the events off the bus)."""
    if not blocks:
        return "  reactor's lbpair.on_beacon jobs       none (the lbpair engine reads the beacon's events off the bus)"
    return (f"  reactor's lbpair.on_beacon jobs       {len(blocks)}: longest {blocks[-1]:.2f} s, "
            f"median {statistics.median(blocks):.2f} s (new -> ret: a reactor worker thread held)")  # fmt: skip


def busiest(titles):
    """``(name, CPU seconds)`` of the processes that spent 0.05 s or more, busiest first."""
    return [(name, seconds) for name, seconds in sorted(titles.items(), key=lambda item: -item[1]) if seconds >= 0.05]


def two_masters(pairs, outcome):
    """With two masters: what each recorded, and the messages counted against the transitions."""
    if len(outcome.skips) < 2:
        return []
    recorded = [len(outcome.records("transition", path)) for path in outcome.skips]
    mentions = outcome.mentions()
    once = all(count == 2 * len(pairs) for count in mentions.values()) and len(mentions) == 2
    return [
        f"Two masters: transitions recorded by m1 {recorded[0]}, by m2 {recorded[1]} (of {2 * len(pairs)} each); "
        "transitions the messages mention, per channel: " + ", ".join(f"{channel} {count}" for channel, count in sorted(mentions.items()))
        + f" -> each transition told once per channel: {once}",
    ]


def model(per_event, block, titles, events, master):
    """The modelled time for :data:`MODEL_PAIRS` pairs on one master and under :data:`SYNDICS` syndics."""
    threads = master.config.get("reactor_worker_threads", 10)
    cores = os.cpu_count()
    # one process each: its threads share one core (the GIL)
    reactor = sum(seconds for name, seconds in titles.items() if reactor_process(name)) / max(1, events)
    worker = sum(seconds for name, seconds in titles.items() if worker_process(name)) / max(1, events)
    count = 2 * MODEL_PAIRS
    by_cpu, by_reactor, by_worker, by_threads = count * per_event / cores, count * reactor, count * worker, count * block / threads
    limit = max(("master CPU", by_cpu), ("the reactor process (one core)", by_reactor), ("the lbpair engine (one core)", by_worker),
                ("reactor worker threads", by_threads), key=lambda item: item[1])  # fmt: skip
    return [
        f"Model, {MODEL_PAIRS} pairs ({count} events at once), from the per-event figures above:",
        f"  one master ({cores} cores): CPU {count} x {per_event * 1000:.0f} ms / {cores} = {by_cpu:.0f} s; reactor process "
        f"{count} x {reactor * 1000:.1f} ms = {by_reactor:.0f} s; lbpair engine {count} x {worker * 1000:.1f} ms = {by_worker:.0f} s; "
        f"{threads} reactor threads x {block:.3f} s per queued event = {by_threads:.0f} s -> about {limit[1]:.0f} s, limited by {limit[0]}",
        f"  master of masters, {SYNDICS} syndics: the reactor, the engine and its batches' jobs (one journal job, one status "
        f"job) all run on the top master, so the same per-event cost and about the same {limit[1]:.0f} s (each job there also "
        "waits syndic_wait, 5 s, once per batch); the syndics take the minions' connections, publications and returns",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=OPTIONS["pairs"], help="pairs failing over at once (two minions each)")
    parser.add_argument("--masters", type=int, choices=(1, 2), default=1, help="hot masters the minions are connected to")
    parser.add_argument("--minion-threads", action="store_true",
                        help="the minions run jobs in threads (multiprocessing: False): 40 minions on 2 cores answer as 40 hosts would")
    args = parser.parse_args()
    os.environ["LBPAIR_BENCH_STORM"] = str(args.pairs)
    os.environ["LBPAIR_BENCH_STORM_MASTERS"] = str(args.masters)
    os.environ["LBPAIR_BENCH_STORM_MINION_THREADS"] = "1" if args.minion_threads else ""
    os.chdir(REPO)
    return pytest.main(["-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(REPO), f"{__file__}::test_storm"])


if "LBPAIR_BENCH_STORM" in os.environ:
    OPTIONS["pairs"] = int(os.environ["LBPAIR_BENCH_STORM"])
    OPTIONS["masters"] = int(os.environ.get("LBPAIR_BENCH_STORM_MASTERS", "1"))
    OPTIONS["minion_threads"] = bool(os.environ.get("LBPAIR_BENCH_STORM_MINION_THREADS"))

if __name__ == "__main__":
    sys.exit(main())
