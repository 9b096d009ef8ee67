"""
The master's metrics: one file in Prometheus' text format for node_exporter's textfile
collector on the master (``lbpair_master.prom``), written by the background worker after each
round that did something, and at least every :data:`IDLE_WRITE` seconds.

What it says comes from what the master keeps on disk, so that a restarted worker goes on
counting and each of two masters tells its own truth: the failovers and the MASTER of each
instance from the history (its index: :mod:`saltext.lbpair.master.history_tally`); the failed
steps, the last DNS update and the reactions' latencies from the reaction state's tallies
(:mod:`saltext.lbpair.master.reaction_tables`); the open claims from the reaction state.

.. code-block:: yaml

    lbpair_reactions:
      metrics_file: /var/lib/prometheus/node-exporter/lbpair_master.prom   # the default if that folder exists; none: off

Families (labels): ``lbpair_pair_master`` (pair, vrrp_instance, node), ``lbpair_failovers_total``
(pair, vrrp_instance, kind), ``lbpair_unconfirmed_claims`` (pair), ``lbpair_reaction_step_failures_total``
(pair, step), ``lbpair_dns_update_success`` and ``lbpair_dns_update_timestamp_seconds`` (pair),
``lbpair_reaction_latency_seconds`` (pair), ``lbpair_master_metrics_written_timestamp_seconds``.
"""

import dataclasses
import logging
import time

from saltext.lbpair.core import prometheus_text
from saltext.lbpair.core.prometheus_text import Family, Sample
from saltext.lbpair.master import notify, reaction_tables

log = logging.getLogger(__name__)

#: s: the buckets of the reactions' latency (a node receiving a transition -> the master's steps done)
LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30)
#: the steps a reaction may have, each counted from 0 for every pair (``increase()`` sees the first failure)
STEPS = ("record", "failback", *(name for name, _ in notify.CHANNELS), "pair")
KINDS = ("planned", "unplanned")
IDLE_WRITE = 60  # s: the file is written at least this often, so that a stale one shows a stopped worker
MAX_INSTANCES = 64  # per pair: the instances its history names (a node's text) make no more series than this


@dataclasses.dataclass(frozen=True)
class Facts:
    """
    What the metrics say: ``pairs`` ``{pair: [nodes]}`` (the fleet), from the history ``failovers``
    ``{(pair, minion, instance, planned): count}`` and ``masters`` ``{(pair, instance): node or None}``
    (``pair`` ``""`` in an older version's records), from the reaction state ``tallies``
    ``{pair: {name: value}}`` and the open ``claims`` ``{minion: [claims]}``.
    """

    pairs: dict
    failovers: dict
    masters: dict
    tallies: dict
    claims: dict

    def pair_of(self, pair, minion):
        """The pair a record names, or (an older version's record names none) the pair ``minion`` is a node of."""
        if pair:
            return pair
        return next((name for name, nodes in self.pairs.items() if minion in nodes), None)

    def masters_of(self):
        """``{(pair, instance): node or None}``: the MASTERs the history tells, a record naming its pair over an older one's."""
        found = {}
        for (pair, instance), node in sorted(self.masters.items(), key=lambda item: bool(item[0][0])):
            owner = self.pair_of(pair, node)
            if owner in self.pairs:
                found[owner, instance] = node
        return found

    def instances(self):
        """``{pair: [instances]}`` the history names for each pair of the fleet, at most :data:`MAX_INSTANCES` each."""
        found = {pair: set() for pair in self.pairs}
        for pair, minion, instance, _ in self.failovers:
            found.get(self.pair_of(pair, minion), set()).add(instance)
        for pair, instance in self.masters_of():
            found[pair].add(instance)
        return {pair: sorted(names)[:MAX_INSTANCES] for pair, names in found.items()}


def gather(history, store, pairs):
    """The :class:`Facts` of ``history`` and ``store`` (the reaction state) for the fleet's ``pairs`` ``{pair: [nodes]}``."""
    failovers, masters = history.tallies()
    return Facts({name: sorted(nodes) for name, nodes in pairs.items()}, failovers, masters, store.tallies(), store.open_claims())


def _pair_master(facts, instances):
    samples, masters = [], facts.masters_of()
    for pair, names in sorted(instances.items()):
        for instance in names:
            master = masters.get((pair, instance))
            for node in sorted({*facts.pairs[pair], *([master] if master else [])}):
                samples.append(Sample({"pair": pair, "vrrp_instance": instance, "node": node}, int(node == master)))
    what = "1 for the node the master's history last saw become MASTER of the instance, 0 for the others."
    return Family("lbpair_pair_master", "gauge", what, samples)


def _failovers(facts, instances):
    counts = {}
    for (pair, minion, instance, planned), count in facts.failovers.items():
        key = (facts.pair_of(pair, minion), instance, KINDS[0] if planned else KINDS[1])
        counts[key] = counts.get(key, 0) + count
    samples = [
        Sample({"pair": pair, "vrrp_instance": instance, "kind": kind}, counts.get((pair, instance, kind), 0))
        for pair, names in sorted(instances.items()) for instance in names for kind in KINDS
    ]  # fmt: skip
    what = "Confirmed transitions into MASTER the master recorded, planned or unplanned."
    return Family("lbpair_failovers_total", "counter", what, samples)


def _claims(facts):
    open_claims = {pair: 0 for pair in facts.pairs}
    for minion, claims in facts.claims.items():
        pair = facts.pair_of(None, minion)
        if pair is not None:
            open_claims[pair] += len(claims)
    samples = [Sample({"pair": pair}, count) for pair, count in sorted(open_claims.items())]
    return Family("lbpair_unconfirmed_claims", "gauge", "Events a node of the pair has not confirmed yet (open claims).", samples)


def _step_failures(facts):
    samples = []
    for pair in sorted(facts.pairs):
        tallies = facts.tallies.get(pair, {})
        counted = [name.removeprefix(reaction_tables.STEP_FAILURES) for name in tallies if name.startswith(reaction_tables.STEP_FAILURES)]
        for step in sorted({*STEPS, *counted}):
            samples.append(Sample({"pair": pair, "step": step}, tallies.get(f"{reaction_tables.STEP_FAILURES}{step}", 0)))
    return Family("lbpair_reaction_step_failures_total", "counter", "Failed steps of the master's reactions (each attempt).", samples)


def _dns(facts):
    known = {pair: facts.tallies[pair] for pair in sorted(facts.pairs) if reaction_tables.DNS_AT in facts.tallies.get(pair, {})}
    return [
        Family("lbpair_dns_update_success", "gauge", "1 if the pair's last DNS update (retries included) succeeded, 0 if it failed.",
               [Sample({"pair": pair}, tallies.get(reaction_tables.DNS_OK, 0)) for pair, tallies in known.items()]),
        Family("lbpair_dns_update_timestamp_seconds", "gauge", "When the pair's last DNS update ended (Unix time).",
               [Sample({"pair": pair}, tallies[reaction_tables.DNS_AT]) for pair, tallies in known.items()]),
    ]  # fmt: skip


def _latency(facts):
    samples = []
    for pair in sorted(facts.pairs):
        tallies = facts.tallies.get(pair, {})
        within = {bound: tallies.get(reaction_tables.latency_bucket(bound), 0) for bound in LATENCY_BUCKETS}
        total, count = tallies.get(reaction_tables.LATENCY_SUM, 0), tallies.get(reaction_tables.LATENCY_COUNT, 0)
        samples.extend(prometheus_text.counted_histogram({"pair": pair}, within, total, count))
    return Family("lbpair_reaction_latency_seconds", "histogram",
                  "From a node receiving a VRRP transition to the master's reaction done (live transitions).", samples)  # fmt: skip


def families(facts, now):
    """The metric families of ``facts``, written at ``now``, in a fixed order."""
    instances = facts.instances()
    return [
        _pair_master(facts, instances), _failovers(facts, instances), _claims(facts), _step_failures(facts), *_dns(facts),
        _latency(facts), Family("lbpair_master_metrics_written_timestamp_seconds", "gauge", "When the master wrote this file (Unix time).",
                                [Sample({}, now)]),
    ]  # fmt: skip


def text(facts, now):
    """The metrics file's text."""
    return prometheus_text.render(families(facts, now))


class MetricsFile:
    """
    The metrics file at ``path`` (``None``: off), of the :class:`Facts` ``gather()`` gives. Writing it
    never fails the caller: a failure is logged once (until a write works again).
    """

    def __init__(self, path, gather_facts, clock=time.time):
        self.path = path
        self.gather = gather_facts
        self.clock = clock
        self.written_at = None  # when this process last tried
        self.failing = False

    def after_round(self, done):
        """After a round of the background work: write if it did something (``done``) or :data:`IDLE_WRITE` s passed."""
        now = self.clock()
        if self.path is None or (not done and self.written_at is not None and now - self.written_at < IDLE_WRITE):
            return False
        return self.write(now)

    def write(self, now):
        """Write the file now; whether it worked."""
        self.written_at = now
        try:
            prometheus_text.publish(self.path, text(self.gather(), now))
        except Exception as exc:  # the metrics never stop the reactions
            if not self.failing:
                log.error("lbpair: the master's metrics file %s cannot be written (%s: %s)", self.path, type(exc).__name__, exc)
            self.failing = True
            return False
        if self.failing:
            log.warning("lbpair: the master's metrics file %s is written again", self.path)
        self.failing = False
        return True
