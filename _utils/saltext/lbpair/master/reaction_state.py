"""
The lbpair master's reaction state: one small JSON document beside the history
(``<history>.state.json``), changed under a lock by every reaction.

It holds what must outlive one reaction:

- ``damping``: flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`);
- ``alarms`` and ``dns``: the alarm raised per instance, where DNS points;
- ``steps``: per reaction (``"<minion>:<seq>"``), the outcome of each of its
  steps, kept while one has not succeeded, so that a replay completes them once;
- ``claims``: per node, the events it could not confirm yet;
- ``due``: work for later (a pair check after the settle time, a DNS retry, a
  catch-up retry), keyed so that newer work of the same kind replaces older;
- ``checked``, ``problems``: when each instance was last checked, the problem it last showed;
- ``silent``: when a node last left a job unanswered; ``planned``: the planned moves under way;
- ``warned``, ``claim_notices``, ``certificates_warned``: quiet periods of announcements.

:class:`ReactionStore` is the only way in: each of its methods owns keys of the document and
changes them in one locked transaction; no caller touches raw keys.

Nothing here waits: the work due later is done by ``lbpair.flush`` (a background
job the reactions start, and the master's schedule as a safety net).
"""

import contextlib
import json
import logging

from saltext.lbpair.core import store
from saltext.lbpair.master import notify, storm

log = logging.getLogger(__name__)

MAX_CLAIMS = 50  # per node: a flood of forged events must not grow the state without bound
MAX_STEP_ENTRIES = 500


_UNSAVED = {}  # path -> the state a full disk kept from being written: this process goes on with it


class ReactionState:
    """
    ``with ReactionState(path) as state:`` gives the document to change; it is
    written back on success. When it cannot be written (a full disk), the reactions
    go on: this process keeps it in memory and writes it once it can.
    """

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self._lock = store.locked(self.path)
        self._lock.__enter__()
        self.data = _UNSAVED.get(self.path) or store.read_json(self.path, {})
        self._read = None if self.path in _UNSAVED else json.dumps(self.data, sort_keys=True)
        return self.data

    def __exit__(self, *exc):
        try:
            if exc[0] is None and json.dumps(self.data, sort_keys=True) != self._read:  # only a change is written
                self._save()
        finally:
            self._lock.__exit__(*exc)

    def _save(self):
        try:
            store.write_json(self.path, self.data)
            _UNSAVED.pop(self.path, None)
        except OSError as exc:
            if self.path not in _UNSAVED:
                log.error("lbpair: the reaction state %s cannot be written (%s): kept in memory meanwhile", self.path, exc)
            _UNSAVED[self.path] = self.data


# --- work due later -------------------------------------------------------------------


def schedule(state, key, at, task):
    """Do ``task`` (a mapping with ``kind``) at ``at``; replaces any work with the same ``key``."""
    state.setdefault("due", {})[key] = {**task, "at": at}


def take_due(state, now):
    """Remove and return the work due at ``now``: ``[(key, task)]``, earliest first."""
    due = state.get("due", {})
    ready = sorted((task["at"], key) for key, task in due.items() if task["at"] <= now)
    return [(key, due.pop(key)) for _, key in ready]


def next_due(state):
    """When the next work is due (epoch), held summaries included; ``None`` if there is none."""
    times = [task["at"] for task in state.get("due", {}).values()]
    times += [slot["until"] for slot in state.get("damping", {}).values() if slot.get("held")]
    return min(times, default=None)


# --- the steps of each reaction -------------------------------------------------------


def begin(state, key, steps, context):
    """Start the reaction ``key`` with ``steps`` to do; ``context``: what a replay needs to redo them."""
    entries = state.setdefault("steps", {})
    entries[key] = {"pending": list(steps), "failed": {}, **context}
    for old in list(entries)[: max(0, len(entries) - MAX_STEP_ENTRIES)]:
        del entries[old]


def unfinished(state, key):
    """The reaction ``key``'s steps that have not succeeded yet (``None``: no such reaction is open)."""
    entry = state.get("steps", {}).get(key)
    return None if entry is None else dict(entry)


def settle_step(state, key, step, error=None):
    """Note the outcome of one step; the reaction is closed once every step succeeded."""
    entry = state.get("steps", {}).get(key)
    if entry is None:
        return
    if error is None:
        entry["pending"] = [name for name in entry["pending"] if name != step]
        entry["failed"].pop(step, None)
    else:
        entry["failed"][step] = error
    if not entry["pending"]:
        del state["steps"][key]


# --- claims: events their node has not confirmed --------------------------------------


def add_claim(state, minion, claim):
    claims = state.setdefault("claims", {}).setdefault(minion, [])
    claims.append(claim)
    del claims[:-MAX_CLAIMS]
    return len(claims)


def take_claims(state, minion):
    return state.setdefault("claims", {}).pop(minion, [])


def open_claims(state):
    return {minion: list(claims) for minion, claims in state.get("claims", {}).items() if claims}


# --- one background worker ------------------------------------------------------------


@contextlib.contextmanager
def worker_slot(path):
    """Yield whether this process is now the only background worker of ``path`` (a lock it holds until exit)."""
    with store.try_locked(f"{path}.worker") as mine:
        yield mine


# --- the state API: each key owned by one method, each change one locked transaction ----


def _quiet_due(state, section, keys, now, quiet):
    """Those of ``keys`` whose quiet period in ``section`` is over at ``now``: announced, then quiet ``quiet`` s."""
    until = state.setdefault(section, {})
    due = [key for key in keys if now >= until.get(key, 0)]
    for key in due:
        until[key] = now + quiet
    return due


class ReactionStore:
    """The reaction state at ``path``: the methods below own its keys; callers never touch raw keys."""

    def __init__(self, path):
        self.path = path

    def transaction(self):
        """``with store.transaction() as state:`` one locked read-change-write of the document."""
        return ReactionState(self.path)

    def _apply(self, change, *args):
        """``change(state, *args)`` (a function of this module) in one transaction; its result."""
        with self.transaction() as state:
            return change(state, *args)

    def lock(self, name):
        """A lock of its own beside the state (``name``: what it serialises), not held by the transactions."""
        return store.locked(f"{self.path}.{name}")

    def worker_slot(self):
        return worker_slot(self.path)

    # node silence (see :class:`saltext.lbpair.master.node_client.NodeClient`)

    def silent_since(self, minion):
        """When ``minion`` last left a job unanswered (epoch; 0: it answered since)."""
        with self.transaction() as state:
            return state.get("silent", {}).get(minion, 0)

    def note_silence(self, minion, since):
        """``minion`` left a job unanswered at ``since``, or (``None``) answered."""
        with self.transaction() as state:
            silent = state.setdefault("silent", {})
            if since is None:
                silent.pop(minion, None)
            else:
                silent[minion] = since

    # planned moves (:mod:`saltext.lbpair.master.planned`)

    def plan(self, targets, until):
        """Note a planned move, ``targets`` ``{instance: node}``, under way until ``until``."""
        with self.transaction() as state:
            for instance, target in targets.items():
                state.setdefault("planned", {})[instance] = {"to": target, "until": until}

    def plans(self):
        """``{instance: {"to", "until"}}``: the planned moves noted."""
        with self.transaction() as state:
            return dict(state.get("planned", {}))

    # quiet periods of announcements: one a window per certificate warning, node warning, node's claims

    def quiet_certificates(self, keys, now, quiet):
        """Of the certificate warnings ``keys``, those to announce at ``now`` (then quiet ``quiet`` s)."""
        return self._take_quiet("certificates_warned", keys, now, quiet)

    def quiet_warning(self, key, now, quiet):
        """Whether a node's warning ``key`` (``"<minion>:<code>"``) is to be announced at ``now`` (then quiet ``quiet`` s)."""
        return bool(self._take_quiet("warned", [key], now, quiet))

    def _take_quiet(self, section, keys, now, quiet):
        with self.transaction() as state:
            return _quiet_due(state, section, keys, now, quiet)

    # flap damping per VRRP instance (:mod:`saltext.lbpair.master.notify`)

    def admit(self, instance, now, window, record):
        """Whether ``record``'s notice is sent, held or dropped (:func:`saltext.lbpair.master.notify.admit`)."""
        with self.transaction() as state:
            return notify.admit(state.setdefault("damping", {}), instance, now, window, record)

    def summaries_due(self, now):
        """The instances whose held summary is due at ``now``."""
        with self.transaction() as state:
            return notify.due(state.get("damping", {}), now)

    def release_summary(self, instance, now, window):
        """The transitions held for ``instance``'s summary, taken (none: nothing due)."""
        with self.transaction() as state:
            return notify.release(state.setdefault("damping", {}), instance, now, window)

    # storms: transition messages per channel destination (:mod:`saltext.lbpair.master.storm`)

    def admit_storm(self, storm_key, now, record):
        """Whether ``record``'s message goes out through the destination of ``storm_key`` (:func:`saltext.lbpair.master.storm.admit`)."""
        with self.transaction() as state:
            return storm.admit(state.setdefault("storms", {}), storm_key, now, record)

    def storms_due(self, now):
        """The storm keys whose held summary is due at ``now``."""
        with self.transaction() as state:
            return storm.due(state.get("storms", {}), now)

    def release_storm(self, storm_key, now):
        """The transitions held for ``storm_key``'s summary, taken (none: nothing due)."""
        with self.transaction() as state:
            return storm.release(state.setdefault("storms", {}), storm_key, now)

    # the steps of each reaction

    def begin_steps(self, key, steps, context):
        return self._apply(begin, key, steps, context)

    def unfinished(self, key):
        return self._apply(unfinished, key)

    def step_done(self, key, step):
        return self._apply(settle_step, key, step)

    def step_failed(self, key, step, error):
        """Note that ``step`` of reaction ``key`` failed; whether it is its first failure."""
        with self.transaction() as state:
            first = step not in (unfinished(state, key) or {}).get("failed", {})
            settle_step(state, key, step, error)
        return first

    def open_reactions(self):
        """``{key: [pending steps]}``."""
        with self.transaction() as state:
            return {key: entry["pending"] for key, entry in state.get("steps", {}).items()}

    # claims

    def claim_count(self, minion):
        with self.transaction() as state:
            return len(state.get("claims", {}).get(minion, []))

    def add_claim(self, minion, claim, now, quiet):
        """
        Note an open claim of ``minion``, in one transaction with its announcement's quiet period:
        ``(how many it has open now, whether its claims are announced at now, then quiet quiet s)``.
        """
        with self.transaction() as state:
            count = add_claim(state, minion, claim)
            return count, bool(_quiet_due(state, "claim_notices", [minion], now, quiet))

    def take_claims(self, minion):
        return self._apply(take_claims, minion)

    def open_claims(self):
        return self._apply(open_claims)

    # the pair's checks, alarms and DNS, per VRRP instance

    def start_check(self, instance, requested_at, now):
        """Note a pair check of ``instance`` at ``now``; ``False`` (nothing noted) when one started after ``requested_at``."""
        with self.transaction() as state:
            checked = state.setdefault("checked", {})
            if requested_at is not None and checked.get(instance, 0) > requested_at:
                return False
            checked[instance] = now
            return True

    def problem_seen_before(self, instance, shape):
        """Whether the last check of ``instance`` saw this ``shape`` of problem; notes it otherwise."""
        return not self._note_new("problems", instance, shape)

    def raise_alarm(self, instance, problem):
        """Note ``problem`` as ``instance``'s alarm; whether it is a new one (not raised already)."""
        return self._note_new("alarms", instance, problem)

    def _note_new(self, section, instance, value):
        with self.transaction() as state:
            noted = state.setdefault(section, {})
            if noted.get(instance) == value:
                return False
            noted[instance] = value
            return True

    def all_clear(self, instance):
        """``instance`` is healthy: its alarm and the problem last seen are forgotten."""
        with self.transaction() as state:
            state.setdefault("alarms", {}).pop(instance, None)
            state.setdefault("problems", {}).pop(instance, None)

    def dns_target(self, instance):
        """The node the DNS records of ``instance`` point at (``None``: not known)."""
        with self.transaction() as state:
            return state.get("dns", {}).get(instance)

    def note_dns(self, instance, master):
        with self.transaction() as state:
            state.setdefault("dns", {})[instance] = master

    # work due later (:mod:`saltext.lbpair.master.scheduler`)

    def schedule(self, key, at, task):
        return self._apply(schedule, key, at, task)

    def take_due(self, now):
        return self._apply(take_due, now)

    def next_due(self):
        return self._apply(next_due)

    def due(self):
        """``{key: epoch}``: when each piece of work is due."""
        with self.transaction() as state:
            return {key: task["at"] for key, task in sorted(state.get("due", {}).items())}
