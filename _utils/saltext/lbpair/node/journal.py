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
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import schema

DEFAULT_MAX_ENTRIES = 10000
MAX_SEQ = 2**63
#: the most nodes one ``since_of`` may name: one job to a whole fleet, not a file's worth
MAX_SINCE_OF = 10000


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
        return after(self.entries(), seq)

    def last_known(self):
        """The newest entry of each instance: ``{instance: entry}``."""
        return {entry["instance"]: entry for entry in self.entries() if isinstance(entry.get("instance"), str)}

    def append(self, entry):
        """Give ``entry`` the next sequence number, append it durably (fsync'd), and return it."""
        with self.locked():
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

    def locked(self):
        """Hold the journal's lock: an append holds it, and so does the settling of claims (``journal_claims``)."""
        return store.locked(self.path)

    def _count_and_last_seq(self):
        """How many entries the file holds and its last ``seq``: remembered if the file is as this object left it."""
        if self._tally and self._tally[0] == _identity(self.path):
            return self._tally[1:]
        entries = self.entries()
        return len(entries), next((seq_of(entry) for entry in reversed(entries) if seq_of(entry)), 0)


def since_for(node, since=0, since_of=None):
    """
    The sequence number after which ``node`` reads: its own entry of ``since_of``
    (``{minion id: seq}``: one job to many nodes gives each the same arguments), else
    ``since``. Every value is checked, each naming its key (``since_of:lb1``).
    """
    since = schema.integer(since, "since", 0, MAX_SEQ)
    if since_of is None:
        return since
    schema.named_mapping(since_of, "since_of")
    if len(since_of) > MAX_SINCE_OF:
        raise InvalidValue("since_of", f"must name at most {MAX_SINCE_OF} nodes, got {len(since_of)}")
    for minion, seq in since_of.items():
        schema.integer(seq, f"since_of:{schema.string(minion, 'since_of')}", 0, MAX_SEQ)
    return since_of.get(node, since)


def after(entries, seq):
    """The ``entries`` whose ``seq`` is greater than ``seq``, in their order."""
    return [entry for entry in entries if seq_of(entry) > seq]


def seq_of(entry):
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
