"""
What the failover report shows, read from the master's history (:mod:`saltext.lbpair.master.history`):
per pair and VRRP instance, which state each node held when, the failovers (planned or not), the
claims, the time without a MASTER (and with several), and how long the master took to learn of
each transition and to point DNS at a new MASTER. No I/O and no markup: the page
(:mod:`saltext.lbpair.master.report`) lays it out.

Every value comes from the history as it was written, much of it from the nodes: it is kept as
text (``str`` of whatever was there) and never trusted. A record whose time cannot be read is
counted (:attr:`Picture.skipped`) and left out. Times are epoch seconds (floats).
"""

import bisect
import dataclasses
import itertools
import statistics

from saltext.lbpair.core import times
from saltext.lbpair.master.records import UNKNOWN_STATE, RecordKind
from saltext.lbpair.model.keepalived_model import VrrpState

#: the span shown when the history holds nothing to measure one by (s)
EMPTY_SPAN = 3600.0


@dataclasses.dataclass(frozen=True)
class Span:
    """``state`` (text, as recorded) held from ``start`` to ``end``; for a pair's instance: ``count`` MASTERs."""

    start: float
    end: float
    state: str = ""
    count: int = 0


@dataclasses.dataclass(frozen=True)
class Row:
    """
    A record at ``at`` (epoch seconds), its ``record`` (the mapping as read); for a transition,
    ``latencies``: ``{"recorded": s, "dns": s}``, those known (the master recorded it ``recorded``
    seconds after it happened; DNS pointed at its node ``dns`` seconds after).
    """

    at: float
    record: dict
    latencies: dict = dataclasses.field(default_factory=dict)

    def text(self, key):
        """The record's ``key`` as text (``""`` if it has none)."""
        return text(self.record.get(key))

    @property
    def kind(self):
        """The record's :class:`~saltext.lbpair.master.records.RecordKind`, or ``None`` for one this version does not know."""
        return RecordKind.of(self.record)

    @property
    def planned(self):
        return self.record.get("planned") is True

    @property
    def failover(self):
        """Whether it is a transition into MASTER."""
        return self.kind is RecordKind.TRANSITION and self.text("state") == VrrpState.MASTER


@dataclasses.dataclass(frozen=True)
class Instance:
    """
    A VRRP instance of a pair: its ``nodes`` (sorted), the state ``spans`` of each node, the spans
    with no MASTER and with several (``split``), its transitions and the other records about it
    (``rows``, ``events``) in time order.
    """

    name: str
    nodes: tuple
    spans: dict
    no_master: tuple
    split: tuple
    rows: tuple
    events: tuple

    @property
    def failovers(self):
        return tuple(row for row in self.rows if row.failover)

    @property
    def claims(self):
        return tuple(row for row in self.events if row.kind is RecordKind.CLAIM)

    def latencies(self, which):
        """The ``which`` latencies (``recorded``, ``dns``) of its transitions, in order."""
        return [row.latencies[which] for row in self.rows if which in row.latencies]


@dataclasses.dataclass(frozen=True)
class Pair:
    """A pair by name (``""``: records of an older version, which named none), its instances, the records about no instance."""

    name: str
    instances: tuple
    events: tuple

    @property
    def transitions(self):
        return sum(len(instance.rows) for instance in self.instances)


@dataclasses.dataclass(frozen=True)
class Picture:
    """The report's content: from ``start`` to ``end``, the ``pairs`` (by name), ``skipped`` records with no readable time."""

    start: float
    end: float
    pairs: tuple
    skipped: int

    @property
    def transitions(self):
        return sum(pair.transitions for pair in self.pairs)


def text(value):
    """A history value as text: ``""`` for none, text as it is, anything else as Python shows it."""
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def epoch(value):
    """``value`` (ISO 8601 or epoch seconds) as epoch seconds, or ``None`` if it is none or cannot be read."""
    try:
        parsed = times.parse(value)
        return None if parsed is None else parsed.timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def summary(values):
    """``(median, max)`` of ``values``, ``None`` when there are none."""
    return (statistics.median(values), max(values)) if values else None


def picture(records, now, pair=None, since=None):
    """
    The :class:`Picture` of the history ``records`` (mappings, in file order) up to ``now``,
    from ``since`` on (epoch seconds; ``None``: from the first record), of the pair named
    ``pair`` only (``None``: every pair). The states held at ``since`` are taken from the
    transitions before it.
    """
    dated, skipped = _dated(records, pair)
    shown = [row for row in dated if since is None or row.at >= since]
    start = since if since is not None else min((row.at for row in shown), default=now - EMPTY_SPAN)
    start = min(start, now - 1.0)
    groups = {}
    for row in dated:
        groups.setdefault(row.text("pair"), []).append(row)
    pairs = tuple(_pair(name, groups[name], start, now) for name in sorted(groups) if _any_after(groups[name], start))
    return Picture(start=start, end=now, pairs=pairs, skipped=skipped)


def _any_after(rows, start):
    return any(row.at >= start for row in rows)


def _dated(records, pair):
    """The records of ``pair`` as :class:`Row` in time order (file order among equal times), and how many had no readable time."""
    rows, skipped = [], 0
    for record in records:
        if not isinstance(record, dict) or (pair is not None and record.get("pair") != pair):
            continue
        at = epoch(record.get("at"))
        if at is None:
            skipped += 1
        else:
            rows.append(Row(at, record))
    rows.sort(key=lambda row: row.at)  # stable: file order among equal times
    return _deduplicated(rows), skipped


def _deduplicated(rows):
    """Each transition once by ``(minion, seq)``: the confirmed record if there is one, else the first."""
    chosen, kept = {}, []
    for row in rows:
        if row.kind is not RecordKind.TRANSITION:
            kept.append(row)
            continue
        key = (row.text("minion"), row.text("seq"))
        held = chosen.get(key)
        if held is None:
            chosen[key] = len(kept)
            kept.append(row)
        elif row.record.get("confirmed") is not False and kept[held].record.get("confirmed") is False:
            kept[held] = None  # the confirmed one replaces it, at its own time
            chosen[key] = len(kept)
            kept.append(row)
    return [row for row in kept if row is not None]


def _pair(name, rows, start, end):
    by_instance, events = {}, []
    for row in rows:
        instance = row.text("instance")
        if instance:
            by_instance.setdefault(instance, []).append(row)
        elif row.at >= start:
            events.append(row)
    instances = tuple(_instance(instance, by_instance[instance], start, end) for instance in sorted(by_instance))
    return Pair(name=name, instances=tuple(instance for instance in instances if instance.rows or instance.events), events=tuple(events))


def _instance(name, rows, start, end):
    transitions = [row for row in rows if row.kind is RecordKind.TRANSITION]
    nodes = tuple(sorted({row.text("minion") for row in rows if row.kind in (RecordKind.TRANSITION, RecordKind.CLAIM)}))
    spans = {node: _node_spans([row for row in transitions if row.text("minion") == node], start, end) for node in nodes}
    counted = _master_counts(spans, start, end)
    shown = [row for row in transitions if row.at >= start]
    dns = [row for row in rows if row.kind is RecordKind.DNS and row.record.get("ok") is True]
    return Instance(
        name=name,
        nodes=nodes,
        spans=spans,
        no_master=tuple(span for span in counted if span.count == 0),
        split=tuple(span for span in counted if span.count > 1),
        rows=_with_latencies(shown, dns),
        events=tuple(row for row in rows if row.kind is not RecordKind.TRANSITION and row.at >= start),
    )


def _node_spans(transitions, start, end):
    """The states one node held from ``start`` to ``end``, from its transitions in time order (the first one's previous state before it)."""
    changes = []
    if transitions and transitions[0].text("previous_state") not in ("", UNKNOWN_STATE):
        changes.append((float("-inf"), transitions[0].text("previous_state")))
    changes += [(row.at, row.text("state")) for row in transitions]
    spans = []
    for (at, state), following in zip(changes, [*changes[1:], (end, None)], strict=True):
        left, right = max(at, start), min(following[0], end)
        if right > left:
            spans.append(Span(left, right, state))
    return tuple(_merged(spans))


def _merged(spans):
    """Adjacent spans of the same state and count as one."""
    merged = []
    for span in spans:
        if merged and merged[-1].end == span.start and (merged[-1].state, merged[-1].count) == (span.state, span.count):
            merged[-1] = dataclasses.replace(merged[-1], end=span.end)
        else:
            merged.append(span)
    return merged


def _master_counts(spans, start, end):
    """
    The spans from ``start`` to ``end`` in which at least one node's state is known, each with how many
    nodes were MASTER (``count``): where no state is known (before the first transition), nothing is claimed.
    """
    cuts = sorted({start, end, *(point for node in spans.values() for span in node for point in (span.start, span.end))})
    position = dict.fromkeys(spans, 0)  # each node's first span not over yet: one sweep, not a search per cut
    counted = []
    for left, right in itertools.pairwise(cuts):
        states = []
        for node, held in spans.items():
            while position[node] < len(held) and held[position[node]].end <= left:
                position[node] += 1
            if position[node] < len(held) and held[position[node]].start <= left:
                states.append(held[position[node]].state)
        if states:
            counted.append(Span(left, right, count=states.count(VrrpState.MASTER)))
    return tuple(_merged(counted))


def _with_latencies(rows, dns):
    """
    ``rows`` (transitions in time order) with their latencies: recorded after (``recorded_at - at``),
    and for a failover, DNS pointed at its node after (the first successful update before the next failover).
    """
    failovers = [row.at for row in rows if row.failover]
    updates = {}
    for update in dns:
        updates.setdefault(update.text("minion"), []).append(update.at)
    return tuple(_latencies(row, failovers, updates.get(row.text("minion"), [])) for row in rows)


def _latencies(row, failovers, updates):
    latencies = {}
    recorded = epoch(row.record.get("recorded_at"))
    if recorded is not None and recorded >= row.at:
        latencies["recorded"] = recorded - row.at
    if row.failover:
        following = bisect.bisect_right(failovers, row.at)
        until = failovers[following] if following < len(failovers) else float("inf")
        first = bisect.bisect_left(updates, row.at)
        if first < len(updates) and updates[first] < until:
            latencies["dns"] = updates[first] - row.at
    return dataclasses.replace(row, latencies=latencies)
