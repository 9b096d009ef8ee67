"""
The pair monitor: the pair's state read from the nodes' own status returns, split brain and no
MASTER checked again after the settle time and alarmed if they last, and DNS following the sole
MASTER of each instance (retried by the background job, then recorded and alarmed).
"""

import dataclasses
import logging
import time

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import dns_update, notify, records
from saltext.lbpair.master.reactions_config import CONFIG_KEY
from saltext.lbpair.master.records import Problem, Task, scoped, transitions
from saltext.lbpair.master.transitions import STATUS_FUNCTION
from saltext.lbpair.model.keepalived_model import VrrpState

log = logging.getLogger(__name__)


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
        masters = sorted(node for node, state in entry["states"].items() if state == VrrpState.MASTER)
        entry["MASTER"] = masters
        entry["BACKUP"] = sorted(node for node, state in entry["states"].items() if state == VrrpState.BACKUP)
        problem = Problem.SPLIT_BRAIN if len(masters) > 1 else Problem.NO_MASTER if not masters else None
        entry["problem"] = problem and problem.value  # plain text: the view is a Salt return
    return {"instances": view, "unreachable": sorted(set(nodes) - set(statuses))}


def known_vips(records, instance):
    """The VIPs of ``instance`` in its newest transition record that names them (the nodes' journals)."""
    for record in reversed(transitions(records)):
        if record.instance == instance and record.vips:
            return sorted(record.vips)
    return []


def alarm_message(problem, entry):
    states = ", ".join(f"{node} {state}" for node, state in sorted(entry["states"].items()))
    vips = ", ".join(entry["vips"]) or "no VIPs known"
    if problem == Problem.SPLIT_BRAIN:
        return f"split brain: {' and '.join(entry['MASTER'])} are all MASTER ({states}; VIPs {vips})"
    return f"no MASTER ({states}; VIPs {vips} are not served)"


def with_problems(view):
    """The pair's view with ``problems`` listed and ``retcode`` 1 when there is one (or no instance)."""
    problems = [f"{instance}: {entry['problem']}" for instance, entry in sorted(view["instances"].items()) if entry["problem"]]
    problems += [f"{node}: did not answer" for node in view["unreachable"]]
    view = {**view, "problems": problems}
    if problems or not view["instances"]:
        view["retcode"] = 1
    return view


def fleet_view(views, left_out):
    """
    Every pair's view (``views``: ``{pair: pair_view}``) with its problems, those with a problem
    first; the fleet's ``problems`` (each naming its pair, then the pairs and minions ``left_out``,
    ``{name: why}``) and ``retcode`` 1 when there is one (or no pair at all).
    """
    pairs = {name: with_problems(view) for name, view in views.items()}
    problems = [f"{name}: {problem}" for name, view in sorted(pairs.items()) for problem in view["problems"]]
    problems += [f"{name}: {why}" for name, why in sorted(left_out.items())]
    view = {"problems": problems, "pairs": dict(sorted(pairs.items(), key=lambda item: (not item[1]["problems"], item[0])))}
    if problems or not pairs:
        view["retcode"] = 1
    return view


def read_statuses(client, nodes):
    """
    ``{node: status}`` of the ``nodes`` that answered ``lbpair_keepalived.status`` (``client``: a
    :class:`~saltext.lbpair.master.node_client.NodeClient`, with the confirm timeout).
    """
    statuses, _ = client.answers_soon(nodes, STATUS_FUNCTION)
    return {node: ret for node, ret in statuses.items() if isinstance(ret, dict)}


@dataclasses.dataclass(eq=False)
class PairMonitor:
    """
    The pair of ``config`` (the reactions'), asked through ``client``; ``store`` keeps the checks,
    alarms and where DNS points, ``chronicle`` records, ``scheduler`` does the checks and DNS retries due later.
    """

    config: dict
    client: object
    store: object
    chronicle: object
    scheduler: object
    clock: object = time.time

    def _key(self, instance):
        """How the reaction state keys ``instance`` of this pair (instance names repeat across pairs)."""
        return scoped(self.config["pair"], instance)

    def pair_state(self, statuses=None):
        """
        The pair's view (:func:`pair_view`) from the nodes' own status returns (``statuses``:
        those :func:`read_statuses` read for several pairs at once; by default they are asked).
        """
        nodes = self.config["nodes"]
        if statuses is None:
            statuses = read_statuses(self.client, nodes)
        view = pair_view({node: statuses[node] for node in nodes if node in statuses}, nodes)
        if any(not entry["vips"] for entry in view["instances"].values()):  # D-Bus does not give the VIPs
            records = self.chronicle.recent()
            for instance, entry in view["instances"].items():
                entry["vips"] = entry["vips"] or known_vips(records, instance)
        return view

    def check_pair(self, instance, requested_at, settled=False, statuses=None, follow=True):
        """
        Read the pair's state from the nodes; follow the sole MASTER with DNS. A split
        brain or no MASTER is checked again ``confirm:settle`` seconds later (by the
        background job) and alarmed if it lasts. Checks are serialised; one of the same
        instance started after ``requested_at`` already covers it (another instance's does not:
        active/active, each node becomes MASTER of one at the same moment). ``statuses``: the nodes'
        status returns, read once for a batch of reactions (by default they are asked). ``follow``:
        the node DNS may follow from this check and from its check after the settle time, if it is the
        sole MASTER then: the reaction to a node's own transition into MASTER points DNS at it (with
        two masters, the master the node gave that transition to), and no other reaction does (a
        transition caught up late must not point DNS at another node); ``None``: none; ``True``:
        whichever node is the sole MASTER (work an older version left).
        """
        with self.store.lock(f"check-{self.config['pair']}"):
            if self._covered(instance, requested_at, follow):
                return {"skipped": "a newer check covered it"}
            entry = self.pair_state(statuses)["instances"].get(instance)
        result = {"view": entry}
        if not entry:
            return result
        if entry["problem"]:
            if self._problem_seen_before(instance, entry) and settled:
                return {**result, "alarm": self._alarm(instance, entry["problem"], entry)}
            settle = self.config["confirm"]["settle"]
            self.scheduler.later(Task.check(self.config["pair"], instance, follow), settle)
            return {**result, "settling": settle}
        self.store.all_clear(self._key(instance))
        if self.config["dns"] and follow in (True, entry["MASTER"][0]):
            result["dns"] = self._follow_master(instance, entry["MASTER"][0])
        return result

    def _covered(self, instance, requested_at, follow):
        """
        Whether a check of ``instance`` started after ``requested_at`` covers this one; notes this one.
        Only a check that followed DNS covers one that does (a batch checks the pair for the old
        MASTER's transition first).
        """
        now = self.clock()
        covered = not self.store.start_check(self._key(instance), requested_at, now)
        if follow:
            covered = not self.store.start_check(f"{self._key(instance)} dns", requested_at, now)
        return covered

    def _problem_seen_before(self, instance, entry):
        """
        Whether the last check saw this very problem (the same states of the same nodes); notes it
        otherwise. A problem that changed meanwhile is a new one: during a switchover the pair
        passes through "no MASTER" twice, each time for well under a second.
        """
        shape = [entry["problem"], [[node, state] for node, state in sorted(entry["states"].items())]]
        return self.store.problem_seen_before(self._key(instance), shape)

    def _alarm(self, instance, problem, entry):
        """Raise a critical alarm once per episode: recorded in the history and notified."""
        if not self.store.raise_alarm(self._key(instance), problem):
            return None
        message = alarm_message(problem, entry)
        log.error("lbpair: CRITICAL %s: %s", instance, message)
        self.chronicle.note(records.alarm(problem, instance, message, entry["states"]))
        return notify.deliver(notify.alarm_notice(problem, instance, message, {"states": entry["states"]}), self.config)

    def _follow_master(self, instance, master):
        if self.store.dns_target(self._key(instance)) == master:
            return None
        return self.point_dns(instance, master)

    def point_dns(self, instance, master, attempt=1):
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
            self.store.note_dns(self._key(instance), master)
            self.store.note_dns_result(self.config["pair"], True, self.clock())
            self.chronicle.note(records.dns(instance, master, True, attempt, None))
            return {"ok": True, "attempts": attempt}
        log.warning("lbpair: DNS update to %s, attempt %d of %d failed: %s", master, attempt, dns_config["attempts"], error)
        if attempt < dns_config["attempts"]:
            self.scheduler.later(Task.dns(self.config["pair"], instance, master, attempt + 1), dns_config["backoff"] * 2 ** (attempt - 1))
            return {"ok": False, "attempts": attempt, "error": error, "retry": True}
        result = {"ok": False, "attempts": attempt, "error": error}
        self.store.note_dns_result(self.config["pair"], False, self.clock())
        self.chronicle.note(records.dns(instance, master, False, attempt, error))
        message = f"DNS update to {master} failed after {attempt} attempts: {error}"
        notify.deliver(notify.alarm_notice("dns_failed", instance, message, result), self.config)
        return result

    def dns_update(self, minion):
        """Point the configured DNS records at ``minion`` now (retried, then reported)."""
        if not self.config["dns"]:
            raise InvalidValue(f"{CONFIG_KEY}:dns", "is not configured")
        if minion not in self.config["nodes"]:
            raise InvalidValue(f"{CONFIG_KEY}:nodes", f"{minion!r} is not a node of the pair")
        result = dns_update.update_with_retries(self.config["dns"], minion, self.config["nodes"][minion])
        self.store.note_dns_result(self.config["pair"], result["ok"], self.clock())
        return result
