"""
Which master acts on each transition of the node's journal.

Two hot masters both react to the same beacon event; each transition must be
notified and put into DNS by one of them only. The node decides, as the one
place both masters reach: the first master to claim a transition's sequence
number owns it for good. A master claims by reading the journal
(``lbpair_keepalived.transitions claim=True``); each entry it gets back says
whether it is the one ``acting`` on it. The same master claiming again gets the
same answer.

The claims are kept beside the journal, in ``<journal>.claims.json``
(``{"<seq>": "<master>"}``, replaced atomically), settled under the journal's
lock (the one the beacon holds while it appends) and pruned to the sequence
numbers the journal still holds. A damaged claims file is taken as empty, with a
warning: the journal is read all the same.
"""

import logging

from saltext.lbpair.core import store
from saltext.lbpair.model import schema
from saltext.lbpair.node.journal import after, seq_of

log = logging.getLogger(__name__)


def claimant(master):
    """
    The name a master claims under: the job's publishing master, as the minion names it (a
    list of masters, as a local call with several masters has, joined: the same list, the same name).
    """
    if isinstance(master, (list, tuple)):
        master = ",".join(str(name) for name in master)
    return schema.string(master, "master")


class Claims:
    """The owners of the transitions ``journal`` (a :class:`~saltext.lbpair.node.journal.Journal`) holds."""

    def __init__(self, journal):
        self.journal = journal
        self.path = f"{journal.path}.claims.json"

    def since(self, seq, master):
        """
        The journal's entries after ``seq``, oldest first, each with ``acting``: whether
        ``master`` owns it. ``master`` claims those no master has claimed yet; the others
        keep their owner.
        """
        master = claimant(master)
        with self.journal.locked():
            entries = self.journal.entries()
            stored = self._read()
            held = {seq_of(entry) for entry in entries}
            owners = {number: owner for number, owner in stored.items() if number in held}
            wanted = after(entries, seq)
            for entry in wanted:
                owners.setdefault(seq_of(entry), master)
            if owners != stored:
                store.write_json(self.path, {str(number): owner for number, owner in owners.items()})
        return [{**entry, "acting": owners[seq_of(entry)] == master} for entry in wanted]

    def _read(self):
        """The claims file's ``{seq: master}``; what is damaged is left out, with a warning."""
        try:
            document = store.load_json(self.path)
        except FileNotFoundError:
            return {}
        except ValueError:
            document = None
        if not isinstance(document, dict):
            log.warning("lbpair: the journal's claims file %s is damaged; its claims are dropped", self.path)
            return {}
        owners = {int(number): owner for number, owner in document.items() if _is_claim(number, owner)}
        if len(owners) < len(document):
            log.warning("lbpair: %d damaged claims in %s were dropped", len(document) - len(owners), self.path)
        return owners


def _is_claim(number, owner):
    """Whether a claims file's key and value are a sequence number and a master's name."""
    return number.isascii() and number.isdigit() and int(number) > 0 and isinstance(owner, str) and bool(owner)
