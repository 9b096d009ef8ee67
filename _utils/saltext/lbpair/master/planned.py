"""
Planned moves of a pair's VIPs: a switchover to a named node, and maintenance mode.

Both work through keepalived track files on the nodes (:mod:`saltext.lbpair.node.track`),
which survive highstate and reboots:

- ``defer``: a node that defers runs with its priority lowered below its peer's,
  so it does not take the VIPs back (with preempt) while its peer is healthy; it
  still takes them over if the peer fails. A switchover sets it on every node but
  the one named, and clears it there.
- the hand-over itself (:mod:`saltext.lbpair.node.handover`, on the node holding the VIPs):
  new connections held for a moment, those under way finished, a brief FAULT so
  that the peer takes over after its skew time: no request fails.
- rebalance: with several instances (active/active), no node defers any more, so
  keepalived's preemption sends each instance back to the node that prefers it
  (as the nodes' own pillar says: ``lbpair_keepalived.preferred``).
- failback: a node back from FAULT that prefers an instance waits the failback
  delay (keepalived's ``preempt_delay``) before it preempts; meanwhile the master
  has the node holding the VIPs hand them over as in a switchover, so that no
  connection under way is cut. Only when that node holds no instance it prefers
  itself (the hand-over moves every instance): otherwise keepalived preempts.
- ``maintenance``: the node is in FAULT until released. It is entered only after
  the node has handed its VIPs over by a switchover, so entering moves nothing
  abruptly; releasing it leaves the VIPs where they are.

Both are refused unless every node answers and the pair has one MASTER per
instance and no node in FAULT (the node that is to take over must be healthy).
The history records each plan (``kind: planned``), the transitions it causes
are marked ``planned``, and the notifications say so.
"""

import time

from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.master import records
from saltext.lbpair.master.history import select, timeline
from saltext.lbpair.model import schema
from saltext.lbpair.model.keepalived_model import VrrpState

DEFER_FUNCTION = "lbpair_keepalived.defer"
HANDOVER_FUNCTION = "lbpair_keepalived.hand_over"
MAINTENANCE_FUNCTION = "lbpair_keepalived.maintenance"
PREFERRED_FUNCTION = "lbpair_keepalived.preferred"
POLL = 0.5  # s between two looks at the pair while a planned move is under way
CONFIRM_GRACE = 15  # s the reaction may take to record the confirmed transition after the move


def move_problem(view, nodes, target):
    """Why the VIPs cannot be moved to ``target`` now (a message), or ``None``."""
    if target not in nodes:
        return f"{target!r} is not a node of the pair"
    return pair_problem(view, [target])


def pair_problem(view, takers):
    """Why the pair cannot move VIPs now, to any of ``takers`` (a message), or ``None``."""
    if view["unreachable"]:
        return f"{', '.join(view['unreachable'])} did not answer: a planned move needs the whole pair"
    if not view["instances"]:
        return "the nodes report no VRRP instance"
    for instance, entry in sorted(view["instances"].items()):
        if entry["problem"]:
            return f"{instance}: {entry['problem'].replace('_', ' ')}: settle the pair first"
        for taker in takers:
            if entry["states"].get(taker) not in (VrrpState.MASTER, VrrpState.BACKUP):
                return f"{instance}: {taker} is {entry['states'].get(taker)}, not ready to take the VIPs"
    return None


def held_by(view, target):
    """Whether ``target`` is the sole MASTER of every instance."""
    return all(entry["MASTER"] == [target] for entry in view["instances"].values())


def on_preferred(view, preferred):
    """Whether each instance of ``preferred`` (``{instance: node}``) has that node as its sole MASTER."""
    return all(view["instances"].get(instance, {}).get("MASTER") == [node] for instance, node in preferred.items())


def peer_of(nodes, node):
    others = [other for other in nodes if other != node]
    if len(others) != 1:
        raise LbpairError(f"maintenance needs a pair; {len(others) + 1} nodes are configured")
    return others[0]


FAILBACK_TIMEOUT = 30  # s: a failback's plan marks the transitions it causes "planned" this long
# s a node back from FAULT must stay ready before its VIPs are handed back: HAProxy started again
# while a probe of the dead one was under way brings it out of FAULT for a few milliseconds
FAILBACK_SETTLE = 1
MAX_TIMEOUT = 600  # s: a plan marks the transitions of its instances "planned" until it times out


class PlannedMoves:
    """
    Planned moves of the pair: ``client`` calls its nodes (:class:`~saltext.lbpair.master.node_client.NodeClient`),
    ``chronicle`` records the plans (:class:`~saltext.lbpair.master.chronicle.Chronicle`), ``pair_state()``
    reads the pair's view, ``store`` keeps the plans
    (:class:`~saltext.lbpair.master.reaction_state.ReactionStore`).
    """

    def __init__(self, client, chronicle, pair_state, store, sleep=time.sleep, grace=CONFIRM_GRACE, clock=time.time):
        self.client = client
        self.chronicle = chronicle
        self.pair_state = pair_state
        self.store = store
        self.nodes = list(client.nodes)
        self.sleep = sleep
        self.grace = grace
        self.clock = clock

    def _wait_for(self, condition, timeout):
        deadline = self.clock() + timeout
        while True:
            view = self.pair_state()
            if condition(view):
                return view
            if self.clock() >= deadline:
                return None
            self.sleep(POLL)

    def _plan(self, targets, reason, timeout):
        """
        Record the plan, ``targets`` ``{instance: node}``: the history says so, and the
        transitions it causes are marked ``planned``.
        """
        until = self.clock() + timeout + self.grace
        self.store.plan(targets, until)
        moves = sorted(targets.items())
        self._note([records.planned(name, target, f"planned {reason}: the VIPs move to {target}") for name, target in moves])

    def _note(self, notes):
        for note in notes:
            self.chronicle.note(note)

    def switchover(self, target, timeout):
        """Move every instance's VIPs to ``target`` with no failed request; the timeline of what happened."""
        timeout = schema.number(timeout, "timeout", 1, MAX_TIMEOUT)
        started = self.clock()
        view = self.pair_state()
        problem = move_problem(view, self.nodes, target)
        if problem:
            raise LbpairError(f"switchover refused: {problem}")
        if held_by(view, target):
            self.client.tell([target], DEFER_FUNCTION, False)
            return {"moved": False, "comment": f"{target} holds the VIPs already"}
        self._plan(dict.fromkeys(view["instances"], target), "switchover", timeout)
        self.client.tell([target], DEFER_FUNCTION, False)
        holders = sorted({node for entry in view["instances"].values() for node in entry["MASTER"]} - {target})
        others = [node for node in self.nodes if node not in (target, *holders)]
        if others:
            self.client.tell(others, DEFER_FUNCTION, True)
        handed = self.client.tell(holders, HANDOVER_FUNCTION)
        if self._wait_for(lambda seen: held_by(seen, target), timeout) is None:
            self.client.tell([node for node in self.nodes if node != target], DEFER_FUNCTION, False)
            raise LbpairError(f"the VIPs did not move to {target} within {timeout} s; the other nodes no longer defer")
        return {"moved": True, "to": target, "hand_over": handed, "timeline": self._timeline(started, {target})}

    def rebalance(self, timeout):
        """Each instance back to the node that prefers it: no node defers any more, keepalived preempts."""
        timeout = schema.number(timeout, "timeout", 1, MAX_TIMEOUT)
        started = self.clock()
        view = self.pair_state()
        problem = pair_problem(view, self.nodes)
        if problem:
            raise LbpairError(f"rebalance refused: {problem}")
        preferred = self._preferred(view)
        moving = {instance: node for instance, node in preferred.items() if view["instances"][instance]["MASTER"] != [node]}
        if moving:
            self._plan(moving, "rebalance", timeout)
        self.client.tell(self.nodes, DEFER_FUNCTION, False)
        if not moving:
            return {"moved": False, "comment": "each instance is on the node that prefers it already", "preferred": preferred}
        if self._wait_for(lambda seen: on_preferred(seen, preferred), timeout) is None:
            raise LbpairError(f"the instances were not back on their preferred nodes within {timeout} s (preempt: false?)")
        return {"moved": True, "preferred": preferred, "timeline": self._timeline(started, set(moving.values()))}

    def failback(self, minion, instance):
        """
        Hand ``instance`` back to ``minion``, back from FAULT, as a switchover does (see the
        module), before keepalived preempts at the end of the failback delay. Serialised: the
        IPv4 and IPv6 instances of a pair come back together, and one hand-over moves both.
        """
        with self.store.lock("failback"):
            awaited = set(_instance_names(self.client.tell([minion], PREFERRED_FUNCTION, failback=True)[minion]))
            if instance not in awaited:
                why = "preempt, failback_delay, defer, or its check has not risen"
                return {"moved": False, "comment": f"{minion} does not wait for {instance} to be handed back ({why})"}
            self.sleep(FAILBACK_SETTLE)
            view = self.pair_state()
            problem = _failback_problem(view, minion, instance)
            if problem:
                return {"moved": False, "comment": f"no graceful failback: {problem}"}
            holder = view["instances"][instance]["MASTER"][0]
            held = sorted(name for name, entry in view["instances"].items() if entry["MASTER"] == [holder])
            if not awaited.issuperset(held):
                kept = ", ".join(name for name in held if name not in awaited)
                return {"moved": False, "comment": f"{holder} holds {kept} too: keepalived's preemption moves {instance} back"}
            self._plan(dict.fromkeys(held, minion), "failback", FAILBACK_TIMEOUT)
            # no defer: the holder is not the preferred node, and its own failback delay keeps it from
            # preempting while the returning node's check rises (a node left deferring would not take
            # an instance it prefers later, e.g. one added for active/active)
            return {"moved": True, "to": minion, "hand_over": self.client.tell([holder], HANDOVER_FUNCTION, defer=False)}

    def _preferred(self, view):
        """``{instance: node}``: the node each of the pair's instances prefers, as the nodes' own pillar says."""
        answers = self.client.tell(self.nodes, PREFERRED_FUNCTION)
        preferred = {}
        for node, names in sorted(answers.items()):
            for instance in _instance_names(names):
                if instance in view["instances"] and preferred.setdefault(instance, node) != node:
                    raise LbpairError(f"{instance}: both {preferred[instance]} and {node} prefer it: do the nodes have the same pillar?")
        unclaimed = sorted(set(view["instances"]) - set(preferred))
        if unclaimed:
            raise LbpairError(f"no node prefers {', '.join(unclaimed)}: do the nodes have the same pillar?")
        return preferred

    def _timeline(self, started, targets):
        """The history since ``started``, once it holds a confirmed MASTER transition of each of ``targets`` (or after a grace time)."""
        deadline = self.clock() + self.grace
        while True:
            chosen = select(self.chronicle.history.recent(200), since=iso_utc(started), pair=self.chronicle.pair)
            confirmed = {record.minion for record in records.transitions(chosen) if record.becomes_master}
            if targets <= confirmed or self.clock() >= deadline:
                return timeline(chosen)
            self.sleep(POLL)

    def maintenance(self, node, release, timeout):
        """Take ``node`` out (after handing its VIPs to its peer), or release it."""
        release = schema.boolean(release, "release")
        if node not in self.nodes:
            raise InvalidValue("node", f"{node!r} is not a node of the pair")
        if release:
            self.client.tell([node], MAINTENANCE_FUNCTION, False)
            self._note([records.maintenance(node, f"{node} released from maintenance")])
            return {"released": node, "comment": "the VIPs stay where they are (lbpair.switchover moves them back)"}
        peer = peer_of(self.nodes, node)
        moved = self.switchover(peer, timeout)
        self.client.tell([node], MAINTENANCE_FUNCTION, True)
        self._note([records.maintenance(node, f"{node} in maintenance until released")])
        fault = VrrpState.FAULT
        out = self._wait_for(lambda seen: all(entry["states"].get(node) == fault for entry in seen["instances"].values()), timeout)
        return {"maintenance": node, "switchover": moved, "out": out is not None}


def _failback_problem(view, minion, instance):
    """Why ``instance`` cannot be handed back to ``minion`` now (a message), or ``None``."""
    entry = view["instances"].get(instance)
    if not entry:
        return f"the nodes report no instance {instance}"
    if entry["MASTER"] == [minion]:
        return f"{minion} holds {instance} already"
    return pair_problem(view, [minion])


def _instance_names(answer):
    """The instance names in a node's answer to ``lbpair_keepalived.preferred`` (anything else: none)."""
    return [name for name in answer if isinstance(name, str)] if isinstance(answer, list) else []


def planned_for(plans, record, now):
    """Whether ``record``, a :class:`~saltext.lbpair.master.records.Transition`, belongs to a planned move under way (of ``plans``)."""
    plan = plans.get(record.instance)
    if not plan or now > plan["until"]:
        return False
    return (record.minion == plan["to"]) == record.becomes_master

