"""
The ``lbpair`` pillar: one schema for the whole load-balancer pair.

Everything lbpair renders starts here. The pillar is validated and normalised
before any configuration is rendered; a bad value raises
:class:`~saltext.lbpair.core.errors.InvalidValue` naming its full pillar path, and
nothing is written.

.. code-block:: yaml

    lbpair:
      pair: web                   # its name on the master (default: the node ids joined by '+')
      nodes:                      # the load balancers of the pair, by minion id
        lb1: {address: 192.0.2.11, priority: 101}
        lb2: {address: 192.0.2.12, priority: 100}
      vrrp: {interface: eth0, virtual_router_id: 51, advert_int: 1,
             check: {interval: 2, weight: 2}}
      services:
        foo:
          vip: 203.0.113.10
          port: 80
          balance: roundrobin
          cookie: foo-server-id
          servers:
            foo1: {address: 198.51.100.11, port: 80}
            foo2: {address: 198.51.100.12, port: 8080}

The full schema is documented in docs/pillar.md and in ``salt/pillar.example``. Sections of their
own: :mod:`~saltext.lbpair.model.vrrp` (``vrrp``) and :mod:`~saltext.lbpair.model.services`
(``services``); the checks across sections: :mod:`~saltext.lbpair.model.pillar_checks`.
"""

import re

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import (
    haproxy_exporter,
    haproxy_overrides,
    haproxy_syntax,
    keepalived_syntax,
    pillar_checks,
    schema,
    services,
    tls_profiles,
    vrrp,
)

PILLAR_KEY = "lbpair"
KEYWORD_RE = re.compile(r"[a-z][a-z0-9_.-]*( [a-z][a-z0-9_.-]*)?")
#: keepalived reads at most 1023 bytes a line and splits the rest off as a directive of its own
KEEPALIVED_MAX_VALUE_BYTES = 900
DEFAULT_HAPROXY = {"stats_socket": "/run/haproxy/admin.sock", "peers_port": 10000}
PEERS_PORT_LOW = 1024  # below: privileged ports, system services' (22: SSH)
HAPROXY_GLOBAL = (
    ("log", "/dev/log local0"),
    ("log", "/dev/log local1 notice"),
    ("chroot", "/var/lib/haproxy"),
    ("stats timeout", "30s"),
    ("user", "haproxy"),
    ("group", "haproxy"),
    ("daemon", ""),
)
HAPROXY_DEFAULTS = (
    ("log", "global"),
    ("option", "dontlognull"),
    ("timeout connect", "5s"),
    ("timeout client", "50s"),
    ("timeout server", "50s"),
)
KEEPALIVED_GLOBAL_DEFS = (
    ("enable_dbus", ""),
    ("enable_script_security", ""),
    ("script_user", "root"),
)
#: keepalived's global_defs keywords that run a program (as root, by default)
KEEPALIVED_PROGRAMS = ("startup_script", "shutdown_script", "notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo_script")
#: global_defs keywords that make keepalived (root) create or write a file or FIFO at a path of the pillar's choice
KEEPALIVED_FILES = (
    "notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo", "config_save_dir", "tmp_config_directory", "reload_file",
    "reload_time_file",
)  # fmt: skip
#: HAProxy proxies lbpair names itself: no service may take their names
RESERVED_PROXIES = {vrrp.PROBE_FRONTEND: "probe frontend", haproxy_exporter.FRONTEND: "Prometheus exporter frontend"}
DEFAULT_FIREWALL = {"backend": "iptables", "nft_table": "inet filter", "nft_chain": "input"}


def key(*parts):
    """The full pillar key of ``parts`` under ``lbpair``: ``key("services", "foo")`` is ``lbpair:services:foo``."""
    return ":".join((PILLAR_KEY, *map(str, parts)))


# --- directive overrides ------------------------------------------------------


def _directive_values(value, path, max_bytes=None):
    """A directive's values: ``null`` removes it, ``true`` is a bare flag, a list repeats it."""
    if value is None:
        return None
    if value is True:
        return [""]
    values = value if isinstance(value, list) else [value]
    normalised = []
    for index, item in enumerate(values):
        item_path = f"{path}:{index}" if isinstance(value, list) else path
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        normalised.append(schema.string(item, item_path, max_bytes))
    return normalised


def _keepalived_line_problem(line):
    """
    Why a line must not go into keepalived.conf's global_defs as given: keepalived would read it
    otherwise (:func:`saltext.lbpair.model.keepalived_syntax.line_problem`), it runs a program, or it sets
    what lbpair sets.
    """
    problem = keepalived_syntax.line_problem(line)
    if problem:
        return problem
    # what passed is read as its words separated by spaces
    words = line.split(" ")
    if words[0] in KEEPALIVED_PROGRAMS:
        return "runs a program as root (a '</' one through /bin/sh): global_defs takes none; the check is lbpair:vrrp:check:script"
    if words[0] in KEEPALIVED_FILES:
        return "makes keepalived write a file or FIFO as root at a path of the pillar's choice: global_defs takes none"
    if words[:1] == ["router_id"]:
        return "is always the node's minion id"
    for keyword, key_name in (("vrrp_strict", "strict"), ("vrrp_version", "version"), ("vrrp_rt_priority", "realtime")):
        if words[:1] == [keyword]:
            return f"set it with lbpair:vrrp:{key_name}: lbpair validates it with the rest of the VRRP settings"
    return None


def _merge_directives(defaults, overrides, path, line_problem, max_bytes=None):
    """
    Merge a ``{keyword: value}`` override mapping over ordered ``(keyword, value)`` defaults.

    Defaults keep their order; overridden keywords keep their place; new keywords
    follow in the order the pillar gives them. ``line_problem(line)`` says why a
    rendered line is refused (None: it is not). Returns ``[(keyword, value), ...]``.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise InvalidValue(path, f"expected a mapping of directive: value, got {schema.type_name(overrides)}")
    merged = {}
    for keyword, value in defaults:
        merged.setdefault(keyword, []).append(value)
    for keyword, value in overrides.items():
        key_path = f"{path}:{keyword}"
        if not isinstance(keyword, str) or not KEYWORD_RE.fullmatch(keyword):
            raise InvalidValue(key_path, "is not a directive keyword (one or two lowercase words)")
        values = _directive_values(value, key_path, max_bytes)
        if values is None:
            merged.pop(keyword, None)
            continue
        for value_text in values:
            problem = line_problem(f"{keyword} {value_text}")
            if problem:
                raise InvalidValue(key_path, problem)
        merged[keyword] = values
    return [(keyword, value) for keyword, values in merged.items() for value in values]


# --- sections -----------------------------------------------------------------


def _nodes(value, path):
    schema.named_mapping(value, path)
    if len(value) < 2:
        raise InvalidValue(path, "a pair needs at least two nodes")
    nodes = {}
    for name, node in value.items():
        node_path = f"{path}:{name}"
        schema.name(name, node_path)
        schema.mapping(node, node_path, allowed=("address", "address6", "priority"), required=("address", "priority"))
        nodes[name] = {
            "address": schema.address(node["address"], f"{node_path}:address", version=4, host=True),
            # IPv6 VRRP (the instances of IPv6 VIPs) is sent from and to these
            "address6": schema.address(node["address6"], f"{node_path}:address6", version=6, host=True) if "address6" in node else None,
            "priority": schema.integer(node["priority"], f"{node_path}:priority", 1, 254),
        }
    schema.unique(nodes, "address", path)
    schema.unique(nodes, "address6", path)
    schema.unique(nodes, "priority", path)
    return nodes


def _pair_name(value, path, nodes):
    """The pair's name on the master; a pillar without one keeps a name of its own: its nodes'."""
    if value is None:
        return "+".join(sorted(nodes))
    return schema.name(value, path)


def _haproxy(value, path, nodes):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=("stats_socket", "peers_port", "tls_profile", "global", "defaults", "prometheus"))
    tls_profiles.check_global_overrides(value.get("global"), f"{path}:global")
    socket_path = value.get("stats_socket", DEFAULT_HAPROXY["stats_socket"])
    schema.matching(socket_path, f"{path}:stats_socket", re.compile(r"^/[A-Za-z0-9_./-]+$"), "an absolute path")
    return {
        "stats_socket": socket_path,
        "peers_port": _peers_port(value.get("peers_port", DEFAULT_HAPROXY["peers_port"]), f"{path}:peers_port"),
        "tls_profile": tls_profiles.normalize(value.get("tls_profile"), f"{path}:tls_profile"),
        "global": _haproxy_directives(HAPROXY_GLOBAL, value.get("global"), f"{path}:global", "global"),
        "defaults": _haproxy_directives(HAPROXY_DEFAULTS, value.get("defaults"), f"{path}:defaults", "defaults"),
        "prometheus": haproxy_exporter.normalize(value.get("prometheus"), f"{path}:prometheus", nodes),
    }


def _peers_port(value, path):
    """
    Where HAProxy shares stick tables, on each node's address: not a privileged port. A system
    service listens there (22: SSH), so HAProxy could not bind it, and the peers firewall rules
    (:mod:`saltext.lbpair.node.firewall.peers`) would drop it on the node's addresses for all but the pair.
    A service's port is fine: services listen on their VIPs, never a node's address.
    """
    port = schema.port(value, path)
    if port < PEERS_PORT_LOW:
        raise InvalidValue(
            path,
            f"{port} is a privileged port, where system services listen (22: SSH): the peers firewall rules would "
            f"drop it on the nodes' addresses for all but the pair's nodes; use {PEERS_PORT_LOW}-65535 (default 10000)",
        )
    return port


def _haproxy_directives(defaults, overrides, path, section):
    """
    The ``global``/``defaults`` directives: the overrides read as HAProxy reads them (key and value),
    none adding a socket, listener, program or file (:func:`saltext.lbpair.model.haproxy_overrides.override_problem`),
    each value rendered canonically so that HAProxy reads what was checked.
    """

    def problem(line):
        try:
            words = haproxy_syntax.parse(line)
        except haproxy_syntax.SyntaxProblem as error:
            return str(error)
        return haproxy_overrides.override_problem(words, section)

    merged = _merge_directives(defaults, overrides, path, problem, max_bytes=haproxy_syntax.MAX_LINE_BYTES)
    return [(keyword, haproxy_syntax.line(haproxy_syntax.parse(value))) for keyword, value in merged]


def _keepalived(value, path):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=("global_defs",))
    global_defs = _merge_directives(
        KEEPALIVED_GLOBAL_DEFS, value.get("global_defs"), f"{path}:global_defs", _keepalived_line_problem,
        max_bytes=KEEPALIVED_MAX_VALUE_BYTES,
    )  # fmt: skip
    return {"global_defs": global_defs}


def _firewall(value, path):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=tuple(DEFAULT_FIREWALL))
    firewall = {**DEFAULT_FIREWALL, **value}
    if firewall["backend"] not in ("iptables", "nftables"):
        raise InvalidValue(f"{path}:backend", f"must be iptables or nftables, got {firewall['backend']!r}")
    table = schema.matching(
        firewall["nft_table"], f"{path}:nft_table", re.compile(r"^(ip|ip6|inet) [A-Za-z0-9_-]+$"), "'FAMILY NAME'"
    )
    chain = schema.name(firewall["nft_chain"], f"{path}:nft_chain")
    return {"backend": firewall["backend"], "nft_table": table, "nft_chain": chain}


def normalize(pillar, path=PILLAR_KEY):
    """
    Validate the ``lbpair`` pillar and return it normalised, defaults filled in.

    Raises :class:`InvalidValue` naming the first bad key.
    """
    if pillar is None:
        raise InvalidValue(path, "is missing: no lbpair pillar for this minion")
    schema.mapping(
        pillar,
        path,
        allowed=("pair", "nodes", "vrrp", "services", "haproxy", "keepalived", "firewall"),
        required=("nodes",),
    )
    nodes = _nodes(pillar["nodes"], f"{path}:nodes")
    model = {
        "pair": _pair_name(pillar.get("pair"), f"{path}:pair", nodes),
        "nodes": nodes,
        "vrrp": vrrp.normalize(pillar.get("vrrp"), f"{path}:vrrp", nodes),
        "services": services.normalize(pillar.get("services"), f"{path}:services", reserved=RESERVED_PROXIES),
        "haproxy": _haproxy(pillar.get("haproxy"), f"{path}:haproxy", nodes),
        "keepalived": _keepalived(pillar.get("keepalived"), f"{path}:keepalived"),
        "firewall": _firewall(pillar.get("firewall"), f"{path}:firewall"),
    }
    pillar_checks.check_weight_moves_vips(model, path)
    pillar_checks.check_vips_are_not_node_addresses(model, path)
    pillar_checks.check_servers_are_not_node_addresses(model, path)
    pillar_checks.check_instances_are_used(model, path)
    pillar_checks.check_each_vip_in_one_instance(model, path)
    pillar_checks.check_ipv6_vips(model, path)
    haproxy_exporter.check(model, path)
    return model


def for_node(model, node, path=PILLAR_KEY):
    """Return ``model`` with the ``node`` and ``peers`` of this minion filled in."""
    if node not in model["nodes"]:
        raise InvalidValue(
            f"{path}:nodes", f"minion {node!r} is not a node of the pair ({', '.join(model['nodes'])})"
        )
    peers = {name: spec for name, spec in model["nodes"].items() if name != node}
    return {**model, "node": {"name": node, **model["nodes"][node]}, "peers": peers}


def node_model(pillar, node, cache):
    """
    The model of ``node`` from this minion's ``lbpair`` pillar, normalised once per
    job: a state run asks for it several times (HAProxy, keepalived, firewall), and
    1,000 services take tens of milliseconds each time. ``cache`` is a mapping kept
    for the job (Salt's context dictionary); it holds the pillar object itself, so a
    refreshed pillar (a new object) is normalised again.
    """
    cached = cache.get("saltext.lbpair.model.pillar")
    if cached is None or cached[0] is not pillar:
        cached = (pillar, normalize(pillar))
        cache["saltext.lbpair.model.pillar"] = cached
    return for_node(cached[1], node)


def minion_model(minion_pillar, opts, cache, node=None, lbpair=None):
    """
    :func:`node_model` from what Salt gives its modules: the minion's whole pillar,
    its options (``id``) and context. ``node`` defaults to this minion; ``lbpair``,
    if given, is an ``lbpair`` pillar to use instead of the minion's.
    """
    if lbpair is not None:
        return for_node(normalize(lbpair), node or opts["id"])
    return node_model(minion_pillar.get(PILLAR_KEY), node or opts["id"], cache)


def vips(model, instance=None, family=None):
    """
    Every service's virtual IP, once each, in address order (IPv4 first); only those
    of VRRP ``instance`` (a name of ``lbpair:vrrp:instances``, ``default``) and IP
    ``family`` (4 or 6) if given.
    """
    found = {
        vip
        for _name, service, vip, _key in services.service_vips(model["services"])
        if (instance is None or service["instance"] == instance) and (family is None or schema.address_family(vip) == family)
    }
    return sorted(found, key=schema.address_order)
