"""The reaction runners' pure logic: configuration, trust, history, damping, messages, DNS updates."""

import copy
import json
import time

import dns.rdatatype
import pytest
import yaml

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import dns_update, notify, reactions, reactions_config, storm
from saltext.lbpair.master.history import History, select, timeline
from saltext.lbpair.master.records import Transition
from tests.conftest import REPO


@pytest.fixture
def shipped():
    """The shipped block, for the one pair its comment shows (``nodes``)."""
    block = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())["lbpair_reactions"]
    return {**block, "nodes": {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}}


# --- configuration ------------------------------------------------------------------


def test_shipped_configuration_block_is_valid_and_masked(shipped):
    config = reactions_config.normalise(shipped)
    assert config["dns"]["records"][0] == {"name": "active", "type": "A", "ttl": 30, "instance": None}
    shown = json.dumps(reactions_config.masked(config))
    for secret in (shipped["webhook"]["url"], shipped["smtp"]["password"], shipped["dns"]["key_secret"]):
        assert secret not in shown


@pytest.mark.parametrize(
    "change, path",
    [
        (lambda c: c["dns"].update(port=0), "lbpair_reactions:dns:port"),
        (lambda c: c["dns"].update(key_secret="not base64!"), "lbpair_reactions:dns:key_secret"),
        (lambda c: c["dns"]["records"][1].update(type="MX"), "lbpair_reactions:dns:records:1:type"),
        (lambda c: c["nodes"]["lb2"].update(address="lb2.example"), "lbpair_reactions:nodes:lb2:address"),
        (lambda c: c["webhook"].update(format="teams"), "lbpair_reactions:webhook:format"),
        (lambda c: c["smtp"].pop("password"), "lbpair_reactions:smtp:password"),
        (lambda c: c.update(dampening=5), "lbpair_reactions:dampening"),
        (lambda c: c.update(damping_window=True), "lbpair_reactions:damping_window"),
    ],
)
def test_invalid_configuration_names_the_key(shipped, change, path):
    config = copy.deepcopy(shipped)
    change(config)
    with pytest.raises(InvalidValue) as error:
        reactions_config.normalise(config)
    assert error.value.path == path
    assert str(error.value).startswith(f"{path}: ")


def test_error_about_a_secret_does_not_show_it(shipped):
    config = copy.deepcopy(shipped)
    config["webhook"]["url"] = "ftp://secret-token@example.net/"
    with pytest.raises(InvalidValue) as error:
        reactions_config.normalise(config)
    assert "secret-token" not in str(error.value)


# --- trust --------------------------------------------------------------------------

NODES = {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}
EVENT = {"id": "lb2", "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP", "seq": 7, "vips": []}
TAG = "salt/beacon/lb2/lbpair_vrrp/lbpair_51/MASTER"


def test_event_of_a_node_may_trigger_a_reaction():
    assert reactions.trust_problem(TAG, EVENT, NODES) is None


@pytest.mark.parametrize(
    "tag, data, reason",
    [
        ("salt/beacon/lb3/lbpair_vrrp/lbpair_51/MASTER", {**EVENT, "id": "lb3"}, "not a node"),
        (TAG, {**EVENT, "id": "lb1"}, "claims 'lb1'"),
        (TAG, {**EVENT, "state": "BACKUP"}, "disagree"),
        (TAG, {**EVENT, "seq": "7"}, "seq is missing or malformed"),
        ("salt/beacon/lb2/other/lbpair_51/MASTER", EVENT, "unexpected tag"),
    ],
)
def test_untrusted_events_are_refused_with_a_reason(tag, data, reason):
    assert reason in reactions.trust_problem(tag, data, NODES)


def test_journal_confirms_refutes_or_cannot_tell():
    entry = {"seq": 7, "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP", "vips": ["203.0.113.10"]}
    assert reactions.journal_verdict(EVENT, [entry]) == ("confirmed", entry)
    assert reactions.journal_verdict(EVENT, [{**entry, "vips": ["<!channel>"]}]) == ("refuted", None)
    assert reactions.journal_verdict(EVENT, [{**entry, "state": "BACKUP"}]) == ("refuted", None)
    assert reactions.journal_verdict(EVENT, []) == ("refuted", None)
    assert reactions.journal_verdict(EVENT, None) == ("unconfirmed", None)


# --- pair view ----------------------------------------------------------------------


def _status(state, vips=()):
    return {"lbpair_51": {"state": state, "vrid": 51, "vips": list(vips)}}


def test_pair_view_flags_split_brain_no_master_and_silent_nodes():
    ok = reactions.pair_view({"lb1": _status("MASTER", ["203.0.113.10"]), "lb2": _status("BACKUP")}, NODES)
    assert ok["instances"]["lbpair_51"]["MASTER"] == ["lb1"] and ok["instances"]["lbpair_51"]["problem"] is None
    assert ok["instances"]["lbpair_51"]["vips"] == ["203.0.113.10"]
    split = reactions.pair_view({"lb1": _status("MASTER"), "lb2": _status("MASTER")}, NODES)
    assert split["instances"]["lbpair_51"]["problem"] == "split_brain"
    none = reactions.pair_view({"lb1": _status("FAULT")}, NODES)
    assert none["instances"]["lbpair_51"]["problem"] == "no_master" and none["unreachable"] == ["lb2"]


# --- history ------------------------------------------------------------------------


def _transition(minion, seq, state="MASTER", at="2026-11-26T10:00:00+00:00", instance="lbpair_51"):
    return {"kind": "transition", "minion": minion, "seq": seq, "state": state, "previous_state": "BACKUP",
            "instance": instance, "at": at, "vips": ["203.0.113.10"], "seen": "live", "confirmed": True}  # fmt: skip


def test_history_deduplicates_by_minion_and_sequence(tmp_path):
    path = str(tmp_path / "history.jsonl")
    assert len(History(path).append([_transition("lb1", 1), _transition("lb2", 1)])) == 2
    assert History(path).append([_transition("lb1", 1), _transition("lb1", 2)]) == [_transition("lb1", 2)]
    assert History(path).last_seq("lb1") == 2 and History(path).last_seq("lb3") == 0


def test_rotation_loses_nothing_and_still_deduplicates(tmp_path):
    path = str(tmp_path / "history.jsonl")
    for seq in range(1, 41):
        History(path, 2000).append([_transition("lb1", seq)])
    assert len(list(tmp_path.glob("history.jsonl.*[0-9]"))) > 2
    assert [r["seq"] for r in History(path).read()] == list(range(1, 41))
    assert History(path, 2000).append([_transition("lb1", 3)]) == []


def test_history_lines_are_whole_and_a_cut_line_is_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    History(str(path)).append([_transition("lb1", 1)])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "transition", "minion": "lb')  # a crash mid-line
    assert [r["seq"] for r in History(str(path)).read()] == [1]


def test_select_filters_by_instance_minion_and_time():
    records = [
        _transition("lb1", 1, at="2026-11-26T10:00:00+00:00"),
        _transition("lb2", 1, at="2026-11-26T11:00:00+00:00"),
        _transition("lb2", 2, at="2026-11-26T12:00:00+00:00", instance="lbpair_52"),
    ]
    assert [r["seq"] for r in select(records, minion="lb2")] == [1, 2]
    assert len(select(records, instance="lbpair_52")) == 1
    window = select(records, since="2026-11-26T10:30:00Z", until="2026-11-26T11:30:00Z")
    assert [(r["minion"], r["seq"]) for r in window] == [("lb2", 1)]


def test_timeline_reads_as_sentences():
    late = {**_transition("lb2", 4), "seen": "late", "confirmed": False}
    (line,) = timeline([late])
    assert line == "2026-11-26T10:00:00+00:00  lbpair_51  lb2 BACKUP -> MASTER (203.0.113.10; seq 4, late, UNCONFIRMED)"


# --- damping and messages -----------------------------------------------------------


def test_damping_sends_one_message_per_window_and_summarises_the_rest():
    state, decisions = {}, []
    for index in range(20):
        decisions.append(notify.admit(state, "lbpair_51", 100 + index * 0.1, 60, {"seq": index}))
    assert decisions[0] == "send" and decisions[1] == "hold_first" and set(decisions[2:]) == {"hold"}
    assert notify.due(state, 150) == [] and notify.due(state, 160) == ["lbpair_51"]
    held = notify.release(state, "lbpair_51", 160, 60)
    assert [r["seq"] for r in held] == list(range(1, 20))
    assert notify.admit(state, "lbpair_51", 170, 60, {"seq": 20}) == "hold_first"  # a new window began
    assert notify.admit(state, "lbpair_52", 170, 60, {"seq": 1}) == "send"  # per instance


def test_the_new_master_is_announced_even_when_the_old_one_opened_the_window():
    state = {}
    assert notify.admit(state, "lbpair_51", 100, 60, {"seq": 3, "state": "BACKUP"}) == "send"
    assert notify.admit(state, "lbpair_51", 100.1, 60, {"seq": 4, "state": "MASTER"}) == "send"
    assert notify.admit(state, "lbpair_51", 105, 60, {"seq": 5, "state": "MASTER"}) == "hold_first"
    notify.release(state, "lbpair_51", 160, 60)
    assert notify.admit(state, "lbpair_51", 161, 60, {"seq": 6, "state": "MASTER"}) == "send"  # a new window


def test_a_storm_summary_counts_the_transitions_of_the_flap_damping_summaries_it_holds():
    transition = notify.transition_notice(Transition.from_json(_transition("lb2", 7)), "lb1")
    later = [_transition("lb1", 8, at="2026-11-26T10:00:20+00:00"), _transition("lb2", 8, at="2026-11-26T10:00:40+00:00")]
    summary = notify.summary_notice("lbpair_51", later, 60)
    notice = notify.storm_notice([storm.brief(transition, "shop"), storm.brief(summary, "web")], storm.WINDOW)
    assert notice.subject == "lbpair storm: 3 more transitions in 2 pairs (shop, web)"
    assert notice.text.splitlines()[1:] == [
        "shop/lbpair_51: lb2 BACKUP -> MASTER at 2026-11-26T10:00:00+00:00",
        "web/lbpair_51: 2 transitions held back by flap damping (2026-11-26T10:00:20+00:00 to 2026-11-26T10:00:40+00:00)",
    ]
    assert [len(notice.details[key]) for key in ("transitions", "summaries")] == [1, 1] and notice.details["suppressed"] == 3


def test_transition_message_says_what_moved_where_and_how_it_was_seen():
    record = {**_transition("lb2", 7), "vips": ["203.0.113.10", "203.0.113.20"], "seen": "late"}
    notice = notify.transition_notice(Transition.from_json(record), "lb1")
    assert notice.text == (
        "lbpair lbpair_51: lb2 is MASTER (was BACKUP); VIPs 203.0.113.10, 203.0.113.20 move from lb1 to lb2."
        " At 2026-11-26T10:00:00+00:00 (caught up late from the node's journal, confirmed by the node)."
    )


def test_webhook_payloads_for_slack_mattermost_and_generic():
    notice = notify.alarm_notice("split_brain", "lbpair_51", "split brain: lb1 and lb2 are all MASTER")
    slack = notify.webhook_payload(notice, "slack")
    assert slack == notify.webhook_payload(notice, "mattermost")
    assert slack["text"].startswith(":rotating_light: CRITICAL lbpair lbpair_51: split brain")
    generic = notify.webhook_payload(notice, "generic")
    assert generic["severity"] == "critical" and generic["kind"] == "split_brain" and generic["source"] == "lbpair"


def test_a_node_warning_reads_as_a_warning_in_messages_and_history():
    notice = notify.warning_notice("lb1", "keepalived_not_on_bus", "restart keepalived")
    assert notice.severity == "warning"
    assert notice.text == "WARNING lbpair: lb1 keepalived not on bus: restart keepalived"
    record = {"kind": "warning", "minion": "lb1", "code": "keepalived_not_on_bus", "message": "restart keepalived",
              "at": "2026-11-26T10:00:00+00:00"}  # fmt: skip
    assert timeline([record])[0].endswith("lb1 warns: restart keepalived")


def test_critical_mail_is_marked_urgent():
    notice = notify.alarm_notice("no_master", "lbpair_51", "no MASTER")
    smtp = {"from": "lbpair@example.net", "to": ["a@example.net", "b@example.net"]}
    message = notify.mail_message(notice, smtp)
    assert message["X-Priority"] == "1" and message["To"] == "a@example.net, b@example.net"


# --- DNS ----------------------------------------------------------------------------


def test_dns_update_points_configured_records_at_the_node(shipped):
    config = reactions_config.normalise(shipped)["dns"]
    update = dns_update.build_update(config, "lb2", {"address": "192.0.2.12"})
    rrsets = {(str(r.name), dns.rdatatype.to_text(r.rdtype)): [d.to_text() for d in r] for r in update.update}
    assert rrsets[("active", "A")] == ["192.0.2.12"]
    assert rrsets[("active", "TXT")] == ['"lb2"']
    assert update.keyring is not None and str(update.keyname) == "lbpair-update."


def test_an_aaaa_record_points_at_the_node_s_address6(shipped):
    for node, address6 in (("lb1", "2001:db8::11"), ("lb2", "2001:db8::12")):
        shipped["nodes"][node]["address6"] = address6
    shipped["dns"]["records"].append({"name": "active", "type": "AAAA", "ttl": 30})
    config = reactions_config.normalise(shipped)
    update = dns_update.build_update(config["dns"], "lb2", config["nodes"]["lb2"])
    rrsets = {(str(r.name), dns.rdatatype.to_text(r.rdtype)): [d.to_text() for d in r] for r in update.update}
    assert rrsets[("active", "AAAA")] == ["2001:db8::12"] and rrsets[("active", "A")] == ["192.0.2.12"]


def test_dns_update_retries_with_backoff_then_reports(shipped):
    config = {**reactions_config.normalise(shipped)["dns"], "server": "127.0.0.1", "port": 9, "timeout": 0.5, "attempts": 3}
    sleeps = []
    result = dns_update.update_with_retries(config, "lb2", {"address": "192.0.2.12"}, sleep=sleeps.append)
    assert result["ok"] is False and result["attempts"] == 3 and result["error"]
    assert sleeps == [1, 2]


def test_job_returns_split_into_answers_and_reasons():
    returns = {
        "lb1": {"ret": [{"seq": 1}], "retcode": 0},
        "lb2": {"ret": "'lbpair_keepalived.transitions' is not available.", "retcode": 1},
        "lb3": "Minion did not return. [No response]",
    }
    answers, failures = reactions.split_returns("lbpair_keepalived.transitions", returns)
    assert answers == {"lb1": [{"seq": 1}]}
    assert reactions.not_synced(failures["lb2"]) and not reactions.not_synced(failures["lb3"])


def test_status_fails_on_a_problem_or_a_silent_node():
    ok = reactions.with_problems(reactions.pair_view({"lb1": _status("MASTER"), "lb2": _status("BACKUP")}, NODES))
    assert ok["problems"] == [] and "retcode" not in ok
    silent = reactions.with_problems(reactions.pair_view({"lb1": _status("MASTER")}, NODES))
    assert silent["problems"] == ["lb2: did not answer"] and silent["retcode"] == 1


def test_minion_start_outside_the_pair_asks_nobody(tmp_path, shipped):
    config = reactions_config.normalise({**shipped, "history": {"path": str(tmp_path / "history.jsonl")}})
    asked = []
    reacting = reactions.Reactions(config, lambda *args: asked.append(args) or ({}, {}))
    assert reacting.on_minion_start("web7") == {"ignored": "'web7' is not a node of the pair"}
    assert asked == []


def test_a_check_of_one_instance_does_not_cover_another_instance(tmp_path, shipped):
    """Active/active: lb1 MASTER of lbpair_51 and lb2 of lbpair_52 at once; each instance's DNS follows its MASTER."""
    shipped["dns"].update(server="127.0.0.1", port=9, timeout=0.2, attempts=1)  # nothing listens: the attempt fails at once
    shipped["dns"]["records"] = [{"name": "shop", "type": "A", "instance": "lbpair_52"}]
    config = reactions_config.normalise({**shipped, "history": {"path": str(tmp_path / "history.jsonl")}})
    both = {"lbpair_51": {"state": "MASTER", "vrid": 51, "vips": []}, "lbpair_52": {"state": "BACKUP", "vrid": 52, "vips": []}}
    other = {"lbpair_51": {"state": "BACKUP", "vrid": 51, "vips": []}, "lbpair_52": {"state": "MASTER", "vrid": 52, "vips": []}}
    reacting = reactions.Reactions(config, lambda *args: ({"lb1": both, "lb2": other}, {}))
    requested_at = time.time()
    reacting.crew(reacting.directory.named("lb1+lb2")).monitor.check_pair("lbpair_51", requested_at)
    second = reacting.crew(reacting.directory.named("lb1+lb2")).monitor.check_pair("lbpair_52", requested_at)
    assert "skipped" not in second and second["dns"]["error"], second  # it tried to point shop at lb2
    assert reacting.crew(reacting.directory.named("lb1+lb2")).monitor.check_pair("lbpair_52", requested_at) == {"skipped": "a newer check covered it"}
