"""
The minion's local journal of VRRP transitions.

The ``lbpair_vrrp`` beacon appends every transition it reports here before the
event leaves the minion: Salt drops beacon events while the minion is not
connected to its master, and the master catches up from this journal
(``lbpair_keepalived.transitions since=<seq>``).

The journal is JSON lines, one transition per line, each with a sequence
number ``seq`` that grows by one per transition and survives minion restarts.
It is bounded: past ``max_entries`` lines the oldest half is dropped (the
newest entry, and so the sequence, is always kept).

Minion configuration (optional):

.. code-block:: yaml

    lbpair_journal:
      path: /var/cache/salt/minion/lbpair/transitions.jsonl   # default: <cachedir>/lbpair/...
      max_entries: 10000
"""

import contextlib
import fcntl
import json
import os

from salt.exceptions import SaltInvocationError

__virtualname__ = "lbpair_journal"

DEFAULT_MAX_ENTRIES = 10000


def __virtual__():
    return __virtualname__


# --- pure functions -----------------------------------------------------------


@contextlib.contextmanager
def _locked(path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(f"{path}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_entries(path):
    """Every entry of the journal at ``path``, oldest first (``[]`` if there is none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut short by a crash is skipped
            entries.append(json.loads(line))
    return entries


def last_seq(path):
    """The sequence number of the newest entry, 0 for an empty journal."""
    entries = read_entries(path)
    return entries[-1]["seq"] if entries else 0


def entries_since(path, since):
    """The entries whose ``seq`` is greater than ``since``, oldest first."""
    return [entry for entry in read_entries(path) if entry["seq"] > since]


def _write_all(path, entries):
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _line_break_if_cut(path):
    """A newline if the file ends in a line cut short by a crash, so the next line stands alone."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return ""
        handle.seek(-1, os.SEEK_END)
        return "" if handle.read(1) == b"\n" else "\n"


def append_entry(path, entry, max_entries=DEFAULT_MAX_ENTRIES):
    """
    Give ``entry`` the next sequence number, append it durably, and return it.

    The line is written and fsync'd before this returns. When the journal grows
    past ``max_entries``, the oldest half is dropped.
    """
    with _locked(path):
        entries = read_entries(path)
        entry = {**entry, "seq": (entries[-1]["seq"] if entries else 0) + 1}
        if len(entries) + 1 > max_entries:
            _write_all(path, entries[len(entries) - max_entries // 2 + 1 :] + [entry])
            return entry
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(_line_break_if_cut(path) + json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return entry


# --- Salt functions -----------------------------------------------------------


def path():
    """
    The journal file of this minion.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_journal.path
    """
    default = os.path.join(__opts__["cachedir"], "lbpair", "transitions.jsonl")
    return __salt__["config.get"]("lbpair_journal:path", default)


def _max_entries():
    return int(__salt__["config.get"]("lbpair_journal:max_entries", DEFAULT_MAX_ENTRIES))


def append(entry):
    """
    Append a transition (a mapping) to the journal; returns it with its ``seq``.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_journal.append '{"instance": "lbpair_51", "state": "MASTER"}'
    """
    if not isinstance(entry, dict):
        raise SaltInvocationError("a journal entry is a mapping")
    return append_entry(path(), entry, _max_entries())


def since(seq=0):
    """
    The journalled transitions with a sequence number greater than ``seq``.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_journal.since 41
    """
    return entries_since(path(), int(seq))


def last():
    """
    The newest sequence number in the journal (0 if it is empty).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_journal.last
    """
    return last_seq(path())
