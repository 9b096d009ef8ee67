"""
Benchmark: the failover drill repeated on the lab, the figures the demo's timeline shows.

For each round HAProxy on lb1 is stopped until the VIPs are on lb2, then started until they are
back (preempt), while the lab's client sends requests to the three services. Prints the median
and p95 of the failover and failback times, the failed requests per phase, and how long after
keepalived's VRRP transition each reaction on the master (event, history, DNS, webhook, mail) was
seen (the demo polls every 50 ms).

    .venv/bin/python -m lab within mgmt -- .venv/bin/python -m bench.failover [ROUNDS]
"""

import statistics
import sys

from lab.demo import Steps, one_failover, seeded_lab
from lab.load import ClientLoad


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name, values, unit):
    return f"{name:<40} median {statistics.median(values):8.0f} {unit}   p95 {percentile(values, 0.95):8.0f} {unit}"


def reaction_delays(reactions):
    """``{what: ms after keepalived's signal}`` for one move's reactions (``[(moment, what)]``)."""
    signalled = next(moment for moment, what in reactions if what.startswith("VRRP transition"))
    return {what: 1000 * (moment - signalled) for moment, what in reactions if not what.startswith("VRRP transition")}


def main(rounds=10):
    with seeded_lab(Steps()) as seeded:
        vips = seeded.pillar.vips
        load = ClientLoad(seeded.lab, [f"http://{vip}/" for vip in vips])
        try:
            drills = [one_failover(seeded.lab, load, vips, seeded.reactions) for _ in range(rounds)]
        finally:
            load.stop()
    print(f"\n{rounds} failover drills (HAProxy on lb1 stopped, then started), seed pillar defaults:")
    print(summary("failover: stop -> VIPs on lb2", [1000 * (d["moved"] - d["stopped"]) for d in drills], "ms"))
    print(summary("failback: start -> VIPs on lb1", [1000 * (d["back"] - d["started"]) for d in drills], "ms"))
    for phase in ("failover", "failback"):
        failed = [d[phase]["failures"] for d in drills]
        sent = [d[phase]["requests"] for d in drills]
        print(f"{phase} requests failed: median {statistics.median(failed):.0f} of {statistics.median(sent):.0f} sent")
    for phase in ("failover", "failback"):
        delays = [reaction_delays(d[f"{phase}_reactions"]) for d in drills]
        print(f"{phase}: after keepalived's VRRP transition signal")
        for what in delays[0]:
            print(summary(f"  {what}", [delay[what] for delay in delays], "ms"))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
