"""keepalived nodes without a machine: a network namespace, a private dbus-daemon, keepalived.

For tests that need real VRRP and keepalived's D-Bus interface but not systemd: the node's
keepalived runs in its namespace with ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at the node's own
dbus-daemon, whose socket any process on the host (a salt-minion, a beacon) can reach. Each node
has its own ``TMPDIR``, so keepalived's JSON dump does not collide with the other node's.

A node's VRRP check is a file test (:func:`tracked_file_pillar`): removing the node's ``healthy``
file (:meth:`KeepalivedNode.set_healthy`) causes a real failover.
"""

import contextlib
import copy
import os
import re
import signal
import subprocess
import time

from lab import netns
from lab.util import stop_process, wait_until

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <policy user="root">
    <allow own="org.keepalived.Vrrp1"/>
  </policy>
</busconfig>
"""
HEALTHY = "HEALTHY"  # placeholder in the check script, replaced by the node's healthy file


def tracked_file_pillar(seed_pillar, interval=1):
    """
    *seed_pillar* with the HAProxy check replaced by a test of the node's ``healthy`` file, and no
    failback delay: these rigs move the VIPs at will (:meth:`Pair.make_master`) with no master to
    hand them back, so the preferred node starts as MASTER and preempts at once, as before the delay.
    """
    pillar = copy.deepcopy(seed_pillar)
    pillar["vrrp"]["failback_delay"] = 0
    check = {"script": f"/usr/bin/test -e {HEALTHY}", "interval": interval, "weight": 2, "fall": 1, "rise": 1}
    pillar["vrrp"]["check"] = check
    pillar["vrrp"]["probe"] = {"enabled": False}  # no HAProxy beside these nodes to ask
    return pillar


class KeepalivedNode:
    """One node: namespace *namespace*, its own dbus-daemon and keepalived, started and stopped at will."""

    def __init__(self, name, address, namespace, workdir):
        self.name, self.address, self.namespace = name, address, namespace
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmpdir = self.dir / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.socket = self.dir / "bus.sock"
        self.bus_address = f"unix:path={self.socket}"
        self.config = self.dir / "keepalived.conf"
        self.healthy_file = self.dir / "healthy"
        self.flap_file = self.dir / "flap"
        self.pid_file = self.dir / "pid.pid"
        self.bus_pid = None
        self.keepalived = None

    def minion_options(self):
        """``lbpair_keepalived`` minion options that point a minion at this node."""
        return {
            "bus": self.bus_address, "pid_file": str(self.pid_file), "json_file": str(self.tmpdir / "keepalived.json"),
            "config_file": str(self.config),
        }  # fmt: skip

    # --- the check ------------------------------------------------------------------------------

    def set_healthy(self, healthy):
        if healthy:
            self.healthy_file.touch()
        else:
            self.healthy_file.unlink(missing_ok=True)

    def set_flap(self, fault):
        """Write the file a ``vrrp_track_file`` may follow: non-zero puts the instance in FAULT at once."""
        temporary = self.dir / "flap.tmp"
        temporary.write_text("1\n" if fault else "0\n")
        temporary.rename(self.flap_file)

    def vrrp_log(self):
        """keepalived's own record of its transitions: ``[(instance, STATE), ...]``."""
        found = []
        for line in (self.dir / "keepalived.log").read_text().splitlines():
            match = re.search(r"\((\S+)\) Entering (\w+) STATE", line)
            if match:
                found.append((match.group(1), match.group(2)))
        return found

    def holds_vip(self, vip="203.0.113.10"):
        return vip in netns.ip(self.namespace, "-4", "addr", "show", "eth0").stdout

    # --- dbus-daemon ----------------------------------------------------------------------------

    def start_bus(self):
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONFIG.format(address=self.bus_address))
        self.socket.unlink(missing_ok=True)
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-pid"],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.bus_pid = int(out.stdout.split()[0])
        wait_until(self.socket.exists, 5, interval=0.05, what="bus socket")

    def stop_bus(self):
        if self.bus_pid:
            _kill_and_wait(self.bus_pid)
            self.bus_pid = None

    # --- keepalived -----------------------------------------------------------------------------

    def write_config(self, text):
        """Write keepalived.conf (rendered for this node; ``HEALTHY`` becomes its healthy file)."""
        self.config.write_text(text.replace(HEALTHY, str(self.healthy_file)))

    def start_keepalived(self):
        pids = [f"--{kind}={self.dir / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address, "TMPDIR": str(self.tmpdir)}
        command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(self.config), *pids]
        with open(self.dir / "keepalived.log", "a") as log:
            self.keepalived = netns.popen(self.namespace, command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop_keepalived(self, sig=signal.SIGTERM):
        if self.keepalived is not None:
            stop_process(self.keepalived, sig=sig)
            self.keepalived = None

    def start(self, config_text):
        """Write the configuration, start the bus, then keepalived."""
        self.write_config(config_text)
        self.start_bus()
        self.start_keepalived()

    def stop(self):
        self.stop_keepalived()
        self.stop_bus()


def _kill_and_wait(pid, timeout=5):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Pair:
    """The nodes of a pair, by name."""

    def __init__(self, nodes):
        self.nodes = nodes

    def masters(self):
        return sorted(name for name, node in self.nodes.items() if node.holds_vip())

    def wait_masters(self, expected, timeout=20):
        return wait_until(lambda: self.masters() == expected, timeout, what=f"MASTER {expected} (now {self.masters()})")

    def make_master(self, name):
        """Make *name* the only MASTER through a real failover (the others' checks fail)."""
        for node in self.nodes.values():
            node.set_healthy(node.name == name)
        self.wait_masters([name])


@contextlib.contextmanager
def linked_nodes(prefix, workdir, addresses):
    """
    Two nodes ``{name: address}`` in namespaces ``<prefix>-<name>`` joined by a veth, nothing
    started yet; yields ``{name: KeepalivedNode}``; stops and removes everything afterwards.
    """
    if len(addresses) != 2:
        raise ValueError("a veth link joins exactly two nodes")
    nodes = {name: KeepalivedNode(name, address, f"{prefix}-{name}", workdir) for name, address in addresses.items()}
    created = []
    try:
        for node in nodes.values():
            netns.add(node.namespace)
            created.append(node.namespace)
        first, second = nodes.values()
        netns.veth(first.namespace, "eth0", second.namespace, "eth0")
        for node in nodes.values():
            netns.add_address(node.namespace, "eth0", f"{node.address}/24")
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()
        for namespace in created:
            netns.delete(namespace)


@contextlib.contextmanager
def keepalived_pair(prefix, workdir, pillar, render):
    """
    The pillar's two nodes started (:func:`linked_nodes`), each configured by
    ``render(node) -> keepalived.conf text``; yields the :class:`Pair` once the
    highest-priority node is MASTER.
    """
    addresses = {name: spec["address"] for name, spec in pillar["nodes"].items()}
    with linked_nodes(prefix, workdir, addresses) as nodes:
        for name, node in nodes.items():
            node.set_healthy(True)
            node.start(render(name))
        pair = Pair(nodes)
        pair.wait_masters([max(addresses, key=lambda name: pillar["nodes"][name]["priority"])])
        yield pair
