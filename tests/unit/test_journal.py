"""The minion's transition journal: durable, ordered, bounded, gap-free sequence numbers."""

import json

import pytest

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.node.journal import Journal, since_for


def journal_in(tmp_path, **kwargs):
    return Journal(str(tmp_path / "journal.jsonl"), **kwargs)


def test_entries_get_consecutive_sequence_numbers(tmp_path):
    journal = journal_in(tmp_path)
    seqs = [journal.append({"state": state})["seq"] for state in ("BACKUP", "MASTER", "BACKUP")]
    assert seqs == [1, 2, 3]
    assert [entry["state"] for entry in journal.since(1)] == ["MASTER", "BACKUP"]


def test_sequence_survives_reopening(tmp_path):
    journal_in(tmp_path).append({"state": "MASTER"})
    assert journal_in(tmp_path).append({"state": "BACKUP"})["seq"] == 2


def test_journal_is_bounded_and_keeps_the_newest(tmp_path):
    journal = journal_in(tmp_path, max_entries=10)
    for index in range(25):
        journal.append({"index": index})
    entries = journal.entries()
    assert len(entries) <= 10
    assert entries[-1]["seq"] == 25
    assert [entry["seq"] for entry in entries] == list(range(entries[0]["seq"], 26))


def test_line_cut_short_by_a_crash_is_skipped(tmp_path):
    journal = journal_in(tmp_path)
    journal.append({"state": "MASTER"})
    with open(journal.path, "a", encoding="utf-8") as handle:
        handle.write('{"seq": 2, "sta')
    assert journal.append({"state": "BACKUP"})["seq"] == 2
    assert [entry["state"] for entry in journal.entries()] == ["MASTER", "BACKUP"]


def test_missing_journal_is_empty(tmp_path):
    assert journal_in(tmp_path).entries() == []
    assert journal_in(tmp_path).since(0) == []


def test_last_known_state_of_each_instance(tmp_path):
    journal = journal_in(tmp_path)
    for instance, state in (("lbpair_51", "BACKUP"), ("lbpair_51", "MASTER"), ("lbpair_52", "BACKUP")):
        journal.append({"instance": instance, "state": state})
    assert {name: entry["state"] for name, entry in journal.last_known().items()} == {"lbpair_51": "MASTER", "lbpair_52": "BACKUP"}


def test_options_name_the_bad_key(tmp_path):
    assert Journal.from_options({}, str(tmp_path)).path == str(tmp_path / "lbpair" / "transitions.jsonl")
    with pytest.raises(InvalidValue, match="lbpair_journal:max_entries"):
        Journal.from_options({"max_entries": "many"}, str(tmp_path))


def test_damaged_lines_are_counted_and_never_stop_the_journal(tmp_path):
    journal = journal_in(tmp_path)
    journal.append({"instance": "lbpair_51", "state": "MASTER"})
    with open(journal.path, "ab") as handle:
        handle.write(b'[2]\n{"seq": 2, "instance": "lbpair_51", "state": "BA\xffCKUP"}\n\x00\n{"seq": 3, "sta')
    assert journal.bad_lines() == 4
    assert journal.append({"instance": "lbpair_51", "state": "BACKUP"})["seq"] == 2
    assert [entry["seq"] for entry in journal.since(0)] == [1, 2] and journal.bad_lines() == 4


@pytest.mark.parametrize("seq", ["7", True, 7.5, -3, None, [7]])
def test_an_entry_whose_seq_is_not_a_count_neither_breaks_nor_resets_the_sequence(tmp_path, seq):
    journal = journal_in(tmp_path)
    journal.append({"instance": "lbpair_51", "state": "MASTER"})
    with open(journal.path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"seq": seq, "instance": ["not", "a", "name"], "state": "BACKUP"}) + "\n")
    assert journal_in(tmp_path).append({"instance": "lbpair_51", "state": "BACKUP"})["seq"] == 2
    assert [entry["seq"] for entry in journal.since(1)] == [2]
    assert journal.last_known()["lbpair_51"]["state"] == "BACKUP"


def test_append_does_not_read_the_journal_again_while_it_is_as_it_was_left(tmp_path, monkeypatch):
    journal = journal_in(tmp_path, max_entries=50)
    journal.append({"state": "MASTER"})
    reads = []
    real = store.read_records
    monkeypatch.setattr(store, "read_records", lambda path: reads.append(path) or real(path))
    seqs = [journal.append({"state": "BACKUP"})["seq"] for _ in range(60)]  # one trim among them
    assert seqs == list(range(2, 62)) and len(reads) == 1
    store.append_records(journal.path, [{"seq": 62, "state": "MASTER"}])  # another writer: read again
    assert journal.append({"state": "BACKUP"})["seq"] == 63 and len(reads) == 2
    assert len(journal.entries()) <= 50


def test_since_alone_is_the_sequence_number_read_after():
    assert since_for("lb1", 41) == 41 and since_for("lb1") == 0


def test_since_of_gives_each_node_its_own_sequence_number():
    since_of = {"lb1": 41, "lb2": 7}
    assert since_for("lb1", 0, since_of) == 41
    assert since_for("lb2", 0, since_of) == 7


def test_a_node_since_of_does_not_name_reads_after_since():
    assert since_for("lb3", 12, {"lb1": 41, "lb2": 7}) == 12
    assert since_for("lb3", 12, {}) == 12


def test_since_is_checked_even_where_since_of_names_the_node():
    with pytest.raises(InvalidValue, match="^since: "):
        since_for("lb1", "41", {"lb1": 41})
