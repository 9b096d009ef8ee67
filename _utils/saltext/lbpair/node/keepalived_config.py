"""
keepalived.conf rendered from the normalised model of one node, and what it means for the node's
priorities (which instances it prefers, its full priority, the failback it awaits).

keepalived on an lbpair node: its configuration rendered from the normalised
model, and its runtime state read locally (JSON dump, D-Bus through
:mod:`saltext.lbpair.node.vrrp_dbus`).

Each VRRP instance of the pillar (the default one, ``lbpair:vrrp:virtual_router_id``,
and those of ``lbpair:vrrp:instances``) is a ``vrrp_instance lbpair_<vrid>`` holding
the IPv4 virtual IPs of its services, preferred by its own node (that node gets the
highest priority in it: active/active). keepalived keeps one address family per
instance, so its IPv6 virtual IPs are in a sibling ``lbpair_<vrid>_6`` (the same VRID:
IPv4 and IPv6 VRIDs are separate spaces), sent from the nodes' ``address6``, and a
``vrrp_sync_group lbpair_<vrid>`` makes the two fail over together. The track files,
the probe and the check (node-level reasons) apply to every instance: a node whose
HAProxy is down loses all its virtual IPs. The VRRP adverts carry one of them (the lowest) and the
rest are ``virtual_ipaddress_excluded``: keepalived drops adverts whose address
list differs from its own and the BACKUP would take over while a new service
rolls out node by node; with one address in the adverts, adding or removing
services does not change them (``skip_check_adv_addr`` covers the MASTER being
reloaded first when the advertised address itself changes).
"""

import re

from saltext.lbpair.model import keepalived_model, pillar, services
from saltext.lbpair.model import vrrp as vrrp_section
from saltext.lbpair.node import haproxy_watch, track
from saltext.lbpair.node.deploy import sections_after_header, text_of, written_by_lbpair

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
CHECK_NAME = "lbpair_haproxy"
PROBE_NAME = "lbpair_probe"
#: how ``keepalived -t`` names a line: ``(Line 7) Unknown keyword 'x'`` or ``(/etc/keepalived/keepalived.conf: Line 7) ...``
LINE_REF = re.compile(r"\((?:[^()]*: )?Line (\d+)\)")
#: where each family's VRRP is sent from, in ``lbpair:nodes:<node>``; a VIP's prefix length
ADDRESS_FIELD = {4: "address", 6: "address6"}
PREFIX_LENGTH = {4: 32, 6: 128}


def preferred_instances(model):
    """The keepalived instances this node prefers (``lbpair:vrrp:instances:<name>:preferred``), both families."""
    node, instances = model["node"]["name"], model["vrrp"]["instances"]
    return sorted(vrrp.name for vrrp in keepalived_model.vrrp_instances(model) if instances[vrrp.instance]["preferred"] == node)


def failbacks_awaited(model, deferring):
    """
    The instances this node prefers and, back from FAULT, waits ``failback_delay`` for
    before it preempts (the master hands them back gracefully meanwhile): none without
    preempt, with no delay, or while the node defers.
    """
    vrrp = model["vrrp"]
    if deferring or not vrrp["preempt"] or not vrrp["failback_delay"]:
        return []
    return preferred_instances(model)


def full_priorities(model):
    """
    ``{keepalived name: priority}``: this node's priority in each instance with its check
    succeeding (keepalived adds its weight). A failing check takes the weight off again until
    it rises, ``rise`` x ``interval`` s after HAProxy is back: later than the node leaves FAULT.
    """
    weight = model["vrrp"]["check"]["weight"]
    return {
        vrrp.name: model["nodes"][_priority_owner(model, vrrp.instance)]["priority"] + weight
        for vrrp in keepalived_model.vrrp_instances(model)
    }


def below_full_priority(model, names, instances):
    """Those of *names* in which *instances* (:func:`parse_json_dump`) have this node below its full priority."""
    full = full_priorities(model)
    return sorted(name for name in names if ((instances.get(name) or {}).get("priority") or 0) < full[name])


def full_priority_wait(model):
    """
    How long a node back from FAULT waits for its full priority before it takes the VIPs handed
    back (s): until its check has surely risen (``(rise + 1) x interval``), at most half the
    failback delay (the other half is for the hand-over, before keepalived preempts).
    """
    check = model["vrrp"]["check"]
    return min((check["rise"] + 1) * check["interval"], model["vrrp"]["failback_delay"] / 2)


def _block(title, items, key=None):
    """
    A ``title { ... }`` block as ``(line, key)`` pairs. An item is a line lbpair
    writes itself, a ``(line, key)`` pair, or a nested block (a list); lines without
    a key take the block's ``key`` (None: the enclosing block's).
    """
    lines = [(f"{title} {{", key)]
    for item in items:
        for line in item if isinstance(item, list) else [item]:
            text, line_key = line if isinstance(line, tuple) else (line, None)
            lines.append((f"    {text}", line_key or key))
    lines.append(("}", key))
    return lines


def _global_defs(model):
    path, vrrp = pillar.key("keepalived", "global_defs"), model["vrrp"]
    directives = [(f"{keyword} {value}".rstrip(), f"{path}:{keyword}") for keyword, value in model["keepalived"]["global_defs"]]
    router_id = (f"router_id {model['node']['name']}", pillar.key("nodes", model["node"]["name"]))
    realtime = [(f"vrrp_rt_priority {vrrp_section.REALTIME_PRIORITY}", pillar.key("vrrp", "realtime"))] if vrrp["realtime"] else []
    strict = [("vrrp_strict", pillar.key("vrrp", "strict"))] if vrrp["strict"] else []
    return _block("global_defs", [router_id, *directives, *realtime, *strict], written_by_lbpair("global_defs"))


def _vrrp_script(check):
    path = pillar.key("vrrp", "check")
    return _block(
        f"vrrp_script {CHECK_NAME}",
        [
            (f'script "{check["script"]}"', f"{path}:script"),
            *((f"{field} {check[field]}", f"{path}:{field}") for field in ("interval", "weight", "fall", "rise")),
        ],
        written_by_lbpair(f"vrrp_script {CHECK_NAME}"),
    )


def _probe_script(model):
    probe, path = model["vrrp"]["probe"], pillar.key("vrrp", "probe")
    return _block(
        f"vrrp_script {PROBE_NAME}",
        [
            # through sh: keepalived -t needs no installed probe, and a missing one fails (FAULT), never vanishes
            (f'script "/bin/sh {haproxy_watch.PROBE_SCRIPT}"', f"{path}:port"),
            *((f"{field} {probe[field]}", f"{path}:{field}") for field in ("interval", "timeout")),
            "weight 0",  # a hung HAProxy: FAULT, the peer takes over after its skew time
            *((f"{field} {probe[field]}", f"{path}:{field}") for field in ("fall", "rise")),
        ],
        written_by_lbpair(f"vrrp_script {PROBE_NAME}"),
    )


def _track_files(model):
    """``{keepalived name: (file, weight, key)}``: lbpair's track files, then the pillar's."""
    files = {}
    for name in track.NAMES:
        weight_key = pillar.key("nodes") if name == track.DEFER else written_by_lbpair(f"track_file {track.block_name(name)}")
        files[track.block_name(name)] = (track.path(name), track.weight(model, name), weight_key)
    for name, spec in model["vrrp"]["track_files"].items():
        files[name] = (spec["file"], spec["weight"], pillar.key("vrrp", "track_files", name, "weight"))
    return files


def _track_file_blocks(model):
    blocks = []
    for name, (file_path, weight, weight_key) in _track_files(model).items():
        own = name.startswith(track.BLOCK_PREFIX)
        key = written_by_lbpair(f"track_file {name}") if own else pillar.key("vrrp", "track_files", name)
        file_key = key if own else f"{key}:file"
        blocks.append(_block(f"track_file {name}", [(f"file {file_path}", file_key), (f"weight {weight}", weight_key)], key))
    return blocks


def _priority_owner(model, instance):
    """
    The node whose priority this node has in ``instance``: its own, unless the instance
    prefers another node than the one of highest priority; then those two swap (the
    gap between the priorities stays, so the check's and defer's weights still move the VIPs).
    """
    node, preferred = model["node"]["name"], model["vrrp"]["instances"][instance]["preferred"]
    highest = vrrp_section.preferred_by_priority(model["nodes"])
    return {preferred: highest, highest: preferred}.get(node, node)


def _virtual_address_blocks(model, vrrp):
    interface = model["vrrp"]["interface"]
    keys = {}
    for name, service in model["services"].items():
        for vip, key in services.addresses(service):
            keys.setdefault(vip, pillar.key("services", name, key))
    addresses = [(f"{vip}/{PREFIX_LENGTH[vrrp.family]} dev {interface}", keys[vip]) for vip in vrrp.vips]
    blocks = [_block("virtual_ipaddress", addresses[:1])]
    if addresses[1:]:
        blocks.append(_block("virtual_ipaddress_excluded", addresses[1:]))
    return blocks


def _source_lines(model, family):
    field = ADDRESS_FIELD[family]
    node_address, address_key = model["node"][field], pillar.key("nodes", model["node"]["name"], field)
    if not model["vrrp"]["unicast"]:
        return [(f"mcast_src_ip {node_address}", address_key)]
    peers = [(peer[field], pillar.key("nodes", name, field)) for name, peer in model["peers"].items()]
    # check_unicast_src: keepalived takes unicast adverts from the listed peers only
    return [(f"unicast_src_ip {node_address}", address_key), _block("unicast_peer", peers), "check_unicast_src"]


def _preempt_lines(vrrp, path):
    """nopreempt, or the failback delay: keepalived arms it when a node back from FAULT sees a lower-priority MASTER."""
    if not vrrp["preempt"]:
        return [("nopreempt", f"{path}:preempt")]
    if vrrp["failback_delay"]:
        return [(f"preempt_delay {vrrp['failback_delay']}", f"{path}:failback_delay")]
    return []


def _split_brain_lines(vrrp, path):
    """After a split brain the one MASTER answers the other's adverts at once, and clients follow it (gratuitous ARPs)."""
    lines = [("higher_prio_send_advert", f"{path}:higher_prio_send_advert")] if vrrp["higher_prio_send_advert"] else []
    for field in ("garp_lower_prio_repeat", "garp_master_refresh"):
        if vrrp[field]:
            lines.append((f"{field} {vrrp[field]}", f"{path}:{field}"))
    return lines


def _track_file_keys(model):
    for name in _track_files(model):
        yield name, None if name.startswith(track.BLOCK_PREFIX) else pillar.key("vrrp", "track_files", name)


def _instance_key(instance):
    """The pillar key of a pillar instance: ``lbpair:vrrp`` for the default one."""
    if instance == services.DEFAULT_INSTANCE:
        return pillar.key("vrrp")
    return pillar.key("vrrp", "instances", instance)


def _family_lines(vrrp_instance, vrrp, path):
    """IPv6 adverts need VRRPv3; ``native_ipv6`` keeps the instance IPv6 whatever its addresses."""
    if vrrp_instance.family == 6:
        return ["native_ipv6", "version 3"]
    return [(f"version {vrrp['version']}", f"{path}:version")]


def _vrrp_instance(model, vrrp_instance):
    vrrp, path, instance = model["vrrp"], pillar.key("vrrp"), vrrp_instance.instance
    # strict mode: only the address owner (priority 255) may start as MASTER; keepalived
    # ignores preempt_delay (the failback delay) on a node that starts as MASTER
    preferred = vrrp["instances"][instance]["preferred"] == model["node"]["name"]
    master = vrrp["preempt"] and not vrrp["strict"] and not vrrp["failback_delay"] and preferred
    priority_owner = _priority_owner(model, instance)
    items = [
        f"state {'MASTER' if master else 'BACKUP'}",
        (f"interface {vrrp['interface']}", f"{path}:interface"),
        (
            f"virtual_router_id {vrrp['instances'][instance]['virtual_router_id']}",
            f"{_instance_key(instance)}:virtual_router_id",
        ),
        (f"priority {model['nodes'][priority_owner]['priority']}", pillar.key("nodes", priority_owner, "priority")),
        (f"advert_int {vrrp['advert_int']:g}", f"{path}:advert_int"),
        *_family_lines(vrrp_instance, vrrp, path),
        *_preempt_lines(vrrp, path),
        *([("accept", f"{path}:strict")] if vrrp["strict"] else []),  # strict mode drops traffic to the VIPs otherwise
        "skip_check_adv_addr",  # see the module's docstring
        *_split_brain_lines(vrrp, path),
        *_source_lines(model, vrrp_instance.family),
        *_virtual_address_blocks(model, vrrp_instance),
        _block("track_script", [CHECK_NAME, *([(PROBE_NAME, f"{path}:probe:enabled")] if vrrp["probe"]["enabled"] else [])]),
        _block("track_file", [(name, key) for name, key in _track_file_keys(model)]),
    ]
    title = f"vrrp_instance {vrrp_instance.name}"
    return _block(title, items, written_by_lbpair(title))


def _sync_groups(vrrp_instances):
    """An instance with IPv4 and IPv6 VIPs is two keepalived instances: a sync group moves them together."""
    names = {}
    for vrrp in vrrp_instances:
        names.setdefault(vrrp.instance, []).append(vrrp.name)
    groups = []
    for members in names.values():
        if len(members) > 1:
            title = f"vrrp_sync_group {members[0]}"
            # without it keepalived ignores weighted tracking (the check, defer) in a sync group
            groups.append(_block(title, [_block("group", members), "sync_group_tracking_weight"], written_by_lbpair(title)))
    return groups


def render_lines(model):
    """
    keepalived.conf for a normalised model of one node as ``[(line, key), ...]``:
    each line with the pillar key it comes from (``lbpair:vrrp:interface``).
    """
    probe = [_probe_script(model)] if model["vrrp"]["probe"]["enabled"] else []
    own = keepalived_model.vrrp_instances(model)
    instances = [*_sync_groups(own), *(_vrrp_instance(model, vrrp) for vrrp in own)]
    sections = [_global_defs(model), _vrrp_script(model["vrrp"]["check"]), *probe, *_track_file_blocks(model), *instances]
    return sections_after_header(HEADER.rstrip("\n"), sections)


def render_config(model):
    """The complete keepalived.conf for a normalised model of one node, deterministic."""
    return text_of(render_lines(model))


def installed_vips(text):
    """
    ``{instance: [vip, ...]}`` of a keepalived.conf lbpair wrote (:func:`render_config`): the
    VIPs keepalived runs with, whatever the minion's in-memory pillar says.
    """
    vips, instance, in_block = {}, None, False
    for words in (line.split() for line in text.splitlines()):
        if len(words) == 3 and words[0] == "vrrp_instance" and words[2] == "{":
            instance = words[1]
            vips[instance] = []
        elif instance and words in (["virtual_ipaddress", "{"], ["virtual_ipaddress_excluded", "{"]):
            in_block = True
        elif words == ["}"]:
            in_block = False
        elif in_block and words:
            vips[instance].append(words[0].split("/")[0])
    return vips
