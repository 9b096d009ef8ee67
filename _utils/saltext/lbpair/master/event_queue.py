"""
The beacon events waiting for the reactions, a table of the reaction state
(:mod:`saltext.lbpair.master.reaction_state`).

The ``lbpair`` engine queues each event it reads off the master's bus (a few milliseconds; or the
reactor does, in one of its threads); the background worker takes
what is queued, reacts to it in one batch and then removes it. An event taken but not yet removed
(the worker died) is taken again: the reactions to it are idempotent (the history keeps a
transition once; a reaction's steps are done once).

Anyone can send a beacon event in a node's name, so the queue is bounded: per minion named in the
tag and in total; an event past a bound, or too large, is refused, and the node's journal still
holds its transition for the next catch-up.
"""

import json

MAX_EVENT_BYTES = 4096  # a beacon event is a few hundred bytes
MAX_PER_MINION = 100
MAX_QUEUED = 10000

TABLE = ("CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, minion TEXT NOT NULL, tag TEXT NOT NULL, data TEXT NOT NULL,"
         " at REAL NOT NULL)")
INDEX = "CREATE INDEX IF NOT EXISTS queue_of_minion ON queue (minion, id)"


def refusal(db, minion, tag, data):
    """Why the event may not be queued (a message), or ``None``; ``data`` is its JSON text."""
    if len(tag) + len(data) > MAX_EVENT_BYTES:
        return f"the event is larger than {MAX_EVENT_BYTES} bytes"
    if db.execute("SELECT count(*) FROM queue WHERE minion = ?", (minion,)).fetchone()[0] >= MAX_PER_MINION:
        return f"{MAX_PER_MINION} events of {minion} are waiting already"
    if db.execute("SELECT count(*) FROM queue").fetchone()[0] >= MAX_QUEUED:
        return f"{MAX_QUEUED} events are waiting already"
    return None


def put(db, minion, tag, data, now):
    """Queue the event (``data``: a mapping); ``(id, None)``, or ``(None, why it was refused)``."""
    text = json.dumps(data, sort_keys=True, default=str)
    problem = refusal(db, minion, tag, text)
    if problem:
        return None, problem
    return db.execute("INSERT INTO queue (minion, tag, data, at) VALUES (?, ?, ?, ?)", (minion, tag, text, now)).lastrowid, None


def peek(db, limit):
    """The oldest ``limit`` queued events: ``[(id, tag, data, queued at)]``."""
    rows = db.execute("SELECT id, tag, data, at FROM queue ORDER BY id LIMIT ?", (limit,))
    return [(event_id, tag, json.loads(data), at) for event_id, tag, data, at in rows]


def remove(db, ids):
    db.executemany("DELETE FROM queue WHERE id = ?", [(event_id,) for event_id in ids])


def waiting(db):
    """How many events wait."""
    return db.execute("SELECT count(*) FROM queue").fetchone()[0]
