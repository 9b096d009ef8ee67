"""Planned moves without Salt: ``ask`` answers as a pair of nodes whose track files decide who is MASTER."""

import pytest

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.master import planned, reactions
from saltext.lbpair.node import handover, track
from tests.unit.test_reaction_steps import INSTANCE, Nodes, _reactions


class Pair(Nodes):
    """Nodes whose state follows their priority, deferral and maintenance, as keepalived's would."""

    def __init__(self):
        super().__init__()
        self.priority = {"lb1": 101, "lb2": 100}
        self.deferring, self.in_maintenance = set(), set()
        self.settle()

    def settle(self):
        effective = {n: p - (10 if n in self.deferring else 0) for n, p in self.priority.items() if n not in self.in_maintenance}
        master = max(effective, key=effective.get)
        self.states = {n: "FAULT" if n in self.in_maintenance else "MASTER" if n == master else "BACKUP" for n in self.priority}

    def ask(self, targets, fun, kwarg, timeout):
        if fun == planned.HANDOVER_FUNCTION:
            if kwarg.get("defer", True):
                self.deferring.update(targets)
            self.waiting = frozenset()  # its peer takes the VIPs over and keeps them (its check has risen)
            self.settle()
            return {node: [{"step": "handed over"}] for node in targets}, {}
        if fun in (planned.DEFER_FUNCTION, planned.MAINTENANCE_FUNCTION):
            flags = self.deferring if fun == planned.DEFER_FUNCTION else self.in_maintenance
            for node in targets:
                (flags.add if kwarg["on"] else flags.discard)(node)
            self.settle()
            return {node: True for node in targets}, {}
        return super().ask(targets, fun, kwarg, timeout)


@pytest.fixture
def pair():
    return Pair()


def _moves(tmp_path, pair):
    reacting, _ = _reactions(tmp_path, pair)
    return reacting.planned_moves(grace=0), reacting


def test_switchover_moves_the_vips_records_the_plan_and_is_idempotent(tmp_path, pair):
    moves, reacting = _moves(tmp_path, pair)
    result = moves.switchover("lb2", timeout=1)
    assert result["moved"] and pair.states == {"lb1": "BACKUP", "lb2": "MASTER"} and pair.deferring == {"lb1"}
    assert [r["kind"] for r in reacting.history.read()] == ["planned"]
    assert moves.switchover("lb2", timeout=1)["moved"] is False
    assert moves.switchover("lb1", timeout=1)["moved"] and pair.deferring == {"lb2"}


def test_transitions_of_a_planned_move_are_marked_planned(tmp_path, pair):
    moves, reacting = _moves(tmp_path, pair)
    moves.switchover("lb2", timeout=1)
    pair.journals["lb2"] = [{"seq": 1, "instance": INSTANCE, "state": "MASTER", "previous_state": "BACKUP", "vips": []}]
    reacting.on_beacon(f"salt/beacon/lb2/lbpair_vrrp/{INSTANCE}/MASTER", {**pair.journals["lb2"][0], "id": "lb2"})
    record = [r for r in reacting.history.read() if r["kind"] == "transition"][0]
    assert record["planned"] is True


@pytest.mark.parametrize(
    ("harm", "words"),
    [
        (lambda p: p.journals.update(lb2=None) or p.states.update(lb2=None), "lb2 did not answer"),
        (lambda p: p.states.update(lb2="MASTER"), "split brain"),
        (lambda p: p.states.update(lb2="FAULT"), "lb2 is FAULT"),
    ],
)
def test_a_move_to_an_unhealthy_or_silent_peer_is_refused(tmp_path, pair, harm, words):
    moves, reacting = _moves(tmp_path, pair)
    harm(pair)
    with pytest.raises(LbpairError, match=words):
        moves.switchover("lb2", timeout=1)
    assert pair.deferring == set() and reacting.history.read() == []


def test_a_pair_that_does_not_hand_over_is_undone(tmp_path, pair):
    moves, _ = _moves(tmp_path, pair)
    pair.settle = lambda: None  # the hand-over moved nothing
    with pytest.raises(LbpairError, match="did not move to lb2"):
        moves.switchover("lb2", timeout=1)
    assert pair.deferring == set()


def test_maintenance_hands_the_vips_over_first_and_release_leaves_them(tmp_path, pair):
    moves, _ = _moves(tmp_path, pair)
    result = moves.maintenance("lb1", release=False, timeout=1)
    assert result["switchover"]["moved"] and result["out"]
    assert pair.states == {"lb1": "FAULT", "lb2": "MASTER"}
    moves.maintenance("lb1", release=True, timeout=1)
    assert pair.states == {"lb1": "BACKUP", "lb2": "MASTER"}


def test_maintenance_of_a_stranger_is_refused(tmp_path, pair):
    moves, _ = _moves(tmp_path, pair)
    with pytest.raises(Exception, match="not a node of the pair"):
        moves.maintenance("web7", release=False, timeout=1)



class Keepalived:
    """This node's keepalived as :class:`saltext.lbpair.node.keepalived_process.Local` reports it."""

    def __init__(self, state, others=None):
        self.states = {INSTANCE: state, **(others or {})}

    def status(self):
        return {name: {"state": state} for name, state in self.states.items()}


def test_a_node_that_holds_no_vips_has_nothing_to_hand_over(tmp_path):
    written = []
    with pytest.raises(LbpairError, match="holds no VIPs to hand over"):
        handover.hand_over({}, Keepalived("BACKUP"), lambda *a: written.append(a), lock=str(tmp_path / "lock"))
    assert written == []


def test_an_active_active_node_hands_over_what_it_holds(tmp_path):
    """MASTER of one instance, BACKUP of the other: not refused (it gets as far as the lock)."""
    with store.try_locked(str(tmp_path / "lock")), pytest.raises(LbpairError, match="under way"):
        handover.hand_over({}, Keepalived("MASTER", {"lbpair_52": "BACKUP"}), lambda *a: None, lock=str(tmp_path / "lock"))


def test_one_handover_at_a_time(tmp_path):
    written = []
    with store.try_locked(str(tmp_path / "lock")), pytest.raises(LbpairError, match="under way"):
        handover.hand_over({}, Keepalived("MASTER"), lambda *a: written.append(a), lock=str(tmp_path / "lock"))
    assert written == []


def test_an_interrupted_handover_is_seen_but_not_undone_while_one_is_under_way(tmp_path):
    track.write(track.HANDOVER, 1, str(tmp_path))
    seen = handover.undo_interrupted({}, test=True, lock=str(tmp_path / "lock"), track_directory=str(tmp_path))
    assert seen == {
        "result": None, "comment": "a handover cut short would be undone", "changes": {"interrupted_handover": ["handover track file"]},
    }  # fmt: skip
    assert track.read(track.HANDOVER, str(tmp_path)) == 1
    with store.try_locked(str(tmp_path / "lock")):
        under_way = handover.undo_interrupted({}, lock=str(tmp_path / "lock"), track_directory=str(tmp_path))
    assert under_way == {"result": True, "comment": "a handover is under way: nothing to undo", "changes": {}}
    assert track.read(track.HANDOVER, str(tmp_path)) == 1


class ActiveActive(Pair):
    """Two instances: lbpair_51 prefers lb1, lbpair_52 lb2; deferring lowers a node in both, as keepalived's track file does."""

    PREFERRED = {"lbpair_51": "lb1", "lbpair_52": "lb2"}
    answers = None  # what the nodes answer to lbpair_keepalived.preferred instead, if set
    waiting = frozenset()  # nodes back from FAULT, waiting the failback delay (below their peer until it hands over)

    def settle(self):
        self.instance_states = {}
        for instance, favourite in self.PREFERRED.items():
            lowered = self.deferring | self.waiting
            effective = {n: (101 if n == favourite else 100) - (10 if n in lowered else 0) for n in ("lb1", "lb2")}
            master = max(effective, key=effective.get)
            self.instance_states[instance] = {n: "MASTER" if n == master else "BACKUP" for n in effective}
        self.states = {n: "MASTER" if n in self.masters() else "BACKUP" for n in ("lb1", "lb2")}  # Nodes' single view

    def masters(self):
        return {instance: [n for n, state in states.items() if state == "MASTER"] for instance, states in self.instance_states.items()}

    def ask(self, targets, fun, kwarg, timeout):
        if fun == planned.PREFERRED_FUNCTION:
            deferring = self.deferring if kwarg.get("failback") else set()
            return self.answers or {
                node: [] if node in deferring else sorted(i for i, n in self.PREFERRED.items() if n == node) for node in targets
            }, {}
        if fun == reactions.STATUS_FUNCTION:
            answers = {n: {i: {"state": s[n], "vrid": int(i[7:9]), "vips": [], "source": "dbus"} for i, s in self.instance_states.items()}
                       for n in targets}  # fmt: skip
            return answers, {}
        return super().ask(targets, fun, kwarg, timeout)


def test_rebalance_gives_each_instance_back_to_the_node_that_prefers_it(tmp_path):
    pair = ActiveActive()
    moves, reacting = _moves(tmp_path, pair)
    assert moves.switchover("lb1", timeout=1)["moved"] and pair.masters() == {"lbpair_51": ["lb1"], "lbpair_52": ["lb1"]}
    result = moves.rebalance(timeout=1)
    assert result["moved"] and result["preferred"] == {"lbpair_51": "lb1", "lbpair_52": "lb2"}
    assert pair.masters() == {"lbpair_51": ["lb1"], "lbpair_52": ["lb2"]} and pair.deferring == set()
    plans = [(r["instance"], r["minion"]) for r in reacting.history.read() if r["kind"] == "planned"]
    assert plans[-1:] == [("lbpair_52", "lb2")]  # only the instance that moves
    assert moves.rebalance(timeout=1)["moved"] is False


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"lb1": ["lbpair_51", "lbpair_52"], "lb2": ["lbpair_52"]}, "both lb1 and lb2 prefer it"),
        ({"lb1": ["lbpair_51"], "lb2": "lbpair_52; rm -rf /"}, "no node prefers lbpair_52"),
        ({"lb1": ["lbpair_51"], "lb2": [{"lbpair_52": 1}]}, "no node prefers lbpair_52"),
    ],
)
def test_a_rebalance_on_answers_that_disagree_or_make_no_sense_is_refused(tmp_path, answers, words):
    pair = ActiveActive()
    moves, _ = _moves(tmp_path, pair)
    moves.switchover("lb1", timeout=1)
    pair.answers = answers
    with pytest.raises(LbpairError, match=words):
        moves.rebalance(timeout=1)
    assert pair.deferring == {"lb2"}  # nothing was told


class BackFromFault(ActiveActive):
    """lb1 prefers both instances of a dual-stack pair, is back from FAULT and waits the failback delay."""

    PREFERRED = {"lbpair_51": "lb1", "lbpair_51_6": "lb1"}
    waiting = frozenset({"lb1"})


def test_a_node_back_from_fault_has_its_vips_handed_back_once(tmp_path):
    pair = BackFromFault()
    moves, reacting = _moves(tmp_path, pair)
    assert pair.masters() == {"lbpair_51": ["lb2"], "lbpair_51_6": ["lb2"]}
    result = moves.failback("lb1", "lbpair_51")
    assert result["moved"] and result["to"] == "lb1" and pair.deferring == set()  # lb2 does not defer: it prefers nothing
    assert pair.masters() == {"lbpair_51": ["lb1"], "lbpair_51_6": ["lb1"]}
    plans = sorted((r["instance"], r["minion"], r["message"]) for r in reacting.history.read() if r["kind"] == "planned")
    assert plans == [(name, "lb1", "planned failback: the VIPs move to lb1") for name in ("lbpair_51", "lbpair_51_6")]
    again = moves.failback("lb1", "lbpair_51_6")  # the IPv6 sibling's own transition comes after the hand-over
    assert again == {"moved": False, "comment": "no graceful failback: lb1 holds lbpair_51_6 already"}


def test_no_failback_takes_a_node_its_own_instance(tmp_path):
    """Active/active: lb2 holds lb1's instance and its own; a hand-over would move both, so keepalived preempts."""
    pair = ActiveActive()
    pair.waiting = frozenset({"lb1"})
    pair.settle()
    moves, _ = _moves(tmp_path, pair)
    result = moves.failback("lb1", "lbpair_51")
    assert result == {"moved": False, "comment": "lb2 holds lbpair_52 too: keepalived's preemption moves lbpair_51 back"}
    assert pair.waiting == {"lb1"}  # no hand-over


@pytest.mark.parametrize(
    ("harm", "words"),
    [
        (lambda p: p.deferring.add("lb1"), "lb1 does not wait for lbpair_51 to be handed back"),  # after a switchover
        (lambda p: setattr(p, "answers", {"lb1": "lbpair_51"}), "lb1 does not wait for lbpair_51"),  # nonsense answer
        (lambda p: p.instance_states["lbpair_51"].update(lb1="FAULT"), "lb1 is FAULT, not ready"),
        (lambda p: p.instance_states["lbpair_51"].update(lb1="MASTER"), "split brain"),
    ],
)
def test_no_failback_to_a_node_that_does_not_wait_for_it_or_is_not_ready(tmp_path, harm, words):
    pair = BackFromFault()
    moves, reacting = _moves(tmp_path, pair)
    harm(pair)
    result = moves.failback("lb1", "lbpair_51")
    assert result["moved"] is False and words in result["comment"], result
    assert pair.waiting == {"lb1"} and reacting.history.read() == []  # no hand-over


def _back_from_fault(pair, reacting, **entry):
    journalled = {"seq": 1, "instance": "lbpair_51", "state": "BACKUP", "previous_state": "FAULT", "vips": [], **entry}
    pair.journals["lb1"] = [journalled]
    return reacting.on_beacon(f"salt/beacon/lb1/lbpair_vrrp/lbpair_51/{journalled['state']}", {**journalled, "id": "lb1"})


def test_a_live_return_from_fault_sets_off_the_failback(tmp_path):
    pair = BackFromFault()
    reacting, _ = _reactions(tmp_path, pair)
    outcome = _back_from_fault(pair, reacting)
    assert outcome["steps"]["failback"]["moved"] is True and pair.masters()["lbpair_51"] == ["lb1"]


@pytest.mark.parametrize(("previous", "state"), [("MASTER", "BACKUP"), ("FAULT", "MASTER"), ("INIT", "BACKUP")])
def test_other_transitions_set_off_no_failback(tmp_path, previous, state):
    pair = BackFromFault()
    reacting, _ = _reactions(tmp_path, pair)
    outcome = _back_from_fault(pair, reacting, previous_state=previous, state=state)
    assert "failback" not in outcome["steps"] and pair.deferring == set()


def test_a_node_back_in_fault_before_the_hand_over_gets_nothing(tmp_path):
    """HAProxy started while a probe of the dead one was under way: out of FAULT for a few milliseconds."""
    pair = BackFromFault()
    reacting, _ = _reactions(tmp_path, pair)
    relapse = lambda _: pair.instance_states["lbpair_51"].update(lb1="FAULT")  # noqa: E731  (during the settle time)
    result = reacting.planned_moves(sleep=relapse, grace=0).failback("lb1", "lbpair_51")
    assert result["moved"] is False and "lb1 is FAULT" in result["comment"], result
    assert pair.waiting == {"lb1"} and reacting.history.read() == []  # no hand-over
