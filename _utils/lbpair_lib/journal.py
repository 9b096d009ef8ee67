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

from lbpair_lib import schema, store

DEFAULT_MAX_ENTRIES = 10000


class Journal:
    """The journal file at ``path``, holding at most ``max_entries`` transitions."""

    def __init__(self, path, max_entries=DEFAULT_MAX_ENTRIES):
        self.path = path
        self.max_entries = max_entries

    @classmethod
    def from_options(cls, options, cachedir):
        """The journal the minion's ``lbpair_journal`` options name (``<cachedir>/lbpair/...`` by default)."""
        options = schema.mapping({} if options is None else options, "lbpair_journal", ("path", "max_entries"))
        default = os.path.join(cachedir, "lbpair", "transitions.jsonl")
        path = schema.string(options.get("path", default), "lbpair_journal:path")
        maximum = schema.integer(options.get("max_entries", DEFAULT_MAX_ENTRIES), "lbpair_journal:max_entries", 2, 10**7)
        return cls(path, maximum)

    def entries(self):
        """Every entry, oldest first."""
        return store.read_records(self.path)

    def since(self, seq):
        """The entries whose ``seq`` is greater than ``seq``, oldest first."""
        return [entry for entry in self.entries() if entry.get("seq", 0) > seq]

    def last_known(self):
        """The newest entry of each instance: ``{instance: entry}``."""
        return {entry["instance"]: entry for entry in self.entries() if "instance" in entry}

    def append(self, entry):
        """Give ``entry`` the next sequence number, append it durably (fsync'd), and return it."""
        with store.locked(self.path):
            entries = self.entries()
            entry = {**entry, "seq": (entries[-1]["seq"] if entries else 0) + 1}
            if len(entries) + 1 > self.max_entries:
                store.rewrite_records(self.path, entries[len(entries) - self.max_entries // 2 + 1 :] + [entry])
            else:
                store.append_records(self.path, [entry])
        return entry
