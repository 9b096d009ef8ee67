"""
The intake of the reactions: beacon events (trusted only once their node's journal confirms them,
else recorded as claims), the beacon's warnings (confirmed with the node's own status), and the
catch-up from a node's journal when it (re)connects, which settles its claims.
"""

import dataclasses
import logging
import time

from saltext.lbpair.master import notify, planned, reaction_state, records
from saltext.lbpair.master.records import Seen, Task, Transition
from saltext.lbpair.master.transitions import (
    JOURNAL_FUNCTION,
    TAG_RE,
    WARNING_CHECKS,
    Verdict,
    claim_outcome,
    entry_problem,
    journal_verdict,
    log_text,
    not_synced,
    trust_problem,
)

log = logging.getLogger(__name__)

#: what a reaction says of a transition another master acts on (:func:`acting`)
ELSEWHERE = "another master claimed it on its node: recorded here, notified and followed by DNS there"
CATCH_UP_TIMEOUTS = (2, 2, 4, 8, 16)  # s, one ask per attempt: a just-connected minion may not answer at once
CLAIM_RECHECK = 5  # s before a node that did not confirm its event is asked for its journal again


def acting(entry):
    """
    Whether this master acts on (notifies, points DNS for) a journal entry its node answered with
    ``claim``: with two masters, the node gives each transition to the first master that claims it
    (``acting``); a node that does not claim gives every transition to every master.
    """
    return entry.get("acting") is not False


@dataclasses.dataclass(eq=False)
class Intake:
    """
    What comes in from the nodes of ``config`` (the reactions'): asked through ``client``, claims
    and quiet periods in ``store``, recorded by ``chronicle``, reacted to by ``steps`` (a
    :class:`~saltext.lbpair.master.step_runner.StepRunner`); retries left to ``scheduler``.
    """

    config: dict
    client: object
    store: object
    chronicle: object
    scheduler: object
    steps: object
    clock: object = time.time

    def _claim(self, minion, data, why):
        """
        An event its node did not confirm (*why*: no answer, or its job failed): a claim, not a fact. Recorded
        as such, announced at most once per damping window, and settled by the node's
        journal when it answers (a catch-up is left to the background job).
        """
        claim = records.claim(data, minion, self.clock())
        # the open ones are announced already; the journal settles them all
        if self.store.claim_count(minion) >= reaction_state.MAX_CLAIMS:
            log.debug("lbpair: %s has %d open claims: not recording more", minion, reaction_state.MAX_CLAIMS)
            return {"ignored": f"{minion} has {reaction_state.MAX_CLAIMS} open claims already"}
        self.chronicle.note(claim)
        now = self.clock()
        count, announce = self.store.add_claim(minion, records.brief(claim), now, self.config["damping_window"])
        log.warning("lbpair: %s did not confirm %s seq %s (%s): recorded as a claim", minion, claim.get("state"), claim.get("seq"), why)
        self.scheduler.later(Task.catch_up(minion, 1), CLAIM_RECHECK)
        notified = notify.deliver(notify.claim_notice(minion, claim, count), self.config) if announce else "damped"
        return {"claim": records.brief(claim), "notified": notified}

    def _settle_claims(self, minion, journal, since):
        """What the node's journal says of its open claims, recorded in the history."""
        claims = self.store.take_claims(minion)
        by_seq = {entry.get("seq"): entry for entry in journal if isinstance(entry, dict)}
        for claim in claims:
            outcome = claim_outcome(claim, by_seq.get(claim["seq"]), since)
            message = f"{minion}'s claim seq {claim['seq']} ({claim.get('state')}): {outcome}"
            self.chronicle.note(records.claim_settled(minion, claim["seq"], outcome, message))
        return len(claims)

    def _warn(self, minion, code):
        """
        A node's beacon warns: confirmed with the node's own status (its text is not
        used), recorded, and announced at most once per damping window.
        """
        check = WARNING_CHECKS.get(code)
        if check is None:
            return {"ignored": "not a warning lbpair's beacon sends"}
        answers, _ = self.client.answers([minion], check["function"])
        if minion not in answers:
            log.warning("lbpair: %s warns %s but did not confirm it (no answer)", minion, code)
            return {"ignored": "the node did not confirm it"}
        message = check["confirms"](answers[minion])
        if not message:
            log.warning("lbpair: ignoring %s's warning %s: its own status does not confirm it (forged?)", minion, code)
            return {"ignored": "the node's own status does not confirm it"}
        log.warning("lbpair: %s warns (%s): %s", minion, code, message)
        self.chronicle.note(records.warning(minion, code, message))
        now = self.clock()
        damped = not self.store.quiet_warning(f"{minion}:{code}", now, self.config["damping_window"])
        notified = "damped" if damped else notify.deliver(notify.warning_notice(minion, code, message), self.config)
        return {"warning": code, "notified": notified}

    def screen(self, tag, data, requested_at):
        """
        The first look at an ``lbpair_vrrp`` beacon event: ``(outcome, None)`` when that settles it
        (ignored, a warning, a reaction replayed), else ``(None, minion)``: the transition of ``minion``
        that its journal must confirm (:meth:`confirm`).
        """
        data = data if isinstance(data, dict) else {}
        problem = trust_problem(tag, data, self.config["nodes"])
        if problem:
            log.warning("lbpair: ignoring beacon event %s: %s", log_text(tag), problem)
            return {"ignored": problem}, None
        parts = TAG_RE.fullmatch(tag)
        minion = parts["minion"]
        if parts["instance"] == "warning":
            return self._warn(minion, parts["state"]), None
        key = records.reaction_key(minion, data["seq"])
        open_steps = self.store.unfinished(key)
        if open_steps is not None:
            return self.steps.replay(key, open_steps, requested_at), None
        return None, minion

    def confirm(self, tag, data, journal, why_unconfirmed):
        """
        What the node's ``journal`` (its answer; ``None``: it gave none, ``why_unconfirmed``) says
        of the event :meth:`screen` let through: ``(outcome, None)`` when it is ignored or a claim,
        else ``(None, record)``: the confirmed :class:`~saltext.lbpair.master.records.Transition`,
        with whether this master acts on it (:func:`acting`).
        """
        minion = TAG_RE.fullmatch(tag)["minion"]
        verdict, entry = journal_verdict(data, journal)
        if verdict is Verdict.REFUTED:
            log.warning("lbpair: ignoring %s: %s's own journal has no such transition (forged?)", log_text(tag), minion)
            return {"ignored": "not in the node's journal"}, None
        if verdict is Verdict.UNCONFIRMED:
            return self._claim(minion, data, why_unconfirmed), None
        return None, (Transition.confirmed_from(entry, minion, Seen.LIVE, self.clock(), self.config["pair"]), acting(entry))

    def record(self, found):
        """
        Append the transitions ``found`` (marked planned when a planned move expects them):
        ``(the new ones, None)``, or all of them and why the history could not take them.
        """
        plans = self.store.plans()
        found = [record.marked_planned() if planned.planned_for(plans, record, self.clock()) else record for record in found]
        try:
            return self.chronicle.history.append(found), None
        except OSError as exc:
            error = f"the history could not be written: {exc}"
            log.error("lbpair: %s", error)
            return found, error

    def react(self, new, requested_at, record_error=None, statuses=None, passive=frozenset()):
        """
        React to the transitions :meth:`record` found ``new``, except those whose reaction keys are
        in ``passive`` (another master acts on them: only recorded here). ``statuses``: the nodes'
        status returns for the pair checks, read once for a batch (by default each check asks).
        """
        return [
            {"recorded": record.brief(), "steps": {}, "acting": ELSEWHERE} if record.key in passive
            else self.steps.react(record, requested_at, record_error, statuses)
            for record in new
        ]  # fmt: skip

    def catch_up(self, minion, attempt=1):
        """
        Record what ``minion`` journalled after the history's last confirmed transition
        of it, marked late, and react; settle its open claims. A node that does not
        answer is asked again by the background job (``attempt`` of ``len(CATCH_UP_TIMEOUTS)``).
        """
        requested_at = self.clock()
        if minion not in self.config["nodes"]:
            log.warning("lbpair: no catch-up for %s: not a node of the pair", log_text(minion))
            return {"ignored": f"{minion!r} is not a node of the pair"}
        since = self.chronicle.history.last_seq(minion)
        timeout = CATCH_UP_TIMEOUTS[min(attempt, len(CATCH_UP_TIMEOUTS)) - 1]
        answers, failures = self.client.answers([minion], JOURNAL_FUNCTION, {"since": since, "claim": True}, timeout)
        journal = answers.get(minion)
        self.client.heard(minion, answers, failures)
        if not isinstance(journal, list):
            return self._journal_silent(minion, failures.get(minion), attempt)
        wellformed = [entry for entry in journal if isinstance(entry, dict) and entry_problem(entry) is None]
        if len(wellformed) < len(journal):
            log.warning("lbpair: %d malformed entries in %s's journal were skipped", len(journal) - len(wellformed), minion)
        settled = self._settle_claims(minion, wellformed, since)
        pair = self.config["pair"]
        fresh = [entry for entry in wellformed if entry["seq"] > since]
        found = [Transition.confirmed_from(entry, minion, Seen.LATE, self.clock(), pair) for entry in fresh]
        passive = {records.reaction_key(minion, entry["seq"]) for entry in fresh if not acting(entry)}
        new, error = self.record(found)
        reactions = self.react(new, requested_at, error, passive=passive)
        log.info("lbpair: caught up %d transitions of %s after seq %d", len(reactions), minion, since)
        return {"caught_up": [reaction["recorded"] for reaction in reactions], "claims_settled": settled, "reactions": reactions}

    def _journal_silent(self, minion, failure, attempt):
        if not_synced(failure):  # a new node: nothing journalled yet
            log.info("lbpair: no catch-up from %s: lbpair's modules are not synced there yet", minion)
            return {"caught_up": None, "error": "lbpair's execution modules are not synced on the node"}
        if attempt < len(CATCH_UP_TIMEOUTS):
            self.scheduler.later(Task.catch_up(minion, attempt + 1), 0)
            return {"caught_up": None, "error": "the node's journal did not answer", "retry": attempt + 1}
        log.error("lbpair: catch-up from %s failed: its journal did not answer %d times", minion, attempt)
        return {"caught_up": None, "error": "the node's journal did not answer"}

    def on_minion_start(self, minion):
        """A minion (re)connected: catch up if it is a node of the pair (any other minion is none of our business)."""
        if minion not in self.config["nodes"]:
            log.debug("lbpair: %s is not a node of the pair, no catch-up", log_text(minion))
            return {"ignored": f"{minion!r} is not a node of the pair"}
        return self.catch_up(minion)
