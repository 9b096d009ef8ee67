"""
Two real keepalived nodes for the beacon's tests and benchmark.

Each node is a network namespace (``lbpair-<tag>-lb1``) joined to the other by a
veth, with its own private dbus-daemon (a system-like bus on a unix socket in
the work folder) and keepalived started with ``DBUS_SYSTEM_BUS_ADDRESS``
pointing at it. The tracked check is a file test, so a test fails the check by
removing the node's ``healthy`` file, and a real VRRP failover follows.
"""

import contextlib
import os
import pathlib
import re
import signal
import subprocess
import time

from lab import netns

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


def node_pillar(seed_pillar, node, check_interval=1):
    """The seed pillar with the HAProxy check replaced by a test of ``node``'s healthy file."""
    pillar = {**seed_pillar, "vrrp": {**seed_pillar["vrrp"]}}
    pillar["vrrp"]["check"] = {
        "script": f"/usr/bin/test -e {node.healthy_file}",
        "interval": check_interval,
        "weight": 2,
        "fall": 1,
        "rise": 1,
    }
    return pillar


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


class Node:
    """One keepalived node: its namespace, bus and keepalived, started and stopped at will."""

    def __init__(self, name, namespace, workdir, address):
        self.name = name
        self.namespace = namespace
        self.dir = pathlib.Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.socket = self.dir / "bus.sock"
        self.bus_address = f"unix:path={self.socket}"
        self.config = self.dir / "keepalived.conf"
        self.healthy_file = self.dir / "healthy"
        self.flap_file = self.dir / "flap"
        self.pid_file = self.dir / "pid.pid"
        self.tmpdir = self.dir / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.bus_pid = None
        self.keepalived = None

    # --- the check -------------------------------------------------------------

    def set_healthy(self, healthy):
        if healthy:
            self.healthy_file.touch()
        else:
            self.healthy_file.unlink(missing_ok=True)

    def set_flap(self, fault):
        """Write the tracked file: a non-zero value puts the instance in FAULT at once."""
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

    # --- dbus-daemon -----------------------------------------------------------

    def start_bus(self):
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONFIG.format(address=self.bus_address))
        self.socket.unlink(missing_ok=True)
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-pid"],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        )
        self.bus_pid = int(out.stdout.split()[0])
        wait_until(self.socket.exists, 5, what="bus socket")

    def stop_bus(self):
        if self.bus_pid:
            _kill_and_wait(self.bus_pid)
            self.bus_pid = None

    # --- keepalived -------------------------------------------------------------

    def write_config(self, text):
        self.config.write_text(text)

    def start_keepalived(self):
        pids = [f"--{kind}={self.dir / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address, "TMPDIR": str(self.tmpdir)}
        command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(self.config), *pids]
        log = open(self.dir / "keepalived.log", "a")
        self.keepalived = netns.popen(self.namespace, command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def stop_keepalived(self, sig=signal.SIGTERM):
        if self.keepalived is not None:
            with contextlib.suppress(ProcessLookupError):
                self.keepalived.send_signal(sig)
            try:
                self.keepalived.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.keepalived.kill()
                self.keepalived.wait()
            self.keepalived = None

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


@contextlib.contextmanager
def pair(tag, workdir, addresses):
    """Namespaces ``lbpair-<tag>-lb1/2`` joined by a veth; yields ``{name: Node}``; removes all."""
    nodes = {name: Node(name, f"lbpair-{tag}-{name}", workdir, address) for name, address in addresses.items()}
    created = []
    try:
        for node in nodes.values():
            netns.add(node.namespace)
            created.append(node.namespace)
        lb1, lb2 = nodes.values()
        netns.veth(lb1.namespace, "eth0", lb2.namespace, "eth0")
        for node in nodes.values():
            netns.add_address(node.namespace, "eth0", f"{node.address}/24")
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()
        for namespace in created:
            netns.delete(namespace)
