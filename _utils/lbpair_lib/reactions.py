"""
Failover reactions of the lbpair master: one central failover history,
catch-up from the nodes' journals, pair status, notifications and DNS.

An event is a trigger, never the truth: Salt does not authenticate what a
minion writes into a beacon event, so each transition is checked against the
node's own journal (``lbpair_keepalived.transitions``) and the pair's state is
read from the nodes (``lbpair_keepalived.status``), both through job returns,
which Salt ties to the minion's key. DNS changes and split-brain / no-master
alarms are based on those returns only.

:class:`Reactions` does the work; the ``lbpair`` runner gives it the validated
configuration (:mod:`lbpair_lib.reactions_config`) and a way to run a function
on minions (``ask``, Salt's LocalClient).
"""

import ipaddress
import logging
import re
import time

from lbpair_lib import dns_update, notify, schema, store
from lbpair_lib import history as history_file
from lbpair_lib.errors import InvalidValue
from lbpair_lib.reactions_config import CONFIG_KEY
from lbpair_lib.times import iso_utc

log = logging.getLogger(__name__)

MAX_WARNING_CHARS = 1000  # a node's warning text, shortened, goes into messages
MAX_VIPS = 255  # keepalived's limit for one virtual_ipaddress block
STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "DELETED", "STOP")
TAG_RE = re.compile(r"salt/beacon/(?P<minion>[^/\s]+)/lbpair_vrrp/(?P<instance>[^/\s]+)/(?P<state>[^/\s]+)")
CATCH_UP_TIMEOUTS = (2, 2, 4, 8, 16)
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


def transition_record(entry, minion, seen, confirmed, now=None):
    """The history record of a transition from a journal entry (or, unconfirmed, the event data)."""
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
        "confirmed": confirmed,
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
    return {key: record.get(key) for key in ("minion", "seq", "state", "previous_state", "at", "seen")}


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


class _State:
    """The master's small reaction state (damping, alarms, DNS): a JSON file, changed under a lock."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self._lock = store.locked(self.path)
        self._lock.__enter__()
        self.data = store.read_json(self.path, {})
        return self.data

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                store.write_json(self.path, self.data)
        finally:
            self._lock.__exit__(*exc)


class Reactions:
    """
    The reactions to one configuration. ``ask(targets, fun, kwarg, timeout)`` runs
    ``fun`` on the minions ``targets`` and returns ``({minion: return}, {minion:
    failure reason})``, the returns of the successful jobs and the reasons of the others.
    """

    def __init__(self, config, ask):
        self.config = config
        self.ask = ask
        self.history = history_file.History(config["history"]["path"], config["history"]["max_bytes"])
        self.state_path = f"{config['history']['path']}.state.json"

    def _state(self):
        return _State(self.state_path)

    def _deliver(self, notice):
        return notify.deliver(notice, self.config)

    def _answers(self, targets, fun, kwarg=None, timeout=None):
        return self.ask(list(targets), fun, kwarg or {}, timeout or self.config["confirm"]["timeout"])

    # --- notifications, damped

    def _announce(self, records):
        """
        Notify each new transition, damped. Returns the instances whose summary this
        call owes (it held the first transition of their window) and the deliveries.
        """
        owed, outcome = [], []
        records_so_far = self.history.read()
        for record in records:
            with self._state() as state:
                decision = notify.admit(
                    state.setdefault("damping", {}), record["instance"], time.time(), self.config["damping_window"],
                    brief(record),
                )  # fmt: skip
            if decision == "send":
                origin = previous_master(records_so_far, record, self.config["nodes"])
                outcome.append(self._deliver(notify.transition_notice(record, origin)))
            elif decision == "hold_first":
                owed.append(record["instance"])
            log.info("lbpair: %s %s seq %s: notification %s", record["minion"], record["state"], record["seq"], decision)
        return owed, outcome

    def _pay_summaries(self, instances):
        """Wait for the damping windows of ``instances`` to end, then send what was held back."""
        sent = []
        for instance in instances:
            with self._state() as state:
                until = state.get("damping", {}).get(instance, {}).get("until", 0)
            time.sleep(max(0.0, until - time.time()))
            sent.extend(self._send_summary(instance))
        return sent

    def _send_summary(self, instance):
        with self._state() as state:
            held = notify.release(state.setdefault("damping", {}), instance, time.time(), self.config["damping_window"])
        if not held:
            return []
        return [self._deliver(notify.summary_notice(instance, held, self.config["damping_window"]))]

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
            records = self.history.read()
            for instance, entry in view["instances"].items():
                entry["vips"] = entry["vips"] or known_vips(records, instance)
        return view

    def _alarm(self, instance, problem, entry):
        """Raise a critical alarm once per episode: recorded in the history and notified."""
        with self._state() as state:
            alarms = state.setdefault("alarms", {})
            if alarms.get(instance) == problem:
                return None
            alarms[instance] = problem
        message = alarm_message(problem, entry)
        log.error("lbpair: CRITICAL %s: %s", instance, message)
        self.history.append(
            [{"kind": problem, "instance": instance, "at": iso_utc(time.time()), "message": message, "states": entry["states"]}]
        )
        return self._deliver(notify.alarm_notice(problem, instance, message, {"states": entry["states"]}))

    def _point_dns(self, instance, master):
        """Point the configured records at ``master`` (retried); record the outcome and report a failure."""
        result = dns_update.update_with_retries(self.config["dns"], master, self.config["nodes"][master]["address"])
        self.history.append([{"kind": "dns", "instance": instance, "minion": master, "at": iso_utc(time.time()), **result}])
        if result["ok"]:
            with self._state() as state:
                state.setdefault("dns", {})[instance] = master
        else:
            message = f"DNS update to {master} failed after {result['attempts']} attempts: {result['error']}"
            self._deliver(notify.alarm_notice("dns_failed", instance, message, result))
        return result

    def _follow_master(self, instance, master):
        with self._state() as state:
            if state.get("dns", {}).get(instance) == master:
                return None
        return self._point_dns(instance, master)

    def _check_pair(self, instance, requested_at):
        """
        Read the pair's state from the nodes; follow the sole MASTER with DNS; raise
        split-brain / no-master alarms that persist for ``confirm:settle`` seconds.
        Checks are serialised; one started after ``requested_at`` already covers it.
        """
        with store.locked(f"{self.state_path}.check"):
            with self._state() as state:
                if state.get("checked_at", 0) > requested_at:
                    return {"skipped": "a newer check covered it"}
                state["checked_at"] = time.time()
            entry = self.pair_state()["instances"].get(instance)
            if entry and entry["problem"]:
                time.sleep(self.config["confirm"]["settle"])
                entry = self.pair_state()["instances"].get(instance)
            result = {"view": entry}
            if not entry:
                return result
            if entry["problem"]:
                result["alarm"] = self._alarm(instance, entry["problem"], entry)
                return result
            with self._state() as state:
                state.setdefault("alarms", {}).pop(instance, None)
            if self.config["dns"]:
                result["dns"] = self._follow_master(instance, entry["MASTER"][0])
            return result

    def _react(self, records, requested_at):
        """Notify new transition records, check the pair of each instance, pay the summaries owed."""
        owed, notified = self._announce(records)
        pair = [self._check_pair(instance, requested_at) for instance in sorted({r["instance"] for r in records})]
        return {"notified": notified, "pair": pair, "summaries": self._pay_summaries(owed)}

    # --- entry points

    def _warn(self, minion, code, data):
        """A node's beacon warns (once per episode, e.g. keepalived off D-Bus): record it and tell the operator."""
        message = " ".join(str(data.get("message", "")).split())[:MAX_WARNING_CHARS]  # one line, bounded
        log.warning("lbpair: %s warns (%s): %s", minion, code, message)
        self.history.append([{"kind": "warning", "minion": minion, "code": code, "at": iso_utc(time.time()), "message": message}])
        return {"warning": code, "notified": self._deliver(notify.warning_notice(minion, code, message))}

    def on_beacon(self, tag, data):
        """React to an ``lbpair_vrrp`` beacon event; see the ``lbpair`` runner's ``on_beacon``."""
        requested_at = time.time()
        data = data if isinstance(data, dict) else {}
        problem = trust_problem(tag, data, self.config["nodes"])
        if problem:
            log.warning("lbpair: ignoring beacon event %r: %s", tag, problem)
            return {"ignored": problem}
        parts = TAG_RE.fullmatch(tag)
        minion = parts["minion"]
        if parts["instance"] == "warning":
            if not schema.NAME_RE.fullmatch(parts["state"]):
                return {"ignored": "malformed warning code"}
            return self._warn(minion, parts["state"], data)
        answers, _ = self._answers([minion], JOURNAL_FUNCTION, {"since": data["seq"] - 1})
        verdict, entry = journal_verdict(data, answers.get(minion))
        if verdict == "refuted":
            log.warning("lbpair: ignoring %r: %s's own journal has no such transition (forged?)", tag, minion)
            return {"ignored": "not in the node's journal"}
        record = transition_record(entry or data, minion, seen="live", confirmed=verdict == "confirmed")
        if not self.history.append([record]):
            return {"duplicate": [minion, record["seq"]]}
        reaction = self._react([record], requested_at)
        return {"recorded": brief(record), "confirmed": record["confirmed"], **reaction, "pair": reaction["pair"][0]}

    def _node_journal(self, minion, since):
        """The node's journal after ``since``, asked again while a just-connected minion does not answer."""
        for timeout in CATCH_UP_TIMEOUTS:
            answers, failures = self._answers([minion], JOURNAL_FUNCTION, {"since": since}, timeout)
            if isinstance(answers.get(minion), list):
                return answers[minion], None
            if not_synced(failures.get(minion)):  # a new node: nothing journalled yet
                log.info("lbpair: no catch-up from %s: lbpair's modules are not synced there yet", minion)
                return None, "lbpair's execution modules are not synced on the node"
        log.error("lbpair: catch-up from %s failed: its journal did not answer", minion)
        return None, "the node's journal did not answer"

    def catch_up(self, minion):
        """Record what ``minion`` journalled after the history's last transition of it, marked late; react."""
        requested_at = time.time()
        if minion not in self.config["nodes"]:
            log.warning("lbpair: no catch-up for %r: not a node of the pair", minion)
            return {"ignored": f"{minion!r} is not a node of the pair"}
        since = self.history.last_seq(minion)
        journal, error = self._node_journal(minion, since)
        if error:
            return {"caught_up": None, "error": error}
        wellformed = [entry for entry in journal if isinstance(entry, dict) and entry_problem(entry) is None]
        if len(wellformed) < len(journal):
            log.warning("lbpair: %d malformed entries in %s's journal were skipped", len(journal) - len(wellformed), minion)
        records = [transition_record(entry, minion, seen="late", confirmed=True) for entry in wellformed]
        new = self.history.append(records)
        log.info("lbpair: caught up %d transitions of %s after seq %d", len(new), minion, since)
        result = {"caught_up": [brief(record) for record in new]}
        if new:
            result.update(self._react(new, requested_at))
        return result

    def dns_update(self, minion):
        """Point the configured DNS records at ``minion`` now (retried, then reported)."""
        if not self.config["dns"]:
            raise InvalidValue(f"{CONFIG_KEY}:dns", "is not configured")
        if minion not in self.config["nodes"]:
            raise InvalidValue(f"{CONFIG_KEY}:nodes", f"{minion!r} is not a node of the pair")
        return dns_update.update_with_retries(self.config["dns"], minion, self.config["nodes"][minion]["address"])

    def on_minion_start(self, minion):
        """A minion (re)connected: catch up if it is a node of the pair (any other minion is none of our business)."""
        if minion not in self.config["nodes"]:
            log.debug("lbpair: %r is not a node of the pair, no catch-up", minion)
            return {"ignored": f"{minion!r} is not a node of the pair"}
        return self.catch_up(minion)

    def flush(self):
        """Send the flap-damping summaries whose window has ended."""
        with self._state() as state:
            instances = notify.due(state.get("damping", {}), time.time())
        return [sent for instance in instances for sent in self._send_summary(instance)]
