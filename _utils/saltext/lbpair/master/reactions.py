"""
Failover reactions of the lbpair master: one central failover history,
catch-up from the nodes' journals, pair status, notifications and DNS.

An event is a trigger, never the truth: Salt does not authenticate what a
minion writes into a beacon event, so each transition is checked against the
node's own journal (``lbpair_keepalived.transitions``) and the pair's state is
read from the nodes (``lbpair_keepalived.status``), both through job returns,
which Salt ties to the minion's key. DNS changes and split-brain / no-master
alarms are based on those returns only. An event its node does not confirm (it
does not answer) is a *claim*: recorded as such, acted on in no way, and settled
by the node's journal once it answers.

Each reaction is a list of steps (record, each notification channel, the pair
check): a failing step is recorded and alarmed and never stops the others, and
replaying the event does the steps that did not succeed, once. Nothing here
sleeps in the reactor's threads: what is due later (summaries, a pair check
after the settle time, DNS and catch-up retries) is left to a background
``lbpair.flush`` job (:mod:`saltext.lbpair.master.reaction_state`).

:class:`Reactions` is the facade the ``lbpair`` runner calls, which gives it the validated
configuration (:mod:`saltext.lbpair.master.reactions_config`) and a way to run a function on minions
(``ask``, Salt's LocalClient). The work is done by its parts, each of one concern: the intake
(:mod:`~saltext.lbpair.master.intake`: events, claims, catch-up), the step runner
(:mod:`~saltext.lbpair.master.step_runner`), the pair monitor (:mod:`~saltext.lbpair.master.pair_monitor`:
pair state, split brain / no MASTER, DNS), the notifier (:mod:`~saltext.lbpair.master.notifier`:
damping, summaries), the scheduler (:mod:`~saltext.lbpair.master.scheduler`: work due later), the node
client (:mod:`~saltext.lbpair.master.node_client`) and the state API
(:class:`~saltext.lbpair.master.reaction_state.ReactionStore`). The events are checked by pure
functions (:mod:`~saltext.lbpair.master.transitions`); the records, notices and work for later are
types (:mod:`~saltext.lbpair.master.records`).
"""

import time

from saltext.lbpair.master import cert_watch, planned, reaction_state
from saltext.lbpair.master import history as history_file
from saltext.lbpair.master.chronicle import Chronicle
from saltext.lbpair.master.intake import Intake
from saltext.lbpair.master.node_client import NodeClient
from saltext.lbpair.master.notifier import Notifier
from saltext.lbpair.master.pair_monitor import PairMonitor, pair_view, with_problems
from saltext.lbpair.master.records import TaskKind
from saltext.lbpair.master.scheduler import Scheduler
from saltext.lbpair.master.step_runner import StepRunner
from saltext.lbpair.master.transitions import (
    JOURNAL_FUNCTION,
    STATUS_FUNCTION,
    WARNING_CHECKS,
    journal_verdict,
    not_synced,
    split_returns,
    trust_problem,
)

# what the runner and the tests take from this module: the facade and the pure functions it is made of
__all__ = [
    "JOURNAL_FUNCTION", "STATUS_FUNCTION", "WARNING_CHECKS", "Reactions", "journal_verdict", "not_synced", "pair_view",
    "split_returns", "trust_problem", "with_problems",
]  # fmt: skip


class Reactions:
    """
    The reactions to one configuration. ``ask(targets, fun, kwarg, timeout)`` runs
    ``fun`` on the minions ``targets`` and returns ``({minion: return}, {minion:
    failure reason})``, the returns of the successful jobs and the reasons of the others.
    ``wake()`` makes sure a background job does the work due later (:meth:`flush`).
    ``clock()`` and ``sleep(seconds)`` tell and pass the time (a test gives its own).
    """

    def __init__(self, config, ask, wake=None, clock=time.time, sleep=time.sleep):
        self.config = config
        self.wake = wake or (lambda: None)
        self.clock = clock
        self.sleep = sleep
        self.history = history_file.History(config["history"]["path"], config["history"]["max_bytes"])
        self.state_path = f"{config['history']['path']}.state.json"
        self.store = reaction_state.ReactionStore(self.state_path)
        self.client = NodeClient(ask, config["nodes"], config["confirm"]["timeout"], self.store, clock)
        self.scheduler = Scheduler(self.store, lambda: self.wake(), clock, sleep)
        chronicle = Chronicle(self.history, clock)
        self.notifier = Notifier(config, self.store, chronicle, self.scheduler, clock)
        self.monitor = PairMonitor(config, self.client, self.store, chronicle, self.scheduler, clock)
        self.steps = StepRunner(config, self.store, self.history, self.notifier, self.monitor.check_pair, self._failback)
        self.intake = Intake(config, self.client, self.store, chronicle, self.scheduler, self.steps, clock)
        self.scheduler.register(TaskKind.CHECK, lambda task: self.monitor.check_pair(task.instance, None, settled=True))
        self.scheduler.register(TaskKind.DNS, lambda task: self.monitor.point_dns(task.instance, task.minion, task.attempt))
        self.scheduler.register(TaskKind.CATCH_UP, lambda task: self.intake.catch_up(task.minion, task.attempt))
        self.scheduler.register_sweep(self.notifier.send_summaries)

    @property
    def ask(self):
        """How the nodes are asked (see :class:`~saltext.lbpair.master.node_client.NodeClient`)."""
        return self.client.ask

    @ask.setter
    def ask(self, ask):
        self.client.ask = ask

    def on_beacon(self, tag, data):
        """React to an ``lbpair_vrrp`` beacon event; see the ``lbpair`` runner's ``on_beacon``."""
        return self.intake.on_beacon(tag, data)

    def on_minion_start(self, minion):
        """A minion (re)connected: catch up if it is a node of the pair (any other minion is none of our business)."""
        return self.intake.on_minion_start(minion)

    def catch_up(self, minion, attempt=1):
        """Record and react to what ``minion`` journalled since the history's last transition of it (:meth:`Intake.catch_up`)."""
        return self.intake.catch_up(minion, attempt)

    def pair_state(self):
        """The pair's view (:func:`~saltext.lbpair.master.pair_monitor.pair_view`) from the nodes' own status returns."""
        return self.monitor.pair_state()

    def status(self):
        """The pair's view with its problems, the open claims, the work due and the history's damage."""
        return self.monitor.status()

    def dns_update(self, minion):
        """Point the configured DNS records at ``minion`` now (retried, then reported)."""
        return self.monitor.dns_update(minion)

    def planned_moves(self, sleep=None, grace=planned.CONFIRM_GRACE):
        """The pair's planned moves (:class:`~saltext.lbpair.master.planned.PlannedMoves`), given what they need of the reactions."""
        return planned.PlannedMoves(self.client, self.history, self.monitor.pair_state, self.store, sleep or self.sleep, grace, self.clock)

    def _failback(self, minion, instance):
        return self.planned_moves().failback(minion, instance)

    def check_certificates(self, now=None):
        """The nodes' TLS certificates looked at (:func:`saltext.lbpair.master.cert_watch.check`)."""
        return cert_watch.check(self.client, self.history, self.store, self.config, now)

    def flush(self, wait=False):
        """
        Do the work that is due: flap-damping summaries whose window ended, pair
        checks after the settle time, DNS and catch-up retries. With ``wait``, keep
        doing it until nothing is left (the background job); else start that job if
        work remains for later.
        """
        return self.scheduler.flush(wait)

    def work_in_background(self):
        """:meth:`flush` with ``wait``, unless another background job already does it."""
        return self.scheduler.work_in_background()
