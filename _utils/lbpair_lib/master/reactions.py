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
``lbpair.flush`` job (:mod:`lbpair_lib.master.reaction_state`).

:class:`Reactions` does the work; the ``lbpair`` runner gives it the validated
configuration (:mod:`lbpair_lib.master.reactions_config`) and a way to run a function
on minions (``ask``, Salt's LocalClient).
"""

import functools
import ipaddress
import logging
import re
import time

from lbpair_lib.core.errors import InvalidValue
from lbpair_lib.core.times import iso_utc
from lbpair_lib.master import cert_watch, dns_update, notify, planned, reaction_state
from lbpair_lib.master import history as history_file
from lbpair_lib.master.node_client import SILENT_WINDOW, NodeClient
from lbpair_lib.master.reactions_config import CONFIG_KEY
from lbpair_lib.master.scheduler import Scheduler
from lbpair_lib.model import schema

log = logging.getLogger(__name__)

MAX_VIPS = 255  # keepalived's limit for one virtual_ipaddress block
STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "DELETED", "STOP")
TAG_RE = re.compile(r"salt/beacon/(?P<minion>[^/\s]+)/lbpair_vrrp/(?P<instance>[^/\s]+)/(?P<state>[^/\s]+)")
CATCH_UP_TIMEOUTS = (2, 2, 4, 8, 16)  # s, one ask per attempt: a just-connected minion may not answer at once
CLAIM_RECHECK = 5  # s before a node that did not confirm its event is asked for its journal again
RECENT_RECORDS = 500  # enough history to know the last MASTER and the VIPs of each instance
MAX_ROGUE_SHOWN = 10
JOURNAL_FUNCTION = "lbpair_keepalived.transitions"
STATUS_FUNCTION = "lbpair_keepalived.status"


# --- events and records (pure) ------------------------------------------------


def trust_problem(tag, data, nodes):
    """Why a beacon event must be ignored (a message), or ``None`` if it may trigger a reaction."""
    match = TAG_RE.fullmatch(tag or "")
    if not match:
        return f"unexpected tag {tag!r}"
    minion = match["minion"]
    if minion not in nodes:
        return f"{minion!r} is not a node of the pair"
    if data.get("id") not in (None, minion):
        return f"the tag names {minion!r} but the data claims {data.get('id')!r}"
    if match["instance"] == "warning":
        return None
    if data.get("instance") != match["instance"] or data.get("state") != match["state"]:
        return "the tag and the data disagree on the instance or the state"
    return entry_problem(data)


def entry_problem(entry):
    """
    Why a transition (an event's data or a journal entry: text a node controls) is malformed,
    or ``None``. Only a well-formed transition is recorded, announced or trusted.
    """
    checks = (
        ("instance", lambda value: isinstance(value, str) and schema.NAME_RE.fullmatch(value)),
        ("state", lambda value: value in STATES),
        ("previous_state", lambda value: value in (*STATES, "UNKNOWN")),
        ("seq", lambda value: isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**53),
        ("vips", _addresses),
    )
    for key, valid in checks:
        if not valid(entry.get(key)):
            return f"{key} is missing or malformed"
    return None


def _addresses(vips):
    if not isinstance(vips, list) or len(vips) > MAX_VIPS:
        return False
    try:
        return all(isinstance(vip, str) and ipaddress.ip_address(vip) for vip in vips)
    except ValueError:
        return False


def log_text(value):
    """A value a node controls, for a log line: one line, bounded, control characters escaped."""
    return repr(str(value)[:200])


def unconfirmed_reason(silent, failure):
    """Why a node did not confirm an event, for the log: not asked (*silent*), its job's *failure*, or no answer."""
    if silent:
        return f"not asked: it left a job unanswered in the last {SILENT_WINDOW} s"
    return "no answer" if failure is None else log_text(failure)


def back_from_fault(record):
    """Whether a transition brings its node back from FAULT, live and unplanned: a failback may be due."""
    return (record["previous_state"], record["state"]) == ("FAULT", "BACKUP") and record["seen"] == "live" and not record.get("planned")


def reaction_key(record):
    """The reaction to a transition, named by its node and sequence number."""
    return f"{record['minion']}:{record['seq']}"


def transition_record(entry, minion, seen, now=None):
    """The history record of a transition its node confirmed (a journal entry)."""
    return {
        "kind": "transition",
        "minion": minion,
        "seq": entry.get("seq"),
        "instance": entry.get("instance"),
        "vrid": entry.get("vrid"),
        "interface": entry.get("interface"),
        "state": entry.get("state"),
        "previous_state": entry.get("previous_state", "UNKNOWN"),
        "vips": list(entry.get("vips") or []),
        "source": entry.get("source"),
        "at": entry.get("received_at") or iso_utc(entry.get("time") or now or time.time()),
        "recorded_at": iso_utc(now or time.time()),
        "seen": seen,
        "confirmed": True,
    }


def claim_record(data, minion, now=None):
    """The history record of an event its node did not confirm: a claim, which takes no (minion, seq) slot."""
    return {
        "kind": "claim",
        "minion": minion,
        **{key: data.get(key) for key in ("seq", "instance", "state", "previous_state", "vips")},
        "at": iso_utc(now or time.time()),
        "message": f"{minion} did not confirm this event: not acted on until its journal answers",
    }


def claim_outcome(claim, journal_entry, since):
    """What a node's journal (entries after ``since``) says of one of its claims."""
    if journal_entry is not None:
        same = all(journal_entry.get(key) == claim.get(key) for key in ("instance", "state"))
        return "confirmed by the node's journal" if same else "refuted: the journal holds another transition"
    if claim["seq"] <= since:
        return "superseded: the history already holds the node's transitions up to that seq"
    return "refuted: not in the node's journal"


def _keepalived_not_on_bus(status):
    if isinstance(status, dict) and any(isinstance(info, dict) and info.get("source") == "json" for info in status.values()):
        return "keepalived runs but is not on D-Bus: restart keepalived (lbpair follows its JSON dump meanwhile)"
    return None


def _rogue_vrrp(senders):
    if not _addresses(senders) or not senders:
        return None
    shown = ", ".join(senders[:MAX_ROGUE_SHOWN]) + (" ..." if len(senders) > MAX_ROGUE_SHOWN else "")
    return f"VRRP adverts from outside the pair were dropped: {shown}"


#: the warnings lbpair's beacon sends, and how the master confirms each with the node's own job return
WARNING_CHECKS = {
    "keepalived_not_on_bus": {"function": STATUS_FUNCTION, "confirms": _keepalived_not_on_bus},
    "rogue_vrrp": {"function": "lbpair_firewall.rogue_senders", "confirms": _rogue_vrrp},
}


def journal_verdict(event, journal):
    """
    Compare an event with the node's own journal (a job return).

    Returns ``("confirmed", entry)``, ``("refuted", None)`` when the journal
    answered and holds no such transition, or ``("unconfirmed", None)`` when the
    node did not answer.
    """
    if not isinstance(journal, list):
        return "unconfirmed", None
    for entry in journal:
        if isinstance(entry, dict) and entry.get("seq") == event["seq"]:
            same = entry.get("instance") == event["instance"] and entry.get("state") == event["state"]
            return ("confirmed", entry) if same and entry_problem(entry) is None else ("refuted", None)
    return "refuted", None


def previous_master(records, record, nodes):
    """
    The node the VIPs came from: the last other node the history saw as MASTER
    of the record's instance; without one, in a pair, the other node.
    """
    for earlier in reversed(records):
        if (
            earlier.get("kind") == "transition"
            and earlier.get("instance") == record["instance"]
            and earlier.get("minion") != record["minion"]
            and "MASTER" in (earlier.get("state"), earlier.get("previous_state"))
        ):
            return earlier["minion"]
    others = [node for node in nodes if node != record["minion"]]
    return others[0] if len(others) == 1 else None


def pair_view(statuses, nodes):
    """
    Per VRRP instance: nodes by state, VIPs, and the problem (``split_brain``,
    ``no_master`` or ``None``) from the nodes' ``lbpair_keepalived.status`` returns.
    """
    view = {}
    for node in sorted(statuses):
        for instance, info in sorted(statuses[node].items()):
            entry = view.setdefault(instance, {"vrid": info.get("vrid"), "states": {}, "vips": []})
            entry["states"][node] = info.get("state")
            entry["vips"] = sorted(set(entry["vips"]) | {str(vip).split()[0].split("/")[0] for vip in info.get("vips") or []})
    for entry in view.values():
        masters = sorted(node for node, state in entry["states"].items() if state == "MASTER")
        entry["MASTER"] = masters
        entry["BACKUP"] = sorted(node for node, state in entry["states"].items() if state == "BACKUP")
        entry["problem"] = "split_brain" if len(masters) > 1 else "no_master" if not masters else None
    return {"instances": view, "unreachable": sorted(set(nodes) - set(statuses))}


def known_vips(records, instance):
    """The VIPs of ``instance`` in its newest transition record that names them (the nodes' journals)."""
    for record in reversed(records):
        if record.get("kind") == "transition" and record.get("instance") == instance and record.get("vips"):
            return sorted(record["vips"])
    return []


def alarm_message(problem, entry):
    states = ", ".join(f"{node} {state}" for node, state in sorted(entry["states"].items()))
    vips = ", ".join(entry["vips"]) or "no VIPs known"
    if problem == "split_brain":
        return f"split brain: {' and '.join(entry['MASTER'])} are all MASTER ({states}; VIPs {vips})"
    return f"no MASTER ({states}; VIPs {vips} are not served)"


def brief(record):
    """The keys of a transition record that a reaction's return shows."""
    return {key: record.get(key) for key in ("minion", "seq", "instance", "state", "previous_state", "at", "seen")}


def not_synced(reason):
    """Whether a failed job says the function is unknown there (lbpair's modules are not synced)."""
    return isinstance(reason, str) and reason.endswith("is not available.")


def split_returns(fun, returns):
    """
    Salt's full job returns (``{minion: {"ret", "retcode"}}``) as ``({minion: return},
    {minion: failure reason})``: the successful jobs' returns and the others' reasons.
    """
    answers, failures = {}, {}
    for minion, ret in (returns or {}).items():
        if isinstance(ret, dict) and ret.get("retcode", 0) == 0:
            answers[minion] = ret.get("ret")
            continue
        failures[minion] = ret.get("ret") if isinstance(ret, dict) else ret
        if not_synced(failures[minion]):
            log.info("lbpair: %s is not on %s yet (saltutil.sync_all)", fun, minion)
        else:
            log.warning("lbpair: %s on %s failed: %s", fun, minion, failures[minion])
    return answers, failures


def with_problems(view):
    """The pair's view with ``problems`` listed and ``retcode`` 1 when there is one (or no instance)."""
    problems = [f"{instance}: {entry['problem']}" for instance, entry in sorted(view["instances"].items()) if entry["problem"]]
    problems += [f"{node}: did not answer" for node in view["unreachable"]]
    view = {**view, "problems": problems}
    if problems or not view["instances"]:
        view["retcode"] = 1
    return view


# --- the reactions ----------------------------------------------------------------


class Reactions:
    """
    The reactions to one configuration. ``ask(targets, fun, kwarg, timeout)`` runs
    ``fun`` on the minions ``targets`` and returns ``({minion: return}, {minion:
    failure reason})``, the returns of the successful jobs and the reasons of the others.
    ``wake()`` makes sure a background job does the work due later (:meth:`flush`).
    """

    def __init__(self, config, ask, wake=None):
        self.config = config
        self.wake = wake or (lambda: None)
        self.history = history_file.History(config["history"]["path"], config["history"]["max_bytes"])
        self.state_path = f"{config['history']['path']}.state.json"
        self.store = reaction_state.ReactionStore(self.state_path)
        self.client = NodeClient(ask, config["nodes"], config["confirm"]["timeout"], self.store)
        self.scheduler = Scheduler(self.store, lambda: self.wake())
        self.scheduler.register("check", lambda task: self._check_pair(task["instance"], None, settled=True))
        self.scheduler.register("dns", lambda task: self._point_dns(task["instance"], task["minion"], task["attempt"]))
        self.scheduler.register("catch_up", lambda task: self.catch_up(task["minion"], task["attempt"]))
        self.scheduler.register_sweep(self._send_summaries)

    @property
    def ask(self):
        """How the nodes are asked (see :class:`~lbpair_lib.master.node_client.NodeClient`)."""
        return self.client.ask

    @ask.setter
    def ask(self, ask):
        self.client.ask = ask

    def _answers(self, targets, fun, kwarg=None, timeout=None):
        return self.client.answers(targets, fun, kwarg, timeout)

    def planned_moves(self, sleep=time.sleep, grace=planned.CONFIRM_GRACE):
        """The pair's planned moves (:class:`~lbpair_lib.master.planned.PlannedMoves`), given what they need of the reactions."""
        return planned.PlannedMoves(self.client, self.history, self.pair_state, self.store, sleep, grace)

    def check_certificates(self, now=None):
        """The nodes' TLS certificates looked at (:func:`lbpair_lib.master.cert_watch.check`)."""
        return cert_watch.check(self.client, self.history, self.store, self.config, now)

    def _recent(self):
        """The newest records of the history, or none if it cannot be read (what they tell is a nicety)."""
        try:
            return self.history.recent(RECENT_RECORDS)
        except OSError as exc:
            log.error("lbpair: the history cannot be read: %s", exc)
            return []

    def _note(self, record):
        """Append a record the master concluded (alarm, DNS outcome, warning...); a full disk is logged, not fatal."""
        try:
            self.history.append([{"at": iso_utc(time.time()), **record}])
        except OSError as exc:
            log.error("lbpair: could not write %s to the history: %s", record.get("kind"), exc)

    # --- the steps of a reaction: each runs and reports on its own

    def _react(self, record, requested_at, record_error=None):
        """
        React to a new transition record: its notification (damped), one step per
        channel, and the pair check (DNS, alarms). ``record_error``: the history
        could not take the record; that step stays open for a replay.
        """
        key = reaction_key(record)
        notice = self._admit(record)
        # the failback first: the returning node preempts by itself when the failback delay ends
        failback = ["failback"] if back_from_fault(record) else []
        steps = (["record"] if record_error else []) + failback + (notify.channels(self.config) if notice else []) + ["pair"]
        self.store.begin_steps(key, steps, {"record": record, "notice": notice})
        if record_error:
            self._step_failed(key, record["instance"], "record", record_error)
        return {"recorded": brief(record), **self._run_steps(key, [s for s in steps if s != "record"], record, notice, requested_at)}

    def _replay(self, key, open_steps, requested_at):
        """Do again the steps of reaction ``key`` that have not succeeded yet (and only those)."""
        record = open_steps["record"]
        log.info("lbpair: completing the steps %s of %s", open_steps["pending"], key)
        outcome = self._run_steps(key, open_steps["pending"], record, open_steps.get("notice"), requested_at)
        return {"completed": brief(record), **outcome}

    def _run_steps(self, key, steps, record, notice, requested_at):
        outcome = {"steps": {}}
        actions = {
            "record": lambda: self.history.append([record]) and "recorded",
            "pair": lambda: self._check_pair(record["instance"], requested_at),
            "failback": lambda: self.planned_moves().failback(record["minion"], record["instance"]),
            **{channel: functools.partial(self._send, notice, channel) for channel in notify.channels(self.config)},
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
                self._step_failed(key, record["instance"], step, error)
        return outcome

    def _send(self, notice, channel):
        notify.send(notice, self.config, channel)
        return "sent"

    def _step_failed(self, key, instance, step, error):
        """Note a failed step (a replay will redo it) and alarm through the channels that still work."""
        if self.store.step_failed(key, step, error):
            self._report_failure(instance, step, f"reaction {key}: step {step} failed: {error}; replaying the event completes it")

    def _report_failure(self, instance, step, message):
        """Record a failed step and alarm through the other channels (one that failed would fail again)."""
        log.error("lbpair: %s", message)
        self._note({"kind": "step_failed", "instance": instance, "step": step, "message": message})
        others = [channel for channel in notify.channels(self.config) if channel != step]
        notify.deliver(notify.alarm_notice("step_failed", instance, message), self.config, only=others)

    # --- notifications, damped

    def _admit(self, record):
        """The notice to send for ``record`` now, or ``None`` when flap damping holds it for the summary."""
        decision = self.store.admit(record["instance"], time.time(), self.config["damping_window"], brief(record))
        log.info("lbpair: %s %s seq %s: notification %s", record["minion"], record["state"], record["seq"], decision)
        if decision == "hold_first":
            self.scheduler.wake_worker()  # the background job sends the summary when the window ends
        if decision != "send":
            return None
        origin = previous_master(self._recent(), record, self.config["nodes"])
        return notify.transition_notice(record, origin)

    def _send_summaries(self, now):
        """The flap-damping summaries whose window ended at ``now``, sent."""
        return [{"summary": instance, "sent": self._send_summary(instance)} for instance in self.store.summaries_due(now)]

    def _send_summary(self, instance):
        held = self.store.release_summary(instance, time.time(), self.config["damping_window"])
        if not held:
            return []
        outcome = notify.deliver(notify.summary_notice(instance, held, self.config["damping_window"]), self.config)
        for channel, result in outcome.items():
            if result != "sent":
                self._report_failure(instance, channel, f"the summary of {len(held)} held transitions: {channel} {result}")
        return [outcome]

    # --- the pair's state, alarms and DNS

    def pair_state(self):
        """The pair's view (:func:`pair_view`) from the nodes' own status returns."""
        nodes = self.config["nodes"]
        # A node that has just reconnected misses publications for a moment: ask briefly,
        # then once more, with the full timeout, those that did not answer.
        statuses, _ = self._answers(nodes, STATUS_FUNCTION, timeout=min(3, self.config["confirm"]["timeout"]))
        missing = [node for node in nodes if node not in statuses]
        if missing:
            statuses.update(self._answers(missing, STATUS_FUNCTION)[0])
        view = pair_view({node: ret for node, ret in statuses.items() if isinstance(ret, dict)}, nodes)
        if any(not entry["vips"] for entry in view["instances"].values()):  # D-Bus does not give the VIPs
            records = self._recent()
            for instance, entry in view["instances"].items():
                entry["vips"] = entry["vips"] or known_vips(records, instance)
        return view

    def status(self):
        """The pair's view with its problems, the open claims, the work due and the history's damage."""
        view = with_problems(self.pair_state())
        view["claims"] = self.store.open_claims()
        view["due"] = {key: iso_utc(at) for key, at in self.store.due().items()}
        view["open_reactions"] = self.store.open_reactions()
        view["history_bad_lines"] = self.history.bad_lines()
        return view

    def _alarm(self, instance, problem, entry):
        """Raise a critical alarm once per episode: recorded in the history and notified."""
        if not self.store.raise_alarm(instance, problem):
            return None
        message = alarm_message(problem, entry)
        log.error("lbpair: CRITICAL %s: %s", instance, message)
        self._note({"kind": problem, "instance": instance, "message": message, "states": entry["states"]})
        return notify.deliver(notify.alarm_notice(problem, instance, message, {"states": entry["states"]}), self.config)

    def _point_dns(self, instance, master, attempt=1):
        """
        One attempt to point the configured records at ``master``; a failure is
        retried by the background job with a doubling delay, then recorded and alarmed.
        """
        dns_config = dns_update.for_instance(self.config["dns"], instance)
        if not dns_config["records"]:
            return {"ok": True, "skipped": f"no DNS record follows {instance}"}
        try:
            dns_update.send_update(dns_config, master, self.config["nodes"][master])
            error = None
        except OSError as exc:
            error = str(exc)
        if error is None:
            log.info("lbpair: DNS records of %s point at %s, attempt %d", dns_config["zone"], master, attempt)
            self.store.note_dns(instance, master)
            self._note({"kind": "dns", "instance": instance, "minion": master, "ok": True, "attempts": attempt, "error": None})
            return {"ok": True, "attempts": attempt}
        log.warning("lbpair: DNS update to %s, attempt %d of %d failed: %s", master, attempt, dns_config["attempts"], error)
        if attempt < dns_config["attempts"]:
            task = {"kind": "dns", "instance": instance, "minion": master, "attempt": attempt + 1}
            self.scheduler.later(f"dns:{instance}", dns_config["backoff"] * 2 ** (attempt - 1), task)
            return {"ok": False, "attempts": attempt, "error": error, "retry": True}
        result = {"ok": False, "attempts": attempt, "error": error}
        self._note({"kind": "dns", "instance": instance, "minion": master, **result})
        message = f"DNS update to {master} failed after {attempt} attempts: {error}"
        notify.deliver(notify.alarm_notice("dns_failed", instance, message, result), self.config)
        return result

    def _follow_master(self, instance, master):
        if self.store.dns_target(instance) == master:
            return None
        return self._point_dns(instance, master)

    def _check_pair(self, instance, requested_at, settled=False):
        """
        Read the pair's state from the nodes; follow the sole MASTER with DNS. A split
        brain or no MASTER is checked again ``confirm:settle`` seconds later (by the
        background job) and alarmed if it lasts. Checks are serialised; one of the same
        instance started after ``requested_at`` already covers it (another instance's does not:
        active/active, each node becomes MASTER of one at the same moment).
        """
        with self.store.lock("check"):
            if not self.store.start_check(instance, requested_at, time.time()):
                return {"skipped": "a newer check covered it"}
            entry = self.pair_state()["instances"].get(instance)
        result = {"view": entry}
        if not entry:
            return result
        if entry["problem"]:
            if self._problem_seen_before(instance, entry) and settled:
                return {**result, "alarm": self._alarm(instance, entry["problem"], entry)}
            settle = self.config["confirm"]["settle"]
            self.scheduler.later(f"check:{instance}", settle, {"kind": "check", "instance": instance})
            return {**result, "settling": settle}
        self.store.all_clear(instance)
        if self.config["dns"]:
            result["dns"] = self._follow_master(instance, entry["MASTER"][0])
        return result

    def _problem_seen_before(self, instance, entry):
        """
        Whether the last check saw this very problem (the same states of the same nodes); notes it
        otherwise. A problem that changed meanwhile is a new one: during a switchover the pair
        passes through "no MASTER" twice, each time for well under a second.
        """
        shape = [entry["problem"], [[node, state] for node, state in sorted(entry["states"].items())]]
        return self.store.problem_seen_before(instance, shape)

    # --- claims: what a node sent but did not confirm

    def _claim(self, minion, data, why):
        """
        An event its node did not confirm (*why*: no answer, or its job failed): a claim, not a fact. Recorded
        as such, announced at most once per damping window, and settled by the node's
        journal when it answers (a catch-up is left to the background job).
        """
        claim = claim_record(data, minion)
        if self.store.claim_count(minion) >= reaction_state.MAX_CLAIMS:  # the open ones are announced already; the journal settles them all
            log.debug("lbpair: %s has %d open claims: not recording more", minion, reaction_state.MAX_CLAIMS)
            return {"ignored": f"{minion} has {reaction_state.MAX_CLAIMS} open claims already"}
        self._note(claim)
        now = time.time()
        count = self.store.add_claim(minion, brief(claim))
        announce = self.store.quiet_claims(minion, now, self.config["damping_window"])
        log.warning("lbpair: %s did not confirm %s seq %s (%s): recorded as a claim", minion, claim.get("state"), claim.get("seq"), why)
        self.scheduler.later(f"catch_up:{minion}", CLAIM_RECHECK, {"kind": "catch_up", "minion": minion, "attempt": 1})
        notified = notify.deliver(notify.claim_notice(minion, claim, count), self.config) if announce else "damped"
        return {"claim": brief(claim), "notified": notified}

    def _settle_claims(self, minion, journal, since):
        """What the node's journal says of its open claims, recorded in the history."""
        claims = self.store.take_claims(minion)
        by_seq = {entry.get("seq"): entry for entry in journal if isinstance(entry, dict)}
        for claim in claims:
            outcome = claim_outcome(claim, by_seq.get(claim["seq"]), since)
            self._note({"kind": "claim_settled", "minion": minion, "seq": claim["seq"], "outcome": outcome,
                        "message": f"{minion}'s claim seq {claim['seq']} ({claim.get('state')}): {outcome}"})  # fmt: skip
        return len(claims)

    # --- entry points

    def _warn(self, minion, code):
        """
        A node's beacon warns: confirmed with the node's own status (its text is not
        used), recorded, and announced at most once per damping window.
        """
        check = WARNING_CHECKS.get(code)
        if check is None:
            return {"ignored": "not a warning lbpair's beacon sends"}
        answers, _ = self._answers([minion], check["function"])
        if minion not in answers:
            log.warning("lbpair: %s warns %s but did not confirm it (no answer)", minion, code)
            return {"ignored": "the node did not confirm it"}
        message = check["confirms"](answers[minion])
        if not message:
            log.warning("lbpair: ignoring %s's warning %s: its own status does not confirm it (forged?)", minion, code)
            return {"ignored": "the node's own status does not confirm it"}
        log.warning("lbpair: %s warns (%s): %s", minion, code, message)
        self._note({"kind": "warning", "minion": minion, "code": code, "message": message})
        now = time.time()
        damped = not self.store.quiet_warning(f"{minion}:{code}", now, self.config["damping_window"])
        notified = "damped" if damped else notify.deliver(notify.warning_notice(minion, code, message), self.config)
        return {"warning": code, "notified": notified}

    def on_beacon(self, tag, data):
        """React to an ``lbpair_vrrp`` beacon event; see the ``lbpair`` runner's ``on_beacon``."""
        requested_at = time.time()
        data = data if isinstance(data, dict) else {}
        problem = trust_problem(tag, data, self.config["nodes"])
        if problem:
            log.warning("lbpair: ignoring beacon event %s: %s", log_text(tag), problem)
            return {"ignored": problem}
        parts = TAG_RE.fullmatch(tag)
        minion = parts["minion"]
        if parts["instance"] == "warning":
            return self._warn(minion, parts["state"])
        key = f"{minion}:{data['seq']}"
        open_steps = self.store.unfinished(key)
        if open_steps is not None:
            return self._replay(key, open_steps, requested_at)
        silent = self.client.silent(minion)
        answers, failures = ({}, {}) if silent else self._answers([minion], JOURNAL_FUNCTION, {"since": data["seq"] - 1})
        self.client.heard(minion, answers, failures)
        verdict, entry = journal_verdict(data, answers.get(minion))
        if verdict == "refuted":
            log.warning("lbpair: ignoring %s: %s's own journal has no such transition (forged?)", log_text(tag), minion)
            return {"ignored": "not in the node's journal"}
        if verdict == "unconfirmed":
            return self._claim(minion, data, unconfirmed_reason(silent, failures.get(minion)))
        reactions = self._record_and_react([transition_record(entry, minion, seen="live")], requested_at)
        if not reactions:
            return {"duplicate": [minion, data["seq"]]}
        return reactions[0]

    def _record_and_react(self, records, requested_at):
        """Append the records; react to the new ones (all of them when the history cannot be written)."""
        plans = self.store.plans()
        for record in records:
            if planned.planned_for(plans, record, time.time()):
                record["planned"] = True
        try:
            new, error = self.history.append(records), None
        except OSError as exc:
            new, error = records, f"the history could not be written: {exc}"
            log.error("lbpair: %s", error)
        return [self._react(record, requested_at, error) for record in new]

    def catch_up(self, minion, attempt=1):
        """
        Record what ``minion`` journalled after the history's last confirmed transition
        of it, marked late, and react; settle its open claims. A node that does not
        answer is asked again by the background job (``attempt`` of ``len(CATCH_UP_TIMEOUTS)``).
        """
        requested_at = time.time()
        if minion not in self.config["nodes"]:
            log.warning("lbpair: no catch-up for %s: not a node of the pair", log_text(minion))
            return {"ignored": f"{minion!r} is not a node of the pair"}
        since = self.history.last_seq(minion)
        timeout = CATCH_UP_TIMEOUTS[min(attempt, len(CATCH_UP_TIMEOUTS)) - 1]
        answers, failures = self._answers([minion], JOURNAL_FUNCTION, {"since": since}, timeout)
        journal = answers.get(minion)
        self.client.heard(minion, answers, failures)
        if not isinstance(journal, list):
            return self._journal_silent(minion, failures.get(minion), attempt)
        wellformed = [entry for entry in journal if isinstance(entry, dict) and entry_problem(entry) is None]
        if len(wellformed) < len(journal):
            log.warning("lbpair: %d malformed entries in %s's journal were skipped", len(journal) - len(wellformed), minion)
        settled = self._settle_claims(minion, wellformed, since)
        records = [transition_record(entry, minion, seen="late") for entry in wellformed if entry["seq"] > since]
        reactions = self._record_and_react(records, requested_at)
        log.info("lbpair: caught up %d transitions of %s after seq %d", len(reactions), minion, since)
        return {"caught_up": [reaction["recorded"] for reaction in reactions], "claims_settled": settled, "reactions": reactions}

    def _journal_silent(self, minion, failure, attempt):
        if not_synced(failure):  # a new node: nothing journalled yet
            log.info("lbpair: no catch-up from %s: lbpair's modules are not synced there yet", minion)
            return {"caught_up": None, "error": "lbpair's execution modules are not synced on the node"}
        if attempt < len(CATCH_UP_TIMEOUTS):
            self.scheduler.later(f"catch_up:{minion}", 0, {"kind": "catch_up", "minion": minion, "attempt": attempt + 1})
            return {"caught_up": None, "error": "the node's journal did not answer", "retry": attempt + 1}
        log.error("lbpair: catch-up from %s failed: its journal did not answer %d times", minion, attempt)
        return {"caught_up": None, "error": "the node's journal did not answer"}

    def dns_update(self, minion):
        """Point the configured DNS records at ``minion`` now (retried, then reported)."""
        if not self.config["dns"]:
            raise InvalidValue(f"{CONFIG_KEY}:dns", "is not configured")
        if minion not in self.config["nodes"]:
            raise InvalidValue(f"{CONFIG_KEY}:nodes", f"{minion!r} is not a node of the pair")
        return dns_update.update_with_retries(self.config["dns"], minion, self.config["nodes"][minion])

    def on_minion_start(self, minion):
        """A minion (re)connected: catch up if it is a node of the pair (any other minion is none of our business)."""
        if minion not in self.config["nodes"]:
            log.debug("lbpair: %s is not a node of the pair, no catch-up", log_text(minion))
            return {"ignored": f"{minion!r} is not a node of the pair"}
        return self.catch_up(minion)

    # --- the work due later

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
