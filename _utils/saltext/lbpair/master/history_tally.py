"""
What the history tells of each pair's VRRP instances, kept in the history's index
(:mod:`saltext.lbpair.master.history_index`) and caught up with it, so that the master's
metrics (:mod:`saltext.lbpair.master.metrics`) read neither the history nor its rotated files:

- ``failovers``: every confirmed transition into MASTER, once per ``(minion, seq)``, with its
  pair, instance and whether a planned move expected it;
- ``masters``: per pair and instance, the node its newest transition (by the time the node
  received it) left MASTER, or ``NULL`` when that node left MASTER and no other took it since.

Like the rest of the index it is built again from the files whenever they no longer hold what
was read: the counts are the history's, whichever process or version wrote it.
"""

from saltext.lbpair.core import times
from saltext.lbpair.model.keepalived_model import VrrpState

SCHEMA = """
DROP TABLE IF EXISTS failovers;
DROP TABLE IF EXISTS masters;
CREATE TABLE failovers (minion TEXT NOT NULL, seq INTEGER NOT NULL, pair TEXT NOT NULL, instance TEXT NOT NULL,
                        planned INTEGER NOT NULL, PRIMARY KEY (minion, seq)) WITHOUT ROWID;
CREATE TABLE masters (pair TEXT NOT NULL, instance TEXT NOT NULL, minion TEXT, at REAL NOT NULL,
                      PRIMARY KEY (pair, instance)) WITHOUT ROWID;
"""
CLEAR = ("DELETE FROM failovers", "DELETE FROM masters")


def _text(value):
    return value if isinstance(value, str) else ""


def transition_row(record, key):
    """
    ``(pair, instance, minion, seq, state, at, planned)`` of a confirmed transition whose slot is
    ``key`` (:func:`~saltext.lbpair.master.history_index.slot`), or ``None``: an unconfirmed one,
    one without an instance. ``pair`` is ``""`` in an older version's record (it named none).
    """
    if record.get("confirmed") is False or not _text(record.get("instance")):
        return None
    try:
        at = times.parse(record.get("at"))
    except (TypeError, ValueError, OverflowError, OSError):
        at = None
    return (_text(record.get("pair")), record["instance"], *key, _text(record.get("state")),
            at and at.timestamp(), int(bool(record.get("planned"))))  # fmt: skip


def add(db, rows):
    """Count the transitions ``rows`` (:func:`transition_row`, in file order) into the tables."""
    failovers = [(minion, seq, pair, instance, planned) for pair, instance, minion, seq, state, _, planned in rows
                 if state == VrrpState.MASTER]  # fmt: skip
    db.executemany("INSERT OR IGNORE INTO failovers VALUES (?, ?, ?, ?, ?)", failovers)
    held = {(pair, instance): (minion, at) for pair, instance, minion, at in db.execute("SELECT pair, instance, minion, at FROM masters")}
    changed = {}
    for pair, instance, minion, _, state, at, _ in rows:
        master, since = held.get((pair, instance), (None, None))
        if at is None or (since is not None and at < since):  # caught up late: newer transitions decided already
            continue
        if state == VrrpState.MASTER or master == minion:
            held[pair, instance] = changed[pair, instance] = (minion if state == VrrpState.MASTER else None, at)
    db.executemany("INSERT OR REPLACE INTO masters VALUES (?, ?, ?, ?)", [(*key, *value) for key, value in changed.items()])


def failovers(db):
    """``{(pair, minion, instance, planned): count}`` of the confirmed transitions into MASTER."""
    rows = db.execute("SELECT pair, minion, instance, planned, count(*) FROM failovers GROUP BY pair, minion, instance, planned")
    return {(pair, minion, instance, bool(planned)): count for pair, minion, instance, planned, count in rows}


def masters(db):
    """``{(pair, instance): minion or None}``: who the newest transitions left MASTER of each instance."""
    return {(pair, instance): minion for pair, instance, minion in db.execute("SELECT pair, instance, minion FROM masters")}
