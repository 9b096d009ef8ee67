"""
A full disk under the master's history and the minion's journal, on a real tmpfs of 256 KiB:
the append fails with OSError (the caller alarms it) and leaves the files as they were; once
there is room again the next append works, on lines of its own, and deduplication and the
journal's sequence are still right. The master's reaction state goes on in memory meanwhile and
is written once there is room. Root: it mounts the tmpfs.
"""

import errno
import gc
import os

import pytest

from lab.util import fill, small_tmpfs
from saltext.lbpair.core import store
from saltext.lbpair.master.history import History
from saltext.lbpair.master.reaction_state import ReactionStore
from saltext.lbpair.node.journal import Journal

PAGE = 4096


@pytest.fixture(autouse=True)
def in_node_namespace():
    """Storage needs no network: this module does without the suite's node namespace."""
    yield


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    with small_tmpfs(folder, "256k"):
        yield folder


def fill_last_page(path):
    """Pad the file to a page boundary with a blank line (skipped by readers), so its next byte needs a new page."""
    size = os.path.getsize(path)
    with open(path, "ab") as handle:
        handle.write(b" " * (-(size + 1) % PAGE) + b"\n")


def transition(minion, seq):
    return {"kind": "transition", "minion": minion, "seq": seq, "instance": "lbpair_51", "state": "MASTER",
            "previous_state": "BACKUP", "vips": ["203.0.113.10"], "confirmed": True}  # fmt: skip


def refused_then_taken(history, small_disk, batch):
    """Append ``batch`` on a full disk (refused, nothing changed), then once there is room (taken whole)."""
    before = (small_disk / "history.jsonl").read_bytes()
    filler = fill(small_disk)
    with pytest.raises(OSError) as error:
        history.append(batch)
    assert error.value.errno == errno.ENOSPC
    assert (small_disk / "history.jsonl").read_bytes() == before
    assert history.last_seq("lb2") == batch[0]["seq"] - 1 and history.bad_lines() == 0  # answered on a full disk too
    filler.unlink()
    assert history.append(batch + [transition("lb1", 20)]) == batch
    assert history.append([batch[-1]]) == [] and history.last_seq("lb2") == batch[-1]["seq"]


def test_history_on_a_full_disk_refuses_the_append_whole_and_takes_it_once_there_is_room(small_disk):
    history = History(str(small_disk / "history.jsonl"))
    history.append([transition("lb1", seq) for seq in range(1, 21)])
    history.append([{"kind": "dns", "instance": "lbpair_51", "minion": "lb1", "ok": True}])  # not in the index yet
    refused_then_taken(history, small_disk, [transition("lb2", seq) for seq in range(1, 301)])  # the index cannot catch up
    assert history.last_seq("lb1") == 20  # the index has caught up: the next append writes nothing to it
    refused_then_taken(history, small_disk, [transition("lb2", seq) for seq in range(301, 601)])
    records, bad = store.scan(history.path)
    assert bad == 0 and len(records) == 20 + 1 + 600


def test_journal_on_a_full_disk_refuses_the_entry_and_its_sequence_goes_on_after(small_disk):
    journal = Journal(str(small_disk / "lbpair" / "transitions.jsonl"))
    assert [journal.append({"instance": "lbpair_51", "state": state})["seq"] for state in ("BACKUP", "MASTER")] == [1, 2]
    fill_last_page(journal.path)
    filler = fill(small_disk)
    before = open(journal.path, "rb").read()  # noqa: SIM115
    with pytest.raises(OSError) as error:
        journal.append({"instance": "lbpair_51", "state": "BACKUP"})
    assert error.value.errno == errno.ENOSPC
    assert open(journal.path, "rb").read() == before  # noqa: SIM115
    filler.unlink()
    assert journal.append({"instance": "lbpair_51", "state": "BACKUP"})["seq"] == 3
    assert [entry["seq"] for entry in journal.entries()] == [1, 2, 3] and journal.bad_lines() == 0


def test_reaction_state_on_a_full_disk_goes_on_in_memory_and_is_written_once_there_is_room(small_disk):
    path = str(small_disk / "history.jsonl.state.json")
    before = ReactionStore(path)
    before.add_claim("lb1", {"seq": 1}, 0, 60)
    del before
    gc.collect()  # its connection closed: the next one must make SQLite's shared memory on the full disk
    filler = fill(small_disk)
    store = ReactionStore(path)
    for seq in range(2, 40):
        store.add_claim("lb1", {"seq": seq, "pad": "x" * 200}, 0, 60)
    store.begin_steps("lb1:39", ["record", "webhook"], {"record": {"seq": 39}})
    store.step_done("lb1:39", "webhook")
    assert store.database.in_memory and store.claim_count("lb1") == 39 and store.open_reactions() == {"lb1:39": ["record"]}
    filler.unlink()
    store.step_done("lb1:39", "record")  # the first change once there is room writes it all
    assert not store.database.in_memory
    del store
    gc.collect()
    after = ReactionStore(path)
    assert after.claim_count("lb1") == 39 and after.open_reactions() == {}
