"""
Draining a server across the pair without Salt: ``ask`` answers as two HAProxy nodes whose
server sessions end at given times of a fake clock (:class:`tests.unit.clock.Clock`), the
names are checked against the seed pillar, and the history is a real file.
"""

import pytest

from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.master import drain, history
from tests.unit.test_reaction_steps import INSTANCE, Nodes, _reactions


class HAProxyNodes(Nodes):
    """
    Nodes with HAProxy: ``sessions[node]`` is a list of ``(until, count)``: the server holds ``count``
    sessions until the clock passes ``until`` (then the next entry; none left after the last).
    """

    def __init__(self):
        super().__init__()
        self.clock = None
        self.sessions = {"lb1": [], "lb2": []}
        self.admin = {"lb1": "ready", "lb2": "ready"}
        self.set_calls = []
        self.garbage = {}  # node: the fields it answers instead of HAProxy's
        self.set_failing = {}  # node: why its set_server fails

    def count(self, node):
        return next((count for until, count in self.sessions[node] if self.clock() < until), 0)

    def fields(self, node):
        if node in self.garbage:
            return self.garbage[node]
        return {"status": "DRAIN" if self.admin[node] == "drain" else "UP", "scur": str(self.count(node))}

    def ask(self, targets, fun, kwarg, timeout):
        if fun == drain.SET_FUNCTION:
            self.asked.append((tuple(targets), fun))
            for node in targets:
                self.set_calls.append((node, kwarg["service"], kwarg["server"], kwarg["state"]))
                self.admin[node] = kwarg["state"]
            answers = {node: self.fields(node) for node in targets if node not in self.set_failing}
            return answers, {node: self.set_failing[node] for node in targets if node in self.set_failing}
        if fun == drain.SERVERS_FUNCTION:
            self.asked.append((tuple(targets), fun))
            return {node: {"foo1": self.fields(node), "foo2": {"status": "UP", "scur": "5"}} for node in targets}, {}
        return super().ask(targets, fun, kwarg, timeout)


@pytest.fixture
def nodes():
    return HAProxyNodes()


@pytest.fixture
def reacting(tmp_path, nodes):
    reacting, _ = _reactions(tmp_path, nodes)
    nodes.clock = reacting.clock
    return reacting


@pytest.fixture
def drains(reacting, seed_pillar):
    return reacting.drains(lambda node: seed_pillar)


def _records(reacting, kind):
    return [record for record in reacting.history.read() if record["kind"] == kind]


def _polls(nodes):
    return sum(1 for _, fun in nodes.asked if fun == drain.SERVERS_FUNCTION)


def test_drain_sets_the_vips_holder_first_and_waits_until_the_sessions_end(reacting, drains, nodes):
    start = reacting.clock()
    nodes.sessions = {"lb1": [(start + 0.4, 1)], "lb2": [(start + 0.7, 3), (start + 1.2, 1)]}  # lb2 is MASTER
    result = drains.drain("foo", "foo1", timeout=60, by="alice")
    assert [(node, state) for node, _, _, state in nodes.set_calls] == [("lb2", "drain"), ("lb1", "drain")]
    assert result["order"] == ["lb2", "lb1"] and result["pair"] == "lb1+lb2"
    assert result["drained"] is True and result["sessions_left"] == 0 and result["unknown"] == []
    assert result["waited"] == 1.5 and _polls(nodes) == 3  # read at 0.5 (4 left), 1.0 (1 left), 1.5 (none)
    assert result["nodes"]["lb2"] == {"state": "drain", "status": "DRAIN", "sessions": 0}
    [record] = _records(reacting, "drain")
    assert (record["pair"], record["service"], record["server"], record["by"]) == ("lb1+lb2", "foo", "foo1", "alice")
    assert record["nodes"] == ["lb2", "lb1"] and record["drained"] is True and record["waited"] == 1.5


def test_the_node_holding_the_vips_is_drained_first_whichever_it_is(drains, nodes):
    nodes.states = {"lb1": "MASTER", "lb2": "BACKUP"}
    assert drains.drain("foo", "foo1", wait=False)["order"] == ["lb1", "lb2"]
    assert [node for node, *_ in nodes.set_calls] == ["lb1", "lb2"]


def test_a_drain_that_times_out_says_how_many_sessions_are_left(reacting, drains, nodes):
    start = reacting.clock()
    nodes.sessions = {"lb1": [(start + 100, 2)], "lb2": [(start + 100, 5)]}
    result = drains.drain("foo", "foo1", timeout=2)
    assert result["drained"] is False and result["sessions_left"] == 7 and result["waited"] == 2.0 and result["timeout"] == 2
    assert _polls(nodes) == 4 and reacting.clock() == pytest.approx(start + 2)
    assert {node: entry["sessions"] for node, entry in result["nodes"].items()} == {"lb1": 2, "lb2": 5}
    [record] = _records(reacting, "drain")
    assert record["sessions_left"] == 7 and "7 sessions left after 2.0 s" in record["message"]


def test_the_last_wait_ends_at_the_timeout_not_a_whole_poll_later(reacting, drains, nodes):
    start = reacting.clock()
    nodes.sessions = {"lb1": [(start + 100, 1)], "lb2": []}
    result = drains.drain("foo", "foo1", timeout=1.2)
    assert result["waited"] == 1.2 and _polls(nodes) == 3  # sleeps 0.5, 0.5, 0.2
    assert "1 session left after 1.2 s" in _records(reacting, "drain")[0]["message"]
    assert reacting.clock() == pytest.approx(start + 1.2)


def test_sessions_ended_when_drained_are_not_waited_for(drains, nodes):
    result = drains.drain("foo", "foo1")
    assert result["drained"] is True and result["waited"] == 0.0 and _polls(nodes) == 0


def test_without_wait_the_drain_tells_the_sessions_it_saw_when_setting(reacting, drains, nodes):
    start = reacting.clock()
    nodes.sessions = {"lb1": [(start + 100, 3)], "lb2": []}
    result = drains.drain("foo", "foo1", wait=False)
    assert result["drained"] is False and result["sessions_left"] == 3 and result["waited"] == 0.0 and result["timeout"] is None
    assert _polls(nodes) == 0


def test_ready_puts_the_server_back_on_both_nodes_and_both_are_in_the_history(reacting, drains, nodes):
    drains.drain("foo", "foo1", by="alice")
    result = drains.ready("foo", "foo1", by="alice")
    assert [(node, state) for node, _, _, state in nodes.set_calls[2:]] == [("lb2", "ready"), ("lb1", "ready")]
    assert result["nodes"]["lb1"] == {"state": "ready", "status": "UP", "sessions": 0}
    assert [record["kind"] for record in reacting.history.read()] == ["drain", "ready"]
    lines = history.timeline(history.select(reacting.history.read(), pair="lb1+lb2"))
    assert "DRAIN: foo/foo1 set to drain on lb2, lb1 by alice: drained after 0.0 s" in lines[0]
    assert "READY: foo/foo1 set to ready on lb2, lb1 by alice" in lines[1]


HOSTILE_NAMES = [
    "foo;shutdown", "../x", "foo/../../etc", "foo\nbar", "foo\r", "foo bar", "-foo", "", " foo", "f" * 64, "x" * 100_000,
    "foo\x00", "fóo", "\u2028", None, 5, True, ["foo"], {"foo": 1},
]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
@pytest.mark.parametrize("which", ["service", "server"])
def test_hostile_names_are_refused_before_any_node_is_asked(reacting, drains, nodes, name, which):
    names = {"service": "foo", "server": "foo1", which: name}
    for call in (drains.drain, drains.ready):
        with pytest.raises(InvalidValue) as refused:
            call(names["service"], names["server"])
        message = str(refused.value)
        assert message.startswith(f"{which}: ") and len(message) < 300 and "\n" not in message and "\r" not in message
    assert nodes.asked == [] and reacting.history.read() == []


@pytest.mark.parametrize(
    ("service", "server", "which"),
    [("nope", "foo1", "service"), ("foo", "foo9", "server"), ("foo", "bar1", "server"), ("FOO", "foo1", "service")],
)
def test_names_the_pillar_does_not_define_are_refused(reacting, drains, nodes, service, server, which):
    with pytest.raises(InvalidValue, match=f"^{which}: .* is not a (service|server) of") as refused:
        drains.drain(service, server)
    assert "known: " in str(refused.value)
    assert nodes.set_calls == [] and reacting.history.read() == []


def test_a_name_only_one_node_s_pillar_defines_is_refused(reacting, nodes, seed_pillar):
    other = {**seed_pillar, "services": {**seed_pillar["services"]}}
    del other["services"]["bar"]
    drains = reacting.drains(lambda node: other if node == "lb2" else seed_pillar)
    with pytest.raises(InvalidValue, match="'bar' is not a service of lb2's lbpair pillar"):
        drains.drain("bar", "bar1")
    assert nodes.set_calls == []


def test_a_routed_backend_is_named_as_haproxy_names_it(seed_pillar):
    seed_pillar["services"]["shop"] = {
        "vip": "203.0.113.50", "port": 80, "default_backend": "web",
        "backends": {"web": {"servers": {"web1": {"address": "198.51.100.51", "port": 80}}}},
    }  # fmt: skip
    pools = drain.pools_of(seed_pillar)
    assert pools["shop.web"] == {"servers": frozenset({"web1"}), "instances": frozenset({INSTANCE})}
    assert "shop" not in pools and pools["foo"]["servers"] == {"foo1", "foo2"}
    assert drain.check_names("shop.web", "web1", {"lb1": pools, "lb2": pools}) == {INSTANCE}


def test_refused_unless_both_nodes_answer(reacting, drains, nodes):
    nodes.states["lb1"] = None  # lb1 does not answer
    for call in (drains.drain, drains.ready):
        with pytest.raises(LbpairError, match="lb1 did not answer: a (drain|ready) needs the whole pair"):
            call("foo", "foo1")
    assert nodes.set_calls == []


def test_a_set_that_fails_on_the_second_node_is_recorded_and_raised(reacting, drains, nodes):
    nodes.set_failing["lb1"] = "HAProxy refused: No such server.\nCRITICAL forged line"
    with pytest.raises(LbpairError, match="drain failed on lb1") as failed:
        drains.drain("foo", "foo1")
    assert "done on: lb2" in str(failed.value) and "\n" not in str(failed.value)
    [record] = _records(reacting, "drain")
    assert record["failed"] == "lb1" and record["nodes"] == ["lb2"] and "\n" not in record["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "DRAIN", "scur": "-1"}, {"status": "DRAIN", "scur": "1e3"}, {"status": "DRAIN", "scur": "9" * 20},
        {"status": "DRAIN", "scur": ["0"]}, {"status": "DRAIN", "scur": True}, {"status": "DRAIN"}, {"status": "DRAIN", "scur": " 0"},
        "0", None, ["scur", "0"],
    ],
    ids=repr,
)
def test_a_node_answer_that_holds_no_believable_count_is_unknown_never_drained(reacting, drains, nodes, fields):
    nodes.garbage["lb1"] = fields
    result = drains.drain("foo", "foo1", timeout=1)
    assert result["drained"] is False and result["unknown"] == ["lb1"] and result["nodes"]["lb1"]["sessions"] is None
    assert result["sessions_left"] == 0 and result["waited"] == 1.0


@pytest.mark.parametrize("status", ["<script>alert(1)</script>", "UP\nCRITICAL", "x" * 65, "", 3, None, "DRAIN\x1b[2J"], ids=repr)
def test_a_status_haproxy_would_not_give_is_not_passed_on(drains, nodes, status):
    nodes.garbage["lb1"] = {"status": status, "scur": "0"}
    result = drains.drain("foo", "foo1")
    assert result["nodes"]["lb1"]["status"] is None and result["drained"] is True


def test_statuses_haproxy_gives_are_passed_on():
    for status in ("UP", "DRAIN", "MAINT", "MAINT (via foo/foo1)", "UP 1/3", "no check", "DOWN (agent)"):
        assert drain.status_of({"status": status}) == status


@pytest.mark.parametrize(("wait", "timeout"), [("yes", 60), (1, 60), (True, -1), (True, 3601), (True, "60"), (True, None)], ids=repr)
def test_wait_and_timeout_are_checked(drains, nodes, wait, timeout):
    with pytest.raises(InvalidValue):
        drains.drain("foo", "foo1", wait=wait, timeout=timeout)
    assert nodes.asked == []


def test_the_user_is_one_bounded_line(reacting, drains):
    drains.drain("foo", "foo1", by="eve\nCRITICAL: split brain" + "x" * 500)
    [record] = _records(reacting, "drain")
    assert "\n" not in record["by"] and len(record["by"]) <= 2 * drain.MAX_USER and "\n" not in record["message"]
    assert drain.who("UNKNOWN") is None and drain.who(None) is None


def test_outcome_arithmetic():
    assert drain.outcome(["lb1", "lb2"], {"lb1": 2, "lb2": None}, 10.0, 12.34) == {
        "drained": False, "sessions_left": 2, "unknown": ["lb2"], "waited": 2.3,
    }  # fmt: skip
    assert drain.outcome(["lb1", "lb2"], {"lb1": 0, "lb2": 0}, 10.0, 10.0)["drained"] is True
    assert drain.outcome(["lb1"], {"lb1": 0}, 10.0, 9.0)["waited"] == 0.0  # a clock set back


def test_a_pair_the_master_does_not_know_is_refused(reacting, seed_pillar):
    with pytest.raises(InvalidValue, match="^pair: 'web' is not a pair the master knows"):
        reacting.drains(lambda node: seed_pillar, pair="web")
