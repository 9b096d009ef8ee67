"""
The parts that react for one pair, on its own settings (its nodes, channels, DNS, damping):
the node client, the intake, the step runner, the pair monitor and the notifier. Every pair's
crew shares the master's history, reaction state and scheduler.
"""

import time

from saltext.lbpair.master import cert_watch, planned
from saltext.lbpair.master.chronicle import Chronicle
from saltext.lbpair.master.intake import Intake
from saltext.lbpair.master.node_client import NodeClient
from saltext.lbpair.master.notifier import Notifier
from saltext.lbpair.master.pair_monitor import PairMonitor
from saltext.lbpair.master.step_runner import StepRunner


class Crew:
    """
    The reactions of the pair ``settings`` describe (:func:`~saltext.lbpair.master.reactions_config.pair_settings`).
    ``ask`` runs a function on minions (see :class:`~saltext.lbpair.master.node_client.NodeClient`);
    ``history``, ``store`` and ``scheduler`` are the master's.
    """

    def __init__(self, settings, ask, history, store, scheduler, clock=time.time, sleep=time.sleep):
        self.settings = settings
        self.name = settings["pair"]
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.client = NodeClient(ask, settings["nodes"], settings["confirm"]["timeout"], store, clock)
        self.chronicle = Chronicle(history, clock, self.name)
        self.notifier = Notifier(settings, store, self.chronicle, scheduler, clock)
        self.monitor = PairMonitor(settings, self.client, store, self.chronicle, scheduler, clock)
        self.steps = StepRunner(settings, store, history, self.notifier, self.monitor.check_pair, self._failback, clock)
        self.intake = Intake(settings, self.client, store, self.chronicle, scheduler, self.steps, clock)

    def planned_moves(self, sleep=None, grace=planned.CONFIRM_GRACE):
        """The pair's planned moves (:class:`~saltext.lbpair.master.planned.PlannedMoves`)."""
        pair_state = self.monitor.pair_state
        return planned.PlannedMoves(self.client, self.chronicle, pair_state, self.store, sleep or self.sleep, grace, self.clock)

    def _failback(self, minion, instance):
        return self.planned_moves().failback(minion, instance)

    def check_certificates(self, now=None):
        """The pair's TLS certificates looked at (:func:`saltext.lbpair.master.cert_watch.check`)."""
        return cert_watch.check(self.client, self.chronicle, self.store, self.settings, now)
