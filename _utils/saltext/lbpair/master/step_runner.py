"""
The steps of a reaction to a transition: recording it (when the history could not take it), the
failback, one notification per channel, the pair check. A failing step is recorded and alarmed and
never stops the others; replaying the event does the steps that did not succeed, once.
"""

import dataclasses
import functools
import logging
import time

from saltext.lbpair.core import times
from saltext.lbpair.master import metrics, notify
from saltext.lbpair.master.records import Notice, Seen, Transition

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class StepRunner:
    """
    Runs the steps of reactions. ``store`` keeps each reaction's open steps, ``notifier`` damps and
    sends, ``check_pair(instance, requested_at, statuses=, follow=)`` checks the pair (DNS follows
    from a transition into MASTER), ``failback(minion, instance)`` hands an instance back to a node
    back from FAULT. Each failed step is counted, and each reaction's latency measured, for the
    master's metrics (:mod:`saltext.lbpair.master.metrics`).
    """

    config: dict
    store: object
    history: object
    notifier: object
    check_pair: object
    failback: object
    clock: object = time.time

    def react(self, record, requested_at, record_error=None, statuses=None):
        """
        React to a new transition (a :class:`~saltext.lbpair.master.records.Transition`): its
        notification (damped), one step per channel, and the pair check (DNS, alarms).
        ``record_error``: the history could not take the record; that step stays open for a replay.
        ``statuses``: the nodes' status returns the pair check is to use (read once for a batch).
        """
        key = record.key
        notice = self.notifier.admit(record)
        # the failback first: the returning node preempts by itself when the failback delay ends
        failback = ["failback"] if record.back_from_fault() else []
        steps = (["record"] if record_error else []) + failback + (notify.channels(self.config) if notice else []) + ["pair"]
        self.store.begin_steps(key, steps, {"record": record.to_json(), "notice": notice and notice.to_json()})
        if record_error:
            self._step_failed(key, record.instance, "record", record_error)
        rest = [step for step in steps if step != "record"]
        outcome = self._run_steps(key, rest, record, notice, requested_at, statuses)
        self._measure(record)
        return {"recorded": record.brief(), **outcome}

    def _measure(self, record):
        """
        The reaction's latency: from its node receiving the transition to its steps done. Only a
        live transition's: one caught up from a node's journal measures how long the master was away.
        """
        if record.seen != Seen.LIVE:
            return
        try:
            latency = max(0.0, self.clock() - times.parse(record.at).timestamp())  # the nodes' clocks may run a little ahead
            self.store.observe_latency(self.config["pair"], latency, metrics.LATENCY_BUCKETS)
        except Exception:  # a metric never stops a reaction
            log.exception("lbpair: the latency of the reaction to %s was not counted", record.key)

    def replay(self, key, open_steps, requested_at):
        """Do again the steps of reaction ``key`` that have not succeeded yet (and only those)."""
        record = Transition.from_json(open_steps["record"])
        notice = open_steps.get("notice") and Notice.from_json(open_steps["notice"])
        log.info("lbpair: completing the steps %s of %s", open_steps["pending"], key)
        outcome = self._run_steps(key, open_steps["pending"], record, notice, requested_at)
        return {"completed": record.brief(), **outcome}

    def _run_steps(self, key, steps, record, notice, requested_at, statuses=None):
        outcome = {"steps": {}}
        follow = record.minion if record.becomes_master else None  # DNS follows a node from its own transition into MASTER
        actions = {
            "record": lambda: self.history.append([record]) and "recorded",
            "pair": lambda: self.check_pair(record.instance, requested_at, statuses=statuses, follow=follow),
            "failback": lambda: self.failback(record.minion, record.instance),
            **{channel: functools.partial(self.notifier.send, notice, channel) for channel in notify.channels(self.config)},
        }
        for step in steps:
            action = actions.get(step, lambda: "skipped: the channel is no longer configured")
            try:
                result, error = action(), None
            except Exception as exc:  # a failing step never stops the others
                log.exception("lbpair: step %s of %s failed", step, key)
                result, error = None, f"{type(exc).__name__}: {exc}"
            if step == "pair" and error is None:
                outcome["pair"], result = result, "done"
            outcome["steps"][step] = result if error is None else f"failed: {error}"
            if error is None:
                self.store.step_done(key, step)
            else:
                self._step_failed(key, record.instance, step, error)
        return outcome

    def _step_failed(self, key, instance, step, error):
        """Note a failed step (a replay will redo it) and alarm through the channels that still work."""
        if self.store.step_failed(key, step, error, self.config["pair"]):
            self.notifier.report_failure(instance, step, f"reaction {key}: step {step} failed: {error}; replaying the event completes it")
