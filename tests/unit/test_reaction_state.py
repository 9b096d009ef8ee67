"""
The master's reaction state in SQLite: one transaction per method, shared by threads and
processes without a lost update, bounded, taken over from the JSON document of earlier versions,
and kept in memory while the disk refuses it.
"""

import json
import logging
import multiprocessing
import os
import resource
import shutil
import sqlite3
import threading

import pytest

from saltext.lbpair.master import notify, reaction_state, reaction_tables
from saltext.lbpair.master.reaction_state import ReactionStore

INSTANCE = "lb1+lb2/lbpair_51"  # keys are opaque: the pair's name may come with the instance's
CHECK = f"check:{INSTANCE}"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "history.jsonl.state.json")


def _on_disk(path, query):
    """What the database file answers to ``query``, read by a connection of its own."""
    db = sqlite3.connect(reaction_state.database_path(path))
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_the_database_is_beside_the_state_path_and_created_on_first_use(path):
    store = ReactionStore(path)
    store.schedule(CHECK, 10, {"kind": "check", "instance": INSTANCE})
    assert store.database.path == path.removesuffix(".json") + ".sqlite"
    assert _on_disk(path, "PRAGMA journal_mode") == [("wal",)]
    assert _on_disk(path, "SELECT key, at FROM due") == [(CHECK, 10)]


# --- one transaction per method -------------------------------------------------------------


def test_a_method_failing_midway_leaves_nothing_of_its_change(path, monkeypatch):
    store = ReactionStore(path)
    store.add_claim("lb2", {"seq": 1}, 100, 60)

    def broken(*args):
        raise RuntimeError("crash after the claim was inserted")

    monkeypatch.setattr(reaction_tables, "quiet_over", broken)
    with pytest.raises(RuntimeError):
        store.add_claim("lb2", {"seq": 2}, 200, 60)
    assert store.open_claims() == {"lb2": [{"seq": 1}]}


def test_a_step_failure_is_first_once_and_the_reaction_closes_when_every_step_succeeded(path):
    store = ReactionStore(path)
    store.begin_steps("lb2:7", ["record", "webhook"], {"record": {"seq": 7}, "notice": None})
    assert store.step_failed("lb2:7", "webhook", "HTTP 500") is True
    assert store.step_failed("lb2:7", "webhook", "HTTP 502") is False
    store.step_done("lb2:7", "record")
    assert store.unfinished("lb2:7") == {"pending": ["webhook"], "failed": {"webhook": "HTTP 502"}, "record": {"seq": 7}, "notice": None}
    store.step_done("lb2:7", "webhook")
    assert store.unfinished("lb2:7") is None and store.open_reactions() == {}


def test_due_work_is_taken_once_earliest_first_and_held_summaries_count_as_due(path):
    store = ReactionStore(path)
    store.schedule("dns:b", 20, {"kind": "dns", "instance": "b", "minion": "lb2", "attempt": 2})
    store.schedule(CHECK, 10, {"kind": "check", "instance": INSTANCE})
    store.schedule("dns:b", 15, {"kind": "dns", "instance": "b", "minion": "lb2", "attempt": 3})  # newer work replaces older
    store.admit(INSTANCE, 0, 60, {"state": "BACKUP"})
    assert store.admit(INSTANCE, 1, 60, {"state": "BACKUP"}) == notify.Admission.HOLD_FIRST
    assert store.next_due() == 10 and store.due() == {CHECK: 10, "dns:b": 15}
    assert [key for key, _ in store.take_due(15)] == [CHECK, "dns:b"]
    assert store.take_due(15) == [] and store.next_due() == 60  # the held summary's window ends
    assert store.summaries_due(60) == [INSTANCE] and len(store.release_summary(INSTANCE, 60, 60)) == 1
    assert store.next_due() is None


def test_claims_and_open_reactions_stay_bounded(path):
    store = ReactionStore(path)
    for seq in range(reaction_state.MAX_CLAIMS + 5):
        count, _ = store.add_claim("lb2", {"seq": seq}, seq, 60)
    assert count == reaction_state.MAX_CLAIMS and store.claim_count("lb2") == reaction_state.MAX_CLAIMS
    assert store.take_claims("lb2")[0] == {"seq": 5} and store.claim_count("lb2") == 0  # the oldest went first
    for seq in range(reaction_state.MAX_STEP_ENTRIES + 3):
        store.begin_steps(f"lb2:{seq}", ["record"], {})
    kept = store.open_reactions()
    assert len(kept) == reaction_state.MAX_STEP_ENTRIES and "lb2:2" not in kept and "lb2:3" in kept


# --- threads and processes at once ----------------------------------------------------------

ROUNDS = 30


def _react(path, worker, start):
    """What a reaction does to the state, ``ROUNDS`` times: damping, a claim, work for later, steps."""
    start.wait()
    store = ReactionStore(path)
    for seq in range(ROUNDS):
        store.admit(INSTANCE, 1000, 3600, {"minion": f"lb{worker}", "seq": seq, "state": "BACKUP"})
        store.add_claim(f"lb{worker}", {"seq": seq}, 1000, 60)
        store.schedule(f"catch_up:lb{worker}:{seq}", 2000 + seq, {"kind": "catch_up", "minion": f"lb{worker}", "attempt": 1})
        store.begin_steps(f"lb{worker}:{seq}", ["record", "webhook"], {})
        store.step_done(f"lb{worker}:{seq}", "record")


def _assert_nothing_lost(path, workers):
    store = ReactionStore(path)
    held = store.release_summary(INSTANCE, 5000, 60)
    assert len(held) == workers * ROUNDS - 1  # the first was sent, every other one held: none lost
    assert {minion: len(claims) for minion, claims in store.open_claims().items()} == {f"lb{w}": ROUNDS for w in range(workers)}
    assert len(store.due()) == workers * ROUNDS
    assert all(pending == ["webhook"] for pending in store.open_reactions().values())
    assert len(store.open_reactions()) == workers * ROUNDS


def test_processes_changing_one_new_state_at_once_lose_no_update(path):
    context = multiprocessing.get_context("fork")  # as Salt starts its jobs
    workers = 8
    start = context.Barrier(workers)
    processes = [context.Process(target=_react, args=(path, worker, start)) for worker in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * workers  # none failed ("database is locked")
    _assert_nothing_lost(path, workers)


def test_threads_changing_one_state_at_once_lose_no_update(path):
    workers = 8
    start = threading.Barrier(workers)
    failures = []

    def react(worker):
        try:
            _react(path, worker, start)
        except Exception as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=react, args=(worker,)) for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    _assert_nothing_lost(path, workers)


# --- the JSON document of earlier versions --------------------------------------------------

SHAPE = ["split_brain", [["lb1", "MASTER"], ["lb2", "MASTER"]]]
OLD_STATE = {
    "damping": {INSTANCE: {"until": 1060.0, "held": [{"minion": "lb2", "seq": 8, "state": "BACKUP"}], "master_announced": True}},
    "alarms": {INSTANCE: "split_brain"},
    "problems": {INSTANCE: SHAPE},
    "dns": {INSTANCE: "lb2"},
    "checked": {INSTANCE: 1000.5},
    "steps": {"lb2:7": {"pending": ["webhook"], "failed": {"webhook": "HTTP 500"}, "record": {"seq": 7}, "notice": None}},
    "claims": {"lb2": [{"seq": 9, "instance": INSTANCE, "state": "MASTER"}]},
    "due": {CHECK: {"kind": "check", "instance": INSTANCE, "at": 1010.0}},
    "silent": {"lb2": 990.0},
    "planned": {INSTANCE: {"to": "lb2", "until": 1300.0}},
    "warned": {"lb2:rogue_vrrp": 1060.0},
    "claim_notices": {"lb2": 1060.0},
    "certificates_warned": {"lb1:/etc/lbpair/tls/www.pem": 5000.0},
}


def test_the_json_state_of_an_earlier_version_is_taken_over_once(path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(OLD_STATE, handle)
    store = ReactionStore(path)
    assert not os.path.exists(path) and os.path.exists(f"{path}.migrated")
    shutil.copy(f"{path}.migrated", path)  # left again (a crash before the rename): not copied twice
    assert ReactionStore(path).claim_count("lb2") == 1 and not os.path.exists(path)
    assert store.unfinished("lb2:7") == OLD_STATE["steps"]["lb2:7"] and store.open_reactions() == {"lb2:7": ["webhook"]}
    assert store.open_claims() == OLD_STATE["claims"] and store.add_claim("lb2", {"seq": 10}, 1000, 60) == (2, False)
    assert store.due() == {CHECK: 1010.0} and store.next_due() == 1010.0
    assert store.take_due(1010) == [(CHECK, OLD_STATE["due"][CHECK])]
    assert store.silent_since("lb2") == 990.0 and store.plans() == OLD_STATE["planned"] and store.dns_target(INSTANCE) == "lb2"
    assert store.raise_alarm(INSTANCE, "split_brain") is False and store.problem_seen_before(INSTANCE, SHAPE) is True
    assert store.start_check(INSTANCE, 1000.0, 1001) is False  # the check at 1000.5 covers it
    assert store.quiet_warning("lb2:rogue_vrrp", 1000, 60) is False
    assert store.quiet_certificates(["lb1:/etc/lbpair/tls/www.pem", "lb1:/etc/lbpair/tls/api.pem"], 1000, 60) == ["lb1:/etc/lbpair/tls/api.pem"]
    assert store.admit(INSTANCE, 1001, 60, {"state": "MASTER"}) == notify.Admission.HOLD  # lb1 MASTER was announced in this window
    assert [record.get("seq") for record in store.release_summary(INSTANCE, 1060, 60)] == [8, None]


def test_a_damaged_json_state_is_set_aside_and_the_store_starts_empty(path, caplog):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"due": {CHECK: {"kind": "check"}}}, handle)  # no "at"
    with caplog.at_level(logging.ERROR):
        store = ReactionStore(path)
    assert "cannot be taken over" in caplog.text and os.path.exists(f"{path}.migrated")
    assert store.due() == {}


# --- a disk that refuses the state ----------------------------------------------------------


def test_a_state_the_disk_refuses_is_kept_in_memory_and_written_once_it_can(path, file_size_limit, caplog):
    store = ReactionStore(path)
    store.add_claim("lb2", {"seq": 1}, 0, 60)
    file_size_limit(0)  # every write fails, as on a full disk
    with caplog.at_level(logging.ERROR):
        assert store.add_claim("lb2", {"seq": 2}, 0, 60) == (2, False)
        store.begin_steps("lb2:2", ["record", "webhook"], {"record": {"seq": 2}})
        store.step_done("lb2:2", "webhook")
    assert caplog.text.count("cannot be written") == 1 and store.database.in_memory
    assert ReactionStore(path).unfinished("lb2:2")["pending"] == ["record"]  # this process goes on with what it has
    file_size_limit(resource.RLIM_INFINITY)
    assert _on_disk(path, "SELECT count(*) FROM claims") == [(1,)] and _on_disk(path, "SELECT * FROM reactions") == []
    assert store.claim_count("lb2") == 2 and store.database.in_memory  # a read writes nothing
    store.note_dns(INSTANCE, "lb2")  # the next change writes it all
    assert not store.database.in_memory
    assert _on_disk(path, "SELECT count(*) FROM claims") == [(2,)] and _on_disk(path, "SELECT key, pending FROM reactions") == [
        ("lb2:2", '["record"]')
    ]


def test_a_worker_on_a_copy_in_memory_says_so_and_writes_it_back_as_soon_as_it_can(path, file_size_limit):
    worker, reactor = ReactionStore(path), ReactionStore(path)
    worker.add_claim("lb2", {"seq": 1}, 0, 60)
    worker.settle()
    assert not reactor.worker_in_memory()
    file_size_limit(0)  # a full disk
    worker.add_claim("lb2", {"seq": 2}, 0, 60)
    worker.settle()  # the worker naps: it still cannot write, and says so
    assert worker.in_memory and reactor.worker_in_memory()
    file_size_limit(resource.RLIM_INFINITY)
    worker.settle()  # room again: written back without waiting for a change
    assert not worker.in_memory and not reactor.worker_in_memory()
    assert _on_disk(path, "SELECT count(*) FROM claims") == [(2,)]


def test_a_state_in_a_folder_that_cannot_be_made_lives_in_memory(tmp_path):
    (tmp_path / "file").write_text("")
    store = ReactionStore(str(tmp_path / "file" / "history.jsonl.state.json"))
    assert store.add_claim("lb2", {"seq": 1}, 0, 60) == (1, True)
    assert store.open_claims() == {"lb2": [{"seq": 1}]} and store.database.in_memory


def test_a_damaged_database_is_set_aside_and_the_state_starts_anew(path, caplog):
    with open(reaction_state.database_path(path), "wb") as handle:
        handle.write(b"not SQLite: a hand edit" * 100)
    with caplog.at_level(logging.ERROR):
        store = ReactionStore(path)
        assert store.add_claim("lb2", {"seq": 1}, 0, 60) == (1, True)
    assert "is damaged" in caplog.text and os.path.exists(reaction_state.database_path(path) + ".damaged")
    assert ReactionStore(path).claim_count("lb2") == 1 and not store.database.in_memory


def test_a_database_removed_under_a_long_lived_store_is_made_anew_where_the_others_see_it(path):
    worker = ReactionStore(path)  # the resident worker: its connection stays open
    worker.schedule(CHECK, 10, {"kind": "check", "instance": INSTANCE})
    database = reaction_state.database_path(path)
    for name in (database, f"{database}-wal", f"{database}-shm"):
        if os.path.exists(name):
            os.unlink(name)  # an operator starting afresh (and each test of the reactor suite)
    ReactionStore(path).queue_event("lb1", "salt/beacon/lb1/lbpair_vrrp/lbpair_51/MASTER", {"seq": 1}, 5)
    assert worker.events_waiting() == 1 and worker.due() == {}


def test_a_version_1_database_gains_the_event_queue(path):
    db = sqlite3.connect(reaction_state.database_path(path))
    for statement in reaction_state.TABLES[:-2]:  # all but the queue: version 1
        db.execute(statement.replace(" IF NOT EXISTS", ""))
    db.execute("INSERT INTO due VALUES ('check:x', 10, '{}')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = ReactionStore(path)
    assert store.due() == {"check:x": 10} and store.events_waiting() == 0
    assert store.queue_event("lb1", "salt/beacon/lb1/lbpair_vrrp/lbpair_51/MASTER", {"seq": 1}, 5)[0] == 1
