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
itself vouched for the transition in an authenticated job return. Other kinds
record what the master concluded or did: ``split_brain``, ``no_master``,
``dns``, ``warning``.

Transitions are deduplicated by ``(minion, seq)``. Every line is fsync'd before
the call returns. Rotation loses nothing: past ``max_bytes`` the file is renamed
to ``<path>.<UTC timestamp>`` and reading walks the rotated files too.
"""

import datetime
import glob
import os

from lbpair_lib import store, times


class History:
    """The history at ``path``, rotated past ``max_bytes`` (0: never)."""

    def __init__(self, path, max_bytes=0):
        self.path = path
        self.max_bytes = max_bytes

    def _files(self):
        """The rotated files, oldest first, then the live one."""
        path = self.path
        rotated = sorted(name for name in glob.glob(f"{glob.escape(path)}.*") if name[len(path) + 1 :][:1].isdigit())
        return [*rotated, path]

    def read(self):
        """Every record, rotated files included, in file order."""
        return [record for name in self._files() for record in store.read_records(name)]

    def last_seq(self, minion):
        """The highest sequence number recorded for ``minion`` (0 if none)."""
        return max((seq for who, seq in seen_keys(self.read()) if who == minion), default=0)

    def append(self, records):
        """
        Append ``records`` durably and return those that were new: a transition whose
        ``(minion, seq)`` is already in the history is a replay and is dropped;
        records of other kinds are always appended.
        """
        with store.locked(self.path):
            known = seen_keys(self.read())
            new = []
            for record in records:
                key = (record.get("minion"), record.get("seq"))
                if record.get("kind") == "transition" and key in known:
                    continue
                known.add(key)
                new.append(record)
            if new:
                self._rotate_if_large()
                store.append_records(self.path, new)
        return new

    def _rotate_if_large(self):
        if not self.max_bytes or not os.path.exists(self.path) or os.path.getsize(self.path) < self.max_bytes:
            return
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        os.rename(self.path, f"{self.path}.{stamp}")


def seen_keys(records):
    """The ``(minion, seq)`` pairs of the transitions among ``records``."""
    return {(r["minion"], r["seq"]) for r in records if r.get("kind") == "transition" and r.get("seq") is not None}


def select(records, instance=None, minion=None, since=None, until=None):
    """The records matching the filters (``since``/``until``: ISO 8601 or epoch seconds), ordered by time."""
    since, until = times.parse(since), times.parse(until)
    chosen = []
    for record in records:
        at = times.parse(record.get("at"))
        if instance and record.get("instance") != instance:
            continue
        if minion and record.get("minion") != minion:
            continue
        if since and (at is None or at < since):
            continue
        if until and (at is None or at > until):
            continue
        chosen.append(record)
    return sorted(chosen, key=lambda r: (r.get("at") or "", r.get("seq") or 0))


def _describe(record):
    kind = record.get("kind")
    if kind == "transition":
        flags = [record.get("seen", "live")]
        if not record.get("confirmed"):
            flags.append("UNCONFIRMED")
        vips = ", ".join(record.get("vips") or []) or "no VIPs known"
        return (
            f"{record['minion']} {record.get('previous_state', '?')} -> {record.get('state')}"
            f" ({vips}; seq {record.get('seq')}, {', '.join(flags)})"
        )
    if kind == "warning":
        return f"{record.get('minion')} warns: {record.get('message', '')}"
    if kind == "dns":
        outcome = "ok" if record.get("ok") else f"FAILED after {record.get('attempts')} attempts"
        return f"DNS -> {record.get('minion')}: {outcome}"
    return f"{kind.upper()}: {record.get('message', '')}"


def timeline(records):
    """The records as readable lines, one per record."""
    return [f"{record.get('at', '?')}  {record.get('instance', '-')}  {_describe(record)}" for record in records]
