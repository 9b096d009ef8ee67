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
``dns``.

Transitions are deduplicated by ``(minion, seq)``. Every line is fsync'd before
the call returns. Rotation loses nothing: past ``max_bytes`` the file is renamed
to ``<path>.<UTC timestamp>`` and reading walks the rotated files too.

These are runners so that the ``lbpair`` runner can reach them through
``__salt__`` (the runner loader); the functions themselves are plain Python.
The lock and the durable append repeat a few lines of the minion's journal
(``lbpair_journal``) on purpose: runners cannot reach execution modules, and a
``_utils`` module would not be found when lbpair is pip-installed (Salt's utils
loader skips extensions' entry points), so there is no place both can share.

CLI Example:

.. code-block:: bash

    salt-run lbpair_history.read /var/lib/salt/lbpair/history.jsonl
"""

import contextlib
import datetime
import fcntl
import glob
import json
import os

__virtualname__ = "lbpair_history"


def __virtual__():
    return __virtualname__


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock tied to ``path`` (``<path>.lock``), across threads and processes."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(f"{path}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _files(path):
    """The rotated files, oldest first, then the live one."""
    rotated = sorted(name for name in glob.glob(f"{glob.escape(path)}.*") if name[len(path) + 1 :][:1].isdigit())
    return [*rotated, path]


def read(path):
    """
    Every record of the history at ``path`` (rotated files included), in file order.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair_history.read /var/lib/salt/lbpair/history.jsonl
    """
    records = []
    for name in _files(path):
        try:
            with open(name, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            with contextlib.suppress(ValueError):  # a line cut short by a crash
                records.append(json.loads(line))
    return records


def seen_keys(records):
    """The ``(minion, seq)`` pairs of the transitions among ``records``."""
    return {(r["minion"], r["seq"]) for r in records if r.get("kind") == "transition" and r.get("seq") is not None}


def last_seq(path, minion):
    """
    The highest sequence number recorded for ``minion`` (0 if none).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair_history.last_seq /var/lib/salt/lbpair/history.jsonl lb1
    """
    seqs = [seq for who, seq in seen_keys(read(path)) if who == minion]
    return max(seqs, default=0)


def _rotate_if_large(path, max_bytes):
    if not max_bytes or not os.path.exists(path) or os.path.getsize(path) < max_bytes:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    os.rename(path, f"{path}.{stamp}")


def append(path, records, max_bytes=0):
    """
    Append ``records`` durably and return those that were new.

    A transition whose ``(minion, seq)`` is already in the history is dropped
    (a replay); records of other kinds are always appended.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair_history.append /tmp/h.jsonl '[{"kind": "note"}]'
    """
    with locked(path):
        known = seen_keys(read(path))
        new = []
        for record in records:
            key = (record.get("minion"), record.get("seq"))
            if record.get("kind") == "transition" and key in known:
                continue
            known.add(key)
            new.append(record)
        if new:
            _rotate_if_large(path, max_bytes)
            with open(path, "a", encoding="utf-8") as handle:
                handle.writelines(json.dumps(record, sort_keys=True) + "\n" for record in new)
                handle.flush()
                os.fsync(handle.fileno())
    return new


# --- reading it back ------------------------------------------------------------


def parse_time(value):
    """An aware datetime from ISO 8601 text or an epoch number (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or str(value).replace(".", "", 1).isdigit():
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def select(records, instance=None, minion=None, since=None, until=None):
    """
    The records matching the filters, ordered by time (``at``).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair_history.select '[...]' instance=lbpair_51
    """
    since, until = parse_time(since), parse_time(until)
    chosen = []
    for record in records:
        at = parse_time(record.get("at"))
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
    """
    The records as readable lines, one per record.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair_history.timeline '[...]'
    """
    return [f"{record.get('at', '?')}  {record.get('instance', '-')}  {_describe(record)}" for record in records]
