"""
A driver of keepalived's D-Bus interface: many nodes' VRRP states, flipped at will, without keepalived.

Forty real keepalived do not fit on the lab's two cores; the storm benchmark needs forty nodes
whose minions run the unmodified ``lbpair_vrrp`` beacon. Each node gets its own dbus-daemon (the
policy of :mod:`lab.vrrp_node`: root may own ``org.keepalived.Vrrp1``), and one process
(``python -m lab.vrrp_driver``, asyncio and dbus-next) serves every node's bus as keepalived 2.2.7
does (see /work/shared/FACTS.md): the instance object
``/org/keepalived/Vrrp1/Instance/eth0/51/IPv4`` (interface ``org.keepalived.Vrrp1.Instance``,
properties ``Name`` ``(s)`` = ``lbpair_51`` and ``State`` ``(us)``, signal ``VrrpStatusChange(u)``)
and ``/org/keepalived/Vrrp1/Vrrp`` (signals ``VrrpStarted``, ``VrrpReloaded``, ``VrrpStopped``),
found by walking ``Introspect``. Like keepalived it sends ``VrrpStarted`` and the first status
signal before it owns its name, and no ``PropertiesChanged``.

That is all the beacon and ``lbpair_keepalived.status`` read while keepalived is on the bus. The
nodes have no keepalived process: no pid file and no JSON dump, so what needs one (the beacon's
fallback when keepalived is off the bus, hand-overs) is not there to drive.

Control: a line on the driver's stdin, ``p01a BACKUP p01b MASTER ...``, sets those nodes' states
and sends their signals at once; the driver answers ``done <first> <last>`` (epoch seconds at which
it sent the first and the last signal). :class:`Driver` is the parent's side.
"""

import asyncio
import contextlib
import subprocess
import sys
import time

from lab.util import stop_process
from lab.vrrp_node import KeepalivedNode
from saltext.lbpair.node import vrrp_dbus

INSTANCE_NAME = "lbpair_51"
INSTANCE_PATH = f"{vrrp_dbus.DBUS_INSTANCES}/eth0/51/IPv4"
VRRP_PATH = f"{vrrp_dbus.DBUS_ROOT}/Vrrp"
#: keepalived's state numbers and the text of its ``State`` property
STATES = {"INIT": (0, "Init"), "BACKUP": (1, "Backup"), "MASTER": (2, "Master"), "FAULT": (3, "Fault")}


def _interfaces():
    """The two keepalived interfaces as dbus-next service classes (dbus-next is imported only in the driver)."""
    from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, signal

    class Instance(ServiceInterface):
        """One VRRP instance: ``Name``, ``State`` and ``VrrpStatusChange``, as keepalived has them."""

        def __init__(self, state):
            super().__init__(vrrp_dbus.DBUS_INSTANCE_INTERFACE)
            self.state = state

        @dbus_property(access=PropertyAccess.READ)
        def Name(self) -> "(s)":  # noqa: F722,F821  (a D-Bus signature, as dbus-next reads it)
            return [INSTANCE_NAME]

        @dbus_property(access=PropertyAccess.READ)
        def State(self) -> "(us)":  # noqa: F722,F821
            return list(STATES[self.state])

        @signal()
        def VrrpStatusChange(self) -> "u":  # noqa: F821
            return STATES[self.state][0]

    class Vrrp(ServiceInterface):
        """keepalived's VRRP process: the signals of its start, reload and stop."""

        def __init__(self):
            super().__init__(f"{vrrp_dbus.DBUS_NAME}.Vrrp")

        @signal()
        def VrrpStarted(self) -> "u":  # noqa: F821
            return 0

        @signal()
        def VrrpReloaded(self) -> "u":  # noqa: F821
            return 0

        @signal()
        def VrrpStopped(self) -> "u":  # noqa: F821
            return 0

    return Instance, Vrrp


async def serve(buses):
    """Serve ``{node: (bus address, first state)}``; apply the control lines read on stdin until it closes."""
    from dbus_next.aio import MessageBus

    instance_class, vrrp_class = _interfaces()
    instances, connections = {}, []
    for node, (address, state) in buses.items():
        bus = await MessageBus(bus_address=address).connect()
        connections.append(bus)
        instances[node], vrrp = instance_class(state), vrrp_class()
        bus.export(INSTANCE_PATH, instances[node])
        bus.export(VRRP_PATH, vrrp)
        vrrp.VrrpStarted()  # keepalived's order: started, the first state, then its name
        instances[node].VrrpStatusChange()
        await bus.request_name(vrrp_dbus.DBUS_NAME)
    _answer("ready")
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        sent = []
        for node, state in zip(words[::2], words[1::2], strict=True):
            instances[node].state = state
            sent.append(time.time())
            instances[node].VrrpStatusChange()
        await asyncio.sleep(0)  # let the writes go out before answering
        _answer(f"done {sent[0]:.6f} {sent[-1]:.6f}" if sent else "done")
    for bus in connections:
        bus.disconnect()


def _answer(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Driver:
    """
    Nodes ``{name: (address, first state)}`` with a dbus-daemon each (as :class:`lab.vrrp_node.KeepalivedNode`
    has, under *workdir*) and the driver serving them; ``.nodes`` are those nodes (``minion_options()``,
    ``bus_address``). Use as a context manager: everything is stopped after, also on failure.
    """

    def __init__(self, workdir, nodes):
        self.first = {name: state for name, (_, state) in nodes.items()}
        self.nodes = {name: KeepalivedNode(name, address, None, workdir) for name, (address, _) in nodes.items()}
        self.process = None

    def __enter__(self):
        try:
            for node in self.nodes.values():
                node.start_bus()
            arguments = [f"{name}={node.bus_address}={self.first[name]}" for name, node in self.nodes.items()]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lab.vrrp_driver", *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            if self.process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the D-Bus driver did not start (exit {self.process.poll()})")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_):
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            stop_process(self.process)
            self.process.stdout.close()
            self.process = None
        for node in self.nodes.values():
            node.stop_bus()

    def set(self, states):
        """Set ``{node: STATE}`` at once; ``(first, last)``: when the first and the last signal went out (epoch)."""
        self.process.stdin.write(" ".join(f"{node} {state}" for node, state in states.items()) + "\n")
        self.process.stdin.flush()
        words = self.process.stdout.readline().split()
        if not words or words[0] != "done":
            raise RuntimeError(f"the D-Bus driver answered {words!r} (exit {self.process.poll()})")
        return (float(words[1]), float(words[2])) if len(words) == 3 else (None, None)


def main(arguments):
    buses = {}
    for argument in arguments:
        node, bus = argument.split("=", 1)  # p01a=unix:path=/x/bus.sock=MASTER
        address, state = bus.rsplit("=", 1)
        buses[node] = (address, state)
    asyncio.run(serve(buses))


if __name__ == "__main__":
    main(sys.argv[1:])
