"""
Two hot masters, one pair: each master records every transition, and each transition is notified
and followed by DNS once in total, by the master its node gave it to (a claim on the node). With
one master stopped the other does it all; the master back catches up and repeats nothing.
"""

import time

import pytest

from lab.storm_rig import pair_nodes, record_name
from lab.util import wait_until
from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.master.history import History

pytestmark = pytest.mark.timeout(300)

A, B = pair_nodes("p01")


def transitions(history, *moves):
    """The transition records of ``history`` if it holds ``moves`` (``(minion, state)``, in any order), else none."""
    records = [record for record in history.read() if record["kind"] == "transition"]
    return records if {(record["minion"], record["state"]) for record in records} >= set(moves) else []


def messages(services, minion, state):
    """The webhook posts that announce ``minion`` becoming ``state``."""
    return [text for text in services.webhook.texts() if f"{minion} is {state}" in text]


def dns_updates(since, *histories):
    """The minions DNS was pointed at from ``since`` on (ISO time), by either master (the rig's start points it at A first)."""
    return [record["minion"] for history in histories for record in history.read()
            if record["kind"] == "dns" and record.get("ok") and record["at"] >= since]  # fmt: skip


@pytest.fixture
def histories(storm_reactions, second_reactions):
    return History(storm_reactions["history"]["path"]), History(second_reactions["history"]["path"])


def fail_over(driver, to):
    """Make ``to`` (a node of p01) MASTER and the other BACKUP, as keepalived would."""
    driver.set({node: "MASTER" if node == to else "BACKUP" for node in (A, B)})


def test_each_transition_is_recorded_by_both_masters_and_acted_on_by_one(storm_driver, storm_minions, storm_services, histories):
    since = iso_utc(time.time())
    fail_over(storm_driver, B)
    for history in histories:
        wait_until(lambda history=history: transitions(history, (A, "BACKUP"), (B, "MASTER")), 60, interval=0.5,
                   what=f"the failover in {history.path}")  # fmt: skip
    wait_until(lambda: storm_services.named.query(record_name("p01"), "A") == [pair_nodes("p01")[B]], 30, what="DNS on B")
    wait_until(lambda: messages(storm_services, B, "MASTER") and messages(storm_services, A, "BACKUP"), 30, what="the messages")
    time.sleep(5)  # a second message or update, if one were sent, would be here by now
    assert len(messages(storm_services, B, "MASTER")) == 1 and len(messages(storm_services, A, "BACKUP")) == 1, storm_services.webhook.texts()
    assert dns_updates(since, *histories) == [B]


def test_with_one_master_stopped_the_other_does_it_all_and_the_first_back_repeats_nothing(
    storm_driver, storm_minions, storm_master, storm_services, histories
):
    first, second = histories
    before, recorded = len(storm_services.webhook.posts), len(transitions(first))
    since = iso_utc(time.time())
    storm_master.terminate()
    try:
        fail_over(storm_driver, A)
        wait_until(lambda: transitions(second, (A, "MASTER"), (B, "BACKUP")) and len(transitions(second)) >= 4, 60, interval=0.5,
                   what="the failover in m2's history")  # fmt: skip
        wait_until(lambda: storm_services.named.query(record_name("p01"), "A") == [pair_nodes("p01")[A]], 30, what="DNS on A")
        wait_until(lambda: len(storm_services.webhook.posts) >= before + 2, 30, what="m2's messages")
    finally:
        storm_master.start()
    sent = storm_services.webhook.texts()
    # m1 back: it records what the minions journalled meanwhile (its late events, or its catch-up
    # when they reconnect), and says nothing of it: m2 claimed those transitions on their nodes
    wait_until(lambda: len(transitions(first)) >= recorded + 2, 120, interval=1, what="m1's catch-up")
    time.sleep(5)
    assert storm_services.webhook.texts() == sent
    assert len(sent) == before + 2, sent
    missed = transitions(first)[recorded:]
    assert {(record["minion"], record["state"]) for record in missed} == {(A, "MASTER"), (B, "BACKUP")}
    assert dns_updates(since, first, second) == [A]
