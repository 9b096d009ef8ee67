"""The lab's seed network as data, and :class:`Lab`, which builds it and always tears it down.

One L2 segment: the switch namespace ``lbpair-sw`` holds bridge ``br0``; every host is a
namespace ``lbpair-<name>`` whose ``eth0`` is a veth into the bridge. Hosts get on-link routes
to the documentation ranges they have no address in, so load balancers reach backends, the
client reaches VIPs (203.0.113.x, added later by keepalived on the LBs' eth0) and backends answer.
The load balancers and the client also have an IPv6 address in one on-link /64 (2001:db8::/64),
where IPv6 VIPs (2001:db8::50) are reached.

==========  =================  ===========================================================
host        address            what runs there
==========  =================  ===========================================================
mgmt        192.0.2.5/24       plain namespace (the salt-master will run here)
lb1, lb2    192.0.2.11-12/24   :class:`lab.machine.Machine`, salt-minion id lb1/lb2;
            2001:db8::11-12    IPv6 too
foo1, foo2  198.51.100.11-12   HTTP backend answering its own name on port 80
bar1, bar2  198.51.100.21-22   same
baz1, baz2  198.51.100.31-32   same
client      203.0.113.100/24   plain namespace; 2001:db8::100/64 too
==========  =================  ===========================================================

Example::

    from lab.topology import Lab

    with Lab(hosts=["lb1", "lb2", "foo1"]) as lab:
        lab.exec("lb1", ["curl", "-s", "http://198.51.100.11/"]).stdout   # 'foo1\\n'
        lab.exec("lb1", ["ping", "-c1", lab.address("lb2")])

``Lab(machines=False)`` makes the load balancers plain namespaces (fast, no rootfs needed).
"""

import contextlib
import dataclasses
import ipaddress
import select
import subprocess
import sys
import time
from pathlib import Path

from lab import machine, netns, rootfs
from lab.util import log, require_root, sigterm_as_exit

SWITCH = "lbpair-sw"
BRIDGE = "br0"
MASTER_ADDRESS = "192.0.2.5"
DOC_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
BACKEND_SCRIPT = Path(__file__).with_name("backend_http.py")
BACKEND_PORT = 80

MACHINE = "machine"
BACKEND = "backend"
PLAIN = "netns"


@dataclasses.dataclass(frozen=True)
class Host:
    """One host of the lab: *name* (``lb1``), *address* (``192.0.2.11/24``), *kind* and *address6*.

    *kind* is ``machine`` (booted nspawn container), ``backend`` (namespace with the HTTP
    backend) or ``netns`` (plain namespace). *address6* (``2001:db8::11/64``) is optional.
    """

    name: str
    address: str
    kind: str = PLAIN
    address6: str = None

    @property
    def netns(self):
        """The host's namespace name, ``lbpair-<name>``."""
        return f"{netns.PREFIX}{self.name}"

    @property
    def ip(self):
        """The host's address without prefix length (``192.0.2.11``)."""
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def ip6(self):
        """The host's IPv6 address without prefix length (``2001:db8::11``), None without one."""
        return str(ipaddress.ip_interface(self.address6).ip) if self.address6 else None


SEED = (
    Host("mgmt", "192.0.2.5/24"),
    Host("lb1", "192.0.2.11/24", MACHINE, "2001:db8::11/64"),
    Host("lb2", "192.0.2.12/24", MACHINE, "2001:db8::12/64"),
    Host("foo1", "198.51.100.11/24", BACKEND),
    Host("foo2", "198.51.100.12/24", BACKEND),
    Host("bar1", "198.51.100.21/24", BACKEND),
    Host("bar2", "198.51.100.22/24", BACKEND),
    Host("baz1", "198.51.100.31/24", BACKEND),
    Host("baz2", "198.51.100.32/24", BACKEND),
    Host("client", "203.0.113.100/24", PLAIN, "2001:db8::100/64"),
)


def seed_host(name):
    """Return the seed :class:`Host` called *name* (KeyError if there is none)."""
    for host in SEED:
        if host.name == name:
            return host
    raise KeyError(f"no seed host {name!r}; known: {', '.join(h.name for h in SEED)}")


def machine_files(host):
    """
    Return the files written into a machine before boot: hostname, minion config, and a note in
    node_exporter's textfile directory, which the beacon writes ``lbpair.prom`` into when it finds it
    at its start (as where Debian's package made it; :mod:`lab.prometheus` runs node_exporter there).
    """
    return {
        "/etc/hostname": f"{host.name}\n",
        "/etc/salt/minion.d/lab.conf": f"id: {host.name}\nmaster: {MASTER_ADDRESS}\n",
        "/var/lib/prometheus/node-exporter/README.lab": "node_exporter's textfile directory (lab/prometheus.py)\n",
    }


def switch_port(name):
    """The switch's end of host *name*'s cable (a veth, at most 15 characters)."""
    return f"p-{name}"[:15]


def onlink_routes(host):
    """Return the documentation ranges *host* has no address in (routed on-link via eth0)."""
    own = ipaddress.ip_interface(host.address).network
    return [net for net in DOC_RANGES if ipaddress.ip_network(net) != own]


class Lab:
    """Builds the lab network on ``__enter__`` and tears all of it down on ``__exit__``.

    *hosts*: names of seed hosts or :class:`Host` objects (default: the whole seed).
    *machines*: false turns ``machine`` hosts into plain namespaces. *files*: extra files per
    machine, ``{"lb1": {"/etc/x": "text"}}``, written over the defaults. *boot_timeout*:
    seconds each machine may take to boot. A failure while building tears down what was built.
    """

    def __init__(self, hosts=None, machines=True, files=None, boot_timeout=90):
        chosen = SEED if hosts is None else hosts
        self.hosts = {}
        for entry in chosen:
            host = entry if isinstance(entry, Host) else seed_host(entry)
            if host.kind == MACHINE and not machines:
                host = dataclasses.replace(host, kind=PLAIN)
            self.hosts[host.name] = host
        self.files = files or {}
        self.boot_timeout = boot_timeout
        self.machines = {}  # name -> Machine
        self.backends = {}  # name -> Popen
        self._namespaces = []  # created by this Lab, deleted by teardown
        self._signals = contextlib.ExitStack()

    def __enter__(self):
        require_root()
        self._signals.enter_context(sigterm_as_exit())
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()

    # --- building -------------------------------------------------------------------------------

    def build(self):
        """Create switch, hosts, backends and machines (use the context manager instead)."""
        started = time.monotonic()
        machine.cleanup_stale()
        netns.cleanup_stale()
        root = rootfs.ensure() if self._of_kind(MACHINE) else None
        self._add_namespace(SWITCH)
        netns.bridge(SWITCH, BRIDGE)
        for host in self.hosts.values():
            self._add_host(host)
        for host in self._of_kind(BACKEND):
            self._start_backend(host)
        for host in self._of_kind(MACHINE):
            files = {**machine_files(host), **self.files.get(host.name, {})}
            self.machines[host.name] = box = machine.Machine(host.name, host.netns, root)
            box.start(files)
        for box in self.machines.values():
            box.wait_until_running(self.boot_timeout)
        log(f"lab up in {time.monotonic() - started:.1f}s: {', '.join(self.hosts)}")

    def _add_host(self, host):
        """Create the host's namespace, its eth0 on the bridge, its address and routes."""
        self._add_namespace(host.netns)
        port = switch_port(host.name)
        netns.veth(SWITCH, port, host.netns, "eth0")
        netns.attach(SWITCH, port, BRIDGE)
        netns.add_address(host.netns, "eth0", host.address)
        if host.address6:  # no duplicate address detection: usable at once, and nobody else has it
            netns.ip(host.netns, "address", "add", host.address6, "dev", "eth0", "nodad")
        for prefix in onlink_routes(host):
            netns.add_route(host.netns, prefix, "eth0")

    def _add_namespace(self, name):
        """Create namespace *name* and remember it for teardown (only what this Lab made).

        A namespace this process already runs in (``python -m lab within mgmt -- ...``) is
        used as it is: that is how the salt-master run by the tests becomes the lab's mgmt host.
        """
        if netns.is_current(name):
            return
        netns.add(name)
        self._namespaces.append(name)

    def _start_backend(self, host, timeout=10):
        """Start the HTTP backend in the host's namespace and wait for its ``ready`` line."""
        cmd = [sys.executable, str(BACKEND_SCRIPT), host.name, host.ip, str(BACKEND_PORT)]
        proc = netns.popen(
            host.netns,
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.backends[host.name] = proc
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            raise RuntimeError(f"backend {host.name} did not start: {line or 'no answer'}")

    def _of_kind(self, kind):
        """Return the hosts of *kind*, in order."""
        return [host for host in self.hosts.values() if host.kind == kind]

    # --- using ----------------------------------------------------------------------------------

    def address(self, name):
        """Return host *name*'s IP address (``192.0.2.11``)."""
        return self.hosts[name].ip

    def address6(self, name):
        """Return host *name*'s IPv6 address (``2001:db8::11``), None without one."""
        return self.hosts[name].ip6

    def machine(self, name):
        """Return the :class:`~lab.machine.Machine` of host *name*."""
        return self.machines[name]

    def exec(self, name, cmd, check=True, timeout=60, input=None):
        """Run *cmd* on host *name*: in its container if it is a machine, else in its namespace.

        Returns the :class:`subprocess.CompletedProcess`.
        """
        if name in self.machines:
            return self.machines[name].run(cmd, check=check, timeout=timeout, input=input)
        return netns.run(self.hosts[name].netns, cmd, check=check, timeout=timeout, input=input)

    def popen(self, name, cmd, **kwargs):
        """Start *cmd* in the background on host *name*; returns the Popen. Teardown ends it."""
        if name in self.machines:
            return self.machines[name].popen(cmd, **kwargs)
        return netns.popen(self.hosts[name].netns, cmd, **kwargs)

    def vips_on(self, name, vips):
        """Which of *vips* (IPv4 or IPv6) are on host *name*'s ``eth0`` now (sorted)."""
        addresses = self.exec(name, ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        return sorted(vip for vip in vips if f" {vip}/" in addresses)

    def cable(self, name, plugged):
        """Plug or unplug host *name*'s cable: its switch port up or down (its eth0 loses carrier)."""
        netns.run(SWITCH, ["ip", "link", "set", switch_port(name), "up" if plugged else "down"])

    def client_address(self, address):
        """Give the client one more address (another client, for ``curl --interface``); returns it."""
        netns.ip(self.hosts["client"].netns, "address", "replace", f"{address}/24", "dev", "eth0")
        return address

    def curl(self, url, *extra, client="client"):
        """The body *url* answers to host *client* (curl, 3 s at most), stripped; extra curl arguments allowed."""
        return self.exec(client, ["curl", "-sS", "--max-time", "3", *extra, url], check=False).stdout.strip()

    # --- tearing down ---------------------------------------------------------------------------

    def teardown(self):
        """Stop machines and backends, delete the namespaces this Lab made; idempotent.

        Every step is tried even if an earlier one fails; the first error is raised at the end.
        """
        errors = []
        for box in self.machines.values():
            box.poweroff()  # all at once: they power off in parallel
        for box in self.machines.values():
            _attempt(errors, box.shutdown)
        self.machines.clear()
        for proc in self.backends.values():
            proc.terminate()
        for proc in self.backends.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)  # one that ignores SIGTERM dies with its namespace below
            proc.stdout.close()
        self.backends.clear()
        while self._namespaces:  # hosts first, the switch (created first) last
            _attempt(errors, netns.delete, self._namespaces.pop())
        self._signals.close()
        if errors:
            raise errors[0]


def _attempt(errors, func, *args):
    """Call ``func(*args)``; append an Exception it raises to *errors* instead of raising."""
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 (teardown goes on; the caller re-raises)
        log(f"teardown: {func.__qualname__} failed: {exc}")
        errors.append(exc)
