"""
Benchmark: false failovers with the fast profile while the MASTER machine is under full CPU load.

The seed pair gets ``lbpair:vrrp:profile: fast`` (VRRPv3, 0.1 s adverts, keepalived under
SCHED_RR); lb1 (MASTER) then runs one busy loop per CPU for SECONDS while the client sends
requests. Prints keepalived's transitions on both nodes in that time (none expected), where the
VIPs ended, and the requests that failed.

    .venv/bin/python -m lab within mgmt -- .venv/bin/python -m bench.cpu_load [SECONDS]
"""

import sys

from bench.failover import fast_profile
from lab import drills
from lab.demo import Steps, seeded_lab
from lab.load import ClientLoad

#: one busy loop per CPU the machine sees, each ended by timeout
BURN = "for cpu in $(seq $(nproc)); do timeout {seconds} sh -c 'while :; do :; done' & done; wait"


def main(seconds=60):
    with seeded_lab(Steps()) as seeded:
        lab, vips = seeded.lab, seeded.pillar.vips
        fast_profile(seeded)
        since = {node: drills.now_on(lab, node) for node in (drills.MASTER, drills.PEER)}
        load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
        try:
            lab.exec(drills.MASTER, ["sh", "-c", BURN.format(seconds=seconds)], timeout=seconds + 30)
            held = lab.vips_on(drills.MASTER, vips) == vips
        finally:
            counts = load.stop()
        seen = {node: drills.transitions(lab, node, moment) for node, moment in since.items()}
    print(f"\nlb1 (MASTER) under full CPU load for {seconds} s, fast profile (VRRPv3, advert_int 0.1, SCHED_RR):")
    for node, states in seen.items():
        print(f"  {node}: {len(states)} VRRP transitions {states or ''}")
    print(f"  false failovers: {len(seen[drills.PEER])}; the VIPs {'stayed on lb1' if held else 'left lb1'}")
    print(f"  requests failed: {counts['failures']} of {counts['requests']}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
