"""
lbpair's reactions on a master of masters: a node's beacon event goes up through its syndic, the
top master's reactor runs the lbpair runner, which checks it with the node's journal through a job
that goes down through the same syndic.
"""

import time

import pytest

from lab.util import wait_until
from tests.support import journal
from tests.support.session import wait_for_minion

# a hang fails its test; the first one also starts the top master, the syndics and the nodes (about 60 s)
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def nodes(syndic_minions, salt_cli):
    """``{node: its salt-minion}``, each answering the top master."""
    for node in syndic_minions:
        wait_for_minion(salt_cli, node)
    return syndic_minions


def recorded(salt_run_cli, node, seq):
    """The transition of ``node`` with ``seq`` in the top master's history (``salt-run lbpair.history``), or None."""
    records = salt_run_cli.run("lbpair.history", f"minion={node}", "--out=json").data or []
    return next((r for r in records if r["kind"] == "transition" and r["seq"] == seq), None)


def test_a_transition_below_a_syndic_is_recorded_confirmed_on_the_top_master(nodes, salt_run_cli):
    entry = journal.journal_transition(nodes["lb1"], "MASTER", "BACKUP")
    journal.fire_beacon_events(nodes["lb1"], [entry])
    record = wait_until(lambda: recorded(salt_run_cli, "lb1", entry["seq"]), 60, interval=1, what="lb1's transition recorded")
    assert (record["state"], record["seen"], record["confirmed"]) == ("MASTER", "live", True)


def test_an_event_the_journal_lacks_is_ignored(nodes, salt_run_cli, salt_master, event_listener):
    started = time.time()
    real = journal.journal_transition(nodes["lb2"], "MASTER", "BACKUP")
    forged = {**real, "seq": 2**40}  # in lb1's name, from below the other syndic: lb1's journal lacks it
    journal.fire_beacon_events(nodes["lb2"], [forged], claimed="lb1")
    outcomes = lambda: journal.runner_returns(event_listener, salt_master, "on_beacon", started)  # noqa: E731
    wait_until(lambda: [ret for ret in outcomes() if "ignored" in ret], 60, what="the forged event ignored")
    # the worker's report of the previous test's reaction may come after ``started``: nothing of the forged one
    assert all("ignored" in ret or str(forged["seq"]) not in str(ret) for ret in outcomes()), outcomes()
    assert recorded(salt_run_cli, "lb1", forged["seq"]) is None


def test_a_job_reaches_a_node_below_a_syndic(nodes, salt_cli):
    entry = journal.journal_transition(nodes["lb2"], "BACKUP", "MASTER")
    assert [e["seq"] for e in journal.transitions(salt_cli, "lb2", since=entry["seq"] - 1)] == [entry["seq"]]


def test_a_node_that_reconnects_is_caught_up_by_the_top_master(nodes, salt_run_cli):
    with nodes["lb2"].stopped():
        missed = journal.journal_transition(nodes["lb2"], "MASTER", "BACKUP")
    record = wait_until(lambda: recorded(salt_run_cli, "lb2", missed["seq"]), 90, interval=1, what="lb2's missed transition")
    assert (record["state"], record["seen"], record["confirmed"]) == ("MASTER", "late", True)
