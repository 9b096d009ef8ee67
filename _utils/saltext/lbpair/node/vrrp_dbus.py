"""
keepalived's D-Bus interface (``org.keepalived.Vrrp1``), with dbus-next.

keepalived publishes one object per VRRP instance,
``/org/keepalived/Vrrp1/Instance/<interface>/<vrid>/<IPv4|IPv6>``, with the
properties ``Name`` ``(s)`` and ``State`` ``(us)`` and the signal
``VrrpStatusChange(u)``; ``/org/keepalived/Vrrp1/Vrrp`` sends ``VrrpStarted``,
``VrrpReloaded`` and ``VrrpStopped``. There is no ObjectManager: instances are
found by walking ``Introspect``.
"""

import asyncio
import concurrent.futures
import xml.etree.ElementTree as ET

from saltext.lbpair.model.keepalived_model import state_name

DBUS_NAME = "org.keepalived.Vrrp1"
DBUS_ROOT = "/org/keepalived/Vrrp1"
DBUS_INSTANCES = f"{DBUS_ROOT}/Instance"
DBUS_INSTANCE_INTERFACE = "org.keepalived.Vrrp1.Instance"


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


async def _call(bus, destination, path, interface, member, signature="", body=()):
    from dbus_next import Message, MessageType

    message = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=list(body))
    reply = await bus.call(message)
    if reply.message_type == MessageType.ERROR:
        raise OSError(f"D-Bus {member} {path}: {reply.error_name} {reply.body}")
    return reply.body


async def instance_paths(bus, destination=DBUS_NAME, path=DBUS_INSTANCES):
    """The object paths of keepalived's VRRP instances, found by walking ``Introspect``."""
    introspectable = "org.freedesktop.DBus.Introspectable"
    node = ET.fromstring((await _call(bus, destination, path, introspectable, "Introspect"))[0])
    if any(interface.get("name") == DBUS_INSTANCE_INTERFACE for interface in node.findall("interface")):
        return [path]
    paths = []
    for child in node.findall("node"):
        paths.extend(await instance_paths(bus, destination, f"{path}/{child.get('name')}"))
    return paths


async def instance(bus, path, destination=DBUS_NAME):
    """
    ``{"name", "state" (number), "interface", "vrid", "family"}`` of the instance at
    ``path``. keepalived's properties are structs: ``Name`` is ``(s)``, ``State`` ``(us)``.
    """
    properties = "org.freedesktop.DBus.Properties"
    get = (properties, "Get", "ss")
    name = (await _call(bus, destination, path, *get, [DBUS_INSTANCE_INTERFACE, "Name"]))[0].value[0]
    state = (await _call(bus, destination, path, *get, [DBUS_INSTANCE_INTERFACE, "State"]))[0].value
    return {"name": name, "state": state[0], **(parse_instance_path(path) or {})}


async def instances(bus, destination=DBUS_NAME):
    """``{path: instance(...)}`` for every VRRP instance keepalived has on ``bus``."""
    return {path: await instance(bus, path, destination) for path in await instance_paths(bus, destination)}


async def watch(bus):
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
        await _call(bus, *daemon, "AddMatch", "s", [rule])
    try:
        return (await _call(bus, *daemon, "GetNameOwner", "s", [DBUS_NAME]))[0]
    except OSError:  # org.freedesktop.DBus.Error.NameHasNoOwner
        return None


async def connect(bus):
    """A connected dbus-next ``MessageBus`` for ``system`` or a D-Bus address."""
    from dbus_next import BusType
    from dbus_next.aio import MessageBus

    if bus in (None, "", "system"):
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    return await MessageBus(bus_address=bus).connect()


def read_states(bus="system", timeout=5.0):
    """
    Read every instance's Name and State from keepalived over D-Bus; returns
    ``{name: {"state": NAME, "interface", "vrid", "family"}}``. Runs in a thread
    of its own, so it also works where an event loop is running.
    """

    async def read():
        connection = await asyncio.wait_for(connect(bus), timeout)
        try:
            return await asyncio.wait_for(instances(connection), timeout)
        finally:
            connection.disconnect()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        found = pool.submit(asyncio.run, read()).result()
    return {
        item["name"]: {**{key: item[key] for key in ("interface", "vrid", "family")}, "state": state_name(item["state"])}
        for item in found.values()
    }
