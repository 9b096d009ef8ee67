"""
The work the reactions leave for later (a pair check after the settle time, DNS and catch-up
retries, flap-damping summaries): kept in the reaction state, done by one background
``lbpair.flush`` job at a time, each :class:`~saltext.lbpair.master.records.Task` by the handler
registered for its :class:`~saltext.lbpair.master.records.TaskKind`.

Nothing here sleeps in the reactor's threads: :meth:`Scheduler.later` notes the task and wakes
a background job unless one is at work already. The background job naps between rounds, and wakes
as soon as a beacon event is queued (:mod:`~saltext.lbpair.master.event_queue`).
"""

import logging
import time

from saltext.lbpair.master.records import Task

log = logging.getLogger(__name__)

MAX_NAP = 5  # s: the background job looks for new work at least this often
QUEUE_POLL = 0.05  # s: how often a napping background job looks for queued events (a read of an index)
# s a napping job waits after the first event it sees queued: a storm's events reach the bus within a few
# tenths of a second (bench/storm: 40 in 0.3 s), and each batch costs two Salt jobs, seconds in a storm
GATHER = 0.3


class Scheduler:
    """
    Work due later in ``store`` (a :class:`~saltext.lbpair.master.reaction_state.ReactionStore`);
    ``wake()`` starts a background job. ``register(kind, handler)`` names who does a task of a
    :class:`~saltext.lbpair.master.records.TaskKind` (``handler(task)``); ``register_sweep(sweep)``
    adds work found at each round (``sweep(now)`` returns what it did: the summaries whose damping
    window ended). Work of a kind this version does not know is logged and dropped. ``report(done)``
    is told what each round did; ``register_after_round(callback)`` adds a ``callback(done)`` called
    after every round, also one that did nothing (the master's metrics file).
    """

    def __init__(self, store, wake, clock=time.time, sleep=time.sleep, report=None):
        self.store = store
        self.wake = wake
        self.clock = clock
        self.sleep = sleep
        self.report = report or (lambda done: None)
        self.handlers = {}
        self.sweeps = []
        self.after_round = []

    def register(self, kind, handler):
        self.handlers[kind] = handler

    def register_sweep(self, sweep):
        self.sweeps.append(sweep)

    def register_after_round(self, callback):
        self.after_round.append(callback)

    def later(self, task, delay):
        """
        Leave ``task`` (a :class:`~saltext.lbpair.master.records.Task`) to the background job in
        ``delay`` seconds; it replaces work of the same key.
        """
        self.store.schedule(task.key, self.clock() + delay, task.to_json())
        self.wake_worker()

    def wake_worker(self):
        """Start the background job (``wake``) unless one is at work already."""
        with self.store.worker_slot() as free:
            pass
        if free:
            self.wake()

    def flush(self, wait=False):
        """
        Do the work that is due. With ``wait``, keep doing it until nothing is left (the
        background job); else start that job if work remains for later.
        """
        done = []
        while True:
            done.extend(self._round())
            next_at = self.store.next_due()
            if next_at is None:
                return done
            if not wait:
                self.wake_worker()
                return done
            self._nap(min(max(0.0, next_at - self.clock()), MAX_NAP))

    def work_in_background(self, resident=False):
        """
        :meth:`flush` with ``wait``, unless another background job already does it. ``resident``:
        for good, napping while there is no work, and waiting for its turn while another job works.
        """
        done = []
        while True:
            with self.store.worker_slot() as mine:
                if mine and resident:
                    self._keep_working()
                if not mine and not resident:
                    return {"done": done, "busy": "another lbpair.flush works in the background"}
                if mine:
                    done.extend(self.flush(wait=True))
            if resident:
                self._nap(MAX_NAP)
            elif self.store.next_due() is None:  # work added while the slot was being given up is not left behind
                return {"done": done}

    def idle(self):
        """Whether no work is due or waiting, and no round is under way."""
        with self.store.lock("round"):
            return self.store.next_due() is None

    def _keep_working(self):
        while True:
            self._round()
            next_at = self.store.next_due()
            self._nap(MAX_NAP if next_at is None else min(max(0.0, next_at - self.clock()), MAX_NAP))

    def _nap(self, seconds):
        """
        Sleep ``seconds``, or less: until a beacon event is queued, then :data:`GATHER` more for the
        events that come with it (and say whether this job works on the state in memory).
        """
        until = self.clock() + seconds
        self.store.settle()
        if self.store.events_waiting():  # queued during the last round: at once
            return
        while self.clock() < until and not self.store.events_waiting():
            self.sleep(max(0.0, min(QUEUE_POLL, until - self.clock())))
            self.store.settle()
        if self.store.events_waiting():
            self.sleep(GATHER)

    def _round(self):
        """The work due now, done (under the ``round`` lock: :meth:`idle` waits for it) and reported."""
        with self.store.lock("round"):
            done = self._due_work()
        if done:
            self.report(done)
        for callback in self.after_round:
            callback(done)
        return done

    def _due_work(self):
        now = self.clock()
        tasks = self.store.take_due(now)
        done = [entry for sweep in self.sweeps for entry in sweep(now)]
        for key, stored in tasks:
            try:
                task = Task.from_json(stored)
            except ValueError:  # a kind another version left, or a damaged state: nobody here can do it
                log.error("lbpair: dropping work %s: its kind %r is unknown", key, stored.get("kind"))
                done.append({key: "dropped: unknown kind"})
                continue
            try:
                done.append({key: self.handlers[task.kind](task)})
            except Exception as exc:  # one failing task never stops the others
                log.exception("lbpair: %s failed", key)
                done.append({key: f"failed: {type(exc).__name__}: {exc}"})
        return done
