"""
keepalived for an lbpair node: render the VRRP configuration from the ``lbpair``
pillar, check it with ``keepalived -t``, reload it (SIGHUP through the service
manager, never a restart), and report the VRRP state.

Minion configuration (all optional):

.. code-block:: yaml

    lbpair_keepalived:
      config_file: /etc/keepalived/keepalived.conf
      service: keepalived
      binary: keepalived
      pid_file: /run/keepalived.pid
      json_file: /tmp/keepalived.json

The pair shares one VRRP instance, ``lbpair_<vrid>``, holding every service's
virtual IP; a ``vrrp_script`` tracks HAProxy so that a node whose HAProxy is down
loses the virtual IPs. keepalived takes at most 255 addresses in one
``virtual_ipaddress`` block: the rest go to ``virtual_ipaddress_excluded``.
"""

import json
import os
import signal
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "lbpair_keepalived"

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
MAX_VIPS_PER_BLOCK = 255
CHECK_NAME = "lbpair_haproxy"
STATE_NAMES = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "DELETED", 98: "STOP"}


def __virtual__():
    return __virtualname__


# --- rendering (pure) ---------------------------------------------------------


def instance_name(model):
    """The name of the pair's VRRP instance."""
    return f"lbpair_{model['vrrp']['virtual_router_id']}"


def _block(title, items):
    """A ``title { ... }`` block as lines; an item that is a list is a nested block."""
    lines = [f"{title} {{"]
    for item in items:
        nested = item if isinstance(item, list) else [item]
        lines.extend(f"    {line}" for line in nested)
    lines.append("}")
    return lines


def _global_defs(model):
    directives = (f"{keyword} {value}".rstrip() for keyword, value in model["keepalived"]["global_defs"])
    return _block("global_defs", [f"router_id {model['node']['name']}", *directives])


def _vrrp_script(check):
    return _block(
        f"vrrp_script {CHECK_NAME}",
        [
            f'script "{check["script"]}"',
            f"interval {check['interval']}",
            f"weight {check['weight']}",
            f"fall {check['fall']}",
            f"rise {check['rise']}",
        ],
    )


def _is_preferred_master(model):
    highest = max(node["priority"] for node in model["nodes"].values())
    return model["node"]["priority"] == highest


def _address_key(address):
    return tuple(int(part) for part in address.split("."))


def _virtual_address_blocks(model):
    interface = model["vrrp"]["interface"]
    vips = sorted({service["vip"] for service in model["services"].values()}, key=_address_key)
    addresses = [f"{vip}/32 dev {interface}" for vip in vips]
    blocks = []
    for title, chunk in (
        ("virtual_ipaddress", addresses[:MAX_VIPS_PER_BLOCK]),
        ("virtual_ipaddress_excluded", addresses[MAX_VIPS_PER_BLOCK:]),
    ):
        if chunk:
            blocks.append(_block(title, chunk))
    return blocks


def _source_lines(model):
    node_address = model["node"]["address"]
    if not model["vrrp"]["unicast"]:
        return [f"mcast_src_ip {node_address}"]
    peers = [peer["address"] for peer in model["peers"].values()]
    return [f"unicast_src_ip {node_address}", _block("unicast_peer", peers)]


def _vrrp_instance(model):
    vrrp = model["vrrp"]
    master = vrrp["preempt"] and _is_preferred_master(model)
    items = [
        f"state {'MASTER' if master else 'BACKUP'}",
        f"interface {vrrp['interface']}",
        f"virtual_router_id {vrrp['virtual_router_id']}",
        f"priority {model['node']['priority']}",
        f"advert_int {vrrp['advert_int']}",
        *([] if vrrp["preempt"] else ["nopreempt"]),
        *_source_lines(model),
        *_virtual_address_blocks(model),
        _block("track_script", [CHECK_NAME]),
    ]
    return _block(f"vrrp_instance {instance_name(model)}", items)


def render_config(model):
    """The complete keepalived.conf for a normalised model of one node, deterministic."""
    sections = [_global_defs(model), _vrrp_script(model["vrrp"]["check"]), _vrrp_instance(model)]
    return HEADER + "".join("\n" + "\n".join(lines) + "\n" for lines in sections)


# --- runtime state (pure) -----------------------------------------------------


def parse_json_dump(text):
    """Reduce keepalived's JSON dump to ``{instance: {"state": NAME, ...}}``."""
    instances = {}
    for entry in json.loads(text):
        data = entry.get("data", {})
        state = data.get("state")
        instances[data.get("iname")] = {
            "state": STATE_NAMES.get(state, str(state)),
            "interface": data.get("ifp_ifname"),
            "vrid": data.get("vrid"),
            "priority": data.get("effective_priority", data.get("base_priority")),
            "vips": [vip for vip in data.get("vips", [])],
        }
    return instances


def request_json_dump(pid, json_file, signum, timeout=5.0):
    """Ask keepalived (main ``pid``) for its JSON dump and return the fresh file's text."""
    before = os.stat(json_file).st_mtime_ns if os.path.exists(json_file) else 0
    os.kill(pid, signum)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(json_file) and os.stat(json_file).st_mtime_ns != before:
            time.sleep(0.05)  # the file is written in one go; let the writer finish
            with open(json_file, encoding="utf-8") as handle:
                return handle.read()
        time.sleep(0.05)
    raise TimeoutError(f"keepalived wrote no {json_file} within {timeout} s")


# --- Salt functions -----------------------------------------------------------


def _option(key, default):
    return __salt__["config.get"](f"lbpair_keepalived:{key}", default)


def config_path():
    """
    The path of the live keepalived configuration this module manages.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.config_path
    """
    return _option("config_file", "/etc/keepalived/keepalived.conf")


def render(node=None, pillar=None):
    """
    Render keepalived.conf for a node from the lbpair pillar.

    node
        Minion id of the node; defaults to this minion.

    pillar
        An ``lbpair`` pillar mapping to render instead of this minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.render
        salt lb1 lbpair_keepalived.render node=lb2
    """
    return render_config(__salt__["lbpair_config.model"](node=node, pillar=pillar))


def validate(path=None):
    """
    Check a configuration file with the real ``keepalived -t``; return its messages.

    Run it on the node itself: keepalived checks that the VRRP interface exists.
    Raises ``CommandExecutionError`` with keepalived's messages if it rejects the file.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.validate /tmp/candidate.conf
    """
    binary = _option("binary", "keepalived")
    cmd = [binary, "--config-test", "--log-console", "--use-file", path or config_path()]
    return __salt__["lbpair_deploy.check_command"](cmd, "keepalived")


def reload():
    """
    Reload keepalived (SIGHUP through the service manager). Never restarts it:
    a restart makes the MASTER give up its virtual IPs.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.reload
    """
    return __salt__["lbpair_deploy.reload_service"](_option("service", "keepalived"))


def _main_pid():
    pid_file = _option("pid_file", "/run/keepalived.pid")
    try:
        with open(pid_file, encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"keepalived is not running (no pid in {pid_file}): {exc}") from exc


def _json_signal():
    binary = _option("binary", "keepalived")
    result = __salt__["cmd.run_all"]([binary, "--signum=JSON"], python_shell=False, ignore_retcode=True)
    if result["retcode"] != 0 or not result["stdout"].strip().isdigit():
        raise CommandExecutionError("this keepalived was built without JSON support")
    return int(result["stdout"].strip())


def status():
    """
    Return the VRRP state of every instance on this node, from keepalived's JSON dump.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_keepalived.status
    """
    json_file = _option("json_file", "/tmp/keepalived.json")
    try:
        text = request_json_dump(_main_pid(), json_file, _json_signal())
    except (OSError, TimeoutError) as exc:
        raise CommandExecutionError(f"cannot read keepalived's state: {exc}") from exc
    return parse_json_dump(text)


def transitions(since=0):
    """
    The VRRP transitions this node's ``lbpair_vrrp`` beacon journalled after
    sequence number ``since``, oldest first: what the master may have missed
    while it could not hear this minion.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.transitions since=41
    """
    return __salt__["lbpair_journal.since"](since)
