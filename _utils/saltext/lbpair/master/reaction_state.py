"""
The lbpair master's reaction state: a SQLite database beside the history
(``<history>.state.sqlite``), shared by the reactor's threads and the background
``lbpair.flush`` jobs, changed by every reaction one transaction at a time
(:mod:`saltext.lbpair.core.database`: WAL mode, writers take turns, every commit fsync'd).

It holds what must outlive one reaction, a table per concern:

- ``damping``: flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`);
- ``storms``: per channel destination, the pairs whose messages went out in the storm window and
  the messages held for its summary (:mod:`saltext.lbpair.master.storm`);
- ``instances``: per VRRP instance, when it was last checked, the problem it last showed, the
  alarm raised, where DNS points;
- ``reactions``: per reaction (``"<minion>:<seq>"``), the outcome of each of its steps, kept while
  one has not succeeded, so that a replay completes them once;
- ``claims``: per node, the events it could not confirm yet;
- ``due``: work for later (a pair check after the settle time, a DNS retry, a catch-up retry),
  keyed so that newer work of the same kind replaces older;
- ``silent``: when a node last left a job unanswered; ``planned``: the planned moves under way;
- ``quiet``: quiet periods of announcements (node warnings, a node's claims, certificate warnings);
- ``queue``: the beacon events waiting for the background worker (:mod:`saltext.lbpair.master.event_queue`).

:class:`ReactionStore` is the only way in: each of its methods is one transaction; no caller
sees a table. Keys (instances, minions, reactions) are opaque text; values that are structures
(claims, tasks, held transitions, a step's context) are stored as JSON.

The state of earlier versions, one JSON document (``<history>.state.json``), is taken over once
by the first store opened beside it, then renamed ``<history>.state.json.migrated``. When the
database cannot be written (a full disk), a process goes on with a copy in memory and writes it
back once it can.

Nothing here waits: the work due later is done by ``lbpair.flush`` (a background
job the reactions start, and the master's schedule as a safety net).
"""

import contextlib
import json
import logging
import os
import sqlite3

from saltext.lbpair.core import database, store
from saltext.lbpair.master import event_queue, notify, storm

log = logging.getLogger(__name__)

MAX_CLAIMS = 50  # per node: a flood of forged events must not grow the state without bound
MAX_STEP_ENTRIES = 500

# 2: the event queue; every statement creates only what is missing, so that a database of version 1 gains it
SCHEMA_VERSION = 2
TABLES = (
    "CREATE TABLE IF NOT EXISTS silent (minion TEXT PRIMARY KEY, since REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS planned (instance TEXT PRIMARY KEY, target TEXT NOT NULL, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quiet (section TEXT NOT NULL, key TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (section, key))",
    "CREATE TABLE IF NOT EXISTS damping (instance TEXT PRIMARY KEY, until REAL NOT NULL, master_announced INTEGER, held TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS storms (key TEXT PRIMARY KEY, until REAL NOT NULL, pairs TEXT NOT NULL, held TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reactions (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, pending TEXT NOT NULL, failed TEXT NOT NULL,"
    " context TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims (id INTEGER PRIMARY KEY, minion TEXT NOT NULL, claim TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS claims_of_minion ON claims (minion, id)",
    "CREATE TABLE IF NOT EXISTS due (key TEXT PRIMARY KEY, at REAL NOT NULL, task TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS due_by_time ON due (at, key)",
    "CREATE TABLE IF NOT EXISTS instances (instance TEXT PRIMARY KEY, checked REAL, problem TEXT, alarm TEXT, dns TEXT)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    event_queue.TABLE,
    event_queue.INDEX,
)
QUIET_SECTIONS = ("warned", "claim_notices", "certificates_warned")  # also the JSON document's keys


def _create(db):
    for statement in TABLES:
        db.execute(statement)


def _value(db, query, args, default=None):
    """The first column of the first row ``query`` gives; ``default`` if it gives none (or NULL)."""
    row = db.execute(query, args).fetchone()
    return default if row is None or row[0] is None else row[0]


@contextlib.contextmanager
def worker_slot(path):
    """Yield whether this process is now the only background worker of ``path`` (a lock it holds until exit)."""
    with store.try_locked(f"{path}.worker") as mine:
        yield mine


# --- node silence, planned moves, quiet periods ---------------------------------------------


def _note_silence(db, minion, since):
    if since is None:
        db.execute("DELETE FROM silent WHERE minion = ?", (minion,))
    else:
        db.execute("INSERT OR REPLACE INTO silent VALUES (?, ?)", (minion, since))


def _plan(db, targets, until):
    db.executemany("INSERT OR REPLACE INTO planned VALUES (?, ?, ?)", [(instance, target, until) for instance, target in targets.items()])


def _plans(db):
    rows = db.execute("SELECT instance, target, until FROM planned ORDER BY rowid")
    return {instance: {"to": target, "until": until} for instance, target, until in rows}


def _quiet_due(db, section, keys, now, quiet):
    """Those of ``keys`` whose quiet period in ``section`` is over at ``now``: announced, then quiet ``quiet`` s."""
    until = dict(db.execute("SELECT key, until FROM quiet WHERE section = ?", (section,)))
    due = [key for key in keys if now >= until.get(key, 0)]
    db.executemany("INSERT OR REPLACE INTO quiet VALUES (?, ?, ?)", [(section, key, now + quiet) for key in due])
    return due


# --- flap damping: the slots of :mod:`saltext.lbpair.master.notify`, a row each -------------


def _slots(db, where="", args=()):
    """``{instance: slot}`` as :func:`saltext.lbpair.master.notify.admit` keeps them, of the rows ``where`` picks."""
    slots = {}
    for instance, until, announced, held in db.execute(f"SELECT instance, until, master_announced, held FROM damping {where}", args):
        slots[instance] = {"until": until, "held": json.loads(held)}
        if announced is not None:
            slots[instance]["master_announced"] = bool(announced)
    return slots


def _put_slots(db, slots):
    # held as json.dumps writes it: "[]" when nothing is held (the queries need no JSON functions in SQLite)
    rows = [(instance, slot["until"], slot.get("master_announced"), json.dumps(slot["held"])) for instance, slot in slots.items()]
    db.executemany("INSERT OR REPLACE INTO damping VALUES (?, ?, ?, ?)", rows)


def _damp(db, decide, instance, *args):
    """``decide(slots, instance, *args)`` (:func:`~saltext.lbpair.master.notify.admit` or ``release``) on ``instance``'s slot."""
    slots = _slots(db, "WHERE instance = ?", (instance,))
    decision = decide(slots, instance, *args)
    _put_slots(db, slots)
    return decision


def _summaries_due(db, now):
    return notify.due(_slots(db, "WHERE held != '[]'"), now)


# --- storms: the slots of :mod:`saltext.lbpair.master.storm`, a row per channel destination -


def _storms(db, where="", args=()):
    rows = db.execute(f"SELECT key, until, pairs, held FROM storms {where}", args)
    return {key: {"until": until, "pairs": json.loads(pairs), "held": json.loads(held)} for key, until, pairs, held in rows}


def _storm(db, decide, storm_key, *args):
    """``decide(slots, storm_key, *args)`` (:func:`~saltext.lbpair.master.storm.admit` or ``release``) on ``storm_key``'s slot."""
    slots = _storms(db, "WHERE key = ?", (storm_key,))
    decision = decide(slots, storm_key, *args)
    rows = [(key, slot["until"], json.dumps(slot["pairs"]), json.dumps(slot["held"])) for key, slot in slots.items()]
    db.executemany("INSERT OR REPLACE INTO storms VALUES (?, ?, ?, ?)", rows)
    return decision


def _storms_due(db, now):
    return storm.due(_storms(db, "WHERE held != '[]'"), now)


# --- the steps of each reaction -------------------------------------------------------------


def _entry(db, key):
    """The reaction ``key``'s open steps, ``{"pending", "failed", **context}`` (``None``: it is not open)."""
    row = db.execute("SELECT pending, failed, context FROM reactions WHERE key = ?", (key,)).fetchone()
    return None if row is None else {"pending": json.loads(row[0]), "failed": json.loads(row[1]), **json.loads(row[2])}


def _put_entry(db, key, entry):
    """Keep ``entry`` for the reaction ``key`` (in its place among the others if it is there already)."""
    context = {name: value for name, value in entry.items() if name not in ("pending", "failed")}
    db.execute(
        "INSERT INTO reactions (key, pending, failed, context) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET pending = excluded.pending, failed = excluded.failed, context = excluded.context",
        (key, json.dumps(entry["pending"]), json.dumps(entry["failed"]), json.dumps(context)),
    )


def _begin(db, key, steps, context):
    _put_entry(db, key, {"pending": list(steps), "failed": {}, **context})
    db.execute("DELETE FROM reactions WHERE id <= (SELECT id FROM reactions ORDER BY id DESC LIMIT 1 OFFSET ?)", (MAX_STEP_ENTRIES,))


def _settle(db, key, step, error=None):
    """Note the outcome of one step; the reaction is closed once every step succeeded."""
    entry = _entry(db, key)
    if entry is None:
        return
    if error is None:
        entry["pending"] = [name for name in entry["pending"] if name != step]
        entry["failed"].pop(step, None)
    else:
        entry["failed"][step] = error
    if entry["pending"]:
        _put_entry(db, key, entry)
    else:
        db.execute("DELETE FROM reactions WHERE key = ?", (key,))


def _step_failed(db, key, step, error):
    first = step not in (_entry(db, key) or {}).get("failed", {})
    _settle(db, key, step, error)
    return first


def _open_reactions(db):
    return {key: json.loads(pending) for key, pending in db.execute("SELECT key, pending FROM reactions ORDER BY id")}


# --- claims: events their node has not confirmed --------------------------------------------


def _claim_count(db, minion):
    return _value(db, "SELECT count(*) FROM claims WHERE minion = ?", (minion,))


def _insert_claim(db, minion, claim):
    db.execute("INSERT INTO claims (minion, claim) VALUES (?, ?)", (minion, json.dumps(claim)))
    db.execute(
        "DELETE FROM claims WHERE minion = ? AND id <= (SELECT id FROM claims WHERE minion = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (minion, minion, MAX_CLAIMS),
    )


def _add_claim(db, minion, claim, now, quiet):
    _insert_claim(db, minion, claim)
    return _claim_count(db, minion), bool(_quiet_due(db, "claim_notices", [minion], now, quiet))


def _take_claims(db, minion):
    claims = [json.loads(claim) for (claim,) in db.execute("SELECT claim FROM claims WHERE minion = ? ORDER BY id", (minion,))]
    db.execute("DELETE FROM claims WHERE minion = ?", (minion,))
    return claims


def _open_claims(db):
    claims = {}
    for minion, claim in db.execute("SELECT minion, claim FROM claims ORDER BY id"):
        claims.setdefault(minion, []).append(json.loads(claim))
    return claims


# --- per VRRP instance: its checks, problem, alarm, DNS (a column each) ---------------------


def _get(db, column, instance, default=None):
    return _value(db, f"SELECT {column} FROM instances WHERE instance = ?", (instance,), default)


def _set(db, column, instance, value):
    db.execute(
        f"INSERT INTO instances (instance, {column}) VALUES (?, ?) ON CONFLICT (instance) DO UPDATE SET {column} = excluded.{column}",
        (instance, value),
    )


def _start_check(db, instance, requested_at, now):
    if requested_at is not None and _get(db, "checked", instance, 0) > requested_at:
        return False
    _set(db, "checked", instance, now)
    return True


def _note_new(db, column, instance, value):
    """Note ``value`` (a JSON value) in ``column`` of ``instance``; whether it differs from the one noted."""
    noted = _get(db, column, instance)
    if (None if noted is None else json.loads(noted)) == value:
        return False
    _set(db, column, instance, json.dumps(value))
    return True


def _all_clear(db, instance):
    db.execute("UPDATE instances SET problem = NULL, alarm = NULL WHERE instance = ?", (instance,))


# --- work due later -------------------------------------------------------------------------


def _schedule(db, key, at, task):
    db.execute("INSERT OR REPLACE INTO due VALUES (?, ?, ?)", (key, at, json.dumps(task)))


def _take_due(db, now):
    rows = db.execute("SELECT key, at, task FROM due WHERE at <= ? ORDER BY at, key", (now,))
    ready = [(key, {**json.loads(task), "at": at}) for key, at, task in rows]
    db.execute("DELETE FROM due WHERE at <= ?", (now,))
    return ready


def _next_due(db):
    held = "SELECT until FROM damping WHERE held != '[]' UNION ALL SELECT until FROM storms WHERE held != '[]'"
    return _value(db, f"SELECT min(at) FROM (SELECT at FROM due UNION ALL {held} UNION ALL SELECT at FROM queue)", ())


def _due(db):
    return dict(db.execute("SELECT key, at FROM due ORDER BY key"))


# --- the JSON document of earlier versions, taken over once ---------------------------------


def _import(db, document):
    """Copy the JSON state ``document`` into the tables, unless one was copied already."""
    if _value(db, "SELECT value FROM meta WHERE key = 'imported'", ()) is not None:
        return
    db.execute("INSERT INTO meta VALUES ('imported', ?)", (json.dumps(sorted(document)),))

    def section(name):
        return document.get(name) if isinstance(document.get(name), dict) else {}

    for minion, since in section("silent").items():
        _note_silence(db, minion, since)
    for instance, plan in section("planned").items():
        _plan(db, {instance: plan["to"]}, plan["until"])
    for name in QUIET_SECTIONS:
        db.executemany("INSERT INTO quiet VALUES (?, ?, ?)", [(name, key, until) for key, until in section(name).items()])
    _put_slots(db, section("damping"))
    for key, entry in section("steps").items():
        _put_entry(db, key, entry)
    for minion, claims in section("claims").items():
        for claim in claims[-MAX_CLAIMS:]:
            _insert_claim(db, minion, claim)
    for key, task in section("due").items():
        _schedule(db, key, task["at"], task)
    for instance, at in section("checked").items():
        _set(db, "checked", instance, at)
    for name, column in (("problems", "problem"), ("alarms", "alarm")):
        for instance, value in section(name).items():
            _set(db, column, instance, json.dumps(value))
    for instance, master in section("dns").items():
        _set(db, "dns", instance, master)


def database_path(path):
    """The database of the state named ``path`` (``<history>.state.json``, as earlier versions named it)."""
    return f"{path.removesuffix('.json')}.sqlite"


class ReactionStore:
    """
    The reaction state named ``path`` (``<history>.state.json``; the database is ``<history>.state.sqlite``
    beside it): each method is one transaction; callers never see a table.
    """

    def __init__(self, path):
        self.path = path
        self.database = database.Database(database_path(path), SCHEMA_VERSION, _create)
        self._memory_flag = None  # held while this process works on a copy in memory (:meth:`settle`)
        if os.path.exists(path):
            self._take_over(path)

    def _take_over(self, path):
        """Copy the JSON state an earlier version left at ``path`` (once), then rename it ``<path>.migrated``."""
        try:
            self.database.write(_import, store.read_json(path, {}))
        except (LookupError, TypeError, ValueError, AttributeError, sqlite3.IntegrityError) as exc:
            log.error("lbpair: the reaction state %s cannot be taken over (%s): starting without it", path, exc)
        if not self.database.in_memory:  # else the file is still the only copy on disk
            with contextlib.suppress(FileNotFoundError):  # another process took it over meanwhile
                os.replace(path, f"{path}.migrated")
                log.warning("lbpair: the reaction state %s is now in %s", path, self.database.path)

    @property
    def in_memory(self):
        """Whether this process works on a copy in memory (the database cannot be written): other processes do not see its changes."""
        return self.database.in_memory

    def lock(self, name):
        """A lock of its own beside the state (``name``: what it serialises), not held by the transactions."""
        return store.locked(f"{self.path}.{name}")

    def worker_slot(self):
        return worker_slot(self.path)

    def settle(self):
        """
        Write a copy in memory back if the disk has room again. While this process still works in
        memory it holds the ``memory`` flag (a lock beside the state): the background worker is
        then blind to the events the reactor queues on disk, and the reactor reacts itself.
        """
        if self.database.write_back():
            if self._memory_flag is not None:
                self._memory_flag.close()
                self._memory_flag = None
        elif self._memory_flag is None:
            self._memory_flag = contextlib.ExitStack()
            self._memory_flag.enter_context(store.try_locked(f"{self.path}.memory"))

    def worker_in_memory(self):
        """Whether the background worker works on a copy in memory (it holds the ``memory`` flag: :meth:`settle`)."""
        with store.try_locked(f"{self.path}.memory") as free:
            return not free

    # node silence (see :class:`saltext.lbpair.master.node_client.NodeClient`)

    def silent_since(self, minion):
        """When ``minion`` last left a job unanswered (epoch; 0: it answered since)."""
        return self.database.read(_value, "SELECT since FROM silent WHERE minion = ?", (minion,), 0)

    def note_silence(self, minion, since):
        """``minion`` left a job unanswered at ``since``, or (``None``) answered."""
        self.database.write(_note_silence, minion, since)

    # planned moves (:mod:`saltext.lbpair.master.planned`)

    def plan(self, targets, until):
        """Note a planned move, ``targets`` ``{instance: node}``, under way until ``until``."""
        self.database.write(_plan, targets, until)

    def plans(self):
        """``{instance: {"to", "until"}}``: the planned moves noted."""
        return self.database.read(_plans)

    # quiet periods of announcements: one a window per certificate warning, node warning, node's claims

    def quiet_certificates(self, keys, now, quiet):
        """Of the certificate warnings ``keys``, those to announce at ``now`` (then quiet ``quiet`` s)."""
        return self.database.write(_quiet_due, "certificates_warned", keys, now, quiet)

    def quiet_warning(self, key, now, quiet):
        """Whether a node's warning ``key`` (``"<minion>:<code>"``) is to be announced at ``now`` (then quiet ``quiet`` s)."""
        return bool(self.database.write(_quiet_due, "warned", [key], now, quiet))

    # flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`)

    def admit(self, instance, now, window, record):
        """Whether ``record``'s notice is sent, held or dropped (:func:`saltext.lbpair.master.notify.admit`)."""
        return self.database.write(_damp, notify.admit, instance, now, window, record)

    def summaries_due(self, now):
        """The instances whose held summary is due at ``now``."""
        return self.database.read(_summaries_due, now)

    def release_summary(self, instance, now, window):
        """The transitions held for ``instance``'s summary, taken (none: nothing due)."""
        return self.database.write(_damp, notify.release, instance, now, window)

    # storms: transition messages per channel destination (:mod:`saltext.lbpair.master.storm`)

    def admit_storm(self, storm_key, now, record):
        """Whether ``record``'s message goes out through the destination of ``storm_key`` (:func:`saltext.lbpair.master.storm.admit`)."""
        return self.database.write(_storm, storm.admit, storm_key, now, record)

    def storms_due(self, now):
        """The storm keys whose held summary is due at ``now``."""
        return self.database.read(_storms_due, now)

    def release_storm(self, storm_key, now):
        """The transitions held for ``storm_key``'s summary, taken (none: nothing due)."""
        return self.database.write(_storm, storm.release, storm_key, now)

    # the steps of each reaction

    def begin_steps(self, key, steps, context):
        """Start the reaction ``key`` with ``steps`` to do; ``context``: what a replay needs to redo them."""
        self.database.write(_begin, key, steps, context)

    def unfinished(self, key):
        """The reaction ``key``'s steps that have not succeeded yet (``None``: no such reaction is open)."""
        return self.database.read(_entry, key)

    def step_done(self, key, step):
        self.database.write(_settle, key, step)

    def step_failed(self, key, step, error):
        """Note that ``step`` of reaction ``key`` failed; whether it is its first failure."""
        return self.database.write(_step_failed, key, step, error)

    def open_reactions(self):
        """``{key: [pending steps]}``."""
        return self.database.read(_open_reactions)

    # claims

    def claim_count(self, minion):
        return self.database.read(_claim_count, minion)

    def add_claim(self, minion, claim, now, quiet):
        """
        Note an open claim of ``minion``, in one transaction with its announcement's quiet period:
        ``(how many it has open now, whether its claims are announced at now, then quiet quiet s)``.
        """
        return self.database.write(_add_claim, minion, claim, now, quiet)

    def take_claims(self, minion):
        return self.database.write(_take_claims, minion)

    def open_claims(self):
        return self.database.read(_open_claims)

    # the pair's checks, alarms and DNS, per VRRP instance

    def start_check(self, instance, requested_at, now):
        """Note a pair check of ``instance`` at ``now``; ``False`` (nothing noted) when one started after ``requested_at``."""
        return self.database.write(_start_check, instance, requested_at, now)

    def problem_seen_before(self, instance, shape):
        """Whether the last check of ``instance`` saw this ``shape`` of problem; notes it otherwise."""
        return not self.database.write(_note_new, "problem", instance, shape)

    def raise_alarm(self, instance, problem):
        """Note ``problem`` as ``instance``'s alarm; whether it is a new one (not raised already)."""
        return self.database.write(_note_new, "alarm", instance, problem)

    def all_clear(self, instance):
        """``instance`` is healthy: its alarm and the problem last seen are forgotten."""
        self.database.write(_all_clear, instance)

    def dns_target(self, instance):
        """The node the DNS records of ``instance`` point at (``None``: not known)."""
        return self.database.read(_get, "dns", instance)

    def note_dns(self, instance, master):
        self.database.write(_set, "dns", instance, master)

    # work due later (:mod:`saltext.lbpair.master.scheduler`)

    def schedule(self, key, at, task):
        """Do ``task`` (a mapping with ``kind``) at ``at``; replaces any work with the same ``key``."""
        self.database.write(_schedule, key, at, task)

    def take_due(self, now):
        """Remove and return the work due at ``now``: ``[(key, task)]``, earliest first."""
        return self.database.write(_take_due, now)

    def next_due(self):
        """When the next work is due (epoch), held summaries included; ``None`` if there is none."""
        return self.database.read(_next_due)

    def due(self):
        """``{key: epoch}``: when each piece of work is due."""
        return self.database.read(_due)

    # beacon events waiting for the background worker (:mod:`saltext.lbpair.master.event_queue`)

    def queue_event(self, minion, tag, data, now):
        """Queue an event of ``minion``: ``(id, None)``, or ``(None, why it was refused)``."""
        return self.database.write(event_queue.put, minion, tag, data, now)

    def queued_events(self, limit):
        """The oldest ``limit`` queued events, left in the queue: ``[(id, tag, data, queued at)]``."""
        return self.database.read(event_queue.peek, limit)

    def events_done(self, ids):
        """Remove the events ``ids`` from the queue (reacted to)."""
        self.database.write(event_queue.remove, ids)

    def events_waiting(self):
        """How many events are queued."""
        return self.database.read(event_queue.waiting)
