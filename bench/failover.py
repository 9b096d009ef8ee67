"""
Benchmark: the failover drill repeated on the lab, the figures the demo's timeline shows.

For each round HAProxy on lb1 is stopped until the VIPs are on lb2, then started until they are
back (preempt), while the lab's client sends requests to the three services. Prints the median
and p95 of the failover and failback times, the failed requests per phase, and how long after
keepalived's VRRP transition each reaction on the master (event, history, DNS, webhook, mail) was
seen (the demo polls every 50 ms).

Then, on the same lab (:mod:`lab.drills`), with the default profile: planned switchovers
(``salt-run lbpair.switchover``, to lb2 and back, under the same load: no request may fail), HAProxy hung (SIGSTOP) ->
VIPs on lb2, and HAProxy SIGKILLed (systemd starts it again: no VRRP transition expected, the
failed requests counted); with the fast profile (``lbpair:vrrp:profile: fast``): HAProxy stopped
for good -> VIPs on lb2, and the MASTER machine powered off (its container killed) -> VIPs on lb2.

    .venv/bin/python -m lab within mgmt -- .venv/bin/python -m bench.failover [ROUNDS]
"""

import copy
import statistics
import sys
import time

from lab import drills
from lab.demo import Steps, highstate, one_failover, seeded_lab
from lab.load import ClientLoad

PAUSE = 2  # s between two drills: the pair settles (failback, rise)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name, values, unit):
    return f"{name:<40} median {statistics.median(values):8.0f} {unit}   p95 {percentile(values, 0.95):8.0f} {unit}"


def reaction_delays(reactions):
    """``{what: ms after keepalived's signal}`` for one move's reactions (``[(moment, what)]``)."""
    signalled = next(moment for moment, what in reactions if what.startswith("VRRP transition"))
    return {what: 1000 * (moment - signalled) for moment, what in reactions if not what.startswith("VRRP transition")}


def fast_profile(seeded):
    """Give the pair the fast profile (the seed pillar otherwise) and highstate both nodes."""
    fast = copy.deepcopy(seeded.pillar.seed)
    fast["vrrp"]["profile"] = "fast"
    fast["vrrp"].pop("advert_int", None)
    seeded.pillar.write(fast)
    for node in drills.MASTER, drills.PEER:
        highstate(seeded.master, node)
    drills.moment_vips_on(seeded.lab, drills.MASTER, seeded.pillar.vips)


def repeated(rounds, drill):
    results = []
    for _ in range(rounds):
        results.append(drill())
        time.sleep(PAUSE)
    return results


def print_drills(title, results):
    print(f"\n{title}")
    print(summary("  break -> VIPs on lb2", [r["moved_ms"] for r in results], "ms"))
    print(summary("  mended -> VIPs back on lb1", [r["back_ms"] for r in results], "ms"))
    failed, sent = [r["failover"]["failures"] for r in results], [r["failover"]["requests"] for r in results]
    print(f"  requests failed until the VIPs were on lb2: median {statistics.median(failed):.0f} of {statistics.median(sent):.0f} sent")
    expected = (["MASTER", "BACKUP"], ["MASTER", "FAULT", "BACKUP"])  # a graceful failback: lb2's moment of FAULT
    odd = [r["peer_transitions"] for r in results if r["peer_transitions"] not in expected]
    print(f"  lb2's transitions other than MASTER (FAULT) BACKUP: {odd or 'none'}")


def print_switchovers(moves):
    sent, failed = sum(m["requests"]["requests"] for m in moves), sum(m["requests"]["failures"] for m in moves)
    print(f"\n{len(moves)} planned switchovers (salt-run lbpair.switchover, to lb2 and back to lb1), default profile:")
    print(summary("  runner call -> transition confirmed", [m["returned_ms"] for m in moves], "ms"))
    print(f"  requests failed: {failed} of {sent} sent during the switchovers")


def print_crashes(results):
    moved = [r for r in results if any(r["transitions"].values()) or not r["vips_on_master"]]
    failed, sent = [r["requests"]["failures"] for r in results], [r["requests"]["requests"] for r in results]
    print(f"\n{len(results)} SIGKILLs of HAProxy on lb1 (systemd restarts it), default profile:")
    print(f"  VRRP transitions: {sum(len(t) for r in results for t in r['transitions'].values())} in {len(moved)} rounds")
    print(f"  requests failed in the 3 s after the kill: median {statistics.median(failed):.0f} of {statistics.median(sent):.0f} sent")


def main(rounds=10):
    with seeded_lab(Steps()) as seeded:
        lab, vips = seeded.lab, seeded.pillar.vips
        load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
        try:
            drills_seen = [one_failover(lab, load, vips, seeded.reactions) for _ in range(rounds)]
            moves = [
                drills.switchover(lab, load, seeded.master, vips, node) for _ in range(rounds) for node in (drills.PEER, drills.MASTER)
            ]
            hung = repeated(rounds, lambda: drills.failover(lab, load, vips, "hang"))
            crashes = repeated(rounds, lambda: drills.healed_crash(lab, load, vips))
            fast_profile(seeded)
            fast_stops = repeated(rounds, lambda: drills.failover(lab, load, vips, "stop"))
            fast_power = repeated(rounds, lambda: drills.failover(lab, load, vips, "power"))
        finally:
            load.stop()
        report(rounds, drills_seen)
        print_switchovers(moves)
        print_drills(f"{rounds} hung HAProxies on lb1 (SIGSTOP, then SIGCONT), default profile:", hung)
        print_crashes(crashes)
        print_drills(f"{rounds} HAProxies on lb1 stopped for good (then started), fast profile:", fast_stops)
        print_drills(f"{rounds} lb1 machines powered off (container killed, then booted), fast profile:", fast_power)


def report(rounds, seen):
    """The seed drills' figures (HAProxy stopped, then started, with the reactions)."""
    print(f"\n{rounds} failover drills (HAProxy on lb1 stopped, then started), seed pillar defaults:")
    print(summary("failover: stop -> VIPs on lb2", [1000 * (d["moved"] - d["stopped"]) for d in seen], "ms"))
    print(summary("failback: start -> VIPs on lb1", [1000 * (d["back"] - d["started"]) for d in seen], "ms"))
    for phase in ("failover", "failback"):
        failed = [d[phase]["failures"] for d in seen]
        sent = [d[phase]["requests"] for d in seen]
        print(f"{phase} requests failed: median {statistics.median(failed):.0f} of {statistics.median(sent):.0f} sent")
    for phase in ("failover", "failback"):
        delays = [reaction_delays(d[f"{phase}_reactions"]) for d in seen]
        print(f"{phase}: after keepalived's VRRP transition signal")
        for what in delays[0]:
            print(summary(f"  {what}", [delay[what] for delay in delays], "ms"))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
