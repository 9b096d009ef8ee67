"""keepalived nodes without a machine: a network namespace, a private dbus-daemon, keepalived.

For tests that need real VRRP and keepalived's D-Bus interface but not systemd: the node's
keepalived runs in its namespace with ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at the node's own
dbus-daemon, whose socket any process on the host (a salt-minion, a beacon) can reach. Each node
has its own ``TMPDIR``, so keepalived's JSON dump does not collide with the other node's.
A node's VRRP check is a file test (:func:`tracked_file_pillar`): :meth:`KeepalivedNode.set_healthy`
causes a real failover.
"""

import contextlib
import copy
import os
import signal
import subprocess

from lab import netns
from lab.util import wait_until

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""
HEALTHY = "HEALTHY"  # placeholder in the check script, replaced by the node's file


def tracked_file_pillar(seed_pillar, interval=1):
    """*seed_pillar* with the HAProxy check replaced by a test of the node's ``healthy`` file."""
    pillar = copy.deepcopy(seed_pillar)
    check = {"script": f"/usr/bin/test -e {HEALTHY}", "interval": interval, "weight": 2, "fall": 1, "rise": 1}
    pillar["vrrp"]["check"] = check
    return pillar


class KeepalivedNode:
    """One node: namespace *namespace*, its own dbus-daemon, keepalived tracking a ``healthy`` file."""

    def __init__(self, name, address, namespace, workdir):
        self.name, self.address, self.namespace = name, address, namespace
        self.dir = workdir / name
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir(parents=True)
        self.bus_address = f"unix:path={self.dir / 'bus.sock'}"
        self.healthy_file = self.dir / "healthy"
        self.pid_file = self.dir / "pid.pid"
        self.config_text = None
        self.bus_pid = None
        self.process = None

    def minion_options(self):
        """``lbpair_keepalived`` minion options that point a minion at this node."""
        return {"bus": self.bus_address, "pid_file": str(self.pid_file), "json_file": str(self.tmp / "keepalived.json")}

    def set_healthy(self, healthy):
        if healthy:
            self.healthy_file.touch()
        else:
            self.healthy_file.unlink(missing_ok=True)

    def start_bus(self):
        (self.dir / "bus.conf").write_text(BUS_CONFIG.format(address=self.bus_address))
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--fork", "--print-pid"],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.bus_pid = int(out.stdout.split()[0])

    def stop_bus(self):
        if self.bus_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.bus_pid, signal.SIGTERM)
            self.bus_pid = None

    def start_keepalived(self, config_text=None):
        """Start keepalived with *config_text* (rendered for this node; the last one if omitted)."""
        self.config_text = config_text or self.config_text
        (self.dir / "keepalived.conf").write_text(self.config_text.replace(HEALTHY, str(self.healthy_file)))
        pids = [f"--{kind}={self.dir / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address, "TMPDIR": str(self.tmp)}
        command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(self.dir / "keepalived.conf"), *pids]
        with open(self.dir / "keepalived.log", "a") as log:
            self.process = netns.popen(self.namespace, command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop_keepalived(self):
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def start(self, config_text):
        self.start_bus()
        self.start_keepalived(config_text)

    def stop(self):
        self.stop_keepalived()
        self.stop_bus()

    def holds_vip(self, vip="203.0.113.10"):
        return vip in netns.ip(self.namespace, "-4", "addr", "show", "eth0").stdout


class Pair:
    """Two or more :class:`KeepalivedNode` on one link, by name."""

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
def keepalived_pair(prefix, workdir, pillar, render):
    """
    Start a node for every ``pillar["nodes"]`` entry in namespaces ``<prefix>-<node>`` on one
    veth link, each configured by ``render(node) -> keepalived.conf text``; yield the :class:`Pair`
    once the highest-priority node is MASTER; stop and remove everything afterwards.
    """
    names = list(pillar["nodes"])
    if len(names) != 2:
        raise ValueError("a veth link joins exactly two nodes")
    nodes = {
        name: KeepalivedNode(name, pillar["nodes"][name]["address"], f"{prefix}-{name}", workdir) for name in names
    }
    created = []
    try:
        for node in nodes.values():
            netns.add(node.namespace)
            created.append(node.namespace)
        netns.veth(nodes[names[0]].namespace, "eth0", nodes[names[1]].namespace, "eth0")
        for name, node in nodes.items():
            netns.add_address(node.namespace, "eth0", f"{node.address}/24")
            node.set_healthy(True)
            node.start(render(name))
        preferred = max(names, key=lambda name: pillar["nodes"][name]["priority"])
        pair = Pair(nodes)
        pair.wait_masters([preferred])
        yield pair
    finally:
        for node in nodes.values():
            node.stop()
        for namespace in created:
            netns.delete(namespace)
