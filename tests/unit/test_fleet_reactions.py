"""
The reactions of a fleet without Salt: two pairs learned from their nodes' pillars, both with an
instance named lbpair_51, each reacted to on its own settings. ``ask`` answers as the nodes would;
the webhooks are real HTTP receivers on loopback (pytest-httpserver).
"""

import copy

import pytest

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import event_queue, fleet, intake, reactions, reactions_config, scheduler, storm
from saltext.lbpair.master import history as history_file
from tests.unit.clock import Clock

INSTANCE = "lbpair_51"
PAIRS = {"lb1+lb2": ("lb1", "lb2"), "api": ("lb3", "lb4"), "db": ("lb5", "lb6")}


def _tag(minion, state="MASTER"):
    return f"salt/beacon/{minion}/lbpair_vrrp/{INSTANCE}/{state}"


def _entry(seq, state="MASTER", previous="BACKUP"):
    return {"seq": seq, "instance": INSTANCE, "state": state, "previous_state": previous, "vips": ["203.0.113.10"]}


class Fleet:
    """What the nodes of both pairs answer: their journals and their state (``None``: the node does not answer)."""

    def __init__(self):
        self.journals = {node: [] for nodes in PAIRS.values() for node in nodes}
        self.states = {"lb1": "MASTER", "lb2": "BACKUP", "lb3": "MASTER", "lb4": "BACKUP", "lb5": "MASTER", "lb6": "BACKUP"}
        self.asked = []
        self.elsewhere = set()  # (node, seq): transitions another master claimed on the node first

    def ask(self, targets, fun, kwarg, timeout):
        self.asked.append((tuple(targets), fun))
        answers = {}
        for node in targets:
            if fun == reactions.JOURNAL_FUNCTION and self.journals.get(node) is not None:
                since = kwarg.get("since_of", {}).get(node, kwarg["since"])
                claimed = {"acting": True} if kwarg.get("claim") else {}
                answers[node] = [{**entry, **claimed} for entry in self.journals[node] if entry["seq"] > since]
                for entry in answers[node]:
                    entry["acting"] = entry.get("acting") and (node, entry["seq"]) not in self.elsewhere
            elif fun == reactions.STATUS_FUNCTION and self.states.get(node) is not None:
                answers[node] = {INSTANCE: {"state": self.states[node], "vrid": 51, "vips": [], "source": "dbus"}}
        return answers, {}

    def journal(self, node, seq, state="MASTER", previous="BACKUP"):
        self.journals[node].append(_entry(seq, state, previous))
        return {**_entry(seq, state, previous), "id": node}


def _named_pair(seed_pillar, name, first, second):
    """The seed's services on nodes ``first`` and ``second`` (192.0.2.1N), as pair ``name``."""
    pair = copy.deepcopy(seed_pillar)
    pair["pair"] = name
    pair["nodes"] = {node: {"address": f"192.0.2.{10 + int(node[2:])}", "priority": priority} for node, priority in ((first, 101), (second, 100))}
    return pair


@pytest.fixture
def pillars(seed_pillar):
    api, db = _named_pair(seed_pillar, "api", "lb3", "lb4"), _named_pair(seed_pillar, "db", "lb5", "lb6")
    outsider = _named_pair(seed_pillar, "api", "lb3", "lb9")  # lb9's pillar puts it into pair api, whose nodes do not list it
    return {"lb1": seed_pillar, "lb2": seed_pillar, "lb3": api, "lb4": api, "lb5": db, "lb6": db, "lb9": outsider, "web1": None}


@pytest.fixture
def nodes():
    return Fleet()


def _reactions(tmp_path, nodes, pillars, **settings):
    config = {"history": {"path": str(tmp_path / "history.jsonl")}, "confirm": {"timeout": 1, "settle": 0.2}, **settings}
    clock = Clock()
    return reactions.Reactions(
        reactions_config.normalise(config),
        nodes.ask,
        clock=clock,
        sleep=clock.sleep,
        claim_of=lambda minion: fleet.claim_of(minion, pillars.get(minion)),
        minions=lambda: list(pillars),
    )


def test_each_pair_is_reacted_to_on_its_own_settings_and_its_messages_name_it(tmp_path, nodes, pillars, httpserver):
    team, ops = httpserver, httpserver  # one receiver, two paths: the default channel and the api team's
    team.expect_request("/api-team").respond_with_data("ok")
    ops.expect_request("/ops").respond_with_data("ok")
    reacting = _reactions(
        tmp_path, nodes, pillars,
        webhook={"url": ops.url_for("/ops"), "format": "generic"},
        pairs={"api": {"webhook": {"url": team.url_for("/api-team"), "format": "generic"}, "damping_window": 0}},
    )  # fmt: skip
    assert reacting.on_beacon(_tag("lb1"), nodes.journal("lb1", 1))["steps"]["webhook"] == "sent"
    assert reacting.on_beacon(_tag("lb3"), nodes.journal("lb3", 1))["steps"]["webhook"] == "sent"
    posted = {request.path: request.get_json() for request, _ in team.log}
    assert posted["/ops"]["pair"] == "lb1+lb2" and posted["/ops"]["subject"].startswith("[lb1+lb2] lbpair lbpair_51: lb1 is MASTER")
    assert posted["/api-team"]["pair"] == "api" and posted["/api-team"]["subject"].startswith("[api] lbpair lbpair_51: lb3 is MASTER")
    recorded = [(record["pair"], record["minion"]) for record in reacting.history.read() if record["kind"] == "transition"]
    assert recorded == [("lb1+lb2", "lb1"), ("api", "lb3")]
    # the pair checks asked each pair's own nodes, never the other pair's
    assert {targets for targets, fun in nodes.asked if fun == reactions.STATUS_FUNCTION} == {("lb1", "lb2"), ("lb3", "lb4")}


def test_flap_damping_of_one_pair_does_not_hold_the_other_pairs_messages(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("ok")
    reacting = _reactions(tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"})
    assert reacting.on_beacon(_tag("lb1", "BACKUP"), nodes.journal("lb1", 1, "BACKUP", "MASTER"))["steps"]["webhook"] == "sent"
    assert "webhook" not in reacting.on_beacon(_tag("lb1", "BACKUP"), nodes.journal("lb1", 2, "BACKUP", "MASTER"))["steps"]  # held
    # the same instance name in pair api: its own window, so it is announced
    assert reacting.on_beacon(_tag("lb3", "BACKUP"), nodes.journal("lb3", 1, "BACKUP", "MASTER"))["steps"]["webhook"] == "sent"
    assert sorted(reacting.store.summaries_due(reacting.clock() + 61)) == ["lb1+lb2/lbpair_51"]


def test_an_event_in_another_pairs_name_or_from_an_outsider_is_ignored(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    # lb1 (pair lb1+lb2) sends an event naming lb3 (pair api): lb3's own journal does not hold it
    assert reacting.on_beacon(_tag("lb3"), {**_entry(5), "id": "lb3"}) == {"ignored": "not in the node's journal"}
    # lb9's pillar claims pair api, whose nodes' pillars do not list it
    ignored = reacting.on_beacon(_tag("lb9"), nodes.journal("lb3", 6) | {"id": "lb9"})["ignored"]
    assert ignored.startswith("'lb9' is not a node of any pair: an outsider: its pillar puts it in pair api, whose nodes (lb3, lb4)")
    assert reacting.on_beacon(_tag("web1"), {**_entry(1), "id": "web1"}) == {"ignored": "'web1' is not a node of any pair (it has no lbpair pillar)"}
    assert reacting.on_minion_start("lb9")["ignored"].startswith("'lb9' is not a node of any pair")
    assert [record for record in reacting.history.read() if record["kind"] == "transition"] == []
    assert {targets for targets, _ in nodes.asked} == {("lb3",)}  # the outsider and the stranger were never asked


def test_status_shows_every_pair_problems_first_and_narrows_to_one(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    nodes.states["lb4"] = "MASTER"  # api: split brain
    view = reacting.status()
    assert list(view["pairs"]) == ["api", "db", "lb1+lb2"] and view["retcode"] == 1
    assert view["problems"] == ["api: lbpair_51: split_brain", "lb9: " + fleet.agree(
        {minion: fleet.claim_of(minion, pillar) for minion, pillar in pillars.items()})[1]["lb9"]]  # fmt: skip
    assert view["pairs"]["lb1+lb2"]["instances"][INSTANCE]["MASTER"] == ["lb1"]
    assert [targets for targets, fun in nodes.asked if fun == reactions.STATUS_FUNCTION] == [("lb1", "lb2", "lb3", "lb4", "lb5", "lb6")]
    one = reacting.status(pair="lb1+lb2")
    assert list(one["pairs"]) == ["lb1+lb2"] and one["problems"] == [] and "retcode" not in one
    with pytest.raises(InvalidValue, match="'web' is not a pair the master knows \\(api, db, lb1\\+lb2\\)"):
        reacting.status(pair="web")


def test_moves_need_the_pair_named_once_there_are_two(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    with pytest.raises(InvalidValue, match="name the pair: api, db, lb1\\+lb2"):
        reacting.planned_moves()
    assert reacting.planned_moves("api").nodes == ["lb3", "lb4"]
    with pytest.raises(InvalidValue, match="'lb9' is not a node of any pair"):
        reacting.switchover("lb9", 5)


def test_the_history_of_one_pair(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    reacting.on_beacon(_tag("lb1"), nodes.journal("lb1", 1))
    reacting.on_beacon(_tag("lb3"), nodes.journal("lb3", 1))
    records = reacting.history.read()
    assert [record["minion"] for record in history_file.select(records, pair="api") if record["kind"] == "transition"] == ["lb3"]
    lines = history_file.timeline(history_file.select(records, pair="api"))
    assert lines and all("  api/" in line for line in lines)


def test_work_left_for_later_is_done_by_its_own_pair(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    nodes.states["lb4"] = "MASTER"  # api: split brain, checked again after the settle time
    reacting.on_beacon(_tag("lb4"), nodes.journal("lb4", 1))
    assert list(reacting.store.due()) == ["check:api/lbpair_51"]
    nodes.asked.clear()
    reacting.sleep(0.25)
    done = reacting.flush()
    assert any("check:api/lbpair_51" in item for item in done)
    assert {targets for targets, _ in nodes.asked} == {("lb3", "lb4")}
    alarms = [record for record in reacting.history.read() if record["kind"] == "split_brain"]
    assert [(alarm["pair"], alarm["instance"]) for alarm in alarms] == [("api", INSTANCE)]


def test_a_storm_sends_the_first_pairs_messages_then_one_summary_per_channel(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("ok")
    httpserver.expect_request("/db-team").respond_with_data("ok")
    _add_pair(pillars, nodes, "cache", "lb7", "lb8", states=("BACKUP", "MASTER"))
    reacting = _reactions(
        tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"},
        pairs={"db": {"webhook": {"url": httpserver.url_for("/db-team"), "format": "generic"}}},
    )  # fmt: skip
    steps = {}
    for name in ("lb1+lb2", "api", "db", "cache"):  # four pairs fail over in the same second
        first, second = PAIRS.get(name, ("lb7", "lb8"))
        steps[first] = reacting.on_beacon(_tag(first, "BACKUP"), nodes.journal(first, 1, "BACKUP", "MASTER"))["steps"]["webhook"]
        steps[second] = reacting.on_beacon(_tag(second), nodes.journal(second, 1))["steps"]["webhook"]
    held = storm.HELD
    assert steps == {"lb1": "sent", "lb2": "sent", "lb3": "sent", "lb4": "sent", "lb5": "sent", "lb6": "sent", "lb7": held, "lb8": held}
    posted = [request.path for request, _ in httpserver.log]
    # the ops channel: lb1+lb2's and api's messages, then cache's held; db's own channel is no part of that storm
    assert posted == ["/ops", "/ops", "/ops", "/ops", "/db-team", "/db-team"]
    assert reacting.store.next_due() <= reacting.clock() + storm.WINDOW  # the background job waits for the storm's summary
    reacting.sleep(storm.WINDOW)
    summaries = [entry for entry in reacting.flush() if "storm" in entry]
    assert [entry["storm"] for entry in summaries] == ["storm:webhook:default"]
    sent = [request.get_json() for request, _ in httpserver.log if request.get_json()["kind"] == "storm"]
    assert len(sent) == 1 and sent[0]["subject"] == "lbpair storm: 2 more transitions in 1 pairs (cache)", sent
    assert "cache/lbpair_51: lb7 MASTER -> BACKUP" in sent[0]["text"] and "cache/lbpair_51: lb8 BACKUP -> MASTER" in sent[0]["text"]


def _add_pair(pillars, nodes, name, first, second, states=("MASTER", "BACKUP")):
    """Pair ``name`` of nodes ``first`` and ``second``, in ``states`` now."""
    pillars[first] = pillars[second] = _named_pair(pillars["lb1"], name, first, second)
    nodes.journals.update({first: [], second: []})
    nodes.states.update(zip((first, second), states, strict=True))


def _flap(reacting, nodes, first, second):
    """``first`` hands its pair over to ``second``, which hands it back: flap damping holds the last two transitions."""
    moves = ((first, 1, "BACKUP", "MASTER"), (second, 1, "MASTER", "BACKUP"), (second, 2, "BACKUP", "MASTER"), (first, 2, "MASTER", "BACKUP"))
    return [reacting.on_beacon(_tag(node, state), nodes.journal(node, seq, state, previous))["steps"].get("webhook")
            for node, seq, state, previous in moves]  # fmt: skip


def _posted(httpserver, kind):
    return [request.get_json() for request, _ in httpserver.log if request.get_json()["kind"] == kind]


def test_the_flap_damping_summaries_of_a_storm_go_out_as_the_first_pairs_then_one_storm_summary(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("ok")
    httpserver.expect_request("/db-team").respond_with_data("ok")
    _add_pair(pillars, nodes, "cache", "lb7", "lb8")
    _add_pair(pillars, nodes, "web", "lb10", "lb11")
    _add_pair(pillars, nodes, "shop", "lb12", "lb13")
    reacting = _reactions(
        tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"},
        pairs={"db": {"webhook": {"url": httpserver.url_for("/db-team"), "format": "generic"}}},
    )  # fmt: skip
    storm_pairs = {"lb1+lb2": ("lb1", "lb2"), "api": ("lb3", "lb4"), "cache": ("lb7", "lb8"), "web": ("lb10", "lb11"), "shop": ("lb12", "lb13")}
    sent = [_flap(reacting, nodes, first, second)[:2] for first, second in (*storm_pairs.values(), PAIRS["db"])]
    held = storm.HELD
    assert sent == [["sent", "sent"]] * 2 + [[held, held]] * 3 + [["sent", "sent"]]  # db: its own channel, no storm
    reacting.sleep(storm.WINDOW)
    reacting.flush()
    assert [message["details"]["pairs"] for message in _posted(httpserver, "storm")] == [["cache", "shop", "web"]]
    reacting.sleep(reacting.store.next_due() - reacting.clock())  # the damping windows end, all at once
    done = [entry for entry in reacting.flush() if "summary" in entry]
    assert len(done) == 6 and reacting.store.next_due() <= reacting.clock() + storm.WINDOW
    summaries = {message["pair"]: message for message in _posted(httpserver, "summary")}
    assert len(summaries) == 3 and "db" in summaries  # the first two of the storm's pairs, and db on its own
    assert summaries["db"]["subject"] == "[db] lbpair lbpair_51: 2 more transitions held back by flap damping"
    reacting.sleep(storm.WINDOW)
    assert [entry["storm"] for entry in reacting.flush() if "storm" in entry] == ["storm:webhook:default"]
    storms = _posted(httpserver, "storm")
    assert len(storms) == 2 and len(_posted(httpserver, "summary")) == 3  # one message for the rest
    rest = sorted(set(storm_pairs) - set(summaries))
    assert storms[1]["subject"] == f"lbpair storm: 6 more transitions in 3 pairs ({', '.join(rest)})"
    for pair in rest:
        assert f"{pair}/lbpair_51: 2 transitions held back by flap damping (" in storms[1]["text"], storms[1]["text"]
    assert [summary["summary"] for summary in storms[1]["details"]["summaries"]] == [2, 2, 2]


def test_the_flap_damping_summary_of_one_pair_goes_out_as_before(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("ok")
    reacting = _reactions(tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"})
    assert _flap(reacting, nodes, "lb1", "lb2") == ["sent", "sent", None, None]
    reacting.sleep(reacting.store.next_due() - reacting.clock())
    assert [entry["sent"] for entry in reacting.flush() if "summary" in entry] == [[{"webhook": "sent"}]]
    summary = _posted(httpserver, "summary")[0]
    assert summary["subject"] == "[lb1+lb2] lbpair lbpair_51: 2 more transitions held back by flap damping"
    assert [held["seq"] for held in summary["details"]["transitions"]] == [2, 2] and not _posted(httpserver, "storm")


def test_a_flap_damping_summary_a_channel_refused_is_reported(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("down", status=500)
    reacting = _reactions(tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"})
    _flap(reacting, nodes, "lb1", "lb2")
    reacting.sleep(reacting.store.next_due() - reacting.clock())
    failed = "failed: the webhook answered HTTP 500"
    assert [entry["sent"] for entry in reacting.flush() if "summary" in entry] == [[{"webhook": failed}]]
    reported = [record["message"] for record in reacting.history.read() if record["kind"] == "step_failed"]
    assert reported[-1] == f"the summary of 2 held transitions: webhook {failed}"


def _storm_of_three_pairs(reacting, nodes):
    """Both nodes of each of the three pairs fail over; the reactor queues their six events."""
    for first, second in PAIRS.values():
        assert "queued" in reacting.queue(_tag(first, "BACKUP"), nodes.journal(first, 1, "BACKUP", "MASTER"))
        assert "queued" in reacting.queue(_tag(second), nodes.journal(second, 1))
        nodes.states[first], nodes.states[second] = "BACKUP", "MASTER"


def test_queued_events_of_many_pairs_take_one_journal_job_and_one_status_job(tmp_path, nodes, pillars):
    told = []
    reacting = _reactions(tmp_path, nodes, pillars)
    reacting.scheduler.report = told.append
    _storm_of_three_pairs(reacting, nodes)
    assert nodes.asked == [] and reacting.store.events_waiting() == 6  # the reactor's threads asked nobody
    done = reacting.flush()
    everyone = ("lb1", "lb2", "lb3", "lb4", "lb5", "lb6")
    assert nodes.asked == [(everyone, reactions.JOURNAL_FUNCTION), (everyone, reactions.STATUS_FUNCTION)]
    assert [item["outcome"]["recorded"]["minion"] for item in done if "event" in item] == list(everyone)
    assert reacting.store.events_waiting() == 0 and told == [done]
    recorded = {(record["pair"], record["minion"]) for record in reacting.history.read() if record["kind"] == "transition"}
    assert recorded == {(pair, node) for pair, pair_nodes in PAIRS.items() for node in pair_nodes}
    assert all(not view["problems"] for view in reacting.status()["pairs"].values())


def test_a_batch_tells_forged_claimed_and_duplicate_events_apart(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    event = nodes.journal("lb1", 1)
    reacting.queue(_tag("lb1"), event)
    reacting.queue(_tag("lb1"), event)  # the same event twice
    reacting.queue(_tag("lb3"), {**_entry(4), "id": "lb3"})  # lb3's journal has no seq 4: forged
    nodes.journals["lb5"] = None  # lb5 does not answer: its event is a claim
    reacting.queue(_tag("lb5"), {**_entry(1), "id": "lb5"})
    reacting.queue(_tag("web1"), {**_entry(1), "id": "web1"})  # no node of any pair
    outcomes = [item["outcome"] for item in reacting.flush() if "event" in item]
    assert "recorded" in outcomes[0] and outcomes[1] == {"duplicate": ["lb1", 1]}
    assert outcomes[2] == {"ignored": "not in the node's journal"}
    assert outcomes[3]["claim"]["minion"] == "lb5" and "ignored" in outcomes[4]
    # one job for the three nodes, and once more for the one that did not answer (it may have just reconnected)
    assert [targets for targets, fun in nodes.asked if fun == reactions.JOURNAL_FUNCTION] == [("lb1", "lb3", "lb5"), ("lb5",)]


def test_the_queue_is_bounded_per_minion_and_refuses_odd_events(tmp_path, nodes, pillars, monkeypatch):
    monkeypatch.setattr(event_queue, "MAX_PER_MINION", 3)
    reacting = _reactions(tmp_path, nodes, pillars)
    assert ["queued" in reacting.queue(_tag("lb1"), _entry(seq)) for seq in range(1, 5)] == [True, True, True, False]
    assert reacting.queue(_tag("lb1"), _entry(5)) == {"ignored": "3 events of lb1 are waiting already"}
    assert "queued" in reacting.queue(_tag("lb2"), _entry(1))  # another node's events still get in
    assert reacting.queue(_tag("lb2"), {**_entry(2), "junk": "x" * event_queue.MAX_EVENT_BYTES})["ignored"].startswith("the event is larger")
    assert reacting.queue("salt/beacon/lb1/other/x", _entry(6)) == {"ignored": "unexpected tag 'salt/beacon/lb1/other/x'"}
    assert reacting.queue(_tag("lb1"), ["not", "a", "mapping"]) == {"ignored": "the data is not a mapping"}


def test_a_batch_that_fails_is_not_retried_for_ever_but_caught_up_from_the_journals(tmp_path, nodes, pillars, monkeypatch):
    reacting = _reactions(tmp_path, nodes, pillars)
    _storm_of_three_pairs(reacting, nodes)

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reactions.batch, "react", broken)
    done = reacting.flush(wait=True)
    assert reacting.store.events_waiting() == 0
    assert {item["outcome"]["failed"] for item in done if "event" in item} == {"RuntimeError: a bug"}
    caught_up = {key for item in done for key in item if key.startswith("catch_up:")}
    assert caught_up == {f"catch_up:{node}" for node in ("lb1", "lb2", "lb3", "lb4", "lb5", "lb6")}
    assert len([record for record in reacting.history.read() if record["kind"] == "transition"]) == 6


def test_the_background_job_wakes_from_its_nap_for_a_queued_event(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    started = reacting.clock()
    reacting.scheduler._nap(5)
    assert reacting.clock() - started == pytest.approx(5)
    reacting.queue(_tag("lb1"), nodes.journal("lb1", 1))
    started = reacting.clock()
    reacting.scheduler._nap(5)
    assert reacting.clock() == started  # queued during the last round: no wait


def test_a_napping_job_gathers_the_events_that_come_with_the_first(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    sleep = reacting.scheduler.sleep

    def event_after_a_second(seconds):
        sleep(seconds)
        if reacting.clock() - started >= 1 and not reacting.store.events_waiting():
            reacting.queue(_tag("lb1"), nodes.journal("lb1", 1))

    reacting.scheduler.sleep = event_after_a_second
    started = reacting.clock()
    reacting.scheduler._nap(5)
    assert reacting.clock() - started == pytest.approx(1 + scheduler.GATHER, abs=scheduler.QUEUE_POLL)  # seen at its next look


def test_a_pair_whose_pillar_changed_gets_a_crew_on_its_new_settings(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    before = reacting._crew_of("lb3")[0]
    assert reacting._crew_of("lb3")[0] is before
    changed = copy.deepcopy(pillars["lb3"])
    changed["nodes"]["lb3"]["address"] = "192.0.2.99"
    pillars["lb3"] = pillars["lb4"] = changed
    reacting.directory = fleet.Directory(None, lambda minion: fleet.claim_of(minion, pillars.get(minion)), lambda: list(pillars))
    after = reacting._crew_of("lb3")[0]
    assert after is not before and after.settings["nodes"]["lb3"]["address"] == "192.0.2.99"


def test_what_a_long_lived_worker_knows_is_made_again_once_it_is_old():
    made, now = [], [0.0]
    known = fleet.kept_for(60, lambda: made.append(1) or len(made), clock=lambda: now[0])
    assert (known(), known()) == (1, 1)
    now[0] = 61
    assert known() == 2
    assert known(fresh=True) == 3 and known() == 3


def test_a_transition_another_master_claimed_on_its_node_is_recorded_and_left_to_it(tmp_path, nodes, pillars, httpserver):
    httpserver.expect_request("/ops").respond_with_data("ok")
    reacting = _reactions(tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"})
    nodes.elsewhere |= {("lb1", 1), ("lb2", 1), ("lb2", 2)}
    reacting.queue(_tag("lb1", "BACKUP"), nodes.journal("lb1", 1, "BACKUP", "MASTER"))
    reacting.queue(_tag("lb2"), nodes.journal("lb2", 1))
    reacting.queue(_tag("lb3"), nodes.journal("lb3", 1))  # this master claimed it first
    outcomes = {item["outcome"]["recorded"]["minion"]: item["outcome"] for item in reacting.flush() if "event" in item}
    assert outcomes["lb1"]["acting"] == outcomes["lb2"]["acting"] == intake.ELSEWHERE and outcomes["lb1"]["steps"] == {}
    assert outcomes["lb3"]["steps"]["webhook"] == "sent"
    assert [request.get_json()["subject"].split(": ")[1] for request, _ in httpserver.log] == ["lb3 is MASTER (was BACKUP)"]
    # only the pair of the transition this master acts on is checked
    assert [targets for targets, fun in nodes.asked if fun == reactions.STATUS_FUNCTION] == [("lb3", "lb4")]
    # a catch-up records what the node journalled meanwhile, and acts on what it got to claim only
    nodes.journal("lb2", 2, "BACKUP", "MASTER")
    nodes.journal("lb2", 3)
    caught = reacting.catch_up("lb2")["reactions"]
    assert [(reaction["recorded"]["seq"], "acting" in reaction) for reaction in caught] == [(2, True), (3, False)]
    assert len([record for record in reacting.history.read() if record["kind"] == "transition"]) == 5


def test_while_the_worker_works_on_a_copy_in_memory_the_reactor_reacts_itself(tmp_path, nodes, pillars):
    reacting = _reactions(tmp_path, nodes, pillars)
    with store.try_locked(f"{reacting.state_path}.memory"):  # the worker's flag: the disk refused its writes
        outcome = reacting.queue(_tag("lb1"), nodes.journal("lb1", 1))
    assert outcome["recorded"]["minion"] == "lb1" and reacting.store.events_waiting() == 0


def test_dns_follows_a_batch_with_the_old_masters_transition_first(tmp_path, nodes, pillars, monkeypatch):
    pointed = []
    monkeypatch.setattr(reactions_config, "pair_settings", _with_dns(reactions_config.pair_settings))
    reacting = _reactions(tmp_path, nodes, pillars)
    asked = reacting.ask
    reacting.ask = lambda *args: (reacting.clock.sleep(0.01), asked(*args))[1]  # a job takes time
    monkeypatch.setattr("saltext.lbpair.master.dns_update.send_update", lambda config, master, node: pointed.append(master))
    nodes.states.update(lb1="BACKUP", lb2="MASTER")
    reacting.queue(_tag("lb1", "BACKUP"), nodes.journal("lb1", 1, "BACKUP", "MASTER"))  # the old MASTER's event first
    reacting.queue(_tag("lb2"), nodes.journal("lb2", 1))
    reacting.flush()
    assert pointed == ["lb2"]


def _with_dns(pair_settings):
    """The pairs' settings with a DNS record that follows every instance (the update itself is the test's)."""

    def settings(config, pair, nodes):
        found = pair_settings(config, pair, nodes)
        return {**found, "dns": {"zone": "pair.example", "records": [{"name": "active", "type": "A", "ttl": 30}], "attempts": 1,
                                 "backoff": 0}}  # fmt: skip

    return settings


def test_a_long_lived_worker_learns_a_changed_pillar_at_its_next_round(tmp_path, nodes, pillars):
    """The resident worker lives for good: a pillar that gained the nodes' IPv6 addresses shows at the next round (AAAA records)."""
    reacting = _reactions(tmp_path, nodes, pillars)
    assert reacting.directory.find("lb3")[0].nodes["lb3"]["address6"] is None
    for node, address6 in (("lb3", "2001:db8::13"), ("lb4", "2001:db8::14")):
        pillars["lb3"]["nodes"][node]["address6"] = address6  # lb3's and lb4's pillars are one mapping
    assert reacting.directory.find("lb3")[0].nodes["lb3"]["address6"] is None  # one round reads each claim once
    reacting.flush()
    assert reacting.directory.find("lb3")[0].nodes["lb3"]["address6"] == "2001:db8::13"
