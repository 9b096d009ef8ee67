"""
The reactions' flows without Salt: claims, independent steps and their replay, the
work left for later. ``ask`` stands for Salt's LocalClient and answers as the nodes
would; the webhook and DNS server are closed loopback ports (real failures).
"""

import socket

import pytest

from saltext.lbpair.master import reaction_state, reactions, reactions_config
from tests.unit.clock import Clock

INSTANCE = "lbpair_51"
TAG = f"salt/beacon/lb2/lbpair_vrrp/{INSTANCE}/MASTER"


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entry(seq, state="MASTER", previous="BACKUP"):
    return {"seq": seq, "instance": INSTANCE, "state": state, "previous_state": previous, "vips": ["203.0.113.10"]}


class Nodes:
    """What the nodes answer: their journals and their status (``None``: the node does not answer)."""

    def __init__(self):
        self.journals = {"lb1": [], "lb2": []}
        self.states = {"lb1": "BACKUP", "lb2": "MASTER"}
        self.failing = {}  # node: why its jobs fail (it answers, with an error)
        self.asked = []

    def ask(self, targets, fun, kwarg, timeout):
        self.asked.append((tuple(targets), fun))
        answers, failures = {}, {}
        for node in targets:
            if node in self.failing:
                failures[node] = self.failing[node]
            elif fun == reactions.JOURNAL_FUNCTION and self.journals.get(node) is not None:
                answers[node] = [e for e in self.journals[node] if e["seq"] > kwarg.get("since_of", {}).get(node, kwarg["since"])]
            elif fun == reactions.STATUS_FUNCTION and self.states.get(node) is not None:
                answers[node] = {INSTANCE: {"state": self.states[node], "vrid": 51, "vips": [], "source": "dbus"}}
        return answers, failures


@pytest.fixture
def nodes():
    return Nodes()


def _reactions(tmp_path, nodes, **extra):
    config = {
        "nodes": {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}},
        "history": {"path": str(tmp_path / "history.jsonl")},
        "damping_window": 60,
        "confirm": {"timeout": 1, "settle": 0.2},
        **extra,
    }
    woken, clock = [], Clock()
    return reactions.Reactions(reactions_config.normalise(config), nodes.ask, lambda: woken.append(1), clock, clock.sleep), woken


def _kinds(reacting):
    return [record["kind"] for record in reacting.history.read()]


def test_an_event_its_node_does_not_confirm_is_a_claim_until_the_journal_settles_it(tmp_path, nodes):
    reacting, woken = _reactions(tmp_path, nodes)
    nodes.journals["lb2"] = None  # lb2 does not answer
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["claim"]["seq"] == 7 and answer["notified"] == {}  # no channel configured
    assert _kinds(reacting) == ["claim"]
    assert reacting.history.last_seq("lb2") == 0  # a claim takes no (minion, seq) slot
    # asked briefly, then once more with the full timeout (it may have just reconnected); no pair check, so no DNS
    assert [fun for _, fun in nodes.asked] == [reactions.JOURNAL_FUNCTION] * 2
    assert list(reacting.store.due()) == ["catch_up:lb2"] and woken
    assert reacting.store.open_claims()["lb2"][0]["seq"] == 7
    # lb2 answers: its journal replaces the claim
    nodes.journals["lb2"] = [_entry(7)]
    caught = reacting.catch_up("lb2")
    assert caught["claims_settled"] == 1 and [r["seq"] for r in caught["caught_up"]] == [7]
    settled = [r for r in reacting.history.read() if r["kind"] == "claim_settled"]
    assert settled[0]["outcome"] == "confirmed by the node's journal"
    assert reacting.store.open_claims() == {}
    transition = [r for r in reacting.history.read() if r["kind"] == "transition"]
    assert transition[0]["confirmed"] is True and transition[0]["seen"] == "late"


def test_a_node_that_answered_with_an_error_is_not_silent(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.failing["lb2"] = "'lbpair_keepalived.transitions' is not available."  # a minion starts before saltutil.sync_all
    assert reacting.on_minion_start("lb2")["error"] == "lbpair's execution modules are not synced on the node"
    del nodes.failing["lb2"]
    nodes.journals["lb2"] = [_entry(1)]
    # the node is asked, and confirms: its first event after the sync is no claim (the lab's first drills were)
    assert reacting.on_beacon(TAG, {**_entry(1), "id": "lb2"})["recorded"]["seq"] == 1
    assert _kinds(reacting) == ["transition"]


def test_the_log_says_why_an_event_is_a_claim(tmp_path, nodes, caplog):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.failing["lb2"] = "journal unreadable\nforged line"
    assert reacting.on_beacon(TAG, {**_entry(3), "id": "lb2"})["claim"]["seq"] == 3
    del nodes.failing["lb2"]
    nodes.journals["lb2"] = None  # now it does not answer: silent for a while
    reacting.on_beacon(TAG, {**_entry(4), "id": "lb2"})
    reacting.on_beacon(TAG, {**_entry(5), "id": "lb2"})
    claims = [record.getMessage() for record in caplog.records if "recorded as a claim" in record.getMessage()]
    assert "('journal unreadable\\nforged line')" in claims[0]  # the node's words, escaped on one line
    assert "(no answer)" in claims[1] and "left a job unanswered in the last 30 s" in claims[2]


@pytest.mark.parametrize("no_return", [
    {"failed": True},
    {"ret": "Minion did not return. [No response]\nThe minions may not have all finished running", "retcode": 1},
])  # fmt: skip
def test_a_node_salt_reports_failed_is_silent(tmp_path, nodes, no_return):
    reacting, _ = _reactions(tmp_path, nodes)
    returns = {"lb2": no_return}  # Salt's words for a minion that did not return the job
    reacting.ask = lambda targets, fun, kwarg, timeout: (nodes.asked.append(fun), reactions.split_returns(fun, returns))[1]
    reacting.on_beacon(TAG, {**_entry(1), "id": "lb2"})
    reacting.on_beacon(TAG, {**_entry(2), "id": "lb2"})
    assert nodes.asked == [reactions.JOURNAL_FUNCTION] * 2  # asked for the first event: then known silent, not waited for again


def test_a_forged_huge_seq_blinds_nothing(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.journals["lb2"] = None
    reacting.on_beacon(TAG, {**_entry(2**52), "id": "lb2"})
    nodes.journals["lb2"] = [_entry(1)]
    caught = reacting.catch_up("lb2")  # what the background job does a few seconds later
    assert [r["seq"] for r in caught["caught_up"]] == [1] and reacting.history.last_seq("lb2") == 1
    settled = [r for r in reacting.history.read() if r["kind"] == "claim_settled"]
    assert settled[0]["outcome"] == "refuted: not in the node's journal"
    nodes.journals["lb2"].append(_entry(2, "BACKUP", "MASTER"))
    assert reacting.on_beacon(TAG.replace("MASTER", "BACKUP"), {**_entry(2, "BACKUP", "MASTER"), "id": "lb2"})["recorded"]["seq"] == 2


def test_a_flood_of_events_for_a_silent_node_holds_no_thread_and_is_bounded(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.journals["lb2"] = None
    for seq in range(1, reaction_state.MAX_CLAIMS + 20):
        reacting.on_beacon(TAG, {**_entry(seq), "id": "lb2"})
    assert [fun for _, fun in nodes.asked] == [reactions.JOURNAL_FUNCTION] * 2  # for the first event: then known silent
    assert _kinds(reacting).count("claim") == reaction_state.MAX_CLAIMS
    assert "open claims already" in reacting.on_beacon(TAG, {**_entry(99), "id": "lb2"})["ignored"]


def test_a_failing_channel_stops_no_other_step_and_a_replay_redoes_only_it(tmp_path, nodes):
    webhook = {"url": f"http://127.0.0.1:{_closed_port()}/hooks/token-S3", "format": "slack"}
    reacting, _ = _reactions(tmp_path, nodes, webhook=webhook)
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["steps"]["webhook"].startswith("failed: OSError: the webhook could not be reached")
    assert answer["pair"]["view"]["MASTER"] == ["lb2"]  # the pair check ran all the same
    assert "token-S3" not in str(answer)
    assert reacting.store.open_reactions()["lb2:7"] == ["webhook"]
    failures = [r for r in reacting.history.read() if r["kind"] == "step_failed"]
    assert len(failures) == 1 and failures[0]["step"] == "webhook"
    replay = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert list(replay["steps"]) == ["webhook"] and replay["completed"]["seq"] == 7
    assert len([r for r in reacting.history.read() if r["kind"] == "step_failed"]) == 1  # alarmed once
    assert _kinds(reacting).count("transition") == 1


def test_once_every_step_succeeded_a_replay_is_a_duplicate(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.journals["lb2"] = [_entry(7)]
    assert reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})["recorded"]["seq"] == 7
    assert reacting.store.open_reactions() == {}
    assert reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"}) == {"duplicate": ["lb2", 7]}


def test_when_the_history_cannot_be_written_the_reaction_goes_on_and_a_replay_records_it(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    (tmp_path / "history.jsonl").mkdir()  # writing the history fails (as on a full disk)
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["pair"]["view"]["MASTER"] == ["lb2"]
    assert reacting.store.open_reactions()["lb2:7"] == ["record"]
    (tmp_path / "history.jsonl").rmdir()
    replay = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert list(replay["steps"]) == ["record"]
    assert _kinds(reacting) == ["transition"]
    assert reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"}) == {"duplicate": ["lb2", 7]}


def test_split_brain_is_checked_again_later_not_waited_for(tmp_path, nodes):
    reacting, woken = _reactions(tmp_path, nodes)
    nodes.states["lb1"] = "MASTER"
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["pair"]["settling"] == 0.2 and woken
    assert "split_brain" not in _kinds(reacting)
    done = reacting.flush(wait=True)  # the background job: waits for the settle time, checks again
    assert any("check:lb1+lb2/lbpair_51" in item for item in done)
    assert "split_brain" in _kinds(reacting)


def test_the_second_look_after_a_node_left_master_does_not_point_dns(tmp_path, nodes):
    """DNS follows from the reaction to a node becoming MASTER (with two masters: the one acting on it), never from another."""
    dns = {
        "server": "127.0.0.1", "port": _closed_port(), "zone": "example.net", "key_name": "k",
        "key_secret": "c2VjcmV0", "records": [{"name": "active", "type": "A"}], "attempts": 1, "backoff": 0.05,
    }  # fmt: skip
    reacting, _ = _reactions(tmp_path, nodes, dns=dns)
    nodes.states = {"lb1": "BACKUP", "lb2": "BACKUP"}
    nodes.journals["lb1"] = [_entry(7, "BACKUP", "MASTER")]
    answer = reacting.on_beacon(TAG.replace("lb2", "lb1").replace("MASTER", "BACKUP"), {**_entry(7, "BACKUP", "MASTER"), "id": "lb1"})
    assert answer["pair"]["settling"] == 0.2
    assert list(reacting.store.due()) == ["check:lb1+lb2/lbpair_51 no DNS"]
    nodes.states["lb2"] = "MASTER"  # lb2's own reaction points DNS (not seen by this master here)
    reacting.sleep(0.25)
    assert any("check:lb1+lb2/lbpair_51 no DNS" in item for item in reacting.flush())
    assert "dns" not in _kinds(reacting) and reacting.store.due() == {}


def test_a_transition_into_master_points_dns_only_at_its_own_node(tmp_path, nodes):
    """Caught up late, lb2's MASTER transition finds lb1 MASTER again: lb1's own transition (another master's, maybe) moves DNS."""
    dns = {
        "server": "127.0.0.1", "port": _closed_port(), "zone": "example.net", "key_name": "k",
        "key_secret": "c2VjcmV0", "records": [{"name": "active", "type": "A"}], "attempts": 1, "backoff": 0.05,
    }  # fmt: skip
    reacting, _ = _reactions(tmp_path, nodes, dns=dns)
    nodes.states = {"lb1": "MASTER", "lb2": "BACKUP"}
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["pair"]["view"]["MASTER"] == ["lb1"] and "dns" not in answer["pair"]
    assert "dns" not in _kinds(reacting)


def test_a_problem_that_changed_before_the_second_look_is_a_new_one_not_an_alarm(tmp_path, nodes):
    """A switchover passes through "no MASTER" twice; a settled check must not take the second for the first."""
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.states = {"lb1": "FAULT", "lb2": "BACKUP"}
    nodes.journals["lb1"] = [_entry(7, "FAULT", "MASTER")]
    assert reacting.on_beacon(TAG.replace("lb2", "lb1").replace("MASTER", "FAULT"), {**_entry(7, "FAULT", "MASTER"), "id": "lb1"})
    nodes.states = {"lb1": "BACKUP", "lb2": "FAULT"}  # the second move, caught halfway by the settled check
    reacting.sleep(0.25)  # the settle time
    assert any("check:lb1+lb2/lbpair_51 no DNS" in item for item in reacting.flush())  # lb1 left MASTER: DNS does not follow
    assert "no_master" not in _kinds(reacting)
    reacting.sleep(0.25)
    reacting.flush()  # it lasted: the next look alarms
    assert "no_master" in _kinds(reacting)


def test_dns_is_retried_by_the_background_job_then_reported(tmp_path, nodes):
    dns = {
        "server": "127.0.0.1", "port": _closed_port(), "zone": "example.net", "key_name": "k",
        "key_secret": "c2VjcmV0", "records": [{"name": "active", "type": "A"}], "attempts": 3, "backoff": 0.05,
    }  # fmt: skip
    reacting, _ = _reactions(tmp_path, nodes, dns=dns)
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})
    assert answer["pair"]["dns"]["retry"] is True and "dns:lb1+lb2/lbpair_51" in reacting.store.due()
    reacting.flush(wait=True)
    outcome = [r for r in reacting.history.read() if r["kind"] == "dns"]
    assert len(outcome) == 1 and outcome[0]["ok"] is False and outcome[0]["attempts"] == 3
    assert reacting.store.due() == {}


def test_warnings_are_confirmed_by_the_node_and_damped(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    tag = "salt/beacon/lb2/lbpair_vrrp/warning/keepalived_not_on_bus"
    forged = {"message": "<!channel> click <http://evil.example|here>"}
    assert reacting.on_beacon(tag, forged) == {"ignored": "the node's own status does not confirm it"}
    nodes.states["lb2"] = "MASTER"
    original = nodes.ask

    def from_json(targets, fun, kwarg, timeout):
        answers, failures = original(targets, fun, kwarg, timeout)
        return {node: {i: {**info, "source": "json"} for i, info in ret.items()} for node, ret in answers.items()}, failures

    reacting.ask = from_json
    first = reacting.on_beacon(tag, forged)
    assert first["warning"] == "keepalived_not_on_bus" and first["notified"] == {}
    assert reacting.on_beacon(tag, forged)["notified"] == "damped"
    warnings = [r for r in reacting.history.read() if r["kind"] == "warning"]
    assert len(warnings) == 2 and all("evil" not in r["message"] for r in warnings)  # the node's text is not used
    assert reacting.on_beacon("salt/beacon/lb2/lbpair_vrrp/warning/made_up", {}) == {"ignored": "not a warning lbpair's beacon sends"}


def test_only_one_background_worker_at_a_time(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    with reaction_state.worker_slot(reacting.state_path) as mine:
        assert mine
        assert "busy" in reacting.work_in_background()
    assert reacting.work_in_background() == {"done": []}


def test_in_active_active_each_dns_record_follows_its_own_instance(tmp_path, nodes):
    dns = {
        "server": "127.0.0.1", "port": _closed_port(), "zone": "example.net", "key_name": "k", "key_secret": "c2VjcmV0",
        "records": [{"name": "web", "type": "A", "instance": "lbpair_52"}], "attempts": 1,
    }  # fmt: skip
    reacting, _ = _reactions(tmp_path, nodes, dns=dns)
    nodes.journals["lb2"] = [_entry(7)]
    answer = reacting.on_beacon(TAG, {**_entry(7), "id": "lb2"})  # lbpair_51 moved: no record follows it
    assert answer["pair"]["dns"] == {"ok": True, "skipped": "no DNS record follows lbpair_51"}
    assert [r for r in reacting.history.read() if r["kind"] == "dns"] == []
