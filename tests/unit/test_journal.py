"""The minion's transition journal: durable, ordered, bounded, gap-free sequence numbers."""

import lbpair_journal


def test_entries_get_consecutive_sequence_numbers(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    seqs = [lbpair_journal.append_entry(path, {"state": state})["seq"] for state in ("BACKUP", "MASTER", "BACKUP")]
    assert seqs == [1, 2, 3]
    assert [entry["state"] for entry in lbpair_journal.entries_since(path, 1)] == ["MASTER", "BACKUP"]


def test_sequence_survives_reopening(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    lbpair_journal.append_entry(path, {"state": "MASTER"})
    assert lbpair_journal.last_seq(path) == 1
    assert lbpair_journal.append_entry(path, {"state": "BACKUP"})["seq"] == 2


def test_journal_is_bounded_and_keeps_the_newest(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    for index in range(25):
        lbpair_journal.append_entry(path, {"index": index}, max_entries=10)
    entries = lbpair_journal.read_entries(path)
    assert len(entries) <= 10
    assert entries[-1]["seq"] == 25
    assert [entry["seq"] for entry in entries] == list(range(entries[0]["seq"], 26))


def test_line_cut_short_by_a_crash_is_skipped(tmp_path):
    path = tmp_path / "journal.jsonl"
    lbpair_journal.append_entry(str(path), {"state": "MASTER"})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"seq": 2, "sta')
    assert lbpair_journal.last_seq(str(path)) == 1
    assert lbpair_journal.append_entry(str(path), {"state": "BACKUP"})["seq"] == 2
    assert [entry["state"] for entry in lbpair_journal.read_entries(str(path))] == ["MASTER", "BACKUP"]


def test_missing_journal_is_empty(tmp_path):
    assert lbpair_journal.entries_since(str(tmp_path / "none.jsonl"), 0) == []
