"""
The central failover history of an lbpair master: JSON lines, append-only.

Every line is one record; a VRRP transition looks like this (one line in the
file)::

    {"kind": "transition", "minion": "lb2", "seq": 7, "instance": "lbpair_51",
     "vrid": 51, "state": "MASTER", "previous_state": "BACKUP",
     "vips": ["203.0.113.10"], "at": "2026-11-26T13:02:11.123456+00:00",
     "recorded_at": "...", "seen": "live", "source": "live", "confirmed": true}

``seen`` is ``live`` (reported by the node's event) or ``late`` (pulled from
the node's journal when it reconnected); ``confirmed`` says whether the node
itself vouched for the transition in an authenticated job return
(:class:`~saltext.lbpair.master.records.Transition`). Other kinds
(:class:`~saltext.lbpair.master.records.RecordKind`) record what the master concluded or did:
``claim``, ``split_brain``, ``no_master``, ``dns``, ``warning``, ``planned``...

Transitions are deduplicated by ``(minion, seq)``; an unconfirmed one does not
stop the same transition, confirmed, from being recorded after it. What that needs
is kept in an index beside the history (``<path>.index``, see
:mod:`saltext.lbpair.master.history_index`), so an append takes the same time at 100 records
or 100,000. Every line is fsync'd before the call returns. Rotation loses nothing:
past ``max_bytes`` the file is renamed to ``<path>.<UTC timestamp>`` and reading
walks the rotated files too. Damaged lines are skipped and counted
(:meth:`History.bad_lines`).
"""

import datetime
import glob
import itertools
import os

from saltext.lbpair.core import store, times
from saltext.lbpair.master import history_index
from saltext.lbpair.master.records import RecordKind, Seen, as_json, change


class History:
    """The history at ``path``, rotated past ``max_bytes`` (0: never)."""

    def __init__(self, path, max_bytes=0):
        self.path = path
        self.max_bytes = max_bytes
        self.index_path = f"{path}.index"

    def _files(self):
        """The rotated files, oldest first, then the live one."""
        path = self.path
        rotated = sorted(name for name in glob.glob(f"{glob.escape(path)}.*") if name[len(path) + 1 :][:1].isdigit())
        return [*rotated, path]

    def _index(self, create=True):
        return history_index.opened(self.index_path, self._files, create)

    def read(self):
        """Every record, rotated files included, in file order."""
        return [record for name in self._files() for record in store.read_records(name)]

    def recent(self, limit):
        """The newest ``limit`` records, oldest first, read from the end of the files."""
        newest = (record for name in reversed(self._files()) for record in store.records_backward(name))
        return list(itertools.islice(newest, max(0, limit)))[::-1]

    def last_seq(self, minion):
        """The highest sequence number of a confirmed transition of ``minion`` (0 if none)."""
        with store.locked(self.path), self._index() as index:
            return index.last_seq(minion)

    def bad_lines(self):
        """How many damaged lines (cut short, not JSON, not an object) the history's files hold; they are skipped."""
        with store.locked(self.path), self._index() as index:
            return index.bad_lines()

    def tallies(self):
        """
        ``(failovers, masters)`` the history tells (:mod:`saltext.lbpair.master.history_tally`):
        ``{(pair, minion, instance, planned): count}`` and ``{(pair, instance): MASTER or None}``.
        It makes no index (the first append does): until then, the files are read.
        """
        with store.locked(self.path), self._index(create=False) as index:
            return index.tallies()

    def append(self, records):
        """
        Append ``records`` (:class:`~saltext.lbpair.master.records.Transition` or JSON mappings:
        :func:`~saltext.lbpair.master.records.as_json`) durably and return those that were new. A transition whose
        ``(minion, seq)`` is already recorded is a replay and is dropped, unless the one
        recorded says ``confirmed: false`` and this one does not; records of other kinds
        are always appended. Raises ``OSError`` if the disk refuses the write (full, I/O
        error): the history is then as it was, and the next append works once it can.
        """
        with store.locked(self.path), self._index() as index:
            new = _admitted(records, index.state)
            if new:
                self._rotate_if_large()
                store.append_records(self.path, [as_json(record) for record in new])
        return new

    def _rotate_if_large(self):
        if not self.max_bytes or not os.path.exists(self.path) or os.path.getsize(self.path) < self.max_bytes:
            return
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        os.rename(self.path, f"{self.path}.{stamp}")


def _admitted(records, state):
    """
    The records of ``records`` to append, given ``state(key)`` (``None``: no transition
    holds ``key``; 0: only an unconfirmed one; 1: a confirmed one): a transition is a
    replay if one as confirmed as it already holds its ``(minion, seq)``.
    """
    new, batch = [], {}
    for record in records:
        line = as_json(record)
        key = history_index.slot(line)
        if key is not None:
            rank = int(history_index.confirmed(line))
            held = batch[key] if key in batch else state(key)
            if held is not None and held >= rank:
                continue
            batch[key] = rank
        new.append(record)
    return new


def select(records, instance=None, minion=None, since=None, until=None, pair=None):
    """
    The records matching the filters (``since``/``until``: ISO 8601 or epoch seconds), ordered by time.
    ``pair`` matches the records that name it (an older version's name none: they match no pair).
    """
    since, until = times.parse(since), times.parse(until)
    chosen = []
    for record in records:
        at = times.parse(record.get("at"))
        if any(wanted and record.get(key) != wanted for key, wanted in (("instance", instance), ("minion", minion), ("pair", pair))):
            continue
        if since and (at is None or at < since):
            continue
        if until and (at is None or at > until):
            continue
        chosen.append(record)
    return sorted(chosen, key=lambda r: (r.get("at") or "", r.get("seq") or 0))


def _describe(record):
    kind = record.get("kind")
    if kind == RecordKind.TRANSITION:
        flags = [record.get("seen", Seen.LIVE.value)] + (["planned"] if record.get("planned") else [])
        if not record.get("confirmed"):
            flags.append("UNCONFIRMED")
        vips = ", ".join(record.get("vips") or []) or "no VIPs known"
        return f"{change(record)} ({vips}; seq {record.get('seq')}, {', '.join(flags)})"
    if kind == RecordKind.WARNING:
        return f"{record.get('minion')} warns: {record.get('message', '')}"
    if kind == RecordKind.DNS:
        outcome = "ok" if record.get("ok") else f"FAILED after {record.get('attempts')} attempts"
        return f"DNS -> {record.get('minion')}: {outcome}"
    return f"{kind.upper()}: {record.get('message', '')}"


def timeline(records):
    """The records as readable lines, one per record."""
    return [f"{record.get('at', '?')}  {_where(record)}  {_describe(record)}" for record in records]


def _where(record):
    """The pair and instance a record is about: ``web/lbpair_51``, ``lbpair_51`` (an older record), ``-``."""
    instance = record.get("instance") or "-"
    return f"{record['pair']}/{instance}" if record.get("pair") else instance
