"""
The minion's local journal of VRRP transitions.

The ``lbpair_vrrp`` beacon appends every transition it reports here before the
event leaves the minion: Salt drops beacon events while the minion is not
connected to its master, and the master catches up from this journal
(``lbpair_keepalived.transitions since=<seq>``).

JSON lines, one transition per line, each with a sequence number ``seq`` that
grows by one per transition and survives minion restarts. Bounded: past
``max_entries`` lines the oldest half is dropped (the newest entry, and so the
sequence, is always kept).

Minion configuration (optional):

.. code-block:: yaml

    lbpair_journal:
      path: /var/cache/salt/minion/lbpair/transitions.jsonl   # default: <cachedir>/lbpair/...
      max_entries: 10000
"""

import os

from saltext.lbpair.core import store
from saltext.lbpair.model import schema

DEFAULT_MAX_ENTRIES = 10000


class Journal:
    """The journal file at ``path``, holding at most ``max_entries`` transitions."""

    def __init__(self, path, max_entries=DEFAULT_MAX_ENTRIES):
        self.path = path
        self.max_entries = max_entries
        self._tally = None  # (file identity, entries, last seq) as this object last wrote it

    @classmethod
    def from_options(cls, options, cachedir):
        """The journal the minion's ``lbpair_journal`` options name (``<cachedir>/lbpair/...`` by default)."""
        options = schema.mapping({} if options is None else options, "lbpair_journal", ("path", "max_entries"))
        default = os.path.join(cachedir, "lbpair", "transitions.jsonl")
        path = schema.string(options.get("path", default), "lbpair_journal:path")
        maximum = schema.integer(options.get("max_entries", DEFAULT_MAX_ENTRIES), "lbpair_journal:max_entries", 2, 10**7)
        return cls(path, maximum)

    def entries(self):
        """Every entry, oldest first; damaged lines are skipped."""
        return store.read_records(self.path)

    def bad_lines(self):
        """How many damaged lines (cut short, not JSON, not an object) the journal holds; they are skipped."""
        return store.scan(self.path)[1]

    def since(self, seq):
        """The entries whose ``seq`` is greater than ``seq``, oldest first."""
        return [entry for entry in self.entries() if _seq(entry) > seq]

    def last_known(self):
        """The newest entry of each instance: ``{instance: entry}``."""
        return {entry["instance"]: entry for entry in self.entries() if isinstance(entry.get("instance"), str)}

    def append(self, entry):
        """Give ``entry`` the next sequence number, append it durably (fsync'd), and return it."""
        with store.locked(self.path):
            count, last = self._count_and_last_seq()
            entry = {**entry, "seq": last + 1}
            if count + 1 > self.max_entries:
                entries = self.entries()
                kept = entries[len(entries) - self.max_entries // 2 + 1 :] + [entry]
                store.rewrite_records(self.path, kept)
                count = len(kept)
            else:
                store.append_records(self.path, [entry])
                count += 1
            self._tally = (_identity(self.path), count, entry["seq"])
        return entry

    def _count_and_last_seq(self):
        """How many entries the file holds and its last ``seq``: remembered if the file is as this object left it."""
        if self._tally and self._tally[0] == _identity(self.path):
            return self._tally[1:]
        entries = self.entries()
        return len(entries), next((_seq(entry) for entry in reversed(entries) if _seq(entry)), 0)


def _seq(entry):
    """An entry's ``seq``; 0 for one that is not a count (text, a boolean, a float, negative: damage)."""
    seq = entry.get("seq")
    return seq if type(seq) is int and seq > 0 else 0


def _identity(path):
    """What changes when another writer touches the file: inode, size, modification time."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns
