"""
Benchmark: the master's reaction state, SQLite (this version) against the JSON document of
earlier versions (read, rewritten and fsync'd whole at each step; its module is taken from git,
commit ``9837540``, when the checkout has it).

For each store, with the state of 1 and of 40 pairs (damping, open claims and reactions, work
due later, checks, alarms, quiet periods), times the reaction of one transition as the reactor
makes it: ``admit``, ``begin_steps`` (record, webhook), ``step_done`` of each step (4
transactions); then a storm: 8 processes reacting at once, 40 transitions in all (every pair
failing over in the same second). Prints the figures; asserts nothing. No root needed.

    .venv/bin/python -m bench.reaction_state [REACTIONS]      # REACTIONS defaults to 200
"""

import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

from saltext.lbpair.master import reaction_state

JSON_COMMIT = "9837540"
JSON_MODULE = "_utils/saltext/lbpair/master/reaction_state.py"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORM_WORKERS = 8
STORM_REACTIONS = 40
NOW = 1_800_000_000.0


def json_store_class():
    """The ``ReactionStore`` of the JSON version (``None`` if git cannot show it)."""
    shown = subprocess.run(["git", "-C", REPO, "show", f"{JSON_COMMIT}:{JSON_MODULE}"], capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        return None
    handle, source = tempfile.mkstemp(suffix=".py")
    with os.fdopen(handle, "w") as stream:
        stream.write(shown.stdout)
    spec = importlib.util.spec_from_file_location("json_reaction_state", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(source)
    return module.ReactionStore


def pair(number):
    return f"lb{2 * number + 1}+lb{2 * number + 2}/lbpair_51", f"lb{2 * number + 1}", f"lb{2 * number + 2}"


def fill(store, pairs):
    """The state ``pairs`` pairs leave after a busy while, through the store's own methods."""
    for number in range(pairs):
        instance, first, second = pair(number)
        for seq in range(5):
            store.admit(instance, NOW, 60, {"minion": second, "seq": seq, "state": "BACKUP", "at": "2027-01-15T08:00:00+00:00"})
        for minion in (first, second):
            for seq in range(10):
                store.add_claim(minion, {"minion": minion, "seq": 1000 + seq, "instance": instance, "state": "MASTER"}, NOW, 60)
            store.note_silence(minion, NOW)
            store.quiet_warning(f"{minion}:rogue_vrrp", NOW, 60)
        for seq in range(10):
            key = f"{second}:{seq}"
            store.begin_steps(key, ["record", "webhook", "check"], {"record": {"minion": second, "seq": seq, "instance": instance}})
            store.step_failed(key, "webhook", "the webhook answered HTTP 500")
        store.schedule(f"check:{instance}", NOW + 5, {"kind": "check", "instance": instance})
        store.schedule(f"dns:{instance}", NOW + 2, {"kind": "dns", "instance": instance, "minion": second, "attempt": 2})
        store.start_check(instance, None, NOW)
        store.raise_alarm(instance, "split_brain")
        store.note_dns(instance, first)


def react(store, minion, seq, instance):
    """One transition's reaction, as the reactor makes it: 4 transactions."""
    store.admit(instance, NOW + seq, 60, {"minion": minion, "seq": seq, "state": "MASTER"})
    key = f"{minion}:{seq}"
    store.begin_steps(key, ["record", "webhook"], {"record": {"minion": minion, "seq": seq, "instance": instance}})
    store.step_done(key, "record")
    store.step_done(key, "webhook")


def timed_reactions(store, count):
    times = []
    for seq in range(count):
        instance, _, minion = pair(seq % 40)
        started = time.perf_counter()
        react(store, minion, 100_000 + seq, instance)
        times.append(time.perf_counter() - started)
    return times


def _storm_worker(make, path, worker, start):
    store = make(path)
    start.wait()
    for seq in range(worker, STORM_REACTIONS, STORM_WORKERS):
        instance, _, minion = pair(seq)
        react(store, minion, 200_000 + seq, instance)


def storm(make, path):
    """Seconds for ``STORM_REACTIONS`` reactions made by ``STORM_WORKERS`` processes at once."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(STORM_WORKERS + 1)
    workers = [context.Process(target=_storm_worker, args=(make, path, worker, start)) for worker in range(STORM_WORKERS)]
    for process in workers:
        process.start()
    start.wait()
    started = time.perf_counter()
    for process in workers:
        process.join()
    return time.perf_counter() - started


def measure(name, make, reactions):
    for pairs in (1, 40):
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
            path = os.path.join(folder, "history.jsonl.state.json")
            store = make(path)
            fill(store, pairs)
            times = timed_reactions(store, reactions)
            seconds = storm(make, path)
            median, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
            print(
                f"{name:7} {pairs:2} pair(s): a reaction (4 transactions) p50 {median * 1e3:6.2f} ms  p95 {p95 * 1e3:6.2f} ms;"
                f"  storm, {STORM_REACTIONS} by {STORM_WORKERS} processes: {seconds * 1e3:7.1f} ms"
            )


def main():
    reactions = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    old = json_store_class()
    if old is None:
        print(f"(the JSON version's module is not in this checkout: git show {JSON_COMMIT} failed)")
    else:
        measure("JSON", old, reactions)
    measure("SQLite", reaction_state.ReactionStore, reactions)


if __name__ == "__main__":
    main()
