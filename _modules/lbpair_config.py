"""
The ``lbpair`` pillar: one schema for the whole load-balancer pair.

Everything lbpair renders starts here. The pillar is validated and normalised
in plain Python before any configuration is rendered; a bad value raises an
error that names its full pillar path, and nothing is written.

.. code-block:: yaml

    lbpair:
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

The full schema is documented in the README and in ``salt/pillar.example``.
"""

import ipaddress
import re

from salt.exceptions import SaltInvocationError

__virtualname__ = "lbpair_config"

PILLAR_KEY = "lbpair"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
KEYWORD_RE = re.compile(r"^[a-z][a-z0-9_.-]*( [a-z][a-z0-9_.-]*)?$")
COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
BALANCE_ALGORITHMS = (
    "roundrobin",
    "static-rr",
    "leastconn",
    "first",
    "source",
    "uri",
    "url_param",
    "hdr",
    "random",
    "rdp-cookie",
    "hash",
)

DEFAULT_VRRP = {
    "interface": "eth0",
    "virtual_router_id": 51,
    "advert_int": 1,
    "preempt": True,
    "unicast": False,
}
# Not pidof: on Debian it is a link to killall5, which keepalived runs by its resolved
# name, and killall5 then refuses the arguments: the check would always fail.
DEFAULT_CHECK = {"script": "/usr/bin/pgrep -x haproxy", "interval": 2, "weight": 2, "fall": 1, "rise": 2}
DEFAULT_HAPROXY = {"stats_socket": "/run/haproxy/admin.sock"}
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
DEFAULT_FIREWALL = {"backend": "iptables", "nft_table": "inet filter", "nft_chain": "input"}


class PillarError(SaltInvocationError):
    """A pillar value is invalid; ``path`` names it (``lbpair:services:foo:port``)."""

    def __init__(self, path, message):
        self.path = path
        super().__init__(f"{path}: {message}")


def __virtual__():
    return __virtualname__


# --- typed leaves -------------------------------------------------------------


def _type_name(value):
    kinds = ((dict, "mapping"), (list, "list"), (str, "string"), (bool, "boolean"), (int, "integer"), (float, "number"))
    for kind, name in kinds:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _named_mapping(value, path):
    """A mapping whose keys are names chosen by the user (nodes, services, servers)."""
    if not isinstance(value, dict):
        raise PillarError(path, f"expected a mapping, got {_type_name(value)}")
    return value


def _mapping(value, path, allowed, required=()):
    if not isinstance(value, dict):
        raise PillarError(path, f"expected a mapping, got {_type_name(value)}")
    for key in value:
        if key not in allowed:
            raise PillarError(f"{path}:{key}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            raise PillarError(f"{path}:{key}", "is required")
    return value


def _integer(value, path, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise PillarError(path, f"expected an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise PillarError(path, f"must be from {low} to {high}, got {value}")
    return value


def _boolean(value, path):
    if not isinstance(value, bool):
        raise PillarError(path, f"expected true or false, got {value!r}")
    return value


def _string(value, path):
    if not isinstance(value, str):
        raise PillarError(path, f"expected a string, got {_type_name(value)}")
    if CONTROL_RE.search(value):
        raise PillarError(path, "must be a single line without control characters")
    if not value.strip():
        raise PillarError(path, "must not be empty")
    return value.strip()


def _matching(value, path, pattern, what):
    text = _string(value, path)
    if not pattern.match(text):
        raise PillarError(path, f"{text!r} is not {what}")
    return text


def _name(value, path):
    return _matching(value, path, NAME_RE, "a safe name (letters, digits, '.', '_', '-')")


def _address(value, path, ipv4_only=False):
    text = _string(value, path)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PillarError(path, f"{text!r} is not an IP address") from None
    if ipv4_only and address.version != 4:
        raise PillarError(path, f"{text} is not an IPv4 address (IPv6 VIPs are not supported yet)")
    return str(address)


def _port(value, path):
    return _integer(value, path, 1, 65535)


def _free_text(value, path, forbid_braces):
    """A value passed verbatim to a daemon: one line, no block delimiters where they matter."""
    text = _string(value, path)
    if forbid_braces and re.search(r"[{}\"]", text):
        raise PillarError(path, "must not contain braces or double quotes")
    return text


# --- directive overrides ------------------------------------------------------


def _directive_values(value, path, forbid_braces):
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
        normalised.append(_free_text(item, item_path, forbid_braces))
    return normalised


def _merge_directives(defaults, overrides, path, forbid_braces=False, reserved=()):
    """
    Merge a ``{keyword: value}`` override mapping over ordered ``(keyword, value)`` defaults.

    Defaults keep their order; overridden keywords keep their place; new keywords
    follow in the order the pillar gives them. Returns ``[(keyword, value), ...]``.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise PillarError(path, f"expected a mapping of directive: value, got {_type_name(overrides)}")
    merged = {}
    for keyword, value in defaults:
        merged.setdefault(keyword, []).append(value)
    for keyword, value in overrides.items():
        key_path = f"{path}:{keyword}"
        if not isinstance(keyword, str) or not KEYWORD_RE.match(keyword):
            raise PillarError(key_path, "is not a directive keyword (one or two lowercase words)")
        if keyword in reserved:
            raise PillarError(key_path, reserved[keyword])
        values = _directive_values(value, key_path, forbid_braces)
        if values is None:
            merged.pop(keyword, None)
        else:
            merged[keyword] = values
    return [(keyword, value) for keyword, values in merged.items() for value in values]


def _option_lines(value, path, forbid_braces):
    """The escape hatch: an ordered list of raw directive lines."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PillarError(path, f"expected a list of directive lines, got {_type_name(value)}")
    return [_free_text(line, f"{path}:{index}", forbid_braces) for index, line in enumerate(value)]


# --- sections -----------------------------------------------------------------


def _nodes(value, path):
    _named_mapping(value, path)
    if len(value) < 2:
        raise PillarError(path, "a pair needs at least two nodes")
    nodes = {}
    for name, node in value.items():
        node_path = f"{path}:{name}"
        _name(name, node_path)
        _mapping(node, node_path, allowed=("address", "priority"), required=("address", "priority"))
        nodes[name] = {
            "address": _address(node["address"], f"{node_path}:address", ipv4_only=True),
            "priority": _integer(node["priority"], f"{node_path}:priority", 1, 254),
        }
    _unique(nodes, "address", path)
    _unique(nodes, "priority", path)
    return nodes


def _unique(items, key, path):
    seen = {}
    for name, item in items.items():
        if item[key] in seen:
            raise PillarError(
                f"{path}:{name}:{key}", f"{item[key]} is already used by {seen[item[key]]}"
            )
        seen[item[key]] = name


def _check(value, path, preempt):
    value = {} if value is None else value
    _mapping(value, path, allowed=tuple(DEFAULT_CHECK))
    # Without preempt the peer never takes over from a MASTER whose priority a weighted check
    # merely lowered: a failed check must put the node in FAULT (keepalived's weight 0).
    check = {**DEFAULT_CHECK, **({} if preempt else {"weight": 0}), **value}
    if not preempt and check["weight"] != 0:
        raise PillarError(
            f"{path}:weight",
            "must be 0 with preempt false: a weighted check only lowers the MASTER's priority, and without "
            "preempt the peer never takes the virtual IPs from it (weight 0 puts a node whose check fails in FAULT)",
        )
    return {
        "script": _free_text(check["script"], f"{path}:script", forbid_braces=True),
        "interval": _integer(check["interval"], f"{path}:interval", 1, 3600),
        "weight": _integer(check["weight"], f"{path}:weight", 1 if preempt else 0, 253),
        "fall": _integer(check["fall"], f"{path}:fall", 1, 100),
        "rise": _integer(check["rise"], f"{path}:rise", 1, 100),
    }


def _vrrp(value, path):
    value = {} if value is None else value
    _mapping(value, path, allowed=(*DEFAULT_VRRP, "check"))
    vrrp = {**DEFAULT_VRRP, **value}
    preempt = _boolean(vrrp["preempt"], f"{path}:preempt")
    return {
        "interface": _name(vrrp["interface"], f"{path}:interface"),
        "virtual_router_id": _integer(vrrp["virtual_router_id"], f"{path}:virtual_router_id", 1, 255),
        "advert_int": _integer(vrrp["advert_int"], f"{path}:advert_int", 1, 255),
        "preempt": preempt,
        "unicast": _boolean(vrrp["unicast"], f"{path}:unicast"),
        "check": _check(vrrp.get("check"), f"{path}:check", preempt),
    }


def _server(name, value, path):
    _name(name, path)
    _mapping(value, path, allowed=("address", "port", "options"), required=("address", "port"))
    options = value.get("options")
    return {
        "address": _address(value["address"], f"{path}:address"),
        "port": _port(value["port"], f"{path}:port"),
        "options": None if options is None else _free_text(options, f"{path}:options", False),
    }


def _balance(value, path):
    text = _string(value, path)
    algorithm = re.split(r"[ (]", text, maxsplit=1)[0]
    if algorithm not in BALANCE_ALGORITHMS:
        raise PillarError(path, f"{algorithm!r} is not a balance algorithm ({', '.join(BALANCE_ALGORITHMS)})")
    return text


def _service(name, value, path):
    _name(name, path)
    _mapping(
        value,
        path,
        allowed=("vip", "port", "mode", "balance", "cookie", "options", "servers"),
        required=("vip", "port", "servers"),
    )
    mode = value.get("mode", "http")
    if mode not in ("http", "tcp"):
        raise PillarError(f"{path}:mode", f"must be http or tcp, got {mode!r}")
    cookie = value.get("cookie")
    if cookie is not None:
        cookie = _matching(cookie, f"{path}:cookie", COOKIE_RE, "a cookie name")
        if mode != "http":
            raise PillarError(f"{path}:cookie", "cookie persistence needs mode http")
    servers = value["servers"]
    _named_mapping(servers, f"{path}:servers")
    if not servers:
        raise PillarError(f"{path}:servers", "needs at least one server")
    return {
        "vip": _address(value["vip"], f"{path}:vip", ipv4_only=True),
        "port": _port(value["port"], f"{path}:port"),
        "mode": mode,
        "balance": _balance(value.get("balance", "roundrobin"), f"{path}:balance"),
        "cookie": cookie,
        "options": _option_lines(value.get("options"), f"{path}:options", forbid_braces=False),
        "servers": {
            server: _server(server, servers[server], f"{path}:servers:{server}")
            for server in sorted(servers, key=str)
        },
    }


def _services(value, path):
    value = {} if value is None else value
    _named_mapping(value, path)
    services = {
        name: _service(name, value[name], f"{path}:{name}") for name in sorted(value, key=str)
    }
    listeners = {}
    for name, service in services.items():
        listener = (service["vip"], service["port"])
        if listener in listeners:
            raise PillarError(
                f"{path}:{name}:vip",
                f"{service['vip']} port {service['port']} is already used by service {listeners[listener]}",
            )
        listeners[listener] = name
    return services


def _haproxy(value, path):
    value = {} if value is None else value
    _mapping(value, path, allowed=("stats_socket", "global", "defaults"))
    socket_path = value.get("stats_socket", DEFAULT_HAPROXY["stats_socket"])
    _matching(socket_path, f"{path}:stats_socket", re.compile(r"^/[A-Za-z0-9_./-]+$"), "an absolute path")
    reserved = {"stats socket": "set the stats socket with lbpair:haproxy:stats_socket"}
    return {
        "stats_socket": socket_path,
        "global": _merge_directives(HAPROXY_GLOBAL, value.get("global"), f"{path}:global", reserved=reserved),
        "defaults": _merge_directives(HAPROXY_DEFAULTS, value.get("defaults"), f"{path}:defaults"),
    }


def _keepalived(value, path):
    value = {} if value is None else value
    _mapping(value, path, allowed=("global_defs",))
    reserved = {"router_id": "is always the node's minion id"}
    global_defs = _merge_directives(
        KEEPALIVED_GLOBAL_DEFS, value.get("global_defs"), f"{path}:global_defs", forbid_braces=True, reserved=reserved
    )
    return {"global_defs": global_defs}


def _firewall(value, path):
    value = {} if value is None else value
    _mapping(value, path, allowed=tuple(DEFAULT_FIREWALL))
    firewall = {**DEFAULT_FIREWALL, **value}
    if firewall["backend"] not in ("iptables", "nftables"):
        raise PillarError(f"{path}:backend", f"must be iptables or nftables, got {firewall['backend']!r}")
    table = _matching(
        firewall["nft_table"], f"{path}:nft_table", re.compile(r"^(ip|ip6|inet) [A-Za-z0-9_-]+$"), "'FAMILY NAME'"
    )
    chain = _name(firewall["nft_chain"], f"{path}:nft_chain")
    return {"backend": firewall["backend"], "nft_table": table, "nft_chain": chain}


def _check_weight_moves_vips(model, path):
    priorities = [node["priority"] for node in model["nodes"].values()]
    gap = max(priorities) - min(priorities)
    weight = model["vrrp"]["check"]["weight"]
    if weight and weight <= gap:  # weight 0: FAULT on failure
        raise PillarError(
            f"{path}:vrrp:check:weight",
            f"{weight} is not larger than the priority gap {gap} between the nodes: "
            "a failing HAProxy would never move the virtual IPs",
        )


def _normalize(pillar, path=PILLAR_KEY):
    """
    Validate the ``lbpair`` pillar and return it normalised, defaults filled in.

    Raises :class:`PillarError` naming the first bad key. Pure: no Salt dunders.
    """
    if pillar is None:
        raise PillarError(path, "is missing: no lbpair pillar for this minion")
    _mapping(
        pillar,
        path,
        allowed=("nodes", "vrrp", "services", "haproxy", "keepalived", "firewall"),
        required=("nodes",),
    )
    model = {
        "nodes": _nodes(pillar["nodes"], f"{path}:nodes"),
        "vrrp": _vrrp(pillar.get("vrrp"), f"{path}:vrrp"),
        "services": _services(pillar.get("services"), f"{path}:services"),
        "haproxy": _haproxy(pillar.get("haproxy"), f"{path}:haproxy"),
        "keepalived": _keepalived(pillar.get("keepalived"), f"{path}:keepalived"),
        "firewall": _firewall(pillar.get("firewall"), f"{path}:firewall"),
    }
    _check_weight_moves_vips(model, path)
    return model


def _for_node(model, node, path=PILLAR_KEY):
    """Return ``model`` with the ``node`` and ``peers`` of this minion filled in."""
    if node not in model["nodes"]:
        raise PillarError(
            f"{path}:nodes", f"minion {node!r} is not a node of the pair ({', '.join(model['nodes'])})"
        )
    peers = {name: spec for name, spec in model["nodes"].items() if name != node}
    return {**model, "node": {"name": node, **model["nodes"][node]}, "peers": peers}


# --- Salt functions -----------------------------------------------------------


def model(node=None, pillar=None):
    """
    Return the validated, normalised lbpair model for a node of the pair.

    node
        Minion id of the node; defaults to this minion's id.

    pillar
        The ``lbpair`` pillar to use instead of this minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_config.model
        salt lb1 lbpair_config.model node=lb2
    """
    node = node or __opts__["id"]
    if pillar is not None:
        return _for_node(_normalize(pillar), node)
    # Not pillar.get: since Salt 3008 it masks the values it returns.
    pillar = __pillar__.get(PILLAR_KEY)
    return _for_node(_normalized_once(pillar), node)


def _normalized_once(pillar):
    """
    Normalise this minion's pillar once per job: a state run asks for the model
    several times (HAProxy, keepalived, firewall), and 1,000 services take
    tens of milliseconds each time. The cache holds the pillar object itself,
    so a refreshed pillar (a new object) is normalised again.
    """
    cached = __context__.get("lbpair_config.normalized")
    if cached is None or cached[0] is not pillar:
        cached = (pillar, _normalize(pillar))
        __context__["lbpair_config.normalized"] = cached
    return cached[1]


def check(node=None, pillar=None):
    """
    Validate the lbpair pillar; return ``True`` or raise an error naming the key.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_config.check
    """
    model(node=node, pillar=pillar)
    return True
