"""
The master's history: deduplication through the index beside it, which follows the files
(the truth) whatever happens to them or to it; damaged lines counted; the newest records
read from the end.
"""

import os
import pathlib
import sqlite3

import pytest

from saltext.lbpair.core import store
from saltext.lbpair.master import history_index
from saltext.lbpair.master.history import History


def transition(minion, seq, confirmed=True, **more):
    return {"kind": "transition", "minion": minion, "seq": seq, "instance": "lbpair_51", "state": "MASTER",
            "previous_state": "BACKUP", "vips": ["203.0.113.10"], "confirmed": confirmed, **more}  # fmt: skip


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "history.jsonl")


def seqs(records):
    return [(record.get("minion"), record.get("seq")) for record in records]


def test_a_confirmed_transition_is_recorded_after_an_unconfirmed_one_and_then_is_a_replay(path):
    history = History(path)
    assert history.append([transition("lb1", 1, confirmed=False)])
    assert history.append([transition("lb1", 1, confirmed=False)]) == []
    assert history.last_seq("lb1") == 0
    assert history.append([transition("lb1", 1)]) == [transition("lb1", 1)]
    assert history.append([transition("lb1", 1)]) == [] and history.append([transition("lb1", 1, confirmed=False)]) == []
    assert history.last_seq("lb1") == 1
    assert [record["confirmed"] for record in history.read()] == [False, True]


def test_replays_within_one_batch_are_dropped_too(path):
    batch = [transition("lb1", 1, confirmed=False), transition("lb1", 1), transition("lb1", 1), transition("lb2", 1)]
    assert seqs(History(path).append(batch)) == [("lb1", 1), ("lb1", 1), ("lb2", 1)]


def test_records_of_other_kinds_and_transitions_of_an_old_version_are_kept(path):
    history = History(path)
    old = transition("lb1", 4)
    del old["confirmed"]  # older versions did not write it: confirmed
    warning = {"kind": "warning", "minion": "lb1", "message": "off the bus"}
    assert history.append([old, warning, warning]) == [old, warning, warning]
    assert history.append([transition("lb1", 4)]) == [] and history.last_seq("lb1") == 4


def test_the_index_catches_up_with_lines_another_writer_appended(path):
    history = History(path)
    history.append([transition("lb1", 1)])
    store.append_records(path, [transition("lb1", 2), transition("lb2", 9)])  # e.g. a version without the index
    assert history.last_seq("lb1") == 2 and history.last_seq("lb2") == 9
    assert history.append([transition("lb2", 9)]) == []


def test_an_append_reads_only_what_was_added_since_the_last_one(path, monkeypatch):
    history = History(path, max_bytes=4000)
    history.append([transition("lb1", seq) for seq in range(1, 200)])
    history.append([transition("lb1", 200)])
    parsed = []
    real = store.parsed_lines
    monkeypatch.setattr(store, "parsed_lines", lambda lines: (parsed.append(pair) or pair for pair in real(lines)))
    assert history.append([transition("lb1", 201)]) and history.append([transition("lb1", 150)]) == []
    assert seqs(record for record, _ in parsed) == [("lb1", 200), ("lb1", 201)]  # each: the line the call before added


@pytest.mark.parametrize(
    "harm",
    [
        pytest.param(lambda index: os.unlink(index), id="index removed"),
        pytest.param(lambda index: pathlib.Path(index).write_bytes(b"not a database\n" * 100), id="index is garbage"),
        pytest.param(lambda index: pathlib.Path(index).write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000), id="index header only"),
        pytest.param(lambda index: pathlib.Path(index).write_bytes(b""), id="index empty"),
    ],
)
def test_a_lost_or_damaged_index_is_rebuilt_from_the_files(path, harm):
    history = History(path)
    history.append([transition("lb1", 1), transition("lb1", 2, confirmed=False), transition("lb2", 3)])
    history_index.remove(history.index_path)
    history.append([transition("lb2", 4)])  # a fresh index
    harm(history.index_path)
    assert history.append([transition("lb1", 1), transition("lb2", 4)]) == []
    assert history.append([transition("lb1", 2)]) == [transition("lb1", 2)]
    assert (history.last_seq("lb1"), history.last_seq("lb2")) == (2, 4)


def test_a_history_rewritten_with_fewer_records_forgets_the_others(path):
    history = History(path)
    history.append([transition("lb1", seq) for seq in (1, 2, 3)])
    store.rewrite_records(path, [transition("lb1", 1)])  # e.g. an operator's edit
    assert history.last_seq("lb1") == 1
    assert history.append([transition("lb1", 2)]) == [transition("lb1", 2)]


def test_a_history_truncated_in_place_and_grown_again_is_read_again(path):
    history = History(path)
    history.append([transition("lb1", 1), transition("lb1", 2)])
    with open(path, "r+b") as handle:
        handle.truncate(0)
    store.append_records(path, [transition("lb2", 7, pad="x" * 400)])  # longer than before: only the content tells
    assert history.last_seq("lb1") == 0 and history.last_seq("lb2") == 7
    assert history.append([transition("lb1", 1)]) == [transition("lb1", 1)]


def test_rotation_by_another_writer_and_a_deleted_rotated_file_are_followed(path):
    history = History(path, max_bytes=1000)
    for seq in range(1, 30):
        history.append([transition("lb1", seq)])
    os.rename(path, f"{path}.99990101T000000000000")  # rotated by a version without the index (the newest name)
    store.append_records(path, [transition("lb2", 1)])
    assert history.append([transition("lb1", 5), transition("lb2", 1)]) == []
    oldest = history._files()[0]
    dropped = {record["seq"] for record in store.read_records(oldest)}
    os.unlink(oldest)  # an operator removes the oldest history
    assert history.append([transition("lb1", min(dropped))]) == [transition("lb1", min(dropped))]
    assert history.last_seq("lb1") == 29


def test_rotation_loses_nothing_and_keeps_the_index_right(path):
    history = History(path, max_bytes=2000)
    for seq in range(1, 60):
        history.append([transition("lb1", seq), {"kind": "dns", "minion": "lb1", "ok": True}])
    assert len(history._files()) > 3
    assert [record["seq"] for record in history.read() if record["kind"] == "transition"] == list(range(1, 60))
    assert history.append([transition("lb1", seq) for seq in (1, 30, 59)]) == []
    assert history.last_seq("lb1") == 59


def test_damaged_lines_are_counted_across_the_files_and_never_stop_an_append(path):
    history = History(path, max_bytes=100)
    store.append_records(path, [transition("lb1", 1)])
    with open(path, "ab") as handle:
        handle.write(b'[1, 2]\n{"kind": "transition", "minion": "lb1", "seq": 2, "st\xff"}\n\x00\x00\n{"kind": "trans')
    assert history.bad_lines() == 4
    history.append([transition("lb1", 2), transition("lb1", 3)])  # rotates the damaged file away
    assert len(history._files()) == 2 and history.bad_lines() == 4
    assert seqs(history.read()) == [("lb1", 1), ("lb1", 2), ("lb1", 3)]
    assert history.last_seq("lb1") == 3


@pytest.mark.parametrize("seq", ["7", True, 7.0, -1, 2**70, None, [7]])
def test_a_transition_whose_seq_is_not_a_count_takes_no_slot(path, seq):
    history = History(path)
    store.append_records(path, [transition("lb1", seq)])
    assert history.last_seq("lb1") == 0
    assert history.append([transition("lb1", 7)]) == [transition("lb1", 7)]
    assert history.last_seq("lb1") == 7 and history.bad_lines() == 0


def test_without_a_usable_index_the_answers_come_from_the_files(path):
    history = History(path)
    history.append([transition("lb1", 1)])
    history_index.remove(history.index_path)
    os.mkdir(history.index_path)  # SQLite cannot open it, nor can it be removed as a file
    assert history.append([transition("lb1", 1), transition("lb1", 2)]) == [transition("lb1", 2)]
    assert history.last_seq("lb1") == 2 and history.bad_lines() == 0


def test_recent_reads_the_newest_records_across_rotated_files(path):
    history = History(path, max_bytes=1500)
    for seq in range(1, 40):
        history.append([transition("lb1", seq)])
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "transition", "cut')
    assert len(history._files()) > 3
    assert [record["seq"] for record in history.recent(25)] == list(range(15, 40))
    assert [record["seq"] for record in history.recent(100)] == list(range(1, 40))
    assert history.recent(0) == [] and History(f"{path}.missing").recent(5) == []


def test_an_index_written_before_a_reboot_is_built_again(path, tmp_path, monkeypatch):
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-one\n")
    monkeypatch.setattr(history_index, "BOOT_ID", str(boot_id))
    history = History(path)
    history.append([transition("lb1", 1)])
    db = sqlite3.connect(history.index_path)
    with db:  # the index is written without fsync: a power cut could leave anything in it
        db.execute("INSERT INTO transitions VALUES ('lb1', 2, 1)")
    db.close()
    assert history.last_seq("lb1") == 2  # within one boot, what was written is what is read
    boot_id.write_text("boot-two\n")
    assert history.last_seq("lb1") == 1
