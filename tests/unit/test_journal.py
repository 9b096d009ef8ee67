"""The minion's transition journal: durable, ordered, bounded, gap-free sequence numbers."""

import pytest

from lbpair_lib.errors import InvalidValue
from lbpair_lib.journal import Journal


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
