"""
The reactions of a fleet without Salt: two pairs learned from their nodes' pillars, both with an
instance named lbpair_51, each reacted to on its own settings. ``ask`` answers as the nodes would;
the webhooks are real HTTP receivers on loopback (pytest-httpserver).
"""

import copy

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import fleet, reactions, reactions_config, storm
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

    def ask(self, targets, fun, kwarg, timeout):
        self.asked.append((tuple(targets), fun))
        answers = {}
        for node in targets:
            if fun == reactions.JOURNAL_FUNCTION and self.journals.get(node) is not None:
                answers[node] = [entry for entry in self.journals[node] if entry["seq"] > kwarg["since"]]
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
    pillars["lb7"] = pillars["lb8"] = _named_pair(pillars["lb1"], "cache", "lb7", "lb8")
    nodes.journals.update(lb7=[], lb8=[])
    nodes.states.update(lb7="BACKUP", lb8="MASTER")
    reacting = _reactions(
        tmp_path, nodes, pillars, webhook={"url": httpserver.url_for("/ops"), "format": "generic"},
        pairs={"db": {"webhook": {"url": httpserver.url_for("/db-team"), "format": "generic"}}},
    )  # fmt: skip
    steps = {}
    for name in ("lb1+lb2", "api", "db", "cache"):  # four pairs fail over in the same second
        first, second = PAIRS.get(name, ("lb7", "lb8"))
        steps[first] = reacting.on_beacon(_tag(first, "BACKUP"), nodes.journal(first, 1, "BACKUP", "MASTER"))["steps"]["webhook"]
        steps[second] = reacting.on_beacon(_tag(second), nodes.journal(second, 1))["steps"]["webhook"]
    held = "held for the storm's summary"
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
