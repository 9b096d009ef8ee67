"""
The fleet: the pairs one master serves, learned from the ``lbpair`` pillar the master compiles
for each node, never from what a node says about itself.

A node belongs to the pair its own pillar names (``lbpair:pair``, by default its nodes' ids
joined by ``+``). A pair is accepted only when the pillar of every node it lists names the same
pair with the same nodes and addresses: a pillar that puts a minion into someone else's pair
makes that pair a problem to show, not a member to trust.

.. code-block:: python

    pairs, problems = fleet.gather({"lb1": lbpair_of_lb1, "lb2": lbpair_of_lb2, "web3": None})
    pairs["lb1+lb2"].nodes   # {"lb1": {"address": "192.0.2.11", "address6": None}, "lb2": {...}}
"""

import dataclasses

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_model, pillar


@dataclasses.dataclass(frozen=True)
class Pair:
    """A pair as its nodes' pillar describes it: what the master needs of it, no more."""

    name: str
    #: minion id -> ``{"address": ..., "address6": ... or None}``: where DNS points when it is MASTER
    nodes: dict
    #: keepalived's names of the pair's VRRP instances (``lbpair_51``, ``lbpair_51_6``)
    instances: frozenset

    def __contains__(self, minion):
        return minion in self.nodes


def pair_of(minion, lbpair):
    """
    The pair ``minion``'s own ``lbpair`` pillar puts it in. Raises :class:`InvalidValue`
    when the pillar is missing or invalid, or does not list ``minion`` among its nodes.
    """
    model = pillar.normalize(lbpair)
    if minion not in model["nodes"]:
        listed = ", ".join(model["nodes"])
        raise InvalidValue(f"{pillar.PILLAR_KEY}:nodes", f"{minion!r} is not among the nodes of its own pillar ({listed})")
    nodes = {name: {"address": node["address"], "address6": node["address6"]} for name, node in model["nodes"].items()}
    return Pair(model["pair"], nodes, frozenset(vrrp.name for vrrp in keepalived_model.vrrp_instances(model)))


def gather(pillars):
    """
    ``(pairs, problems)`` from ``{minion: lbpair pillar or None}`` as the master compiles them:
    ``pairs`` maps each accepted pair's name to its :class:`Pair`; ``problems`` maps a pair's
    or a minion's name to why it was left out (the caller says where: a log line, a status). A
    minion without an ``lbpair`` pillar is no node and no problem.
    """
    claimed, problems = {}, {}
    for minion, lbpair in pillars.items():
        if lbpair is None:
            continue
        try:
            claimed[minion] = pair_of(minion, lbpair)
        except InvalidValue as exc:
            problems[minion] = f"its lbpair pillar is not valid: {exc}"
    pairs = {}
    for name in sorted({pair.name for pair in claimed.values()}):
        members = {minion: pair for minion, pair in claimed.items() if pair.name == name}
        problem = _disagreement(name, members, claimed)
        if problem:
            problems[name] = problem
        else:
            pairs[name] = next(iter(members.values()))
    return pairs, problems


def _disagreement(name, members, claimed):
    """Why the nodes' pillars of pair ``name`` do not describe one pair, or ``None``."""
    first_minion, first = next(iter(members.items()))
    for node in first.nodes:
        if node not in claimed:
            return f"{node} is listed by {first_minion}'s pillar but has no valid lbpair pillar of its own"
        if claimed[node].name != name:
            return f"{node} is listed by {first_minion}'s pillar, but its own pillar puts it in pair {claimed[node].name}"
    for minion, pair in members.items():
        if pair != first:
            return f"the pillars of {first_minion} and {minion} describe the pair differently (nodes, addresses or instances)"
    return None
