"""
The lbpair master's reaction state: a SQLite database beside the history
(``<history>.state.sqlite``), shared by the reactor's threads and the background
``lbpair.flush`` jobs, changed by every reaction one transaction at a time
(:mod:`saltext.lbpair.core.database`: WAL mode, writers take turns, every commit fsync'd).

It holds what must outlive one reaction, a table per concern (:mod:`saltext.lbpair.master.reaction_tables`:
the schema and what each statement does): flap damping, storms, per VRRP instance its checks,
alarm and DNS, the steps of each reaction, claims, work due later, node silence, planned moves,
quiet periods, the beacon events waiting for the background worker.

:class:`ReactionStore` is the only way in: each of its methods is one transaction; no caller
sees a table.

The state of earlier versions, one JSON document (``<history>.state.json``), is taken over once
by the first store opened beside it, then renamed ``<history>.state.json.migrated``. When the
database cannot be written (a full disk), a process goes on with a copy in memory and writes it
back once it can.

Nothing here waits: the work due later is done by ``lbpair.flush`` (a background
job the reactions start, and the master's schedule as a safety net).
"""

import contextlib
import logging
import os
import sqlite3

from saltext.lbpair.core import database, store
from saltext.lbpair.master import event_queue, notify, reaction_tables, storm

# the bounds and the schema are the tables' (reaction_tables); the reactions and the tests name them through this module
from saltext.lbpair.master.reaction_tables import MAX_CLAIMS, MAX_STEP_ENTRIES, TABLES  # noqa: F401

log = logging.getLogger(__name__)


@contextlib.contextmanager
def worker_slot(path):
    """Yield whether this process is now the only background worker of ``path`` (a lock it holds until exit)."""
    with store.try_locked(f"{path}.worker") as mine:
        yield mine


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
        self.database = database.Database(database_path(path), reaction_tables.SCHEMA_VERSION, reaction_tables.create_tables)
        self._memory_flag = None  # held while this process works on a copy in memory (:meth:`settle`)
        if os.path.exists(path):
            self._take_over(path)

    def _take_over(self, path):
        """Copy the JSON state an earlier version left at ``path`` (once), then rename it ``<path>.migrated``."""
        try:
            self.database.write(reaction_tables.take_over, store.read_json(path, {}))
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
        return self.database.read(reaction_tables.silent_since, minion)

    def note_silence(self, minion, since):
        """``minion`` left a job unanswered at ``since``, or (``None``) answered."""
        self.database.write(reaction_tables.note_silence, minion, since)

    # planned moves (:mod:`saltext.lbpair.master.planned`)

    def plan(self, targets, until):
        """Note a planned move, ``targets`` ``{instance: node}``, under way until ``until``."""
        self.database.write(reaction_tables.note_planned_moves, targets, until)

    def plans(self):
        """``{instance: {"to", "until"}}``: the planned moves noted."""
        return self.database.read(reaction_tables.planned_moves)

    # quiet periods of announcements: one a window per certificate warning, node warning, node's claims

    def quiet_certificates(self, keys, now, quiet):
        """Of the certificate warnings ``keys``, those to announce at ``now`` (then quiet ``quiet`` s)."""
        return self.database.write(reaction_tables.quiet_over, "certificates_warned", keys, now, quiet)

    def quiet_warning(self, key, now, quiet):
        """Whether a node's warning ``key`` (``"<minion>:<code>"``) is to be announced at ``now`` (then quiet ``quiet`` s)."""
        return bool(self.database.write(reaction_tables.quiet_over, "warned", [key], now, quiet))

    # flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`)

    def admit(self, instance, now, window, record):
        """Whether ``record``'s notice is sent, held or dropped (:func:`saltext.lbpair.master.notify.admit`)."""
        return self.database.write(reaction_tables.on_damping_slot, notify.admit, instance, now, window, record)

    def summaries_due(self, now):
        """The instances whose held summary is due at ``now``."""
        return self.database.read(reaction_tables.summaries_due, now)

    def release_summary(self, instance, now, window):
        """The transitions held for ``instance``'s summary, taken (none: nothing due)."""
        return self.database.write(reaction_tables.on_damping_slot, notify.release, instance, now, window)

    # storms: transition messages per channel destination (:mod:`saltext.lbpair.master.storm`)

    def admit_storm(self, storm_key, now, record):
        """Whether ``record``'s message goes out through the destination of ``storm_key`` (:func:`saltext.lbpair.master.storm.admit`)."""
        return self.database.write(reaction_tables.on_storm_slot, storm.admit, storm_key, now, record)

    def storms_due(self, now):
        """The storm keys whose held summary is due at ``now``."""
        return self.database.read(reaction_tables.storms_due, now)

    def release_storm(self, storm_key, now):
        """The transitions held for ``storm_key``'s summary, taken (none: nothing due)."""
        return self.database.write(reaction_tables.on_storm_slot, storm.release, storm_key, now)

    # the steps of each reaction

    def begin_steps(self, key, steps, context):
        """Start the reaction ``key`` with ``steps`` to do; ``context``: what a replay needs to redo them."""
        self.database.write(reaction_tables.begin_steps, key, steps, context)

    def unfinished(self, key):
        """The reaction ``key``'s steps that have not succeeded yet (``None``: no such reaction is open)."""
        return self.database.read(reaction_tables.open_steps, key)

    def step_done(self, key, step):
        self.database.write(reaction_tables.settle_step, key, step)

    def step_failed(self, key, step, error, pair=None):
        """Note that ``step`` of reaction ``key`` failed (counted for ``pair``'s metrics); whether it is its first failure."""
        return self.database.write(reaction_tables.step_failed, key, step, error, pair)

    def open_reactions(self):
        """``{key: [pending steps]}``."""
        return self.database.read(reaction_tables.open_reactions)

    # per pair, what the master's metrics count (:mod:`saltext.lbpair.master.metrics`)

    def count_step_failure(self, pair, step):
        """A step of ``pair`` failed outside a reaction's steps (a summary's channel)."""
        self.database.write(reaction_tables.count, pair, {f"{reaction_tables.STEP_FAILURES}{step}": 1})

    def note_dns_result(self, pair, ok, at):
        """The last DNS update of ``pair`` succeeded (``ok``) or failed, at ``at`` (epoch)."""
        self.database.write(reaction_tables.set_tallies, pair, {reaction_tables.DNS_OK: int(bool(ok)), reaction_tables.DNS_AT: at})

    def observe_latency(self, pair, seconds, bounds):
        """A reaction of ``pair`` done ``seconds`` after its node received the transition (histogram buckets ``bounds``)."""
        self.database.write(reaction_tables.observe, pair, seconds, bounds)

    def tallies(self):
        """``{pair: {name: value}}`` (the names: :mod:`saltext.lbpair.master.reaction_tables`)."""
        return self.database.read(reaction_tables.tallies)

    # claims

    def claim_count(self, minion):
        return self.database.read(reaction_tables.claim_count, minion)

    def add_claim(self, minion, claim, now, quiet):
        """
        Note an open claim of ``minion``, in one transaction with its announcement's quiet period:
        ``(how many it has open now, whether its claims are announced at now, then quiet quiet s)``.
        """
        return self.database.write(reaction_tables.add_claim, minion, claim, now, quiet)

    def take_claims(self, minion):
        return self.database.write(reaction_tables.take_claims, minion)

    def open_claims(self):
        return self.database.read(reaction_tables.open_claims)

    # the pair's checks, alarms and DNS, per VRRP instance

    def start_check(self, instance, requested_at, now):
        """Note a pair check of ``instance`` at ``now``; ``False`` (nothing noted) when one started after ``requested_at``."""
        return self.database.write(reaction_tables.start_check, instance, requested_at, now)

    def problem_seen_before(self, instance, shape):
        """Whether the last check of ``instance`` saw this ``shape`` of problem; notes it otherwise."""
        return not self.database.write(reaction_tables.note_if_new, "problem", instance, shape)

    def raise_alarm(self, instance, problem):
        """Note ``problem`` as ``instance``'s alarm; whether it is a new one (not raised already)."""
        return self.database.write(reaction_tables.note_if_new, "alarm", instance, problem)

    def all_clear(self, instance):
        """``instance`` is healthy: its alarm and the problem last seen are forgotten."""
        self.database.write(reaction_tables.all_clear, instance)

    def dns_target(self, instance):
        """The node the DNS records of ``instance`` point at (``None``: not known)."""
        return self.database.read(reaction_tables.get_column, "dns", instance)

    def note_dns(self, instance, master):
        self.database.write(reaction_tables.set_column, "dns", instance, master)

    # work due later (:mod:`saltext.lbpair.master.scheduler`)

    def schedule(self, key, at, task):
        """Do ``task`` (a mapping with ``kind``) at ``at``; replaces any work with the same ``key``."""
        self.database.write(reaction_tables.schedule, key, at, task)

    def take_due(self, now):
        """Remove and return the work due at ``now``: ``[(key, task)]``, earliest first."""
        return self.database.write(reaction_tables.take_due, now)

    def next_due(self):
        """When the next work is due (epoch), held summaries included; ``None`` if there is none."""
        return self.database.read(reaction_tables.next_due)

    def due(self):
        """``{key: epoch}``: when each piece of work is due."""
        return self.database.read(reaction_tables.due_times)

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
