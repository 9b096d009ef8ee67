"""
Benchmark: the whole lab (lb1 and lb2 booted, backends, client) brought up and torn down N times.

Each round builds :class:`lab.topology.Lab` as the demo does and tears it down again, also after a
failed boot and on Ctrl-C. Prints each round's boot and teardown time, then how many failed and
the median boot time. Exits non-zero if any boot failed. Root only.

    .venv/bin/python -m bench.lab_boots [N]      # N defaults to 30
"""

import signal
import statistics
import sys
import time

from lab import topology


def one_boot():
    """Build the lab and tear it down; return (boot seconds, teardown seconds) or raise."""
    started = time.monotonic()
    with topology.Lab():
        up = time.monotonic()
    return up - started, time.monotonic() - up


def main(rounds=30):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    times, failed = [], 0
    for number in range(1, rounds + 1):
        try:
            boot, teardown = one_boot()
        except Exception as exc:  # noqa: BLE001 (a failed boot is counted, the next one runs)
            failed += 1
            print(f"boot {number:3}: FAILED: {str(exc).splitlines()[0]}", flush=True)
            print(exc, file=sys.stderr, flush=True)  # with the end of the console log
            continue
        times.append(boot)
        print(f"boot {number:3}: {boot:5.1f} s (teardown {teardown:4.1f} s)", flush=True)
    median = f"{statistics.median(times):.1f} s" if times else "n/a"
    print(f"{rounds} boots, {failed} failed; median boot time {median}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
    except KeyboardInterrupt:
        sys.exit("interrupted; the lab is torn down")
