"""Named network namespaces for the lab, and links, addresses and commands inside them.

Every namespace name starts with ``lbpair-``, and nothing here ever touches the root network
namespace: links are created with ``ip -n NS`` and both ends of a veth are born in lab
namespaces. Example::

    from lab import netns

    netns.add("lbpair-a")
    netns.add("lbpair-b")
    netns.veth("lbpair-a", "eth0", "lbpair-b", "eth0")
    netns.add_address("lbpair-a", "eth0", "192.0.2.1/24")
    netns.add_address("lbpair-b", "eth0", "192.0.2.2/24")
    netns.run("lbpair-a", ["ping", "-c1", "192.0.2.2"])
    with netns.enter("lbpair-b"):
        ...                                  # sockets opened here live in lbpair-b
    netns.delete("lbpair-a")
    netns.delete("lbpair-b")
"""

import contextlib
import ctypes
import os
import subprocess
from pathlib import Path

from lab import util
from lab.util import log

PREFIX = "lbpair-"
NETNS_DIR = Path("/run/netns")
OWNERS_DIR = util.RUN_ROOT / "netns"
CLONE_NEWNET = 0x40000000


def check_name(name):
    """Raise :class:`ValueError` unless *name* is a lab namespace name (``lbpair-...``)."""
    if not name.startswith(PREFIX) or len(name) <= len(PREFIX) or "/" in name:
        raise ValueError(f"lab namespace names start with {PREFIX!r}: got {name!r}")


def path(name):
    """Return the bind-mount path of namespace *name* (``/run/netns/NAME``)."""
    return NETNS_DIR / name


def exists(name):
    """Tell whether namespace *name* exists."""
    return path(name).exists()


def list_lab():
    """Return the names of all existing ``lbpair-*`` namespaces, sorted."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX))


def add(name):
    """Create namespace *name* with ``lo`` up, recording this process as its owner.

    An existing namespace of that name is an error: it belongs to a live run, or a crashed one
    that :func:`cleanup_stale` (or ``python -m lab down``) removes.
    """
    check_name(name)
    if exists(name):
        live = util.owner_alive(OWNERS_DIR / name)
        who = "a live process" if live else "a crashed run or another tool"
        raise FileExistsError(f"namespace {name} exists, made by {who}; see python -m lab down")
    util.write_owner(OWNERS_DIR / name)
    util.run(["ip", "netns", "add", name])
    ip(name, "link", "set", "lo", "up")


@contextlib.contextmanager
def temporary(*names):
    """Namespaces *names* (see :func:`add`) for the ``with`` block, deleted after it, also on failure."""
    added = []
    try:
        for name in names:
            add(name)
            added.append(name)
        yield names
    finally:
        for name in added:
            delete(name)


def is_current(name):
    """Tell whether the calling thread already lives in namespace *name*."""
    if not exists(name):
        return False
    here, there = os.stat("/proc/thread-self/ns/net"), os.stat(path(name))
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def delete(name):
    """Kill every process left in namespace *name*, then delete it; a missing one is fine."""
    check_name(name)
    if exists(name):
        kill_processes(name)
        util.run(["ip", "netns", "delete", name], check=False)
    (OWNERS_DIR / name).unlink(missing_ok=True)
    for directory in (OWNERS_DIR, util.RUN_ROOT):  # gone once nothing of the lab is left
        with contextlib.suppress(OSError):
            directory.rmdir()


def pids(name):
    """Return the PIDs of processes whose network namespace is *name*."""
    out = util.run(["ip", "netns", "pids", name], check=False).stdout or ""
    return [int(pid) for pid in out.split()]


def kill_processes(name, timeout=5.0):
    """SIGTERM the processes in namespace *name*, then SIGKILL what is left after *timeout* s."""
    util.kill_all(lambda: pids(name), timeout)


def ip(name, *args, check=True):
    """Run ``ip -n NAME ARGS...`` (an iproute2 command inside namespace *name*)."""
    check_name(name)
    return util.run(["ip", "-n", name, *args], check=check)


def veth(ns_a, if_a, ns_b, if_b):
    """Create a veth pair with end *if_a* in *ns_a* and *if_b* in *ns_b*, both up.

    Both ends are created inside lab namespaces (``ip -n A link add ... peer ... netns B``),
    so neither ever exists in the root namespace.
    """
    check_name(ns_b)
    ip(ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
    ip(ns_a, "link", "set", if_a, "up")
    ip(ns_b, "link", "set", if_b, "up")


def bridge(name, bridge_name):
    """Create bridge *bridge_name* inside namespace *name* and bring it up."""
    ip(name, "link", "add", bridge_name, "type", "bridge")
    ip(name, "link", "set", bridge_name, "up")


def attach(name, ifname, bridge_name):
    """Make *ifname* a port of *bridge_name* (both inside namespace *name*)."""
    ip(name, "link", "set", ifname, "master", bridge_name)


def add_address(name, ifname, cidr):
    """Add address *cidr* (``192.0.2.11/24``) to *ifname* inside namespace *name*."""
    ip(name, "address", "add", cidr, "dev", ifname)


def add_route(name, prefix, ifname):
    """Add an on-link route to *prefix* (``198.51.100.0/24``) via *ifname* in namespace *name*."""
    ip(name, "route", "add", prefix, "dev", ifname)


def run(name, cmd, check=True, timeout=None, input=None):
    """Run *cmd* inside namespace *name* (``ip netns exec``) and return the CompletedProcess."""
    check_name(name)
    return util.run(["ip", "netns", "exec", name, *cmd], check=check, timeout=timeout, input=input)


def popen(name, cmd, **kwargs):
    """Start *cmd* in the background inside namespace *name*; returns the :class:`Popen`.

    ``ip netns exec`` execs the command in place, so ``Popen.pid`` is the command's own PID.
    Keyword arguments go to :class:`subprocess.Popen`. :func:`delete` kills it if you do not.
    """
    check_name(name)
    return subprocess.Popen(["ip", "netns", "exec", name, *cmd], **kwargs)


@contextlib.contextmanager
def enter(name):
    """Move the calling thread into namespace *name* for the ``with`` block, then back.

    Uses ``setns(2)`` on ``/run/netns/NAME``. Call it from the main thread of a program that does
    not juggle namespaces in other threads: in a single-threaded program it moves the process.
    Sockets created inside stay in *name* after the block; threads started inside start there.
    """
    check_name(name)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)


def cleanup_stale(unrecorded=False):
    """Delete ``lbpair-*`` namespaces left by crashed runs; returns their names.

    A namespace is stale when the process that created it through :func:`add` is gone. Those of
    live processes (this one included) are kept. Namespaces made by other tools have no owner
    record and are kept too, unless *unrecorded* is true (``python -m lab down --all``).
    """
    stale = []
    for name in list_lab():
        record = OWNERS_DIR / name
        if util.owner_alive(record):
            continue
        if record.exists() or unrecorded:
            stale.append(name)
    for name in stale:
        log(f"removing stale namespace {name}")
        delete(name)
    if OWNERS_DIR.is_dir():  # records whose namespace is already gone
        for record in OWNERS_DIR.iterdir():
            if not exists(record.name) and not util.owner_alive(record):
                record.unlink()
    return stale


def _setns(fd):
    """Call ``setns(fd, CLONE_NEWNET)`` for the calling thread; raise OSError on failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")
