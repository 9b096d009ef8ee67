"""The master's records, notices and tasks as types: the JSON on disk reads back the same, kinds match the strings."""

import json
import logging

import pytest

from saltext.lbpair.master import notify, reaction_state, records
from saltext.lbpair.master.history import History
from saltext.lbpair.master.records import Notice, RecordKind, Seen, Severity, Task, TaskKind, Transition
from saltext.lbpair.master.scheduler import Scheduler
from saltext.lbpair.model.keepalived_model import STATE_NAMES, VrrpState

AT = "2026-11-26T13:02:11.123456+00:00"

#: transition lines as versions of lbpair wrote them: today's, a planned one, an old one (no
#: ``confirmed``, ``interface``, ``recorded_at``), an unconfirmed one in another key order with a key
#: this version does not know, and one with a damaged seq
OLD_LINES = [
    '{"kind": "transition", "minion": "lb2", "seq": 7, "instance": "lbpair_51", "vrid": 51, "interface": "eth1", '
    '"state": "MASTER", "previous_state": "BACKUP", "vips": ["203.0.113.10"], "source": "dbus", '
    f'"at": "{AT}", "recorded_at": "{AT}", "seen": "live", "confirmed": true}}',
    '{"kind": "transition", "minion": "lb1", "seq": 8, "instance": "lbpair_51", "vrid": 51, "interface": null, '
    '"state": "BACKUP", "previous_state": "MASTER", "vips": [], "source": null, '
    f'"at": "{AT}", "recorded_at": "{AT}", "seen": "late", "confirmed": true, "planned": true}}',
    '{"kind": "transition", "minion": "lb2", "seq": 3, "instance": "lbpair_51", "vrid": 51, "state": "FAULT", '
    f'"previous_state": "MASTER", "vips": ["203.0.113.10", "2001:db8::10"], "at": "{AT}", "seen": "live", "source": "live"}}',
    f'{{"at": "{AT}", "kind": "transition", "seq": 4, "minion": "lb1", "state": "MASTER", "confirmed": false, "node_time": 1.5}}',
    '{"kind": "transition", "minion": "lb1", "seq": "9", "vips": null}',
]


def test_old_transitions_on_disk_read_back_identically(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(OLD_LINES) + "\n")
    read = History(str(path)).read()
    assert len(read) == len(OLD_LINES)
    for line, record in zip(OLD_LINES, read, strict=True):
        again = Transition.from_json(record).to_json()
        assert again == record and list(again) == list(record)
        assert json.dumps(again) == line


def test_a_transition_written_again_after_reading_is_the_same_line(tmp_path):
    history = History(str(tmp_path / "history.jsonl"))
    history.append([Transition.from_json(json.loads(line)) for line in OLD_LINES[:3]])
    written = (tmp_path / "history.jsonl").read_text().splitlines()
    assert written == [json.dumps(json.loads(line), sort_keys=True) for line in OLD_LINES[:3]]  # the store sorts the keys


def test_a_confirmed_transition_is_the_record_the_reactions_always_wrote():
    entry = {"seq": 7, "instance": "lbpair_51", "vrid": 51, "interface": "eth1", "state": "MASTER",
             "previous_state": "BACKUP", "vips": ["203.0.113.10"], "source": "dbus", "received_at": AT}  # fmt: skip
    record = Transition.confirmed_from(entry, "lb2", Seen.LIVE, now=1_700_000_000)
    recorded_at = '"recorded_at": "2023-11-14T22:13:20.000000+00:00"'
    assert json.dumps(record.to_json()) == OLD_LINES[0].replace(f'"recorded_at": "{AT}"', recorded_at)
    assert record.marked_planned().to_json() == {**record.to_json(), "planned": True}
    assert record.key == "lb2:7" and record.becomes_master and not record.back_from_fault()
    assert record.brief() == {"minion": "lb2", "seq": 7, "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP",
                              "at": AT, "seen": "live", "pair": None}  # fmt: skip


def test_a_transition_without_previous_state_says_unknown():
    record = Transition.confirmed_from({"seq": 1, "state": "BACKUP"}, "lb1", Seen.LATE, now=1)
    assert record.previous_state == records.UNKNOWN_STATE == "UNKNOWN"
    assert records.change(record.to_json()) == "lb1 UNKNOWN -> BACKUP"


def test_back_from_fault_is_live_and_unplanned_only():
    back = Transition.from_json({"minion": "lb1", "seq": 2, "state": "BACKUP", "previous_state": "FAULT", "seen": "live"})
    assert back.back_from_fault()
    assert not back.marked_planned().back_from_fault()
    assert not Transition.from_json({**back.to_json(), "seen": "late"}).back_from_fault()


def test_transitions_picks_the_transitions_out_of_a_history():
    history = [json.loads(OLD_LINES[0]), records.dns("lbpair_51", "lb2", True, 1, None), json.loads(OLD_LINES[3])]
    assert [(record.minion, record.seq) for record in records.transitions(history)] == [("lb2", 7), ("lb1", 4)]


def test_record_kinds_are_the_strings_on_disk():
    assert sorted(RecordKind) == sorted(
        ["transition", "claim", "claim_settled", "warning", "dns", "split_brain", "no_master", "step_failed", "planned",
         "maintenance", "certificate", "drain", "ready"]
    )  # fmt: skip
    assert RecordKind.of({"kind": "dns"}) is RecordKind.DNS and RecordKind.of({"kind": "reboot"}) is None


def test_each_kind_of_record_is_the_json_it_always_was():
    row = {"minion": "lb1", "service": "web", "certificate": "site", "problem": "expires soon", "code": "certificate_expiry"}
    built = [
        records.claim({"seq": 5, "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP", "vips": []}, "lb2", 1),
        records.claim_settled("lb2", 5, "refuted: not in the node's journal", "m"),
        records.warning("lb1", "rogue_vrrp", "m"),
        records.dns("lbpair_51", "lb2", False, 3, "refused"),
        records.alarm("split_brain", "lbpair_51", "m", {"lb1": "MASTER", "lb2": "MASTER"}),
        records.step_failed("lbpair_51", "webhook", "m"),
        records.planned("lbpair_51", "lb2", "m"),
        records.maintenance("lb1", "m"),
        records.certificate(AT, row, "m"),
        records.server_state(RecordKind.DRAIN, "foo", "foo1", "alice", "m", nodes=["lb2", "lb1"], drained=True),
        records.server_state("ready", "foo", "foo1", None, "m", nodes=["lb2", "lb1"]),
    ]
    assert [json.loads(json.dumps(record)) for record in built] == [
        {"kind": "claim", "minion": "lb2", "seq": 5, "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP",
         "vips": [], "at": "1970-01-01T00:00:01.000000+00:00", "message": "lb2 did not confirm this event: not acted on until its journal answers"},
        {"kind": "claim_settled", "minion": "lb2", "seq": 5, "outcome": "refuted: not in the node's journal", "message": "m"},
        {"kind": "warning", "minion": "lb1", "code": "rogue_vrrp", "message": "m"},
        {"kind": "dns", "instance": "lbpair_51", "minion": "lb2", "ok": False, "attempts": 3, "error": "refused"},
        {"kind": "split_brain", "instance": "lbpair_51", "message": "m", "states": {"lb1": "MASTER", "lb2": "MASTER"}},
        {"kind": "step_failed", "instance": "lbpair_51", "step": "webhook", "message": "m"},
        {"kind": "planned", "instance": "lbpair_51", "minion": "lb2", "message": "m"},
        {"kind": "maintenance", "minion": "lb1", "message": "m"},
        {"at": AT, "kind": "certificate", **row, "message": "m"},
        {"kind": "drain", "service": "foo", "server": "foo1", "by": "alice", "nodes": ["lb2", "lb1"], "drained": True, "message": "m"},
        {"kind": "ready", "service": "foo", "server": "foo1", "by": None, "nodes": ["lb2", "lb1"], "message": "m"},
    ]  # fmt: skip
    assert all(type(record["kind"]) is str for record in built)  # plain text in the history and Salt's returns


def test_vrrp_states_are_keepalived_names():
    assert [state.value for state in VrrpState] == ["INIT", "BACKUP", "MASTER", "FAULT", "DELETED", "STOP"]
    assert sorted(STATE_NAMES.values()) == sorted(VrrpState) and all(type(name) is str for name in STATE_NAMES.values())
    assert f"{VrrpState.MASTER}" == "MASTER" and json.dumps(VrrpState.FAULT) == '"FAULT"'


# --- notices --------------------------------------------------------------------------------------


def test_a_notice_round_trips_the_mapping_the_reaction_state_kept():
    kept = {"kind": "split_brain", "severity": "critical", "instance": "lbpair_51", "subject": "s", "text": "t",
            "details": {"states": {"lb1": "MASTER"}}}  # fmt: skip
    notice = Notice.from_json(kept)
    assert notice.severity is Severity.CRITICAL and notice.critical
    assert notice.to_json() == kept and list(notice.to_json()) == list(kept)
    assert notify.webhook_payload(notice, "generic") == {"source": "lbpair", **kept}


def test_severities_are_the_strings_sent():
    assert [severity.value for severity in Severity] == ["info", "warning", "critical"]
    assert notify.warning_notice("lb1", "rogue_vrrp", "m").severity is Severity.WARNING


# --- tasks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, stored, key",
    [
        (Task.check("web", "lbpair_51"), {"kind": "check", "pair": "web", "instance": "lbpair_51", "follow": True}, "check:web/lbpair_51"),
        (Task.check("web", "lbpair_51", follow=False), {"kind": "check", "pair": "web", "instance": "lbpair_51", "follow": False},
         "check:web/lbpair_51 no DNS"),
        (Task.dns("web", "lbpair_51", "lb2", 2), {"kind": "dns", "pair": "web", "instance": "lbpair_51", "minion": "lb2", "attempt": 2},
         "dns:web/lbpair_51"),
        (Task.catch_up("lb2", 1), {"kind": "catch_up", "minion": "lb2", "attempt": 1}, "catch_up:lb2"),
    ],
)  # fmt: skip
def test_a_task_is_the_mapping_the_reaction_state_keeps(task, stored, key):
    assert task.to_json() == stored and task.key == key
    assert Task.from_json({**stored, "at": 12.5}) == task


@pytest.mark.parametrize(
    "stored, key",
    [
        ({"kind": "check", "instance": "lbpair_51"}, "check:lbpair_51"),
        ({"kind": "dns", "instance": "lbpair_51", "minion": "lb2", "attempt": 2}, "dns:lbpair_51"),
    ],
)
def test_work_an_older_version_left_names_no_pair_and_keeps_its_key(stored, key):
    task = Task.from_json(stored)
    assert task.pair is None and task.key == key
    assert task.follow is True  # an older version's checks all pointed DNS


def test_task_kinds_are_the_strings_in_the_state():
    assert sorted(TaskKind) == ["catch_up", "check", "dns"]
    with pytest.raises(ValueError):
        Task.from_json({"kind": "reboot", "minion": "lb1"})


def test_work_of_an_unknown_kind_is_logged_and_dropped_and_the_rest_done(tmp_path, caplog):
    store = reaction_state.ReactionStore(str(tmp_path / "history.jsonl.state.json"))
    store.schedule("reboot:lb1", 10, {"kind": "reboot", "minion": "lb1"})  # left by another version
    store.schedule("broken", 10, {"instance": "lbpair_51"})
    store.schedule("check:web/lbpair_51", 11, Task.check("web", "lbpair_51").to_json())
    scheduler = Scheduler(store, wake=lambda: None, clock=lambda: 20, sleep=lambda seconds: None)
    checked = []
    scheduler.register(TaskKind.CHECK, lambda task: checked.append(task) or "checked")
    with caplog.at_level(logging.ERROR):
        done = scheduler.flush()
    assert done == [{"broken": "dropped: unknown kind"}, {"reboot:lb1": "dropped: unknown kind"}, {"check:web/lbpair_51": "checked"}]
    assert checked == [Task.check("web", "lbpair_51")] and store.due() == {}
    assert "dropping work reboot:lb1: its kind 'reboot' is unknown" in caplog.text


def test_seen_and_problems_are_the_strings_on_disk():
    assert [seen.value for seen in Seen] == ["live", "late"]
    assert [problem.value for problem in records.Problem] == ["split_brain", "no_master"]
    assert type(Transition.confirmed_from({"seq": 1}, "lb1", Seen.LIVE, now=1).to_json()["seen"]) is str


def test_a_transition_built_planned_says_so():
    built = Transition(minion="lb1", seq=3, pair="web", state=VrrpState.MASTER, planned=True).to_json()
    assert built["planned"] is True and list(built) == list(records.TRANSITION_KEYS)
    assert "pair" not in Transition(minion="lb1", seq=3).to_json()  # no pair to name: as an older version wrote it
    read = Transition.from_json({"kind": "transition", "minion": "lb1", "seq": 3})
    assert read.marked_planned().to_json() == {"kind": "transition", "minion": "lb1", "seq": 3, "planned": True}
    old = Transition.from_json({"planned": False, "kind": "transition", "minion": "lb1", "seq": 3})
    assert list(old.marked_planned().to_json().items()) == [("planned", True), ("kind", "transition"), ("minion", "lb1"), ("seq", 3)]
