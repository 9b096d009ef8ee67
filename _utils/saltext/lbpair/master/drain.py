"""
Draining a backend server on both nodes of a pair, and putting it back.

A deploy takes one backend server out on every node at once: ``salt-run lbpair.drain foo foo1``
sets the server ``foo1`` of the HAProxy proxy ``foo`` to ``drain`` (no new connection, except those
a persistence cookie sends to it; those under way go on) on each node of the pair, the node
holding the service's VIPs first (it carries the traffic), then asks the nodes for the server's
current sessions (``scur`` of HAProxy's ``show stat``, through ``lbpair_haproxy.servers``) every
half second until none is left on any node or the timeout passes. ``salt-run lbpair.ready foo
foo1`` sets it back to ``ready`` on each node.

.. code-block:: python

    drains = Drains(client, chronicle, pair_state, pillar_of)
    drains.drain("foo", "foo1", wait=True, timeout=60, by="alice")
    # {"drained": True, "sessions_left": 0, "waited": 1.5, "order": ["lb1", "lb2"],
    #  "nodes": {"lb1": {"state": "drain", "status": "DRAIN", "sessions": 0}, "lb2": {...}}, ...}

Names are checked on the master, before any node is asked to change anything, against the
``lbpair`` pillar the master compiles for each node of the pair: the service (a routed service's
backend as HAProxy names it, ``shop.api``) and the server must be one every node's pillar
defines. A name that is not a safe name (``foo;shutdown``, ``../x``, a newline, a very long one)
is refused without being echoed whole. Both are refused unless every node of the pair answers.

What the nodes answer is untrusted: a session count is a bounded whole number and a status a short
text of the characters HAProxy's statuses use; anything else is reported as unknown (``None``), and
a server whose sessions are unknown on a node is never called drained.

The history records each (``kind: drain`` or ``ready``) with the pair, the proxy, the server, who
asked (Salt's user) and the outcome, so they show in ``lbpair.history``.
"""

import dataclasses
import re
import time

from saltext.lbpair.core.errors import InvalidValue, LbpairError, printable
from saltext.lbpair.master import records
from saltext.lbpair.model import keepalived_model, pillar, schema, services

SET_FUNCTION = "lbpair_haproxy.set_server"
SERVERS_FUNCTION = "lbpair_haproxy.servers"
POLL = 0.5  # s between two looks at the server's sessions
DEFAULT_TIMEOUT = 60  # s a drain waits for the sessions to end
MAX_TIMEOUT = 3600
MAX_SESSIONS = 999_999_999  # far above any HAProxy's maxconn: a larger count is not one HAProxy gave
SESSIONS_RE = re.compile(r"[0-9]{1,9}")
#: HAProxy's server statuses: ``UP``, ``DRAIN``, ``MAINT (via foo/foo1)``, ``UP 1/3``, ``no check``...
STATUS_RE = re.compile(r"[A-Za-z0-9 ./()_-]{1,64}")
MAX_NAME = 63  # schema's safe names are at most this long
MAX_LISTED = 20  # known names an error lists
MAX_REASON = 200  # characters of a node's failure an error shows
MAX_USER = 100


def safe_name(value, what):
    """``value`` if it is a safe name (:func:`~saltext.lbpair.model.schema.name`); a long one is refused without echoing it."""
    if isinstance(value, str) and len(value) > MAX_NAME:
        raise InvalidValue(what, f"at most {MAX_NAME} characters, got {len(value)}")
    return schema.name(value, what)


def pools_of(lbpair):
    """
    ``{proxy: {"servers": frozenset, "instances": frozenset}}`` of a node's ``lbpair`` pillar: each
    HAProxy proxy with servers (a plain service, a routed service's backend: ``shop.api``), its
    servers and the keepalived instances holding its VIPs (``lbpair_51``, ``lbpair_51_6``).
    """
    model = pillar.normalize(lbpair)
    vrrp_names = {}
    for vrrp in keepalived_model.vrrp_instances(model):
        vrrp_names.setdefault(vrrp.instance, set()).add(vrrp.name)
    pools = {}
    for name, backend, pool in services.pools(model["services"]):
        proxy = name if backend is None else services.backend_proxy(name, backend)
        instances = frozenset(vrrp_names.get(model["services"][name]["instance"], ()))
        pools[proxy] = {"servers": frozenset(pool["servers"]), "instances": instances}
    return pools


def _listed(names):
    names = sorted(names)
    shown = ", ".join(names[:MAX_LISTED])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > MAX_LISTED else shown or "none"


def check_names(service, server, pools_by_node):
    """
    The keepalived instances of ``service`` when it and its ``server`` are defined in every node's
    pools (``{node: pools_of(...)}``); :class:`InvalidValue` naming what is unknown otherwise.
    """
    service = safe_name(service, "service")
    server = safe_name(server, "server")
    instances = set()
    for node, pools in sorted(pools_by_node.items()):
        if service not in pools:
            raise InvalidValue("service", f"{service!r} is not a service of {node}'s lbpair pillar (known: {_listed(pools)})")
        if server not in pools[service]["servers"]:
            known = _listed(pools[service]["servers"])
            raise InvalidValue("server", f"{server!r} is not a server of {service} in {node}'s lbpair pillar (known: {known})")
        instances |= pools[service]["instances"]
    return instances


def node_order(nodes, view, instances):
    """``nodes``, those that are MASTER of one of ``instances`` in the pair's ``view`` first (each in ``nodes``' order)."""
    entries = [view["instances"].get(instance) or {} for instance in sorted(instances)]
    holders = {node for entry in entries for node in entry.get("MASTER") or ()}
    return [node for node in nodes if node in holders] + [node for node in nodes if node not in holders]


def sessions_of(fields):
    """A server's current sessions from a node's answer (its ``show stat`` fields), or ``None`` if it holds no believable count."""
    value = fields.get("scur") if isinstance(fields, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SESSIONS:
        return value
    if isinstance(value, str) and SESSIONS_RE.fullmatch(value):
        return int(value)
    return None


def status_of(fields):
    """A server's status (``DRAIN``, ``UP``...) from a node's answer, or ``None`` if it is not one HAProxy would give."""
    value = fields.get("status") if isinstance(fields, dict) else None
    return value if isinstance(value, str) and STATUS_RE.fullmatch(value) else None


def reason(failure):
    """A node's failure (untrusted) for an error message: one line, bounded."""
    return printable(str(failure)[:MAX_REASON]) if failure is not None else "no answer"


def outcome(order, seen, started, now):
    """
    What a drain came to: ``seen`` is ``{node: sessions or None}``; ``drained`` when every node is
    known to hold none, ``sessions_left`` the sum of those known, ``waited`` seconds since ``started``.
    """
    unknown = [node for node in order if seen.get(node) is None]
    left = sum(seen[node] for node in order if seen.get(node) is not None)
    return {"drained": not unknown and left == 0, "sessions_left": left, "unknown": unknown, "waited": round(max(0.0, now - started), 1)}


@dataclasses.dataclass
class Drains:
    """
    Drain and ready a backend server on the nodes of one pair: ``client`` calls them
    (:class:`~saltext.lbpair.master.node_client.NodeClient`), ``chronicle`` records
    (:class:`~saltext.lbpair.master.chronicle.Chronicle`), ``pair_state()`` reads the pair's view,
    ``pillar_of(node)`` is the ``lbpair`` pillar the master compiles for ``node``; ``sleep`` and
    ``clock`` pass and tell the time.
    """

    client: object
    chronicle: object
    pair_state: object
    pillar_of: object
    sleep: object = time.sleep
    clock: object = time.time

    @property
    def nodes(self):
        """The pair's nodes, in the order its settings list them."""
        return list(self.client.nodes)

    def drain(self, service, server, wait=True, timeout=DEFAULT_TIMEOUT, by=None):
        """Drain ``server`` of ``service`` on every node, the VIPs' holder first; with ``wait``, until its sessions end."""
        wait = schema.boolean(wait, "wait")
        timeout = schema.number(timeout, "timeout", 0, MAX_TIMEOUT)
        by = who(by)
        service, server, order = self._prepare(service, server, "drain")
        started = self.clock()
        nodes = self._set(order, service, server, "drain", by)
        seen = {node: nodes[node]["sessions"] for node in order}
        if wait:
            seen = self._wait(order, service, server, seen, started + timeout)
        for node in order:
            nodes[node]["sessions"] = seen[node]
        result = {**outcome(order, seen, started, self.clock()), "timeout": timeout if wait else None}
        where = ", ".join(order)
        left = result["sessions_left"]
        said = "drained" if result["drained"] else f"{left} session{'' if left == 1 else 's'} left"
        said += f" ({', '.join(result['unknown'])}: unknown)" if result["unknown"] else ""
        message = f"{service}/{server} set to drain on {where}{_by(by)}: {said} after {result['waited']} s"
        self.chronicle.note(records.server_state(records.RecordKind.DRAIN, service, server, by, message, nodes=order, **result))
        return {"service": service, "server": server, "pair": self.chronicle.pair, "order": order, "nodes": nodes, **result}

    def ready(self, service, server, by=None):
        """Set ``server`` of ``service`` back to ready on every node, the VIPs' holder first."""
        by = who(by)
        service, server, order = self._prepare(service, server, "ready")
        nodes = self._set(order, service, server, "ready", by)
        message = f"{service}/{server} set to ready on {', '.join(order)}{_by(by)}"
        self.chronicle.note(records.server_state(records.RecordKind.READY, service, server, by, message, nodes=order))
        return {"service": service, "server": server, "pair": self.chronicle.pair, "order": order, "nodes": nodes}

    def _prepare(self, service, server, state):
        """The names checked against every node's pillar and the order of the nodes; refused unless the whole pair answers."""
        service = safe_name(service, "service")
        server = safe_name(server, "server")
        instances = check_names(service, server, {node: self._pools(node) for node in self.nodes})
        view = self.pair_state()
        if view["unreachable"]:
            silent = ", ".join(view["unreachable"])
            alone = "salt <node> lbpair_haproxy.set_server sets it on one node"
            raise LbpairError(f"{state} refused: {silent} did not answer: a {state} needs the whole pair ({alone})")
        return service, server, node_order(self.nodes, view, instances)

    def _pools(self, node):
        try:
            return pools_of(self.pillar_of(node))
        except InvalidValue as exc:
            raise LbpairError(f"{node}'s lbpair pillar is not valid: {exc}") from None

    def _set(self, order, service, server, state, by):
        """Set the state on each node in ``order``; ``{node: {"state", "status", "sessions"}}``. A failure is recorded and raised."""
        nodes = {}
        for node in order:
            answers, failures = self.client.answers([node], SET_FUNCTION, {"service": service, "server": server, "state": state})
            if node not in answers or node in failures:
                done = ", ".join(nodes) or "none"
                message = f"{service}/{server}: {state} failed on {node} ({reason(failures.get(node))}); done on: {done}{_by(by)}"
                kind = records.RecordKind.DRAIN if state == "drain" else records.RecordKind.READY
                self.chronicle.note(records.server_state(kind, service, server, by, message, nodes=list(nodes), failed=node))
                raise LbpairError(message)
            nodes[node] = {"state": state, "status": status_of(answers[node]), "sessions": sessions_of(answers[node])}
        return nodes

    def _wait(self, order, service, server, seen, deadline):
        """Ask for the server's sessions every :data:`POLL` seconds until none is left on any node or ``deadline``; the last seen."""
        while True:
            if all(seen.get(node) == 0 for node in order):
                return seen
            now = self.clock()
            if now >= deadline:
                return seen
            self.sleep(min(POLL, deadline - now))
            seen = self._sessions(order, service, server)

    def _sessions(self, order, service, server):
        """``{node: sessions or None}`` of ``server`` (``None``: the node did not answer, or not believably)."""
        answers, _ = self.client.answers(order, SERVERS_FUNCTION, {"service": service})
        return {node: sessions_of(answers[node].get(server)) if isinstance(answers.get(node), dict) else None for node in order}


def who(user):
    """The user who asked (Salt's ``__user__``), as the history shows it: one line, bounded; ``None`` if unknown."""
    return printable(str(user)[:MAX_USER]) if user and user != "UNKNOWN" else None


def _by(user):
    return f" by {user}" if user else ""
