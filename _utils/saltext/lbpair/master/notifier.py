"""
The reactions' notifications: flap damping of transition notices (held for a summary when an
instance flaps), the summaries sent when the damping window ends, and the alarm of a failed step.
"""

import dataclasses
import logging
import time

from saltext.lbpair.master import notify, records, storm
from saltext.lbpair.master.notify import Admission
from saltext.lbpair.master.records import scoped
from saltext.lbpair.master.transitions import previous_master

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class Notifier:
    """
    Notifications for ``config`` (the reactions'); ``store`` keeps the damping, ``chronicle``
    records, ``scheduler`` wakes the background job that sends the summaries.
    """

    config: dict
    store: object
    chronicle: object
    scheduler: object
    clock: object = time.time

    def admit(self, record):
        """
        The notice to send for ``record`` (a :class:`~saltext.lbpair.master.records.Transition`)
        now, or ``None`` when flap damping holds it for the summary.
        """
        key = scoped(self.config["pair"], record.instance)
        decision = self.store.admit(key, self.clock(), self.config["damping_window"], record.brief())
        log.info("lbpair: %s %s seq %s: notification %s", record.minion, record.state, record.seq, decision)
        if decision is Admission.HOLD_FIRST:
            self.scheduler.wake_worker()  # the background job sends the summary when the window ends
        if decision is not Admission.SEND:
            return None
        origin = previous_master(self.chronicle.recent(), record, self.config["nodes"])
        return notify.transition_notice(record, origin)

    def send(self, notice, channel):
        """Send ``notice`` through ``channel``, unless a storm holds it for its summary (:mod:`~saltext.lbpair.master.storm`)."""
        if notice.kind in storm.KINDS:
            storm_key = storm.key(channel, self.config)
            decision = self.store.admit_storm(storm_key, self.clock(), storm.brief(notice, self.config["pair"]))
            if decision is Admission.HOLD_FIRST:
                self.scheduler.wake_worker()  # the background job sends the storm's summary when its window ends
            if decision is not Admission.SEND:
                return storm.HELD
        return notify.send(notice, self.config, channel)

    def send_summary(self, instance):
        """
        The flap-damping summary of ``instance``, whose window ended, sent through each channel as a
        transition's message is, so that a storm may hold it (``[]``: nothing was held).
        """
        held = self.store.release_summary(scoped(self.config["pair"], instance), self.clock(), self.config["damping_window"])
        if not held:
            return []
        outcome = notify.deliver(notify.summary_notice(instance, held, self.config["damping_window"]), self.config, through=self.send)
        for channel, result in outcome.items():
            if result not in ("sent", storm.HELD):
                self.store.count_step_failure(self.config["pair"], channel)
                self.report_failure(instance, channel, f"the summary of {len(held)} held transitions: {channel} {result}")
        return [outcome]

    def report_failure(self, instance, step, message):
        """Record a failed step and alarm through the other channels (one that failed would fail again)."""
        log.error("lbpair: %s", message)
        self.chronicle.note(records.step_failed(instance, step, message))
        others = [channel for channel in notify.channels(self.config) if channel != step]
        notify.deliver(notify.alarm_notice("step_failed", instance, message), self.config, only=others)
