"""
Benchmark: appending to the master's history when it already holds 100,000 transitions.

Builds a history of realistic transition records (two minions, four instances, rotated past
10 MiB as the shipped configuration does) in a temporary folder, then times appends through
:class:`saltext.lbpair.master.history.History` as the reactions make them: one record per call, mostly new
transitions, some replays (dropped) and some non-transition records. Also the index's rebuild
from the files alone, ``recent(50)``, and ``read()`` (what every append read before the
index). Prints the figures; asserts nothing. No root needed.

    .venv/bin/python -m bench.history_append [RECORDS]      # RECORDS defaults to 100,000
"""

import datetime
import json
import os
import statistics
import sys
import tempfile
import time

from saltext.lbpair.core import store
from saltext.lbpair.master import history_index
from saltext.lbpair.master.history import History
from saltext.lbpair.master.records import Seen, Transition, dns
from saltext.lbpair.model.keepalived_model import VrrpState

MINIONS = ("lb1", "lb2")
INSTANCES = ("lbpair_51", "lbpair_52", "lbpair_53", "lbpair_54")
MAX_BYTES = 10 * 1024 * 1024  # the shipped history:max_bytes
APPENDS = 200
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def transition(number, minion, seq):
    """The ``number``-th transition of the history, as the reactions record it (its JSON)."""
    at = (START + datetime.timedelta(seconds=37 * number)).isoformat()
    state, previous = (VrrpState.MASTER, VrrpState.BACKUP) if seq % 2 else (VrrpState.BACKUP, VrrpState.MASTER)
    instance = INSTANCES[number % len(INSTANCES)]
    return Transition(
        minion=minion, seq=seq, instance=instance, vrid=51 + INSTANCES.index(instance), state=state, previous_state=previous,
        vips=("203.0.113.10", "2001:db8::10"), source="live", at=at, recorded_at=at, seen=Seen.LIVE if number % 10 else Seen.LATE,
        confirmed=True,
    ).to_json()  # fmt: skip


def build(path, records):
    """Write ``records`` transitions straight to the files, rotated past MAX_BYTES as History would."""
    batch, size, rotation = [], 0, 0
    for number in range(records):
        record = transition(number, MINIONS[number % 2], number // 2 + 1)
        batch.append(record)
        size += len(json.dumps(record))
        if size >= MAX_BYTES or number == records - 1:
            store.append_records(path, batch)
            batch, size = [], 0
            if number < records - 1:
                rotation += 1
                os.rename(path, f"{path}.20260101T{rotation:06d}000000")


def percentile(values, share):
    return sorted(values)[min(len(values) - 1, int(share * len(values)))]


def timed(func):
    started = time.perf_counter()
    result = func()
    return (time.perf_counter() - started) * 1000, result


def time_appends(history, records):
    """Append APPENDS records one per call, as the reactions do; returns (milliseconds of each, replays dropped)."""
    last_seq = {minion: history.last_seq(minion) for minion in MINIONS}
    times, dropped = [], 0
    for number in range(APPENDS):
        minion = MINIONS[number % 2]
        if number % 10 == 5:
            record = transition(number, minion, last_seq[minion] - 3)  # a replay: dropped
        elif number % 10 == 9:
            record = {"at": START.isoformat(), **dns("lbpair_51", minion, True, 1, None)}
        else:
            last_seq[minion] += 1
            record = transition(records + number, minion, last_seq[minion])
        elapsed, new = timed(lambda record=record: history.append([record]))
        times.append(elapsed)
        dropped += not new
    return times, dropped


def main(records=100_000):
    with tempfile.TemporaryDirectory(prefix="lbpair-bench-") as folder:
        path = os.path.join(folder, "history.jsonl")
        build(path, records)
        history = History(path, MAX_BYTES)
        files = history._files()
        mib = sum(os.path.getsize(name) for name in files) / 2**20
        rebuild_ms, _ = timed(lambda: history.last_seq("lb1"))  # no index yet: built from the files
        times, dropped = time_appends(history, records)
        history_index.remove(history.index_path)
        rebuild_again_ms, _ = timed(history.bad_lines)
        recent_ms, recent = timed(lambda: history.recent(50))
        read_ms, _ = timed(history.read)
    print(f"history: {records:,} transitions in {len(files)} files ({mib:.0f} MiB)")
    print(f"append, one record per call ({APPENDS} calls, {dropped} replays dropped)")
    print(f"  p50 {statistics.median(times):7.2f} ms   p95 {percentile(times, 0.95):7.2f} ms   max {max(times):7.2f} ms")
    print(f"index built from the files: {rebuild_ms:7.0f} ms (first use), {rebuild_again_ms:7.0f} ms (index removed)")
    print(f"recent(50): {recent_ms:7.2f} ms ({len(recent)} records)")
    print(f"read(), every record (what each append read before the index): {read_ms:7.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
