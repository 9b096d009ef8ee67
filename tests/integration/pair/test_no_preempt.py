"""
``vrrp.preempt: false``: after a failover the pair stays on lb2 when HAProxy on lb1 comes back
(no second interruption), and the history shows no failback; turning preempt back on returns the
VIPs to the preferred node.
"""

import copy
import time

from lab import drills
from lab.demo import history_records
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, VIPS, apply_state, wait_for_vips
from tests.support.journal import last_seq


def apply_everywhere(salt_cli):
    for node in NODES:
        states = apply_state(salt_cli, node)
        assert all(state["result"] is True for state in states.values()), states


def moves(history_path, minion, after_seq):
    """*minion*'s transitions in the master's history after its seq *after_seq*: ``[(previous state, state)]``."""
    return [
        (r["previous_state"], r["state"])
        for r in history_records(history_path)
        if r.get("minion") == minion and r.get("seq", 0) > after_seq
    ]


def test_without_preempt_the_pair_stays_on_the_node_that_took_over(lab, highstated, salt_cli, pillar, history_path, reactions):
    wait_for_vips(lab, "lb1")
    staying = copy.deepcopy(pillar.seed)
    staying["vrrp"]["preempt"] = False
    staying["vrrp"]["check"]["weight"] = 0  # a failed check means FAULT
    staying["vrrp"]["failback_delay"] = 0  # were preempt on, keepalived itself would take the VIPs back within the sleep
    pillar.write(staying)
    try:
        apply_everywhere(salt_cli)
        lb1_seq = last_seq(salt_cli, "lb1")
        reactions.mark()
        stopped = drills.now_on(lab, "lb1")
        lab.exec("lb1", ["systemctl", "stop", "haproxy"])
        wait_for_vips(lab, "lb2")
        reactions.awaited("lb2")
        drills.probe_failed(lab, "lb1", stopped)  # HAProxy found dead before it is back: one FAULT, no blip
        lab.exec("lb1", ["systemctl", "start", "haproxy"])
        wait_until(lambda: ("FAULT", "BACKUP") in moves(history_path, "lb1", lb1_seq), 15, what="lb1 back from FAULT")
        time.sleep(3)  # a preempting node would have taken over by now (after its skew time)
        assert (lab.vips_on("lb1", VIPS), lab.vips_on("lb2", VIPS)) == ([], VIPS)
        assert moves(history_path, "lb1", lb1_seq) == [("MASTER", "FAULT"), ("FAULT", "BACKUP")]
    finally:
        lab.exec("lb1", ["systemctl", "start", "haproxy"])
        pillar.restore()
        apply_everywhere(salt_cli)
    wait_for_vips(lab, "lb1")  # preempt is on again
    reactions.awaited("lb1")
