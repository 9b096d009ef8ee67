"""
The lbpair master's reaction state: a SQLite database beside the history
(``<history>.state.sqlite``), shared by the reactor's threads and the background
``lbpair.flush`` jobs, changed by every reaction one transaction at a time
(:mod:`saltext.lbpair.core.database`: WAL mode, writers take turns, every commit fsync'd).

It holds what must outlive one reaction, a table per concern
(:mod:`saltext.lbpair.master.reaction_tables`: their schema and queries):

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
- ``quiet``: quiet periods of announcements (node warnings, a node's claims, certificate warnings).

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
import logging
import os
import sqlite3

from saltext.lbpair.core import database, store
from saltext.lbpair.master import notify, storm
from saltext.lbpair.master import reaction_tables as tables

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
        self.database = database.Database(database_path(path), tables.SCHEMA_VERSION, tables.create)
        if os.path.exists(path):
            self._take_over(path)

    def _take_over(self, path):
        """Copy the JSON state an earlier version left at ``path`` (once), then rename it ``<path>.migrated``."""
        try:
            self.database.write(tables.take_over, store.read_json(path, {}))
        except (LookupError, TypeError, ValueError, AttributeError, sqlite3.IntegrityError) as exc:
            log.error("lbpair: the reaction state %s cannot be taken over (%s): starting without it", path, exc)
        if not self.database.in_memory:  # else the file is still the only copy on disk
            with contextlib.suppress(FileNotFoundError):  # another process took it over meanwhile
                os.replace(path, f"{path}.migrated")
                log.warning("lbpair: the reaction state %s is now in %s", path, self.database.path)

    def lock(self, name):
        """A lock of its own beside the state (``name``: what it serialises), not held by the transactions."""
        return store.locked(f"{self.path}.{name}")

    def worker_slot(self):
        return worker_slot(self.path)

    # node silence (see :class:`saltext.lbpair.master.node_client.NodeClient`)

    def silent_since(self, minion):
        """When ``minion`` last left a job unanswered (epoch; 0: it answered since)."""
        return self.database.read(tables.first_value, "SELECT since FROM silent WHERE minion = ?", (minion,), 0)

    def note_silence(self, minion, since):
        """``minion`` left a job unanswered at ``since``, or (``None``) answered."""
        self.database.write(tables.note_silence, minion, since)

    # planned moves (:mod:`saltext.lbpair.master.planned`)

    def plan(self, targets, until):
        """Note a planned move, ``targets`` ``{instance: node}``, under way until ``until``."""
        self.database.write(tables.plan, targets, until)

    def plans(self):
        """``{instance: {"to", "until"}}``: the planned moves noted."""
        return self.database.read(tables.plans)

    # quiet periods of announcements: one a window per certificate warning, node warning, node's claims

    def quiet_certificates(self, keys, now, quiet):
        """Of the certificate warnings ``keys``, those to announce at ``now`` (then quiet ``quiet`` s)."""
        return self.database.write(tables.quiet_due, "certificates_warned", keys, now, quiet)

    def quiet_warning(self, key, now, quiet):
        """Whether a node's warning ``key`` (``"<minion>:<code>"``) is to be announced at ``now`` (then quiet ``quiet`` s)."""
        return bool(self.database.write(tables.quiet_due, "warned", [key], now, quiet))

    # flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`)

    def admit(self, instance, now, window, record):
        """Whether ``record``'s notice is sent, held or dropped (:func:`saltext.lbpair.master.notify.admit`)."""
        return self.database.write(tables.decide_damping, notify.admit, instance, now, window, record)

    def summaries_due(self, now):
        """The instances whose held summary is due at ``now``."""
        return self.database.read(tables.summaries_due, now)

    def release_summary(self, instance, now, window):
        """The transitions held for ``instance``'s summary, taken (none: nothing due)."""
        return self.database.write(tables.decide_damping, notify.release, instance, now, window)

    # storms: transition messages per channel destination (:mod:`saltext.lbpair.master.storm`)

    def admit_storm(self, storm_key, now, record):
        """Whether ``record``'s message goes out through the destination of ``storm_key`` (:func:`saltext.lbpair.master.storm.admit`)."""
        return self.database.write(tables.decide_storm, storm.admit, storm_key, now, record)

    def storms_due(self, now):
        """The storm keys whose held summary is due at ``now``."""
        return self.database.read(tables.storms_due, now)

    def release_storm(self, storm_key, now):
        """The transitions held for ``storm_key``'s summary, taken (none: nothing due)."""
        return self.database.write(tables.decide_storm, storm.release, storm_key, now)

    # the steps of each reaction

    def begin_steps(self, key, steps, context):
        """Start the reaction ``key`` with ``steps`` to do; ``context``: what a replay needs to redo them."""
        self.database.write(tables.begin, key, steps, context)

    def unfinished(self, key):
        """The reaction ``key``'s steps that have not succeeded yet (``None``: no such reaction is open)."""
        return self.database.read(tables.open_entry, key)

    def step_done(self, key, step):
        self.database.write(tables.settle, key, step)

    def step_failed(self, key, step, error):
        """Note that ``step`` of reaction ``key`` failed; whether it is its first failure."""
        return self.database.write(tables.step_failed, key, step, error)

    def open_reactions(self):
        """``{key: [pending steps]}``."""
        return self.database.read(tables.open_reactions)

    # claims

    def claim_count(self, minion):
        return self.database.read(tables.claim_count, minion)

    def add_claim(self, minion, claim, now, quiet):
        """
        Note an open claim of ``minion``, in one transaction with its announcement's quiet period:
        ``(how many it has open now, whether its claims are announced at now, then quiet quiet s)``.
        """
        return self.database.write(tables.add_claim, minion, claim, now, quiet)

    def take_claims(self, minion):
        return self.database.write(tables.take_claims, minion)

    def open_claims(self):
        return self.database.read(tables.open_claims)

    # the pair's checks, alarms and DNS, per VRRP instance

    def start_check(self, instance, requested_at, now):
        """Note a pair check of ``instance`` at ``now``; ``False`` (nothing noted) when one started after ``requested_at``."""
        return self.database.write(tables.start_check, instance, requested_at, now)

    def problem_seen_before(self, instance, shape):
        """Whether the last check of ``instance`` saw this ``shape`` of problem; notes it otherwise."""
        return not self.database.write(tables.note_new, "problem", instance, shape)

    def raise_alarm(self, instance, problem):
        """Note ``problem`` as ``instance``'s alarm; whether it is a new one (not raised already)."""
        return self.database.write(tables.note_new, "alarm", instance, problem)

    def all_clear(self, instance):
        """``instance`` is healthy: its alarm and the problem last seen are forgotten."""
        self.database.write(tables.all_clear, instance)

    def dns_target(self, instance):
        """The node the DNS records of ``instance`` point at (``None``: not known)."""
        return self.database.read(tables.get_column, "dns", instance)

    def note_dns(self, instance, master):
        self.database.write(tables.set_column, "dns", instance, master)

    # work due later (:mod:`saltext.lbpair.master.scheduler`)

    def schedule(self, key, at, task):
        """Do ``task`` (a mapping with ``kind``) at ``at``; replaces any work with the same ``key``."""
        self.database.write(tables.schedule, key, at, task)

    def take_due(self, now):
        """Remove and return the work due at ``now``: ``[(key, task)]``, earliest first."""
        return self.database.write(tables.take_due, now)

    def next_due(self):
        """When the next work is due (epoch), held summaries included; ``None`` if there is none."""
        return self.database.read(tables.next_due)

    def due(self):
        """``{key: epoch}``: when each piece of work is due."""
        return self.database.read(tables.due)
