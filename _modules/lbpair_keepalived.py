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
      json_file: /tmp/keepalived.json   # keepalived writes it to $TMPDIR/keepalived.json
      bus: system                       # or a D-Bus address, e.g. unix:path=/run/lb1/bus.sock

The pair shares one VRRP instance, ``lbpair_<vrid>``, holding every service's
virtual IP; a ``vrrp_script`` tracks HAProxy so that a node whose HAProxy is down
loses the virtual IPs. The VRRP adverts carry one of them (the lowest) and the
rest are ``virtual_ipaddress_excluded``: keepalived drops adverts whose address
list differs from its own and the BACKUP would take over while a new service
rolls out node by node; with one address in the adverts, adding or removing
services does not change them (``skip_check_adv_addr`` covers the MASTER being
reloaded first when the advertised address itself changes).

``status`` reads the instances' ``Name`` and ``State`` over keepalived's D-Bus
interface (bus ``lbpair_keepalived:bus``) and falls back to the JSON dump. The
``dbus_*`` coroutines, ``parse_instance_path`` and ``state_name`` are pure
helpers for the ``lbpair_vrrp`` beacon (which cannot import this module), not
functions to call from the command line.
"""

import asyncio
import concurrent.futures
import json
import logging
import os
import signal
import time
import xml.etree.ElementTree as ET

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "lbpair_keepalived"

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
CHECK_NAME = "lbpair_haproxy"
STATE_NAMES = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "DELETED", 98: "STOP"}
DBUS_NAME = "org.keepalived.Vrrp1"
DBUS_ROOT = "/org/keepalived/Vrrp1"
DBUS_INSTANCES = f"{DBUS_ROOT}/Instance"
DBUS_INSTANCE_INTERFACE = "org.keepalived.Vrrp1.Instance"


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
    blocks = [_block("virtual_ipaddress", addresses[:1])]
    if addresses[1:]:
        blocks.append(_block("virtual_ipaddress_excluded", addresses[1:]))
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
        "skip_check_adv_addr",  # see the module's docstring
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
            "vips": [vip.split()[0] for vip in data.get("vips", []) + data.get("evips", []) if vip.strip()],
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


# --- D-Bus (pure, dbus-next) ----------------------------------------------------


def state_name(state):
    """The name of a keepalived state number (``2`` -> ``MASTER``); unknown numbers as text."""
    return STATE_NAMES.get(state, str(state))


def parse_instance_path(path):
    """
    ``/org/keepalived/Vrrp1/Instance/eth0/51/IPv4`` -> ``{"interface": "eth0", "vrid": 51,
    "family": "IPv4"}``; ``None`` for any other path.
    """
    prefix = f"{DBUS_INSTANCES}/"
    parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return {"interface": parts[0], "vrid": int(parts[1]), "family": parts[2]}


async def _dbus_call(bus, destination, path, interface, member, signature="", body=()):
    from dbus_next import Message, MessageType  # pylint: disable=import-outside-toplevel

    message = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=list(body))
    reply = await bus.call(message)
    if reply.message_type == MessageType.ERROR:
        raise OSError(f"D-Bus {member} {path}: {reply.error_name} {reply.body}")
    return reply.body


async def dbus_instance_paths(bus, destination=DBUS_NAME, path=DBUS_INSTANCES):
    """The object paths of keepalived's VRRP instances, found by walking ``Introspect``."""
    introspectable = "org.freedesktop.DBus.Introspectable"
    node = ET.fromstring((await _dbus_call(bus, destination, path, introspectable, "Introspect"))[0])
    if any(interface.get("name") == DBUS_INSTANCE_INTERFACE for interface in node.findall("interface")):
        return [path]
    paths = []
    for child in node.findall("node"):
        paths.extend(await dbus_instance_paths(bus, destination, f"{path}/{child.get('name')}"))
    return paths


async def dbus_instance(bus, path, destination=DBUS_NAME):
    """
    ``{"name", "state" (number), "interface", "vrid", "family"}`` of the instance at
    ``path``. keepalived's properties are structs: ``Name`` is ``(s)``, ``State`` ``(us)``.
    """
    properties = "org.freedesktop.DBus.Properties"
    get = (properties, "Get", "ss")
    name = (await _dbus_call(bus, destination, path, *get, [DBUS_INSTANCE_INTERFACE, "Name"]))[0].value[0]
    state = (await _dbus_call(bus, destination, path, *get, [DBUS_INSTANCE_INTERFACE, "State"]))[0].value
    return {"name": name, "state": state[0], **(parse_instance_path(path) or {})}


async def dbus_instances(bus, destination=DBUS_NAME):
    """``{path: dbus_instance(...)}`` for every VRRP instance keepalived has on ``bus``."""
    return {path: await dbus_instance(bus, path, destination) for path in await dbus_instance_paths(bus, destination)}


async def dbus_watch(bus):
    """
    Subscribe ``bus`` to everything keepalived sends under ``/org/keepalived/Vrrp1``
    and to owner changes of its name; return the name's owner now (None if unowned).

    The match is on the path, not on the sender: keepalived's ``VrrpStarted`` and
    first status signals come before it owns ``org.keepalived.Vrrp1``.
    """
    daemon = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
    rules = (
        f"type='signal',path_namespace='{DBUS_ROOT}'",
        f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{DBUS_NAME}'",
    )
    for rule in rules:
        await _dbus_call(bus, *daemon, "AddMatch", "s", [rule])
    try:
        return (await _dbus_call(bus, *daemon, "GetNameOwner", "s", [DBUS_NAME]))[0]
    except OSError:  # org.freedesktop.DBus.Error.NameHasNoOwner
        return None


async def dbus_connect(bus):
    """A connected dbus-next ``MessageBus`` for ``system`` or a D-Bus address."""
    from dbus_next import BusType  # pylint: disable=import-outside-toplevel
    from dbus_next.aio import MessageBus  # pylint: disable=import-outside-toplevel

    if bus in (None, "", "system"):
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    return await MessageBus(bus_address=bus).connect()


def read_dbus(bus="system", timeout=5.0):
    """
    Read every instance's Name and State from keepalived over D-Bus; returns
    ``{name: {"state": NAME, "interface", "vrid", "family"}}``. Runs in a thread
    of its own, so it also works where an event loop is running.
    """

    async def read():
        connection = await asyncio.wait_for(dbus_connect(bus), timeout)
        try:
            return await asyncio.wait_for(dbus_instances(connection), timeout)
        finally:
            connection.disconnect()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        found = pool.submit(asyncio.run, read()).result()
    return {
        instance["name"]: {**{key: instance[key] for key in ("interface", "vrid", "family")},
                           "state": state_name(instance["state"])}
        for instance in found.values()
    }


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
    if "lbpair_keepalived.json_signal" in __context__:
        return __context__["lbpair_keepalived.json_signal"]
    binary = _option("binary", "keepalived")
    result = __salt__["cmd.run_all"]([binary, "--signum=JSON"], python_shell=False, ignore_retcode=True)
    if result["retcode"] != 0 or not result["stdout"].strip().isdigit():
        raise CommandExecutionError("this keepalived was built without JSON support")
    __context__["lbpair_keepalived.json_signal"] = int(result["stdout"].strip())
    return __context__["lbpair_keepalived.json_signal"]


def parse_version(text):
    """What a keepalived build supports, from ``keepalived --version``: ``{"dbus": bool, "json": bool}``."""
    return {"dbus": "--enable-dbus" in text, "json": "--enable-json" in text}


def features():
    """
    What this keepalived was built with: ``{"dbus": True, "json": True}``.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.features
    """
    binary = _option("binary", "keepalived")
    result = __salt__["cmd.run_all"]([binary, "--version"], python_shell=False, ignore_retcode=True)
    return parse_version(result["stdout"] + result["stderr"])


def running():
    """
    Whether keepalived runs: its main pid (``pid_file``) is alive.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.running
    """
    try:
        os.kill(_main_pid(), 0)
    except (CommandExecutionError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def json_status(timeout=5.0):
    """
    The VRRP state of every instance from keepalived's JSON dump (keepalived is
    signalled to write it): ``{name: {"state", "interface", "vrid", "priority", "vips"}}``.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.json_status
    """
    json_file = _option("json_file", "/tmp/keepalived.json")
    try:
        text = request_json_dump(_main_pid(), json_file, _json_signal(), timeout=float(timeout))
    except (OSError, TimeoutError) as exc:
        raise CommandExecutionError(f"cannot read keepalived's state: {exc}") from exc
    return parse_json_dump(text)


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def json_request():
    """
    Ask keepalived to write its JSON dump and return at once: a token for
    ``json_read`` (the file's modification time before the request).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.json_request
    """
    json_file = _option("json_file", "/tmp/keepalived.json")
    before = _mtime(json_file)
    try:
        os.kill(_main_pid(), _json_signal())
    except OSError as exc:
        raise CommandExecutionError(f"cannot signal keepalived: {exc}") from exc
    return before


def json_read(token):
    """
    The instances of the JSON dump if keepalived wrote it after ``json_request``
    returned ``token``; ``None`` while it has not (or is still writing it).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.json_read 1795698683398471000
    """
    json_file = _option("json_file", "/tmp/keepalived.json")
    if _mtime(json_file) in (0, int(token)):
        return None
    try:
        with open(json_file, encoding="utf-8") as handle:
            return parse_json_dump(handle.read())
    except (OSError, ValueError):
        return None


def status():
    """
    Return the VRRP state of every instance on this node: ``{name: {"state": "MASTER", ...}}``.

    Read over D-Bus (instance ``Name`` and ``State``) from the bus in the minion
    option ``lbpair_keepalived:bus`` (default: the system bus); when keepalived is
    not on that bus, or dbus-next is missing, from keepalived's JSON dump. The
    ``source`` key says which (``dbus`` or ``json``).

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_keepalived.status
    """
    bus = _option("bus", "system")
    try:
        instances, source = read_dbus(bus), "dbus"
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("lbpair_keepalived: no state over D-Bus (%s): %s; reading the JSON dump", bus, exc)
        instances, source = {}, "json"
    if not instances:
        instances, source = json_status(), "json"
    return {name: {**instance, "source": source} for name, instance in instances.items()}


def instance_vips():
    """
    The virtual IPs of this pair's VRRP instance, from the pillar:
    ``{"lbpair_51": ["203.0.113.10", ...]}`` (``{}`` without a valid lbpair pillar).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.instance_vips
    """
    try:
        model = __salt__["lbpair_config.model"]()
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("lbpair_keepalived: no VIPs from the pillar: %s", exc)
        return {}
    vips = sorted({service["vip"] for service in model["services"].values()}, key=_address_key)
    return {instance_name(model): vips}


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
