"""
Failover reactions of the lbpair master: one central failover history,
catch-up from the nodes' journals, pair status, notifications and DNS.

The reactor (``salt/master.d/lbpair.conf``) calls :func:`on_beacon` for the
``lbpair_vrrp`` beacon's events and :func:`on_minion_start` when a minion
(re)connects. An event is a trigger, never the truth: Salt does not
authenticate what a minion writes into a beacon event, so each transition is
checked against the node's own journal (``lbpair_keepalived.transitions``) and
the pair's state is read from the nodes (``lbpair_keepalived.status``), both
through job returns, which Salt ties to the minion's key. DNS changes and
split-brain / no-master alarms are based on those returns only.

Master configuration (one block; secrets stay here and never reach events,
job returns, the history or logs):

.. code-block:: yaml

    lbpair_reactions:
      nodes:                                  # the pair's minions; events of others are ignored
        lb1: {address: 192.0.2.11}            # the address DNS points at when lb1 is MASTER
        lb2: {address: 192.0.2.12}
      history: {path: /var/lib/salt/lbpair/history.jsonl, max_bytes: 10485760}
      damping_window: 60                      # s; at most one message per instance per window
      confirm: {timeout: 10, settle: 5}       # job timeout; wait before an alarm is raised
      webhook: {url: "https://chat.example.net/hooks/...", format: slack}   # slack|mattermost|generic
      smtp: {host: mail.example.net, port: 587, starttls: true, user: lbpair, password: "...",
             from: lbpair@example.net, to: [ops@example.net]}
      dns:
        server: 192.0.2.53
        zone: example.net
        key_name: lbpair-update
        key_algorithm: hmac-sha256
        key_secret: "base64=="
        records: [{name: active, type: A, ttl: 30}, {name: active, type: TXT, ttl: 30}]
        attempts: 4                           # then the failure is reported (critical)
        backoff: 1                            # s, doubled after each attempt

The pure helpers live in the ``lbpair_history``, ``lbpair_notify`` and
``lbpair_dns`` runners, reached through ``__salt__``: inside a runner,
``__salt__`` is the runner loader itself.
"""

import base64
import binascii
import datetime
import ipaddress
import json
import logging
import os
import re
import time

import salt.client
from salt.exceptions import SaltInvocationError

__virtualname__ = "lbpair"

log = logging.getLogger(__name__)

CONFIG_KEY = "lbpair_reactions"
MAX_WARNING_CHARS = 1000  # a node's warning text goes into messages as it is
TAG_RE = re.compile(r"^salt/beacon/(?P<minion>[^/]+)/lbpair_vrrp/(?P<instance>[^/]+)/(?P<state>[^/]+)$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
WEBHOOK_FORMATS = ("slack", "mattermost", "generic")
RECORD_TYPES = ("A", "AAAA", "TXT")
MASKED = "**********"
CATCH_UP_TIMEOUTS = (2, 2, 4, 8, 16)


def __virtual__():
    return __virtualname__


# --- configuration (pure) -----------------------------------------------------


class ConfigError(SaltInvocationError):
    """A value of the ``lbpair_reactions`` block is invalid; the message names its path."""

    def __init__(self, path, message):
        self.path = path
        super().__init__(f"{path}: {message}")


def _mapping(value, path, allowed, required=()):
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{path}:{key}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            raise ConfigError(f"{path}:{key}", "is required")
    return value


def _number(value, path, low, high, integer=True):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ConfigError(path, f"expected {'an integer' if integer else 'a number'} from {low} to {high}, got {value!r}")
    return value


def _boolean(value, path):
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {value!r}")
    return value


def _string(value, path):
    if not isinstance(value, str) or not value.strip() or CONTROL_RE.search(value):
        raise ConfigError(path, "expected a non-empty single-line string")
    return value.strip()


def _choice(value, path, choices):
    if value not in choices:
        raise ConfigError(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _address(value, path):
    try:
        return str(ipaddress.ip_address(_string(value, path)))
    except ValueError:
        raise ConfigError(path, f"{value!r} is not an IP address") from None


def _nodes(value, path):
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, "expected a mapping of the pair's minion ids")
    nodes = {}
    for name, node in value.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{path}:{name}", "is not a safe minion id")
        node = _mapping(node, f"{path}:{name}", ("address",), ("address",))
        nodes[name] = {"address": _address(node["address"], f"{path}:{name}:address")}
    return nodes


def _webhook(value, path):
    value = _mapping(value, path, ("url", "format"), ("url",))
    url = _string(value["url"], f"{path}:url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}:url", "must be an http:// or https:// URL")  # the URL itself is a secret
    return {"url": url, "format": _choice(value.get("format", "slack"), f"{path}:format", WEBHOOK_FORMATS)}


def _smtp(value, path):
    allowed = ("host", "port", "starttls", "user", "password", "from", "to", "ca_file")
    value = _mapping(value, path, allowed, ("host", "from", "to"))
    recipients = value["to"] if isinstance(value["to"], list) else [value["to"]]
    smtp = {
        "host": _string(value["host"], f"{path}:host"),
        "port": _number(value.get("port", 587), f"{path}:port", 1, 65535),
        "starttls": _boolean(value.get("starttls", True), f"{path}:starttls"),
        "from": _string(value["from"], f"{path}:from"),
        "to": [_string(to, f"{path}:to") for to in recipients],
        "ca_file": _string(value["ca_file"], f"{path}:ca_file") if "ca_file" in value else None,
        "user": None,
        "password": None,
    }
    if "user" in value:
        smtp["user"] = _string(value["user"], f"{path}:user")
        if not isinstance(value.get("password"), str) or not value["password"]:
            raise ConfigError(f"{path}:password", "is required with user")
        smtp["password"] = value["password"]
    return smtp


def _records(value, path):
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "expected a non-empty list of records")
    records = []
    for index, record in enumerate(value):
        where = f"{path}:{index}"
        record = _mapping(record, where, ("name", "type", "ttl"), ("name", "type"))
        records.append(
            {
                "name": _string(record["name"], f"{where}:name"),
                "type": _choice(record["type"], f"{where}:type", RECORD_TYPES),
                "ttl": _number(record.get("ttl", 30), f"{where}:ttl", 0, 86400),
            }
        )
    return records


def _dns(value, path):
    allowed = ("server", "port", "zone", "key_name", "key_algorithm", "key_secret", "records", "attempts", "backoff", "timeout")
    value = _mapping(value, path, allowed, ("server", "zone", "key_name", "key_secret", "records"))
    secret = value["key_secret"]
    try:
        base64.b64decode(secret, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ConfigError(f"{path}:key_secret", "must be base64 (as in a BIND key statement)") from None
    return {
        "server": _address(value["server"], f"{path}:server"),
        "port": _number(value.get("port", 53), f"{path}:port", 1, 65535),
        "zone": _string(value["zone"], f"{path}:zone"),
        "key_name": _string(value["key_name"], f"{path}:key_name"),
        "key_algorithm": _choice(value.get("key_algorithm", "hmac-sha256"), f"{path}:key_algorithm", TSIG_ALGORITHMS),
        "key_secret": secret,
        "records": _records(value["records"], f"{path}:records"),
        "attempts": _number(value.get("attempts", 4), f"{path}:attempts", 1, 20),
        "backoff": _number(value.get("backoff", 1), f"{path}:backoff", 0, 600, integer=False),
        "timeout": _number(value.get("timeout", 5), f"{path}:timeout", 0.1, 60, integer=False),
    }


def normalise_config(value, path=CONFIG_KEY):
    """The validated ``lbpair_reactions`` block with its defaults; raises :class:`ConfigError`."""
    allowed = ("nodes", "history", "damping_window", "confirm", "webhook", "smtp", "dns")
    value = _mapping(value, path, allowed, ("nodes",))
    history = _mapping(value.get("history", {}), f"{path}:history", ("path", "max_bytes"))
    confirm = _mapping(value.get("confirm", {}), f"{path}:confirm", ("timeout", "settle"))
    return {
        "nodes": _nodes(value["nodes"], f"{path}:nodes"),
        "history": {
            "path": _string(history.get("path", "/var/lib/salt/lbpair/history.jsonl"), f"{path}:history:path"),
            "max_bytes": _number(history.get("max_bytes", 10 * 1024 * 1024), f"{path}:history:max_bytes", 0, 2**40),
        },
        "damping_window": _number(value.get("damping_window", 60), f"{path}:damping_window", 0, 86400, integer=False),
        "confirm": {
            "timeout": _number(confirm.get("timeout", 10), f"{path}:confirm:timeout", 1, 300),
            "settle": _number(confirm.get("settle", 5), f"{path}:confirm:settle", 0, 300, integer=False),
        },
        "webhook": _webhook(value["webhook"], f"{path}:webhook") if value.get("webhook") else None,
        "smtp": _smtp(value["smtp"], f"{path}:smtp") if value.get("smtp") else None,
        "dns": _dns(value["dns"], f"{path}:dns") if value.get("dns") else None,
    }


def masked(config):
    """The normalised configuration with every secret replaced by ``**********``."""
    shown = json.loads(json.dumps(config))
    for section, key in (("webhook", "url"), ("smtp", "password"), ("dns", "key_secret")):
        if shown.get(section) and shown[section].get(key):
            shown[section][key] = MASKED
    return shown


# --- events and records (pure) --------------------------------------------------


def trust_problem(tag, data, nodes):
    """Why a beacon event must be ignored (a message), or ``None`` if it may trigger a reaction."""
    match = TAG_RE.match(tag or "")
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
    if isinstance(data.get("seq"), bool) or not isinstance(data.get("seq"), int) or data["seq"] < 1:
        return "no valid sequence number"
    return None


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
        "at": entry.get("received_at") or _iso(entry.get("time") or now or time.time()),
        "recorded_at": _iso(now or time.time()),
        "seen": seen,
        "confirmed": confirmed,
    }


def _iso(epoch):
    return datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc).isoformat()


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
            return ("confirmed", entry) if same else ("refuted", None)
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


# --- Salt glue ----------------------------------------------------------------


def _config():
    return normalise_config(__opts__.get(CONFIG_KEY) or {})


def _state_path(config):
    return f"{config['history']['path']}.state.json"


class _State:
    """The master's small reaction state (damping, alarms, DNS), a JSON file under a lock."""

    def __init__(self, config):
        self.path = _state_path(config)

    def __enter__(self):
        self._lock = __salt__["lbpair_history.locked"](self.path)
        self._lock.__enter__()
        try:
            with open(self.path, encoding="utf-8") as handle:
                self.data = json.load(handle)
        except (FileNotFoundError, ValueError):
            self.data = {}
        return self.data

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                with open(f"{self.path}.tmp", "w", encoding="utf-8") as handle:
                    json.dump(self.data, handle)
                os.replace(f"{self.path}.tmp", self.path)
        finally:
            self._lock.__exit__(*exc)


def _not_synced(reason):
    """Whether a failed job says the function is unknown there (lbpair's modules are not synced)."""
    return isinstance(reason, str) and reason.endswith("is not available.")


def _ask(targets, fun, config, kwarg=None, timeout=None, failures=None):
    """
    Run ``fun`` on ``targets`` through the master; returns ``{minion: return}`` of
    the successful ones (and fills ``failures``, if given, with the others' reasons).
    """
    client = salt.client.get_local_client(mopts=__opts__)
    try:
        returns = client.cmd(
            list(targets), fun, kwarg=kwarg or {}, tgt_type="list", timeout=timeout or config["confirm"]["timeout"],
            full_return=True,
        )  # fmt: skip
    finally:
        client.destroy()
    answers = {}
    for minion, ret in (returns or {}).items():
        if isinstance(ret, dict) and ret.get("retcode", 0) == 0:
            answers[minion] = ret.get("ret")
        else:
            reason = ret.get("ret") if isinstance(ret, dict) else ret
            if failures is not None:
                failures[minion] = reason
            if _not_synced(reason):
                log.info("lbpair: %s is not on %s yet (saltutil.sync_all)", fun, minion)
            else:
                log.warning("lbpair: %s on %s failed: %s", fun, minion, reason)
    return answers


def _history_path(config):
    return config["history"]["path"]


def _record(config, records):
    return __salt__["lbpair_history.append"](_history_path(config), records, config["history"]["max_bytes"])


def _deliver(config, notice):
    return __salt__["lbpair_notify.deliver"](notice, config)


def _announce(config, records):
    """
    Notify each new transition, damped. Returns the instances whose summary this
    call owes (it held the first transition of their window) and the deliveries.
    """
    owed, outcome = [], []
    history = __salt__["lbpair_history.read"](_history_path(config))
    for record in records:
        with _State(config) as state:
            decision = __salt__["lbpair_notify.admit"](
                state.setdefault("damping", {}), record["instance"], time.time(), config["damping_window"], _brief(record)
            )
        if decision == "send":
            notice = __salt__["lbpair_notify.transition_notice"](record, previous_master(history, record, config["nodes"]))
            outcome.append(_deliver(config, notice))
        elif decision == "hold_first":
            owed.append(record["instance"])
        log.info("lbpair: %s %s seq %s: notification %s", record["minion"], record["state"], record["seq"], decision)
    return owed, outcome


def _brief(record):
    return {key: record.get(key) for key in ("minion", "seq", "state", "previous_state", "at", "seen")}


def _pay_summaries(config, instances):
    """Wait for the damping windows of ``instances`` to end, then send what was held back."""
    sent = []
    for instance in instances:
        with _State(config) as state:
            until = state.get("damping", {}).get(instance, {}).get("until", 0)
        time.sleep(max(0.0, until - time.time()))
        sent.extend(_send_summary(config, instance))
    return sent


def _send_summary(config, instance):
    with _State(config) as state:
        held = __salt__["lbpair_notify.release"](state.setdefault("damping", {}), instance, time.time(), config["damping_window"])
    if not held:
        return []
    notice = __salt__["lbpair_notify.summary_notice"](instance, held, config["damping_window"])
    return [_deliver(config, notice)]


def _pair_state(config):
    # A node that has just reconnected misses publications for a moment: ask briefly,
    # then once more, with the full timeout, those that did not answer.
    statuses = _ask(config["nodes"], "lbpair_keepalived.status", config, timeout=min(3, config["confirm"]["timeout"]))
    missing = [node for node in config["nodes"] if node not in statuses]
    if missing:
        statuses.update(_ask(missing, "lbpair_keepalived.status", config))
    view = pair_view({node: ret for node, ret in statuses.items() if isinstance(ret, dict)}, config["nodes"])
    missing = [entry for entry in view["instances"].values() if not entry["vips"]]
    if missing:  # keepalived's D-Bus interface does not give the VIPs
        records = __salt__["lbpair_history.read"](_history_path(config))
        for instance, entry in view["instances"].items():
            entry["vips"] = entry["vips"] or known_vips(records, instance)
    return view


def _alarm(config, instance, problem, entry):
    """Raise a critical alarm once per episode: recorded in the history and notified."""
    with _State(config) as state:
        alarms = state.setdefault("alarms", {})
        if alarms.get(instance) == problem:
            return None
        alarms[instance] = problem
    message = alarm_message(problem, entry)
    log.error("lbpair: CRITICAL %s: %s", instance, message)
    _record(config, [{"kind": problem, "instance": instance, "at": _iso(time.time()), "message": message, "states": entry["states"]}])
    return _deliver(config, __salt__["lbpair_notify.alarm_notice"](problem, instance, message, {"states": entry["states"]}))


def _point_dns(config, instance, master):
    """Point the configured records at ``master`` unless they already are; report a failure."""
    with _State(config) as state:
        if state.get("dns", {}).get(instance) == master:
            return None
    result = __salt__["lbpair_dns.update_with_retries"](config["dns"], master, config["nodes"][master]["address"])
    _record(config, [{"kind": "dns", "instance": instance, "minion": master, "at": _iso(time.time()), **result}])
    if result["ok"]:
        with _State(config) as state:
            state.setdefault("dns", {})[instance] = master
    else:
        message = f"DNS update to {master} failed after {result['attempts']} attempts: {result['error']}"
        _deliver(config, __salt__["lbpair_notify.alarm_notice"]("dns_failed", instance, message, result))
    return result


def _check_pair(config, instance, requested_at):
    """
    Read the pair's state from the nodes; follow the sole MASTER with DNS; raise
    split-brain / no-master alarms that persist for ``confirm:settle`` seconds.
    Checks are serialised; one started after ``requested_at`` already covers it.
    """
    with __salt__["lbpair_history.locked"](f"{_state_path(config)}.check"):
        with _State(config) as state:
            if state.get("checked_at", 0) > requested_at:
                return {"skipped": "a newer check covered it"}
            state["checked_at"] = time.time()
        view = _pair_state(config)
        entry = view["instances"].get(instance)
        if entry and entry["problem"]:
            time.sleep(config["confirm"]["settle"])
            view = _pair_state(config)
            entry = view["instances"].get(instance)
        result = {"view": entry}
        if not entry:
            return result
        if entry["problem"]:
            result["alarm"] = _alarm(config, instance, entry["problem"], entry)
            return result
        with _State(config) as state:
            state.setdefault("alarms", {}).pop(instance, None)
        if config["dns"]:
            result["dns"] = _point_dns(config, instance, entry["MASTER"][0])
        return result


def _warn(config, minion, code, data):
    """A node's beacon warns (once per episode, e.g. keepalived off D-Bus): record it and tell the operator."""
    message = str(data.get("message", ""))[:MAX_WARNING_CHARS]
    log.warning("lbpair: %s warns (%s): %s", minion, code, message)
    _record(config, [{"kind": "warning", "minion": minion, "code": code, "at": _iso(time.time()), "message": message}])
    return {"warning": code, "notified": _deliver(config, __salt__["lbpair_notify.warning_notice"](minion, code, message))}


def on_beacon(tag, data, **kwargs):  # pylint: disable=unused-argument
    """
    React to an ``lbpair_vrrp`` beacon event (called by the reactor).

    Ignores events whose minion is not a node of the pair, and transitions that
    the node's own journal does not hold (forged); records the rest in the
    history (``confirmed`` if the journal vouched for it), notifies (damped),
    and checks the pair: DNS follows the sole MASTER, split brain and no MASTER
    raise critical alarms.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.on_beacon salt/beacon/lb2/lbpair_vrrp/lbpair_51/MASTER '{"seq": 7, ...}'
    """
    requested_at = time.time()
    config = _config()
    data = data if isinstance(data, dict) else {}
    problem = trust_problem(tag, data, config["nodes"])
    if problem:
        log.warning("lbpair: ignoring beacon event %s: %s", tag, problem)
        return {"ignored": problem}
    parts = TAG_RE.match(tag)
    minion = parts["minion"]
    if parts["instance"] == "warning":
        return _warn(config, minion, parts["state"], data)
    journal = _ask([minion], "lbpair_keepalived.transitions", config, {"since": data["seq"] - 1}).get(minion)
    verdict, entry = journal_verdict(data, journal)
    if verdict == "refuted":
        log.warning("lbpair: ignoring %s: %s's own journal has no such transition (forged?)", tag, minion)
        return {"ignored": "not in the node's journal"}
    record = transition_record(entry or data, minion, seen="live", confirmed=verdict == "confirmed")
    if not _record(config, [record]):
        return {"duplicate": [minion, record["seq"]]}
    owed, notified = _announce(config, [record])
    result = {"recorded": _brief(record), "confirmed": record["confirmed"], "notified": notified}
    result["pair"] = _check_pair(config, record["instance"], requested_at)
    result["summaries"] = _pay_summaries(config, owed)
    return result


def catch_up(minion):
    """
    Pull the transitions ``minion`` journalled after the last one in the history
    and record them, marked late; notify them and check the pair.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.catch_up lb1
    """
    requested_at = time.time()
    config = _config()
    if minion not in config["nodes"]:
        log.warning("lbpair: no catch-up for %s: not a node of the pair", minion)
        return {"ignored": f"{minion!r} is not a node of the pair"}
    since = __salt__["lbpair_history.last_seq"](_history_path(config), minion)
    # A minion that has just connected misses publications until it has subscribed:
    # ask again soon rather than wait long for an answer that will not come.
    failures = {}
    for timeout in CATCH_UP_TIMEOUTS:
        journal = _ask([minion], "lbpair_keepalived.transitions", config, {"since": since}, timeout, failures).get(minion)
        if isinstance(journal, list):
            break
        if _not_synced(failures.get(minion)):  # a new node: nothing journalled yet
            log.info("lbpair: no catch-up from %s: lbpair's modules are not synced there yet", minion)
            return {"caught_up": None, "error": "lbpair's execution modules are not synced on the node"}
    else:
        log.error("lbpair: catch-up from %s failed: its journal did not answer", minion)
        return {"caught_up": None, "error": "the node's journal did not answer"}
    records = [transition_record(entry, minion, seen="late", confirmed=True) for entry in journal if isinstance(entry, dict)]
    new = _record(config, records)
    log.info("lbpair: caught up %d transitions of %s after seq %d", len(new), minion, since)
    result = {"caught_up": [_brief(record) for record in new]}
    if new:
        owed, result["notified"] = _announce(config, new)
        result["pair"] = [_check_pair(config, instance, requested_at) for instance in sorted({r["instance"] for r in new})]
        result["summaries"] = _pay_summaries(config, owed)
    return result


def on_minion_start(tag, data, **kwargs):  # pylint: disable=unused-argument
    """
    React to ``salt/minion/<id>/start``: catch up with a node of the pair.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.on_minion_start salt/minion/lb1/start '{"id": "lb1"}'
    """
    minion = (tag or "").split("/")[2] if (tag or "").count("/") >= 3 else None
    if minion not in _config()["nodes"]:
        log.debug("lbpair: %s is not a node of the pair, no catch-up", minion)
        return {"ignored": f"{minion!r} is not a node of the pair"}
    return catch_up(minion)


def flush():
    """
    Send the flap-damping summaries whose window has ended (normally sent by the
    reaction that held the first transition back; run this from the master's
    schedule to cover a master restarted in between).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.flush
    """
    config = _config()
    with _State(config) as state:
        instances = __salt__["lbpair_notify.due"](state.get("damping", {}), time.time())
    return [sent for instance in instances for sent in _send_summary(config, instance)]


def status():
    """
    Ask the nodes and show, per VRRP instance, who is MASTER and BACKUP and the
    VIPs. Split brain, no MASTER or a node that did not answer make the result
    non-zero.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.status
    """
    config = _config()
    view = _pair_state(config)
    problems = [f"{instance}: {entry['problem']}" for instance, entry in sorted(view["instances"].items()) if entry["problem"]]
    problems += [f"{node}: did not answer" for node in view["unreachable"]]
    view["problems"] = problems
    if problems or not view["instances"]:
        __context__["retcode"] = 1
        view["retcode"] = 1
    return view


def history(instance=None, minion=None, since=None, until=None):
    """
    The failover history as a timeline, optionally filtered by instance, minion
    and time (``since``/``until``: ISO 8601 or epoch seconds). With
    ``--out=json`` (or any structured outputter) the records themselves.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.history
        salt-run lbpair.history instance=lbpair_51 minion=lb2 since=2026-11-26T13:00:00Z
        salt-run lbpair.history --out=json
    """
    config = _config()
    try:
        records = __salt__["lbpair_history.select"](
            __salt__["lbpair_history.read"](_history_path(config)), instance=instance, minion=minion, since=since, until=until
        )
    except ValueError as exc:
        raise SaltInvocationError(f"since/until: ISO 8601 (2026-11-26T13:00:00Z) or epoch seconds: {exc}") from None
    if __opts__.get("output") in (None, "", "nested", "txt", "raw"):
        return "\n".join(__salt__["lbpair_history.timeline"](records)) or "(no transitions recorded)"
    return records


def check_config():
    """
    Validate the ``lbpair_reactions`` block; returns it normalised, secrets masked.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.check_config
    """
    return masked(_config())


def dns_update(minion):
    """
    Point the configured DNS records at ``minion`` now (retried, then reported).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.dns_update lb2
    """
    config = _config()
    if not config["dns"]:
        raise SaltInvocationError(f"{CONFIG_KEY}:dns is not configured")
    if minion not in config["nodes"]:
        raise SaltInvocationError(f"{minion!r} is not a node in {CONFIG_KEY}:nodes")
    return __salt__["lbpair_dns.update_with_retries"](config["dns"], minion, config["nodes"][minion]["address"])
