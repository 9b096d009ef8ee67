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
configuration (:mod:`saltext.lbpair.master.reactions_config`), a way to run a function on minions
(``ask``, Salt's LocalClient) and the nodes' pillars (the fleet's pairs:
:mod:`saltext.lbpair.master.fleet`). Each pair has a crew (:mod:`saltext.lbpair.master.crew`) on
its own settings; all share the history, the reaction state and the scheduler. The work is done by
the crew's parts, each of one concern: the intake
(:mod:`~saltext.lbpair.master.intake`: events, claims, catch-up), the step runner
(:mod:`~saltext.lbpair.master.step_runner`), the pair monitor (:mod:`~saltext.lbpair.master.pair_monitor`:
pair state, split brain / no MASTER, DNS), the notifier (:mod:`~saltext.lbpair.master.notifier`:
damping, summaries), the scheduler (:mod:`~saltext.lbpair.master.scheduler`: work due later), the node
client (:mod:`~saltext.lbpair.master.node_client`) and the state API
(:class:`~saltext.lbpair.master.reaction_state.ReactionStore`). The events are checked by pure
functions (:mod:`~saltext.lbpair.master.transitions`); the records, notices and work for later are
types (:mod:`~saltext.lbpair.master.records`).
"""

import json
import logging
import time

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.master import batch, drain, fleet, metrics, planned, reaction_state, reactions_config, storm
from saltext.lbpair.master import history as history_file
from saltext.lbpair.master.crew import Crew
from saltext.lbpair.master.node_client import NodeClient
from saltext.lbpair.master.pair_monitor import fleet_view, pair_view, read_statuses, with_problems
from saltext.lbpair.master.records import Task, TaskKind, unscoped
from saltext.lbpair.master.scheduler import Scheduler
from saltext.lbpair.master.transitions import (
    JOURNAL_FUNCTION,
    STATUS_FUNCTION,
    TAG_RE,
    WARNING_CHECKS,
    journal_verdict,
    log_text,
    not_synced,
    split_returns,
    trust_problem,
)

# what the runner and the tests take from this module: the facade and the pure functions it is made of
__all__ = [
    "JOURNAL_FUNCTION", "STATUS_FUNCTION", "WARNING_CHECKS", "Reactions", "journal_verdict", "not_synced", "pair_view",
    "split_returns", "trust_problem", "with_problems",
]  # fmt: skip

log = logging.getLogger(__name__)

BATCH = 500  # queued events reacted to at once: a storm of 250 pairs

class Reactions:
    """
    The reactions to one configuration. ``ask(targets, fun, kwarg, timeout)`` runs
    ``fun`` on the minions ``targets`` and returns ``({minion: return}, {minion:
    failure reason})``, the returns of the successful jobs and the reasons of the others.
    ``wake()`` makes sure a background job does the work due later (:meth:`flush`).
    ``clock()`` and ``sleep(seconds)`` tell and pass the time (a test gives its own).
    ``claim_of(minion)`` and ``minions()`` tell the pairs (:class:`~saltext.lbpair.master.fleet.Directory`)
    when the configuration lists no ``nodes``. ``report(done)`` tells what the background work did
    in each round (the runner fires it as an event).
    """

    def __init__(self, config, ask, wake=None, clock=time.time, sleep=time.sleep, claim_of=None, minions=None, report=None):
        self.config = config
        self.ask = ask
        self.wake = wake or (lambda: None)
        self.clock = clock
        self.sleep = sleep
        self.history = history_file.History(config["history"]["path"], config["history"]["max_bytes"])
        self.state_path = f"{config['history']['path']}.state.json"
        self.store = reaction_state.ReactionStore(self.state_path)
        self._new_directory = lambda: fleet.Directory(reactions_config.configured_pair(config), claim_of, minions)
        self.directory = self._new_directory()
        self.client = NodeClient(lambda *args: self.ask(*args), [], config["confirm"]["timeout"], self.store, clock)
        self.scheduler = Scheduler(self.store, lambda: self.wake(), clock, sleep, report)
        monitor = lambda task: self._named(task.pair).monitor  # noqa: E731  (an older version's work names no pair: its only one)
        settled_check = lambda task: monitor(task).check_pair(task.instance, None, settled=True, follow=task.follow)  # noqa: E731
        self.scheduler.register(TaskKind.CHECK, settled_check)
        self.scheduler.register(TaskKind.DNS, lambda task: monitor(task).point_dns(task.instance, task.minion, task.attempt))
        self.scheduler.register(TaskKind.CATCH_UP, lambda task: self.catch_up(task.minion, task.attempt))
        self.scheduler.register_sweep(self._look_at_the_pillars_again)  # first: the round's work sees today's pairs
        self.scheduler.register_sweep(self._react_to_queue)
        self.scheduler.register_sweep(self._send_summaries)
        self.metrics = metrics.MetricsFile(config.get("metrics_file"), self._metrics_facts, clock)
        self.scheduler.register_after_round(self.metrics.after_round)
        self._crews = {}

    def _metrics_facts(self):
        """What the master's metrics file says (:func:`saltext.lbpair.master.metrics.gather`), for the pairs of the fleet."""
        pairs, _ = self.directory.fleet()
        return metrics.gather(self.history, self.store, {name: pair.nodes for name, pair in pairs.items()})

    def _look_at_the_pillars_again(self, now):
        """
        Each round of the background work learns the pairs afresh (a directory reads each claim once,
        and the resident worker lives for good: a pillar that gained a node's ``address6`` must show).
        The claims themselves stay a minute in the master's cache, or until a pillar refresh.
        """
        self.directory = self._new_directory()
        self._crews.clear()
        return []

    def crew(self, pair):
        """The :class:`~saltext.lbpair.master.crew.Crew` of ``pair`` (a :class:`~saltext.lbpair.master.fleet.Pair`)."""
        key = json.dumps(pair.to_json(), sort_keys=True)  # a pair whose pillar changed gets a crew on its new settings
        if key not in self._crews:
            settings = reactions_config.pair_settings(self.config, pair.name, pair.nodes)
            self._crews[key] = Crew(settings, lambda *args: self.ask(*args), self.history, self.store, self.scheduler,
                                    self.clock, self.sleep)  # fmt: skip
        return self._crews[key]

    def _crew_of(self, minion):
        """``(crew, None)`` of the pair ``minion`` is a node of, else ``(None, why not)``."""
        pair, problem = self.directory.find(minion)
        return (None, problem) if pair is None else (self.crew(pair), None)

    def _named(self, name=None):
        """The crew of the pair named ``name`` (``None``: the only pair); :class:`InvalidValue` if there is no such one pair."""
        pairs, _ = self.directory.fleet()
        if name is None and len(pairs) != 1:
            raise InvalidValue("pair", f"name the pair: {', '.join(sorted(pairs)) or 'the master knows none'}")
        pair = pairs.get(name) if name is not None else next(iter(pairs.values()))
        if pair is None:
            raise InvalidValue("pair", f"{name!r} is not a pair the master knows ({', '.join(sorted(pairs)) or 'none'})")
        return self.crew(pair)

    def _node_crew(self, minion):
        """The crew of the pair ``minion`` is a node of; :class:`InvalidValue` naming ``node`` if none."""
        crew, problem = self._crew_of(minion)
        if crew is None:
            raise InvalidValue("node", problem)
        return crew

    def on_beacon(self, tag, data):
        """React to an ``lbpair_vrrp`` beacon event here and now; see the ``lbpair`` runner's ``on_beacon``."""
        return batch.react([(tag, data)], self._crew_of, self.client, self.clock)[0]

    def queue(self, tag, data):
        """
        Queue an ``lbpair_vrrp`` beacon event for the background worker (:meth:`flush`) and make sure
        one is at work: the reactor's thread waits for nothing. Only the tag's shape is checked here;
        an event refused by the queue's bounds (:mod:`~saltext.lbpair.master.event_queue`) is ignored.
        While the reaction state is only in this process's memory, or only in the worker's (a full
        disk), the worker cannot see the queue: the event is reacted to here.
        """
        parts = TAG_RE.fullmatch(tag or "")
        if not parts or not isinstance(data, dict):
            log.warning("lbpair: ignoring beacon event %s: unexpected tag or data", log_text(tag))
            return {"ignored": f"unexpected tag {tag!r}" if not parts else "the data is not a mapping"}
        # a copy in memory (a full disk), this process's or the worker's, is where this event's reaction
        # state is: the worker would not see it, and one copy written back over the other would lose it
        if self.store.in_memory or self.store.worker_in_memory():
            return self.on_beacon(tag, data)
        queued, problem = self.store.queue_event(parts["minion"], tag, data, self.clock())
        if problem:
            log.warning("lbpair: ignoring beacon event %s: %s", log_text(tag), problem)
            return {"ignored": problem}
        if self.store.in_memory:
            self.store.events_done([queued])
            return self.on_beacon(tag, data)
        self.scheduler.wake_worker()
        return {"queued": queued}

    def _react_to_queue(self, now):
        """The queued events (a batch), reacted to and then taken off the queue: what each came to."""
        events = self.store.queued_events(BATCH)
        if not events:
            return []
        try:
            outcomes = batch.react([(tag, data) for _, tag, data, _ in events], self._crew_of, self.client, self.clock)
        except Exception as exc:  # a batch that fails must not come back for ever: the nodes' journals still hold it all
            log.exception("lbpair: reacting to %d queued events failed: catching up with their nodes instead", len(events))
            outcomes = [{"failed": f"{type(exc).__name__}: {exc}", "catch_up": "queued"}] * len(events)
            for minion in sorted({TAG_RE.fullmatch(tag)["minion"] for _, tag, _, _ in events}):
                self.scheduler.later(Task.catch_up(minion, 1), 0)
        self.store.events_done([event_id for event_id, *_ in events])
        latency = [now - at for *_, at in events]
        log.info("lbpair: reacted to %d queued events, queued %.2f s to %.2f s before", len(events), min(latency), max(latency))
        return [{"event": tag, "outcome": outcome} for (_, tag, _, _), outcome in zip(events, outcomes, strict=True)]

    def later_catch_up(self, minion):
        """Leave the catch-up with ``minion`` to the background worker (:meth:`catch_up`), if it is a node of a pair."""
        crew, problem = self._crew_of(minion)
        if crew is None:
            log.debug("lbpair: no catch-up for %s: %s", log_text(minion), log_text(problem))
            return {"ignored": problem}
        self.scheduler.later(Task.catch_up(minion, 1), 0)
        return {"catch_up": "queued"}

    def on_minion_start(self, minion):
        """A minion (re)connected: catch up if it is a node of a pair (any other minion is none of our business)."""
        crew, problem = self._crew_of(minion)
        if crew is None:
            log.debug("lbpair: no catch-up for %s: %s", log_text(minion), log_text(problem))
            return {"ignored": problem}
        return crew.intake.catch_up(minion)

    def catch_up(self, minion, attempt=1):
        """Record and react to what ``minion`` journalled since the history's last transition of it (:meth:`Intake.catch_up`)."""
        crew, problem = self._crew_of(minion)
        if crew is None:
            log.warning("lbpair: no catch-up for %s: %s", log_text(minion), log_text(problem))
            return {"ignored": problem}
        return crew.intake.catch_up(minion, attempt)

    def status(self, pair=None):
        """
        Every pair's view (or the one named ``pair``) with its problems, those with a problem first,
        the pairs and minions the fleet leaves out, the open claims, the work due and the history's damage.
        """
        pairs, left_out = ({pair: self._named(pair)}, {}) if pair else self._fleet_crews()
        nodes = sorted({node for crew in pairs.values() for node in crew.settings["nodes"]})
        statuses = read_statuses(self.client, nodes)
        view = fleet_view({name: crew.monitor.pair_state(statuses) for name, crew in pairs.items()}, left_out)
        view["claims"] = self.store.open_claims()
        view["due"] = {key: iso_utc(at) for key, at in self.store.due().items()}
        view["open_reactions"] = self.store.open_reactions()
        view["history_bad_lines"] = self.history.bad_lines()
        return view

    def _fleet_crews(self):
        """``({name: crew}, {name: why left out})`` of the whole fleet."""
        pairs, left_out = self.directory.fleet()
        return {name: self.crew(pair) for name, pair in pairs.items()}, left_out

    def dns_update(self, minion):
        """Point the records of ``minion``'s pair at ``minion`` now (retried, then reported)."""
        return self._node_crew(minion).monitor.dns_update(minion)

    def planned_moves(self, pair=None, sleep=None, grace=planned.CONFIRM_GRACE):
        """The planned moves of the pair named ``pair`` (``None``: the only one): :class:`~saltext.lbpair.master.planned.PlannedMoves`."""
        return self._named(pair).planned_moves(sleep, grace)

    def drains(self, pillar_of, pair=None):
        """
        Drain and ready a backend server on the nodes of the pair named ``pair`` (``None``: the only one):
        :class:`~saltext.lbpair.master.drain.Drains`; ``pillar_of(node)`` is the ``lbpair`` pillar the master compiles.
        """
        crew = self._named(pair)
        return drain.Drains(crew.client, crew.chronicle, crew.monitor.pair_state, pillar_of, self.sleep, self.clock)

    def switchover(self, to, timeout):
        """Move the VIPs of ``to``'s pair to ``to`` (:meth:`~saltext.lbpair.master.planned.PlannedMoves.switchover`)."""
        return self._node_crew(to).planned_moves().switchover(to, timeout)

    def maintenance(self, node, release, timeout):
        """Take ``node`` out of its pair, or release it (:meth:`~saltext.lbpair.master.planned.PlannedMoves.maintenance`)."""
        return self._node_crew(node).planned_moves().maintenance(node, release, timeout)

    def check_certificates(self, pair=None, now=None):
        """The TLS certificates of every pair's nodes (or of ``pair``'s) looked at (:func:`saltext.lbpair.master.cert_watch.check`)."""
        crews = {pair: self._named(pair)} if pair else self._fleet_crews()[0]
        found = [crew.check_certificates(now) for crew in crews.values()]
        return {key: [item for result in found for item in result[key]] for key in ("expiring", "ocsp_stale", "notified", "silent")}

    def _send_summaries(self, now):
        """The flap-damping summaries whose window ended at ``now``, each sent by its pair's crew, and the storms' summaries."""
        done = [{"storm": key, "sent": self._send_storm(key, now)} for key in self.store.storms_due(now)]
        for key in self.store.summaries_due(now):
            pair, instance = unscoped(key)
            try:
                done.append({"summary": key, "sent": self._named(pair).notifier.send_summary(instance)})
            except InvalidValue as exc:  # the pair is gone from the fleet: nobody to send it to
                log.error("lbpair: dropping the summary of %s: %s", key, exc)
                self.store.release_summary(key, now, 0)
                done.append({"summary": key, "sent": f"dropped: {exc}"})
        return done

    def _send_storm(self, storm_key, now):
        """A storm's summary, through the destination its key names: the block's, or a pair's own."""
        _, pair = storm.parse(storm_key)
        try:
            return storm.send_summary(self.store, storm_key, self.config if pair is None else self._named(pair).settings, now)
        except InvalidValue as exc:  # the pair is gone from the fleet: nobody to send it to
            log.error("lbpair: dropping the storm summary of %s: %s", storm_key, exc)
            self.store.release_storm(storm_key, now)
            return f"dropped: {exc}"

    def flush(self, wait=False):
        """
        Do the work that is due: the queued events, flap-damping summaries whose window ended, pair
        checks after the settle time, DNS and catch-up retries. With ``wait``, keep
        doing it until nothing is left (the background job); else start that job if
        work remains for later.
        """
        return self.scheduler.flush(wait)

    def work_in_background(self, resident=False):
        """
        :meth:`flush` with ``wait``, unless another background job already does it; ``resident``:
        for good, waiting for work (the ``lbpair`` engine), and taking over when another one ends.
        """
        return self.scheduler.work_in_background(resident)
