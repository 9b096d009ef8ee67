"""
Stick tables across the pair with two real HAProxies, one per node, each in a throwaway network
namespace joined by a veth (the nodes' addresses): an entry a client makes on lb1 is on lb2 at
once (``show table``), and on lb2 the same client reaches the same server, where a node without
the table would have sent it elsewhere.
"""

import copy
import subprocess
import sys
import time

import pytest

from lab import netns
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy, stats
from tests.conftest import REPO

NODES = {"lb1": "lbpair-peers-1", "lb2": "lbpair-peers-2"}
VIP = "203.0.113.10"
SERVERS = {"foo1": "198.51.100.11", "foo2": "198.51.100.12"}
CLIENT, OTHER_CLIENT = "203.0.113.99", "203.0.113.98"


def node_pillar(seed_pillar, tmp_path, node):
    lbpair = copy.deepcopy(seed_pillar)
    foo = lbpair["services"]["foo"]
    foo.pop("cookie")
    foo["stick"] = {"expire": 600}
    lbpair["services"] = {"foo": foo}
    # a plain process of the test: no chroot, no user switch, in the foreground, its own socket
    global_overrides = {"chroot": None, "user": None, "group": None, "daemon": None}
    lbpair["haproxy"] = {"stats_socket": str(tmp_path / f"{node}.sock"), "global": global_overrides}
    lbpair["vrrp"]["probe"] = {"enabled": False}
    return lbpair


def curl(node, source):
    """The server that answers a client at ``source`` on ``node``."""
    return netns.run(NODES[node], ["curl", "-s", "--max-time", "3", "--interface", source, f"http://{VIP}/"]).stdout.strip()


def in_table(tmp_path, node):
    return stats.command(str(tmp_path / f"{node}.sock"), "show table foo")


def peers_connected(tmp_path):
    sockets = [tmp_path / f"{node}.sock" for node in NODES]
    return all(socket.exists() for socket in sockets) and "last_status=ESTA" in stats.command(str(sockets[0]), "show peers")


@pytest.fixture
def pair(tmp_path, seed_pillar):
    try:
        for namespace in NODES.values():
            netns.add(namespace)
            netns.ip(namespace, "link", "set", "lo", "up")
        netns.veth(NODES["lb1"], "eth0", NODES["lb2"], "eth0")
        for node, namespace in NODES.items():
            netns.add_address(namespace, "eth0", f"{seed_pillar['nodes'][node]['address']}/24")
            for address in (VIP, CLIENT, OTHER_CLIENT, *SERVERS.values()):
                netns.add_address(namespace, "lo", f"{address}/32")
            for name, address in SERVERS.items():
                backend = netns.popen(namespace, [sys.executable, str(REPO / "lab/backend_http.py"), name, address, "80"],
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
                assert backend.stdout.readline().strip() == "ready"
            model = pillar.for_node(pillar.normalize(node_pillar(seed_pillar, tmp_path, node)), node)
            config = tmp_path / f"{node}.cfg"
            config.write_text(haproxy.render_config(model))
            netns.popen(namespace, ["haproxy", "-f", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not peers_connected(tmp_path):
            assert time.monotonic() < deadline, "the peers did not connect"
            time.sleep(0.1)
        yield
    finally:
        for namespace in NODES.values():
            netns.delete(namespace)


def test_a_client_keeps_its_server_on_the_peer_node(pair, tmp_path):
    assert curl("lb1", OTHER_CLIENT) == "foo1"  # round robin: the next client gets foo2
    assert curl("lb1", CLIENT) == "foo2"
    deadline = time.monotonic() + 5
    while CLIENT not in in_table(tmp_path, "lb2"):
        assert time.monotonic() < deadline, "the entry did not reach lb2"
        time.sleep(0.1)
    assert curl("lb2", CLIENT) == "foo2"  # lb2 had served nobody: without the table, foo1
    assert curl("lb2", CLIENT) == "foo2"
