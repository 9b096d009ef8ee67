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

The full schema is documented in docs/pillar.md and in ``salt/pillar.example``.
"""

import posixpath
import re

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import haproxy_allow, haproxy_syntax, keepalived_syntax, schema, services, tls_profiles, track_rules

PILLAR_KEY = "lbpair"
#: VRRP instances of a pair, the default one included: the VRIDs fit in an nft rule's comment (128 characters)
MAX_INSTANCES = 20
KEYWORD_RE = re.compile(r"[a-z][a-z0-9_.-]*( [a-z][a-z0-9_.-]*)?")
#: keepalived reads at most 1023 bytes a line and splits the rest off as a directive of its own
KEEPALIVED_MAX_VALUE_BYTES = 900
#: keepalived -t crashed on a check script of about 1 KiB
KEEPALIVED_MAX_SCRIPT_BYTES = 256
#: what ``lbpair:vrrp:profile`` gives ``version``, ``advert_int`` and ``realtime`` unless they are set
PROFILES = {
    # A MASTER that vanishes is replaced after 3 missed adverts and the skew time: about 3.6 s.
    "default": {"version": 2, "advert_int": 1, "realtime": False},
    # About 0.36 s; keepalived must then never miss 3 adverts in a row (0.3 s): it runs SCHED_RR.
    "fast": {"version": 3, "advert_int": 0.1, "realtime": True},
}
DEFAULT_VRRP = {
    "interface": "eth0",
    "virtual_router_id": 51,
    "profile": "default",
    "preempt": True,
    # s the preferred node, back from FAULT, waits before it preempts: time for the master to hand
    # the VIPs back gracefully (saltext.lbpair.master.planned), so that no connection under way is cut
    "failback_delay": 10,
    "unicast": False,
    "strict": False,
    # split brain: the MASTER answers a lower-priority advert with its own at once and sends
    # gratuitous ARPs then (and every garp_master_refresh seconds): clients follow the one MASTER
    "higher_prio_send_advert": True,
    "garp_lower_prio_repeat": 5,
    "garp_master_refresh": 60,
}
#: keepalived's largest ``preempt_delay`` (s)
MAX_FAILBACK_DELAY = 1000
#: keepalived's strict mode (RFC compliance) refuses the split-brain remedies: off unless set
STRICT_DEFAULTS = {"higher_prio_send_advert": False, "garp_lower_prio_repeat": 0, "failback_delay": 0}
VRRP_KEYS = (*DEFAULT_VRRP, *PROFILES["default"], "check", "probe", "track_files", "instances")
#: keepalived's ``vrrp_rt_priority`` with ``lbpair:vrrp:realtime``: SCHED_RR, above every normal process
REALTIME_PRIORITY = 50
# Not pidof: on Debian it is a link to killall5, which keepalived runs by its resolved
# name, and killall5 then refuses the arguments: the check would always fail.
# fall 2: a crash systemd heals (SIGKILL, back within 100 ms) must move nothing.
DEFAULT_CHECK = {"script": "/usr/bin/pgrep -x haproxy", "interval": 2, "weight": 2, "fall": 2, "rise": 2}
#: the probe asks HAProxy itself (a hung one never answers); a failed probe puts the node in FAULT
DEFAULT_PROBE = {"enabled": True, "port": 8405, "interval": 1, "timeout": 3, "fall": 1, "rise": 2}
#: the HAProxy frontend the probe asks, bound to 127.0.0.1 (no service may have its name)
PROBE_FRONTEND = "lbpair-probe"
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
    _unique(nodes, "address", path)
    _unique(nodes, "address6", path)
    _unique(nodes, "priority", path)
    return nodes


def _pair_name(value, path, nodes):
    """The pair's name on the master; a pillar without one keeps a name of its own: its nodes'."""
    if value is None:
        return "+".join(sorted(nodes))
    return schema.name(value, path)


def _unique(items, key, path):
    seen = {}
    for name, item in items.items():
        if item[key] is None:  # an optional value not given
            continue
        if item[key] in seen:
            raise InvalidValue(
                f"{path}:{name}:{key}", f"{item[key]} is already used by {seen[item[key]]}"
            )
        seen[item[key]] = name


def _check(value, path, preempt):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=tuple(DEFAULT_CHECK))
    # Without preempt the peer never takes over from a MASTER whose priority a weighted check
    # merely lowered: a failed check must put the node in FAULT (keepalived's weight 0).
    check = {**DEFAULT_CHECK, **({} if preempt else {"weight": 0}), **value}
    if not preempt and check["weight"] != 0:
        raise InvalidValue(
            f"{path}:weight",
            "must be 0 with preempt false: a weighted check only lowers the MASTER's priority, and without "
            "preempt the peer never takes the virtual IPs from it (weight 0 puts a node whose check fails in FAULT)",
        )
    return {
        "script": _check_script(check["script"], f"{path}:script"),
        "interval": schema.integer(check["interval"], f"{path}:interval", 1, 3600),
        "weight": schema.integer(check["weight"], f"{path}:weight", 1 if preempt else 0, 253),
        "fall": schema.integer(check["fall"], f"{path}:fall", 1, 100),
        "rise": schema.integer(check["rise"], f"{path}:rise", 1, 100),
    }


def _check_script(value, path):
    """The check script, if keepalived runs it as its words (:func:`saltext.lbpair.model.keepalived_syntax.script_problem`)."""
    script = schema.string(value, path, KEEPALIVED_MAX_SCRIPT_BYTES)
    return _keepalived_text(script, path, keepalived_syntax.script_problem)


def _probe(value, path):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=tuple(DEFAULT_PROBE))
    probe = {**DEFAULT_PROBE, **value}
    return {
        "enabled": schema.boolean(probe["enabled"], f"{path}:enabled"),
        "port": schema.port(probe["port"], f"{path}:port"),
        "interval": schema.integer(probe["interval"], f"{path}:interval", 1, 3600),
        "timeout": schema.integer(probe["timeout"], f"{path}:timeout", 1, 3600),
        "fall": schema.integer(probe["fall"], f"{path}:fall", 1, 100),
        "rise": schema.integer(probe["rise"], f"{path}:rise", 1, 100),
    }


def _track_file(name, value, path):
    schema.name(name, path)
    if name.startswith(track_rules.BLOCK_PREFIX):
        raise InvalidValue(path, f"names starting with {track_rules.BLOCK_PREFIX!r} are lbpair's own")
    schema.mapping(value, path, allowed=("file", "weight"), required=("file",))
    file_path = _keepalived_text(schema.string(value["file"], f"{path}:file"), f"{path}:file")
    directory, file_name = posixpath.split(file_path)
    if directory != track_rules.DIRECTORY or not track_rules.FILE_NAME_RE.fullmatch(file_name):
        raise InvalidValue(f"{path}:file", f"{file_path!r} is not a file directly in lbpair's {track_rules.DIRECTORY}/")
    if file_name in track_rules.NAMES:
        raise InvalidValue(f"{path}:file", f"{file_name!r} is one of lbpair's own track files ({', '.join(track_rules.NAMES)})")
    return {"file": file_path, "weight": schema.integer(value.get("weight", 0), f"{path}:weight", -253, 253)}


def _keepalived_text(text, path, problem_of=keepalived_syntax.value_problem):
    """``text``, which lbpair writes into keepalived.conf, if keepalived reads it as written; else InvalidValue naming ``path``."""
    problem = problem_of(text)
    if problem:
        raise InvalidValue(path, problem)
    return text


def _track_files(value, path):
    value = {} if value is None else value
    schema.named_mapping(value, path)
    files = {name: _track_file(name, value[name], f"{path}:{name}") for name in value}
    _unique(files, "file", path)
    return files


def _advert_int(value, path, version):
    """Whole seconds (1-255) with VRRPv2; centiseconds (0.01-40.95 s) with VRRPv3."""
    if version == 2:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidValue(path, f"{value} s needs VRRPv3 (lbpair:vrrp:version: 3): VRRPv2 adverts count whole seconds")
        return schema.integer(int(value) if isinstance(value, float) else value, path, 1, 255)
    seconds = schema.number(value, path, 0.01, 40.95)
    if abs(seconds * 100 - round(seconds * 100)) > 1e-6:
        raise InvalidValue(path, f"{seconds} s is not a whole number of centiseconds (VRRPv3's unit)")
    return round(seconds, 2)


def _strict_problem(vrrp):
    """Why keepalived's strict mode (RFC compliance) cannot run these settings, as ``(key, message)``, or None."""
    if vrrp["version"] != 3:
        return "strict", "strict mode needs version 3: VRRPv2 forbids accept, and without it the VIPs drop what HAProxy serves"
    if vrrp["unicast"]:
        return "unicast", "strict mode allows no unicast peers (keepalived drops them)"
    if not vrrp["preempt"]:
        return "preempt", "strict mode does not support nopreempt (keepalived ignores it)"
    if vrrp["higher_prio_send_advert"]:
        return "higher_prio_send_advert", "strict mode requires it to be false (keepalived clears it)"
    if vrrp["garp_lower_prio_repeat"]:
        return "garp_lower_prio_repeat", "strict mode requires it to be 0: no repeated gratuitous ARPs (keepalived resets it)"
    if vrrp["failback_delay"]:
        return "failback_delay", "strict mode requires it to be 0: keepalived resets preempt_delay (no graceful failback)"
    return None


def _instance(name, value, path, nodes):
    schema.name(name, path)
    if name == services.DEFAULT_INSTANCE:
        raise InvalidValue(path, f"{name} is the instance of lbpair:vrrp:virtual_router_id (a service without instance)")
    schema.mapping(value, path, allowed=("virtual_router_id", "preferred"), required=("virtual_router_id",))
    preferred = schema.name(value.get("preferred", preferred_by_priority(nodes)), f"{path}:preferred")
    if preferred not in nodes:
        raise InvalidValue(f"{path}:preferred", f"{preferred!r} is not a node of the pair ({', '.join(nodes)})")
    return {
        "virtual_router_id": schema.integer(value["virtual_router_id"], f"{path}:virtual_router_id", 1, 255),
        "preferred": preferred,
    }


def _instances(value, path, vrid, nodes):
    """
    The pair's VRRP instances by name, the default one (``lbpair:vrrp:virtual_router_id``,
    preferred by the node of highest priority) first, then ``lbpair:vrrp:instances``.
    """
    value = {} if value is None else value
    schema.named_mapping(value, path)
    if len(value) >= MAX_INSTANCES:
        raise InvalidValue(path, f"at most {MAX_INSTANCES - 1} besides the default one: VRRP firewall rules name each VRID in a comment")
    instances = {services.DEFAULT_INSTANCE: {"virtual_router_id": vrid, "preferred": preferred_by_priority(nodes)}}
    owners = {vrid: key("vrrp", "virtual_router_id")}
    for name in sorted(value, key=str):
        instance = instances[name] = _instance(name, value[name], f"{path}:{name}", nodes)
        vrid_path = f"{path}:{name}:virtual_router_id"
        if instance["virtual_router_id"] in owners:
            raise InvalidValue(vrid_path, f"{instance['virtual_router_id']} is already used by {owners[instance['virtual_router_id']]}")
        owners[instance["virtual_router_id"]] = vrid_path
    return instances


def preferred_by_priority(nodes):
    """The node of highest priority: the preferred MASTER of an instance that names none."""
    return max(nodes, key=lambda name: nodes[name]["priority"])


def _vrrp(value, path, nodes):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=VRRP_KEYS)
    profile = schema.choice(value.get("profile", DEFAULT_VRRP["profile"]), f"{path}:profile", tuple(PROFILES))
    strict = schema.boolean(value.get("strict", DEFAULT_VRRP["strict"]), f"{path}:strict")
    vrrp = {**DEFAULT_VRRP, **PROFILES[profile], **(STRICT_DEFAULTS if strict else {}), **value}
    preempt = schema.boolean(vrrp["preempt"], f"{path}:preempt")
    version = schema.integer(vrrp["version"], f"{path}:version", 2, 3)
    normalised = {
        "interface": schema.name(vrrp["interface"], f"{path}:interface"),
        "virtual_router_id": schema.integer(vrrp["virtual_router_id"], f"{path}:virtual_router_id", 1, 255),
        "profile": profile,
        "version": version,
        "advert_int": _advert_int(vrrp["advert_int"], f"{path}:advert_int", version),
        "realtime": schema.boolean(vrrp["realtime"], f"{path}:realtime"),
        "preempt": preempt,
        "failback_delay": schema.integer(vrrp["failback_delay"], f"{path}:failback_delay", 0, MAX_FAILBACK_DELAY),
        "unicast": schema.boolean(vrrp["unicast"], f"{path}:unicast"),
        "strict": strict,
        "higher_prio_send_advert": schema.boolean(vrrp["higher_prio_send_advert"], f"{path}:higher_prio_send_advert"),
        "garp_lower_prio_repeat": schema.integer(vrrp["garp_lower_prio_repeat"], f"{path}:garp_lower_prio_repeat", 0, 100),
        "garp_master_refresh": schema.integer(vrrp["garp_master_refresh"], f"{path}:garp_master_refresh", 0, 86400),
        "check": _check(vrrp.get("check"), f"{path}:check", preempt),
        "probe": _probe(vrrp.get("probe"), f"{path}:probe"),
        "track_files": _track_files(vrrp.get("track_files"), f"{path}:track_files"),
        "instances": _instances(vrrp.get("instances"), f"{path}:instances", vrrp["virtual_router_id"], nodes),
    }
    problem = normalised["strict"] and _strict_problem(normalised)
    if problem:
        raise InvalidValue(f"{path}:{problem[0]}", problem[1])
    return normalised


def _haproxy(value, path):
    value = {} if value is None else value
    schema.mapping(value, path, allowed=("stats_socket", "peers_port", "tls_profile", "global", "defaults"))
    tls_profiles.check_global_overrides(value.get("global"), f"{path}:global")
    socket_path = value.get("stats_socket", DEFAULT_HAPROXY["stats_socket"])
    schema.matching(socket_path, f"{path}:stats_socket", re.compile(r"^/[A-Za-z0-9_./-]+$"), "an absolute path")
    return {
        "stats_socket": socket_path,
        "peers_port": _peers_port(value.get("peers_port", DEFAULT_HAPROXY["peers_port"]), f"{path}:peers_port"),
        "tls_profile": tls_profiles.normalize(value.get("tls_profile"), f"{path}:tls_profile"),
        "global": _haproxy_directives(HAPROXY_GLOBAL, value.get("global"), f"{path}:global", "global"),
        "defaults": _haproxy_directives(HAPROXY_DEFAULTS, value.get("defaults"), f"{path}:defaults", "defaults"),
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
    none adding a socket, listener, program or file (:func:`saltext.lbpair.model.haproxy_allow.override_problem`),
    each value rendered canonically so that HAProxy reads what was checked.
    """

    def problem(line):
        try:
            words = haproxy_syntax.parse(line)
        except haproxy_syntax.SyntaxProblem as error:
            return str(error)
        return haproxy_allow.override_problem(words, section)

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


def _service_vips(model):
    """``(service name, service, vip, key)`` of every VIP of every service (``key``: ``vip`` or ``vip6``)."""
    for name, service in model["services"].items():
        for vip, key in services.addresses(service):
            yield name, service, vip, key


def _node_owners(model):
    """``{address: node name}`` of every node address, IPv4 and IPv6."""
    return {node[field]: name for name, node in model["nodes"].items() for field in ("address", "address6") if node[field]}


def _check_servers_are_not_node_addresses(model, path):
    """
    A server is never a node of the pair: through a service, the world would reach what listens on
    the node (its peers port, SSH), from the node's own address that the firewall lets in.
    """
    owners = _node_owners(model)
    for name, backend, pool in services.pools(model["services"]):
        pool_path = f"{path}:services:{name}" + (f":backends:{backend}" if backend else "")
        for server, value in pool["servers"].items():
            if value["address"] in owners:
                raise InvalidValue(
                    f"{pool_path}:servers:{server}:address",
                    f"{value['address']} is the address of node {owners[value['address']]}: a service's servers are other hosts",
                )


def _check_vips_are_not_node_addresses(model, path):
    owners = _node_owners(model)
    for name, _service, vip, key in _service_vips(model):
        if vip in owners:
            raise InvalidValue(f"{path}:services:{name}:{key}", f"{vip} is the address of node {owners[vip]}")


def _check_weight_moves_vips(model, path):
    priorities = [node["priority"] for node in model["nodes"].values()]
    gap = max(priorities) - min(priorities)
    weight = model["vrrp"]["check"]["weight"]
    if weight and weight <= gap:  # weight 0: FAULT on failure
        raise InvalidValue(
            f"{path}:vrrp:check:weight",
            f"{weight} is not larger than the priority gap {gap} between the nodes: "
            "a failing HAProxy would never move the virtual IPs",
        )


def _check_instances_are_used(model, path):
    """Each service names an instance of the pair, and each instance of ``instances`` carries a VIP."""
    instances, used = model["vrrp"]["instances"], {service["instance"] for service in model["services"].values()}
    for name, service in model["services"].items():
        if service["instance"] not in instances:
            raise InvalidValue(
                f"{path}:services:{name}:instance", f"there is no VRRP instance {service['instance']!r} ({', '.join(instances)})"
            )
    for name in instances:
        if name != services.DEFAULT_INSTANCE and name not in used:
            raise InvalidValue(f"{path}:vrrp:instances:{name}", "no service uses it (keepalived refuses an instance without VIPs)")


def _check_each_vip_in_one_instance(model, path):
    """Services sharing a VIP (on other ports) share its instance: two MASTERs would hold it at once."""
    instance_of = {}
    for name, service, vip, key in _service_vips(model):
        owner = instance_of.setdefault(vip, (service["instance"], name))
        if owner[0] != service["instance"]:
            raise InvalidValue(
                f"{path}:services:{name}:instance",
                f"{vip} ({key}) is also service {owner[1]}'s VIP, in instance {owner[0]}: a VIP belongs to one instance",
            )


def _check_ipv6_vips(model, path):
    """
    IPv6 VRRP is sent from each node's IPv6 address: an IPv6 VIP needs one on every node;
    strict mode (RFC 5798) wants a link-local VIP first, which lbpair does not manage.
    """
    missing = [name for name, node in model["nodes"].items() if node["address6"] is None]
    ipv6_vips = [
        (vip, f"{path}:services:{name}:{key}") for name, _service, vip, key in _service_vips(model) if schema.address_family(vip) == 6
    ]
    for vip, vip_path in ipv6_vips:
        if missing:
            needed = f"{path}:nodes:{missing[0]}:address6"
            raise InvalidValue(vip_path, f"{vip} is an IPv6 VIP: its VRRP needs an IPv6 address on every node ({needed})")
        if model["vrrp"]["strict"]:
            raise InvalidValue(vip_path, "IPv6 VIPs are not supported with strict mode (it wants a link-local VIP first)")


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
        "vrrp": _vrrp(pillar.get("vrrp"), f"{path}:vrrp", nodes),
        "services": services.normalize(pillar.get("services"), f"{path}:services", reserved={PROBE_FRONTEND: "probe frontend"}),
        "haproxy": _haproxy(pillar.get("haproxy"), f"{path}:haproxy"),
        "keepalived": _keepalived(pillar.get("keepalived"), f"{path}:keepalived"),
        "firewall": _firewall(pillar.get("firewall"), f"{path}:firewall"),
    }
    _check_weight_moves_vips(model, path)
    _check_vips_are_not_node_addresses(model, path)
    _check_servers_are_not_node_addresses(model, path)
    _check_instances_are_used(model, path)
    _check_each_vip_in_one_instance(model, path)
    _check_ipv6_vips(model, path)
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
        for _name, service, vip, _key in _service_vips(model)
        if (instance is None or service["instance"] == instance) and (family is None or schema.address_family(vip) == family)
    }
    return sorted(found, key=schema.address_order)
