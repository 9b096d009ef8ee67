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
import threading
import time

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_model, pillar, schema

#: s a minion's claim is kept before its pillar is compiled again (a minion's start forgets it at once)
CLAIM_TTL = 60
NO_PILLAR_TTL = 5  # s a minion found without an lbpair pillar is kept so: a node's compile may have failed
COMPILE_TRIES = 3
_COMPILING = threading.Lock()


def kept_for(seconds, make, clock=time.monotonic):
    """
    A function that gives ``make()``, made again once it is older than ``seconds``, or when called
    with ``fresh=True`` (what a long-lived worker knows of the minions: a new one is looked for again).
    """
    kept = {}

    def value(fresh=False):
        if fresh or not kept or clock() - kept["at"] > seconds:
            kept.update(at=clock(), value=make())
        return kept["value"]

    return value


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

    def to_json(self):
        return {"name": self.name, "nodes": self.nodes, "instances": sorted(self.instances)}

    @classmethod
    def from_json(cls, data):
        return cls(data["name"], data["nodes"], frozenset(data["instances"]))


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


def claim_of(minion, lbpair):
    """
    What ``minion``'s own ``lbpair`` pillar (``None``: it has none) says of its pair: its
    :class:`Pair`, ``None`` (no pillar: no node), or why the pillar is not valid (text).
    """
    if lbpair is None:
        return None
    try:
        return pair_of(minion, lbpair)
    except InvalidValue as exc:
        return f"its lbpair pillar is not valid: {exc}"


def claim_to_json(claim):
    """A :func:`claim_of` as a cache keeps it."""
    return {"pair": claim.to_json()} if isinstance(claim, Pair) else {"problem": claim}


def claim_from_json(data):
    return Pair.from_json(data["pair"]) if data.get("pair") else data.get("problem")


def gather(pillars):
    """:func:`agree` on ``{minion: lbpair pillar or None}`` as the master compiles them."""
    return agree({minion: claim_of(minion, lbpair) for minion, lbpair in pillars.items()})


def agree(claims):
    """
    ``(pairs, problems)`` from ``{minion: claim}`` (:func:`claim_of`): ``pairs`` maps each
    accepted pair's name to its :class:`Pair`; ``problems`` maps a pair's or a minion's name to
    why it was left out (the caller says where: a log line, a status). A minion without an
    ``lbpair`` pillar is no node and no problem. A pair is what its nodes' pillars agree on; a
    minion whose pillar claims a pair that does not list it is an outsider.
    """
    claimed = {minion: claim for minion, claim in claims.items() if isinstance(claim, Pair)}
    problems = {minion: claim for minion, claim in claims.items() if isinstance(claim, str)}
    pairs = {}
    for name in sorted({pair.name for pair in claimed.values()}):
        members = {minion: pair for minion, pair in claimed.items() if pair.name == name}
        agreed = _agreed(members.values(), claimed)
        if len(agreed) != 1:
            problems[name] = _disagreement(name, members, claimed) if not agreed else f"{len(agreed)} different pairs are named {name}"
            continue
        pairs[name] = agreed[0]
        for minion in members.keys() - agreed[0].nodes.keys():
            problems[minion] = f"an outsider: its pillar puts it in pair {name}, whose nodes ({', '.join(agreed[0].nodes)}) do not list it"
    return pairs, problems


def _agreed(descriptions, claimed):
    """The descriptions of one pair name that every node they list describes the same way."""
    agreed = []
    for pair in descriptions:
        if pair not in agreed and all(claimed.get(node) == pair for node in pair.nodes):
            agreed.append(pair)
    return agreed


def _disagreement(name, members, claimed):
    """Why no description of pair ``name`` is one its nodes' pillars agree on."""
    first_minion, first = next(iter(members.items()))
    for node in first.nodes:
        if node not in claimed:
            return f"{node} is listed by {first_minion}'s pillar but has no valid lbpair pillar of its own"
        if claimed[node].name != name:
            return f"{node} is listed by {first_minion}'s pillar, but its own pillar puts it in pair {claimed[node].name}"
    other = next(minion for minion in first.nodes if claimed[minion] != first)
    return f"the pillars of {first_minion} and {other} describe the pair differently (nodes, addresses or instances)"


class Directory:
    """
    The pairs one master serves, and the pair of each minion. Either the one pair the master's
    configuration lists (``configured``: ``(name, nodes)``, see
    :func:`saltext.lbpair.master.reactions_config.configured_pair`), or the pairs the nodes' pillars
    describe: ``claim_of(minion)`` gives what the ``lbpair`` pillar the master compiles for a minion
    says (:func:`claim_of`), ``minions()`` the minions to look at for the whole fleet. Each claim is
    read once per directory: a directory serves one reaction or one command.
    """

    def __init__(self, configured=None, claim_of=None, minions=None):
        self.configured = configured
        self._claim_of = claim_of or (lambda minion: None)
        self._minions = minions or list
        self._claims = {}
        self._fleet = None

    def _claim(self, minion):
        if minion not in self._claims:
            # a name no pillar can give a node (a tag is text a minion chose) is looked up nowhere
            self._claims[minion] = self._claim_of(minion) if schema.NAME_RE.fullmatch(str(minion)) else None
        return self._claims[minion]

    def _configured_pair(self):
        name, nodes = self.configured
        return Pair(name, {node: {"address6": None, **addresses} for node, addresses in nodes.items()}, frozenset())

    def find(self, minion):
        """``(pair, None)`` for a node (its :class:`Pair`), else ``(None, why it is none)``."""
        if self.configured:
            pair = self._configured_pair()
            return (pair, None) if minion in pair else (None, f"{minion!r} is not a node of the pair")
        claimed = self._claim(minion)
        if claimed is None:
            return None, f"{minion!r} is not a node of any pair (it has no lbpair pillar)"
        if not isinstance(claimed, Pair):
            return None, f"{minion!r} is not a node of any pair: {claimed}"
        pairs, problems = agree(self._neighbourhood(minion))
        if claimed.name in pairs and minion in pairs[claimed.name]:
            return pairs[claimed.name], None
        return None, f"{minion!r} is not a node of any pair: {problems.get(minion) or problems.get(claimed.name)}"

    def _neighbourhood(self, minion):
        """``{minion: claim}`` of ``minion`` and of every node their claims list, and theirs in turn: all that decides its pair."""
        claims, waiting = {}, [minion]
        while waiting:
            node = waiting.pop()
            if node not in claims:
                claims[node] = self._claim(node)
                waiting.extend(claims[node].nodes if isinstance(claims[node], Pair) else ())
        return claims

    def fleet(self):
        """``(pairs, problems)`` of the whole fleet (:func:`gather`), or of the one configured pair."""
        if self.configured:
            pair = self._configured_pair()
            return {pair.name: pair}, {}
        if self._fleet is None:
            self._fleet = agree({minion: self._claim(minion) for minion in self._minions()})
        return self._fleet

    def named(self, name):
        """The pair named ``name``; ``None`` when the fleet has none of that name (or it is left out)."""
        return self.fleet()[0].get(name)


class CachedClaims:
    """
    What each minion's ``lbpair`` pillar says of its pair (:func:`claim_of`), kept in ``cache``
    (Salt's cache: ``fetch``, ``store`` with ``expires``, ``flush``) for ``ttl`` seconds, so that a
    storm of events does not compile the same pillars again and again. ``compile(minion)``
    compiles a minion's ``lbpair`` pillar (``None``: none); only minions ``known(minion)`` to the
    master are compiled (a beacon event's tag is text any minion chooses).
    """

    BANK = "lbpair/claims"

    def __init__(self, cache, compile, known, ttl=CLAIM_TTL):  # noqa: A002  (the name says what it does)
        self.cache = cache
        self.compile = compile
        self.known = known
        self.ttl = ttl

    def __call__(self, minion):
        stored = self.cache.fetch(self.BANK, minion)
        if stored:
            return claim_from_json(stored)
        if not self.known(minion):
            return None
        # Salt's pillar compiles in the reactor's threads at once mix up their minions (a storm
        # measured it): one at a time in this process, and one done meanwhile is not done again.
        with _COMPILING:
            stored = self.cache.fetch(self.BANK, minion)
            if stored:
                return claim_from_json(stored)
            pillar = self._compile(minion)
            claim = claim_of(minion, pillar)
            self.cache.store(self.BANK, minion, claim_to_json(claim), expires=self.ttl if pillar is not None else NO_PILLAR_TTL)
        return claim

    def _compile(self, minion):
        """
        The minion's ``lbpair`` pillar, asked again when there is none: Salt's compile on a busy master
        (40 minions starting, a storm) now and then gives a known node no pillar (bench/storm).
        """
        for _ in range(COMPILE_TRIES):
            pillar = self.compile(minion)
            if pillar is not None:
                return pillar
        return None

    def forget(self, minion):
        """Compile ``minion``'s pillar again when next asked: it (re)connected, its pillar may have changed."""
        if schema.NAME_RE.fullmatch(str(minion)):  # else no node, and nothing kept
            self.cache.flush(self.BANK, minion)

    def forget_all(self):
        """Compile every minion's pillar again when next asked."""
        self.cache.flush(self.BANK)
