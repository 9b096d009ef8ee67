"""
The tables of the master's reaction state (:mod:`saltext.lbpair.master.reaction_state`) and what
each statement does: a function per query or change, ``function(db, *args)`` of a connection,
which :class:`~saltext.lbpair.master.reaction_state.ReactionStore` runs in one transaction
(:mod:`saltext.lbpair.core.database`). A table per concern:

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
- ``tallies``: per pair, what the master's metrics count that the history does not tell
  (:mod:`saltext.lbpair.master.metrics`): failed steps, the last DNS update, reaction latencies;
  made by the first tally (a state that never counted anything is as small as before);
- ``queue``: the beacon events waiting for the background worker (:mod:`saltext.lbpair.master.event_queue`);
- ``meta``: whether the JSON document of earlier versions was taken over (:func:`take_over`).

Keys (instances, minions, reactions) are opaque text; values that are structures (claims, tasks,
held transitions, a step's context) are stored as JSON.
"""

import json

from saltext.lbpair.master import event_queue, notify, storm

MAX_CLAIMS = 50  # per node: a flood of forged events must not grow the state without bound
MAX_STEP_ENTRIES = 500
MAX_TALLIES = 20000  # rows of tallies: a few dozen per pair, the oldest pairs' dropped beyond

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


def create_tables(db):
    """Create what :data:`TABLES` lists and ``db`` lacks (the schema, version :data:`SCHEMA_VERSION`)."""
    for statement in TABLES:
        db.execute(statement)


def first_value(db, query, args, default=None):
    """The first column of the first row ``query`` gives; ``default`` if it gives none (or NULL)."""
    row = db.execute(query, args).fetchone()
    return default if row is None or row[0] is None else row[0]


# --- node silence, planned moves, quiet periods ---------------------------------------------


def silent_since(db, minion):
    return first_value(db, "SELECT since FROM silent WHERE minion = ?", (minion,), 0)


def note_silence(db, minion, since):
    """A row for ``minion`` while it is silent (since ``since``); none once (``None``) it answered."""
    if since is None:
        db.execute("DELETE FROM silent WHERE minion = ?", (minion,))
    else:
        db.execute("INSERT OR REPLACE INTO silent VALUES (?, ?)", (minion, since))


def note_planned_moves(db, targets, until):
    """A row per instance of ``targets`` ``{instance: node}``, replacing any move of it noted before."""
    db.executemany("INSERT OR REPLACE INTO planned VALUES (?, ?, ?)", [(instance, target, until) for instance, target in targets.items()])


def planned_moves(db):
    """``{instance: {"to", "until"}}``, in the order they were noted."""
    rows = db.execute("SELECT instance, target, until FROM planned ORDER BY rowid")
    return {instance: {"to": target, "until": until} for instance, target, until in rows}


def quiet_over(db, section, keys, now, quiet):
    """Those of ``keys`` whose quiet period in ``section`` is over at ``now``: announced, then quiet ``quiet`` s."""
    until = dict(db.execute("SELECT key, until FROM quiet WHERE section = ?", (section,)))
    due = [key for key in keys if now >= until.get(key, 0)]
    db.executemany("INSERT OR REPLACE INTO quiet VALUES (?, ?, ?)", [(section, key, now + quiet) for key in due])
    return due


# --- flap damping: the slots of :mod:`saltext.lbpair.master.notify`, a row each -------------


def damping_slots(db, where="", args=()):
    """``{instance: slot}`` as :func:`saltext.lbpair.master.notify.admit` keeps them, of the rows ``where`` picks."""
    slots = {}
    for instance, until, announced, held in db.execute(f"SELECT instance, until, master_announced, held FROM damping {where}", args):
        slots[instance] = {"until": until, "held": json.loads(held)}
        if announced is not None:
            slots[instance]["master_announced"] = bool(announced)
    return slots


def put_damping_slots(db, slots):
    """Keep the damping ``slots`` ``{instance: slot}``, replacing the rows of those instances."""
    # held as json.dumps writes it: "[]" when nothing is held (the queries need no JSON functions in SQLite)
    rows = [(instance, slot["until"], slot.get("master_announced"), json.dumps(slot["held"])) for instance, slot in slots.items()]
    db.executemany("INSERT OR REPLACE INTO damping VALUES (?, ?, ?, ?)", rows)


def on_damping_slot(db, decide, instance, *args):
    """``decide(slots, instance, *args)`` (:func:`~saltext.lbpair.master.notify.admit` or ``release``) on ``instance``'s slot."""
    slots = damping_slots(db, "WHERE instance = ?", (instance,))
    decision = decide(slots, instance, *args)
    put_damping_slots(db, slots)
    return decision


def summaries_due(db, now):
    return notify.due(damping_slots(db, "WHERE held != '[]'"), now)


# --- storms: the slots of :mod:`saltext.lbpair.master.storm`, a row per channel destination -


def storm_slots(db, where="", args=()):
    """``{storm key: slot}`` as :func:`saltext.lbpair.master.storm.admit` keeps them, of the rows ``where`` picks."""
    rows = db.execute(f"SELECT key, until, pairs, held FROM storms {where}", args)
    return {key: {"until": until, "pairs": json.loads(pairs), "held": json.loads(held)} for key, until, pairs, held in rows}


def on_storm_slot(db, decide, storm_key, *args):
    """``decide(slots, storm_key, *args)`` (:func:`~saltext.lbpair.master.storm.admit` or ``release``) on ``storm_key``'s slot."""
    slots = storm_slots(db, "WHERE key = ?", (storm_key,))
    decision = decide(slots, storm_key, *args)
    rows = [(key, slot["until"], json.dumps(slot["pairs"]), json.dumps(slot["held"])) for key, slot in slots.items()]
    db.executemany("INSERT OR REPLACE INTO storms VALUES (?, ?, ?, ?)", rows)
    return decision


def storms_due(db, now):
    return storm.due(storm_slots(db, "WHERE held != '[]'"), now)


# --- the steps of each reaction -------------------------------------------------------------


def open_steps(db, key):
    """The reaction ``key``'s open steps, ``{"pending", "failed", **context}`` (``None``: it is not open)."""
    row = db.execute("SELECT pending, failed, context FROM reactions WHERE key = ?", (key,)).fetchone()
    return None if row is None else {"pending": json.loads(row[0]), "failed": json.loads(row[1]), **json.loads(row[2])}


def put_open_steps(db, key, entry):
    """Keep ``entry`` for the reaction ``key`` (in its place among the others if it is there already)."""
    context = {name: value for name, value in entry.items() if name not in ("pending", "failed")}
    db.execute(
        "INSERT INTO reactions (key, pending, failed, context) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET pending = excluded.pending, failed = excluded.failed, context = excluded.context",
        (key, json.dumps(entry["pending"]), json.dumps(entry["failed"]), json.dumps(context)),
    )


def begin_steps(db, key, steps, context):
    """Open the reaction ``key`` with ``steps`` pending; the oldest beyond :data:`MAX_STEP_ENTRIES` are dropped."""
    put_open_steps(db, key, {"pending": list(steps), "failed": {}, **context})
    db.execute("DELETE FROM reactions WHERE id <= (SELECT id FROM reactions ORDER BY id DESC LIMIT 1 OFFSET ?)", (MAX_STEP_ENTRIES,))


def settle_step(db, key, step, error=None):
    """Note the outcome of one step; the reaction is closed once every step succeeded."""
    entry = open_steps(db, key)
    if entry is None:
        return
    if error is None:
        entry["pending"] = [name for name in entry["pending"] if name != step]
        entry["failed"].pop(step, None)
    else:
        entry["failed"][step] = error
    if entry["pending"]:
        put_open_steps(db, key, entry)
    else:
        db.execute("DELETE FROM reactions WHERE key = ?", (key,))


def step_failed(db, key, step, error, pair=None):
    """:func:`settle_step` with ``error``, counted for ``pair`` (:func:`count`); whether it is the step's first failure."""
    first = step not in (open_steps(db, key) or {}).get("failed", {})
    settle_step(db, key, step, error)
    if pair is not None:
        count(db, pair, {f"{STEP_FAILURES}{step}": 1})
    return first


def open_reactions(db):
    """``{key: [pending steps]}``, oldest reaction first."""
    return {key: json.loads(pending) for key, pending in db.execute("SELECT key, pending FROM reactions ORDER BY id")}


# --- tallies: per pair, counters and last values for the master's metrics ------------------

STEP_FAILURES = "step_failures:"  # + the step: how often it failed
LATENCY_BUCKET = "latency_le:"  # + the bucket's bound: reactions done within it
DNS_OK, DNS_AT, LATENCY_SUM, LATENCY_COUNT = "dns_ok", "dns_at", "latency_sum", "latency_count"


def latency_bucket(bound):
    """The name of the tally of reactions done within ``bound`` seconds."""
    return f"{LATENCY_BUCKET}{bound:g}"


TALLIES = "CREATE TABLE IF NOT EXISTS tallies (pair TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (pair, name))"


def _bound_tallies(db):
    """Drop the oldest rows beyond :data:`MAX_TALLIES` (an upsert keeps a row's place)."""
    db.execute("DELETE FROM tallies WHERE rowid <= (SELECT rowid FROM tallies ORDER BY rowid DESC LIMIT 1 OFFSET ?)", (MAX_TALLIES,))


def _upsert_tallies(db, pair, values, update):
    db.execute(TALLIES)
    db.executemany(
        f"INSERT INTO tallies VALUES (?, ?, ?) ON CONFLICT (pair, name) DO UPDATE SET value = {update}",
        [(pair, name, value) for name, value in values.items()],
    )
    _bound_tallies(db)


def count(db, pair, increments):
    """Add ``increments`` ``{name: amount}`` to the tallies of ``pair``."""
    _upsert_tallies(db, pair, increments, "value + excluded.value")


def set_tallies(db, pair, values):
    """Set the tallies ``values`` ``{name: value}`` of ``pair``."""
    _upsert_tallies(db, pair, values, "excluded.value")


def observe(db, pair, seconds, bounds):
    """One reaction of ``pair`` done in ``seconds``: counted in each bucket of ``bounds`` it fits, its sum and count."""
    count(db, pair, {**{latency_bucket(bound): 1 for bound in bounds if seconds <= bound}, LATENCY_SUM: seconds, LATENCY_COUNT: 1})


def tallies(db):
    """``{pair: {name: value}}`` (none before the first tally made the table)."""
    found = {}
    if not first_value(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tallies'", ()):
        return found
    for pair, name, value in db.execute("SELECT pair, name, value FROM tallies ORDER BY pair, name"):
        found.setdefault(pair, {})[name] = value
    return found


# --- claims: events their node has not confirmed --------------------------------------------


def claim_count(db, minion):
    return first_value(db, "SELECT count(*) FROM claims WHERE minion = ?", (minion,))


def insert_claim(db, minion, claim):
    """Keep ``claim`` of ``minion``; its oldest beyond :data:`MAX_CLAIMS` are dropped."""
    db.execute("INSERT INTO claims (minion, claim) VALUES (?, ?)", (minion, json.dumps(claim)))
    db.execute(
        "DELETE FROM claims WHERE minion = ? AND id <= (SELECT id FROM claims WHERE minion = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (minion, minion, MAX_CLAIMS),
    )


def add_claim(db, minion, claim, now, quiet):
    """:func:`insert_claim`, then the quiet period of ``minion``'s claims (``claim_notices``): ``(open claims, announce?)``."""
    insert_claim(db, minion, claim)
    return claim_count(db, minion), bool(quiet_over(db, "claim_notices", [minion], now, quiet))


def take_claims(db, minion):
    """The claims of ``minion``, oldest first, deleted."""
    claims = [json.loads(claim) for (claim,) in db.execute("SELECT claim FROM claims WHERE minion = ? ORDER BY id", (minion,))]
    db.execute("DELETE FROM claims WHERE minion = ?", (minion,))
    return claims


def open_claims(db):
    claims = {}
    for minion, claim in db.execute("SELECT minion, claim FROM claims ORDER BY id"):
        claims.setdefault(minion, []).append(json.loads(claim))
    return claims


# --- per VRRP instance: its checks, problem, alarm, DNS (a column each) ---------------------


def get_column(db, column, instance, default=None):
    """The value of ``column`` for ``instance``; ``default`` if none is noted."""
    return first_value(db, f"SELECT {column} FROM instances WHERE instance = ?", (instance,), default)


def set_column(db, column, instance, value):
    """Note ``value`` in ``column`` for ``instance``, leaving its other columns as they are."""
    db.execute(
        f"INSERT INTO instances (instance, {column}) VALUES (?, ?) ON CONFLICT (instance) DO UPDATE SET {column} = excluded.{column}",
        (instance, value),
    )


def start_check(db, instance, requested_at, now):
    """``checked`` of ``instance`` is ``now``, unless it is later than ``requested_at`` (then ``False``)."""
    if requested_at is not None and get_column(db, "checked", instance, 0) > requested_at:
        return False
    set_column(db, "checked", instance, now)
    return True


def note_if_new(db, column, instance, value):
    """Note ``value`` (a JSON value) in ``column`` of ``instance``; whether it differs from the one noted."""
    noted = get_column(db, column, instance)
    if (None if noted is None else json.loads(noted)) == value:
        return False
    set_column(db, column, instance, json.dumps(value))
    return True


def all_clear(db, instance):
    db.execute("UPDATE instances SET problem = NULL, alarm = NULL WHERE instance = ?", (instance,))


# --- work due later -------------------------------------------------------------------------


def schedule(db, key, at, task):
    db.execute("INSERT OR REPLACE INTO due VALUES (?, ?, ?)", (key, at, json.dumps(task)))


def take_due(db, now):
    """The rows due at ``now``, deleted: ``[(key, task with its "at")]``, earliest first."""
    rows = db.execute("SELECT key, at, task FROM due WHERE at <= ? ORDER BY at, key", (now,))
    ready = [(key, {**json.loads(task), "at": at}) for key, at, task in rows]
    db.execute("DELETE FROM due WHERE at <= ?", (now,))
    return ready


def next_due(db):
    """The earliest time in ``due``, in a held damping or storm slot, or in the event queue (``None``: all are empty)."""
    held = "SELECT until FROM damping WHERE held != '[]' UNION ALL SELECT until FROM storms WHERE held != '[]'"
    return first_value(db, f"SELECT min(at) FROM (SELECT at FROM due UNION ALL {held} UNION ALL SELECT at FROM queue)", ())


def due_times(db):
    return dict(db.execute("SELECT key, at FROM due ORDER BY key"))


# --- the JSON document of earlier versions, taken over once ---------------------------------


def take_over(db, document):
    """Copy the JSON state ``document`` into the tables, unless one was copied already."""
    if first_value(db, "SELECT value FROM meta WHERE key = 'imported'", ()) is not None:
        return
    db.execute("INSERT INTO meta VALUES ('imported', ?)", (json.dumps(sorted(document)),))

    def section(name):
        return document.get(name) if isinstance(document.get(name), dict) else {}

    for minion, since in section("silent").items():
        note_silence(db, minion, since)
    for instance, move in section("planned").items():
        note_planned_moves(db, {instance: move["to"]}, move["until"])
    for name in QUIET_SECTIONS:
        db.executemany("INSERT INTO quiet VALUES (?, ?, ?)", [(name, key, until) for key, until in section(name).items()])
    put_damping_slots(db, section("damping"))
    for key, entry in section("steps").items():
        put_open_steps(db, key, entry)
    for minion, claims in section("claims").items():
        for claim in claims[-MAX_CLAIMS:]:
            insert_claim(db, minion, claim)
    for key, task in section("due").items():
        schedule(db, key, task["at"], task)
    for instance, checked in section("checked").items():
        set_column(db, "checked", instance, checked)
    for name, column in (("problems", "problem"), ("alarms", "alarm")):
        for instance, value in section(name).items():
            set_column(db, column, instance, json.dumps(value))
    for instance, node in section("dns").items():
        set_column(db, "dns", instance, node)
