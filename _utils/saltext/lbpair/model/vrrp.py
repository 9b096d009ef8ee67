"""
The ``lbpair:vrrp`` section: keepalived's VRRP settings for the pair, their defaults and profiles,
the health check and probe, track files and the pair's VRRP instances. It reads only this section
and the pair's nodes; :mod:`saltext.lbpair.model.pillar_checks` relates it to the services.

.. code-block:: yaml

    lbpair:
      vrrp:
        interface: eth0
        virtual_router_id: 51       # the default instance's; the others' in instances
        profile: default            # or fast (VRRPv3, 0.1 s adverts, realtime)
        failback_delay: 10
        check: {interval: 2, weight: 2}
        probe: {port: 8405}
        track_files: {drain: {file: /var/lib/lbpair/track/drain, weight: -50}}
        instances:
          shop: {virtual_router_id: 52, preferred: lb2}
"""

import posixpath

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_syntax, schema, services, track_rules

#: VRRP instances of a pair, the default one included: the VRIDs fit in an nft rule's comment (128 characters)
MAX_INSTANCES = 20
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
    schema.unique(files, "file", path)
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


def _instances(value, path, vrid, vrid_key, nodes):
    """
    The pair's VRRP instances by name, the default one (VRID ``vrid``, at pillar key ``vrid_key``,
    preferred by the node of highest priority) first, then ``lbpair:vrrp:instances``.
    """
    value = {} if value is None else value
    schema.named_mapping(value, path)
    if len(value) >= MAX_INSTANCES:
        raise InvalidValue(path, f"at most {MAX_INSTANCES - 1} besides the default one: VRRP firewall rules name each VRID in a comment")
    instances = {services.DEFAULT_INSTANCE: {"virtual_router_id": vrid, "preferred": preferred_by_priority(nodes)}}
    owners = {vrid: vrid_key}
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


def normalize(value, path, nodes):
    """The ``lbpair:vrrp`` section (``path``) of a pair of ``nodes``, normalised, defaults filled in."""
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
        "instances": _instances(
            vrrp.get("instances"), f"{path}:instances", vrrp["virtual_router_id"], f"{path}:virtual_router_id", nodes
        ),
    }
    problem = normalised["strict"] and _strict_problem(normalised)
    if problem:
        raise InvalidValue(f"{path}:{problem[0]}", problem[1])
    return normalised
