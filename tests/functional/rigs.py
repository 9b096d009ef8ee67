"""
Throwaway network namespaces the functional tests build, and what runs in them: a
node with an ``eth0``, two nodes joined by a veth running keepalived, VIPs with a
TCP server behind them, the shop service in a real HAProxy with real HTTP backends.
Each is deleted after its ``with`` block, also on failure.
"""

import contextlib
import copy
import socket
import subprocess
import sys

from lab import netns
from lab.util import stop_process, wait_until
from saltext.lbpair.model import pillar
from saltext.lbpair.node import keepalived_config
from tests.conftest import REPO
from tests.unit.test_routing import SHOP

SHOP_BACKENDS = {"web1": ("198.51.100.51", 80), "web2": ("198.51.100.52", 80), "api1": ("198.51.100.61", 8080)}


def eventually(condition, timeout=15):
    """Whether ``condition()`` comes true within *timeout* s (asked every 0.2 s)."""
    try:
        return bool(wait_until(condition, timeout, interval=0.2))
    except TimeoutError:
        return False


def node_model(lbpair, node):
    """
    A node's model, made by the library: two Salt loaders in one process mix up their
    ``__opts__`` and ``__context__`` after a while (Salt 3008), so what acts on both
    nodes in one test does not go through them.
    """
    return pillar.for_node(pillar.normalize(lbpair), node)


@contextlib.contextmanager
def node_with_eth0(name):
    """Namespace *name* with an ``eth0`` (``keepalived -t`` checks that the VRRP interface exists)."""
    with netns.temporary(name):
        netns.veth(name, "eth0", name, "eth1")
        yield name


@contextlib.contextmanager
def joined_pair(namespaces):
    """The namespaces of ``{"lb1": ..., "lb2": ...}``, joined by a veth: ``eth0`` in each."""
    with netns.temporary(*namespaces.values()):
        netns.veth(namespaces["lb1"], "eth0", namespaces["lb2"], "eth0")
        yield namespaces


@contextlib.contextmanager
def keepalived_on(namespaces, lbpair, tmp_path, without=None):
    """
    keepalived on each node of ``{node: namespace}`` with the configuration lbpair renders
    (less the line *without*, for a control; no probe: no HAProxy here to ask; no failback delay:
    no master here to hand VIPs back, and a preferred node starting after its peer would wait it
    out); ``{node: process}``.
    """
    lbpair = {**lbpair, "vrrp": {**lbpair["vrrp"], "probe": {"enabled": False}, "failback_delay": 0}}
    processes = {}
    try:
        for node, namespace in namespaces.items():
            conf = tmp_path / node / "keepalived.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            text = keepalived_config.render_config(node_model(lbpair, node))
            conf.write_text(text.replace(f"    {without}\n", "") if without else text)
            pids = [f"--{kind}={tmp_path / node / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
            command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf), *pids]
            with open(tmp_path / f"{node}.log", "w", encoding="utf-8") as log:
                processes[node] = netns.popen(namespace, command, stdout=log, stderr=subprocess.STDOUT)
        yield processes
    finally:
        for process in processes.values():
            stop_process(process)


def _family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@contextlib.contextmanager
def listening_on(namespace, vips, port):
    """Namespace *namespace* with each of *vips* on ``lo`` and a TCP server listening on each, at *port*."""
    with netns.temporary(namespace), contextlib.ExitStack() as servers:
        for vip in vips:
            if _family(vip) == socket.AF_INET6:
                netns.ip(namespace, "address", "add", f"{vip}/128", "dev", "lo", "nodad")  # usable at once
            else:
                netns.add_address(namespace, "lo", f"{vip}/32")
        with netns.enter(namespace):
            for vip in vips:
                servers.enter_context(contextlib.closing(socket.create_server((vip, port), family=_family(vip))))
        yield namespace


def connects(namespace, vip, port):
    """Whether a TCP connection to *vip* from inside *namespace* is made within 0.5 s (a dropped SYN times out)."""
    with netns.enter(namespace):
        try:
            socket.create_connection((vip, port), timeout=0.5).close()
            return True
        except TimeoutError:
            return False


def shop_pillar(seed_pillar, socket_path):
    """The seed pillar with the shop as its one service, for an HAProxy run as a plain process of the test."""
    lbpair = copy.deepcopy(seed_pillar)
    shop = copy.deepcopy(SHOP)
    shop["backends"]["api"]["health"]["status"] = 200  # what lab/backend_http.py answers
    lbpair["services"] = {"shop": shop}
    # a plain process of the test: no chroot, no user switch, in the foreground, its own socket
    lbpair["haproxy"] = {"stats_socket": socket_path, "global": {"chroot": None, "user": None, "group": None, "daemon": None}}
    return lbpair


@contextlib.contextmanager
def shop_haproxy(namespace, config, serving):
    """
    Namespace *namespace* with the shop's VIP and backend addresses on ``lo``, a real HTTP
    backend on each (``lab/backend_http.py``) and HAProxy with *config*, once ``serving()``;
    ``{backend name: its process}``.
    """
    with netns.temporary(namespace):
        for address in (SHOP["vip"], *(address for address, _ in SHOP_BACKENDS.values())):
            netns.add_address(namespace, "lo", f"{address}/32")
        backends = {}
        for name, (address, port) in SHOP_BACKENDS.items():
            backends[name] = netns.popen(namespace, [sys.executable, str(REPO / "lab/backend_http.py"), name, address, str(port)],
                                         stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert backends[name].stdout.readline().strip() == "ready"
        netns.popen(namespace, ["haproxy", "-f", str(config)], stderr=subprocess.DEVNULL)
        wait_until(serving, 10, what="HAProxy serving")
        yield backends
