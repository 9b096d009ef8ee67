"""Claims on the node's journal: the first master to claim a transition acts on it, for good."""

import json
import logging
import os
import threading

import pytest

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.node.journal import Journal
from saltext.lbpair.node.journal_claims import Claims, claimant

M1, M2 = "10.0.0.1", "10.0.0.2"


def journal_with(tmp_path, count, **kwargs):
    journal = Journal(str(tmp_path / "journal.jsonl"), **kwargs)
    for index in range(count):
        journal.append({"instance": "lbpair_51", "state": ("MASTER", "BACKUP")[index % 2]})
    return journal


def acting(entries):
    return {entry["seq"]: entry["acting"] for entry in entries}


def stored(claims):
    return store.read_json(claims.path, {})


def test_the_first_master_to_claim_a_transition_owns_it(tmp_path):
    claims = Claims(journal_with(tmp_path, 3))
    assert acting(claims.since(1, M1)) == {2: True, 3: True}
    assert acting(claims.since(0, M2)) == {1: True, 2: False, 3: False}
    assert acting(claims.since(0, M1)) == {1: False, 2: True, 3: True}
    assert stored(claims) == {"1": M2, "2": M1, "3": M1}


def test_the_same_master_claiming_again_still_acts_and_nothing_is_written(tmp_path):
    claims = Claims(journal_with(tmp_path, 2))
    first = claims.since(0, M1)
    written = os.stat(claims.path).st_mtime_ns, os.stat(claims.path).st_ino
    assert claims.since(0, M1) == first and acting(first) == {1: True, 2: True}
    assert (os.stat(claims.path).st_mtime_ns, os.stat(claims.path).st_ino) == written


def test_a_claimed_entry_is_the_journal_entry_with_acting_added(tmp_path):
    journal = journal_with(tmp_path, 2)
    assert [{**entry, "acting": True} for entry in journal.since(0)] == Claims(journal).since(0, M1)


def test_a_new_transition_goes_to_the_master_that_claims_it_first(tmp_path):
    journal = journal_with(tmp_path, 1)
    claims = Claims(journal)
    claims.since(0, M1)
    journal.append({"instance": "lbpair_51", "state": "FAULT"})
    assert acting(claims.since(1, M2)) == {2: True}
    assert acting(claims.since(0, M1)) == {1: True, 2: False}


def test_nothing_after_the_last_transition_claims_nothing(tmp_path):
    claims = Claims(journal_with(tmp_path, 2))
    assert claims.since(2, M1) == [] and not os.path.exists(claims.path)


def test_claims_are_pruned_to_the_transitions_the_journal_still_holds(tmp_path):
    journal = journal_with(tmp_path, 8, max_entries=10)
    claims = Claims(journal)
    claims.since(0, M1)
    for _ in range(10):  # the journal drops its oldest half past 10 entries
        journal.append({"instance": "lbpair_51", "state": "BACKUP"})
    held = [entry["seq"] for entry in journal.entries()]
    assert held[0] > 8
    assert acting(claims.since(0, M2)) == dict.fromkeys(held, True)
    assert sorted(map(int, stored(claims))) == held


@pytest.mark.parametrize(
    "damage",
    [b'{"1": "10.0.0.9", "2": "10.0', b"\xff\xfe", b"[]", b'"10.0.0.9"', b"", b"[" * 100000],
    ids=["cut short", "not UTF-8", "a list", "a string", "empty", "nested beyond reason"],
)
def test_a_damaged_claims_file_is_taken_as_empty_with_a_warning(tmp_path, caplog, damage):
    claims = Claims(journal_with(tmp_path, 2))
    with open(claims.path, "wb") as handle:
        handle.write(damage)
    with caplog.at_level(logging.WARNING):
        assert acting(claims.since(0, M1)) == {1: True, 2: True}
    assert "damaged" in caplog.text
    assert stored(claims) == {"1": M1, "2": M1}


def test_damaged_claims_are_dropped_and_the_sound_ones_kept(tmp_path, caplog):
    claims = Claims(journal_with(tmp_path, 4))
    with open(claims.path, "w", encoding="utf-8") as handle:
        json.dump({"1": M2, "2": ["10.0.0.9"], "three": M2, "4": "", "٣": M2}, handle)
    with caplog.at_level(logging.WARNING):
        assert acting(claims.since(0, M1)) == {1: False, 2: True, 3: True, 4: True}
    assert "4 damaged claims" in caplog.text


def test_claims_wait_for_the_lock_the_beacon_appends_under_and_see_its_entry(tmp_path):
    journal = journal_with(tmp_path, 1)
    answers = []
    claiming = threading.Thread(target=lambda: answers.append(Claims(Journal(journal.path)).since(0, M1)))
    with journal.locked():  # as the beacon holds it, half way through an append
        claiming.start()
        claiming.join(0.3)
        assert claiming.is_alive()
        store.append_records(journal.path, [{"seq": 2, "instance": "lbpair_51", "state": "FAULT"}])
    claiming.join(5)
    assert acting(answers[0]) == {1: True, 2: True}


def test_a_list_of_masters_claims_under_one_name_each_time():
    assert claimant([M1, M2]) == claimant([M1, M2]) == "10.0.0.1,10.0.0.2"
    assert claimant(M1) == M1


@pytest.mark.parametrize("master", ["", None, ["\n"]])
def test_a_master_without_a_name_cannot_claim(master):
    with pytest.raises(InvalidValue, match="^master: "):
        claimant(master)
