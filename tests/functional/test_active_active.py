"""
Several VRRP instances and IPv6 VIPs with the real binaries: ``keepalived -t`` and
``haproxy -c`` accept what lbpair renders, and two real keepalived nodes in network
namespaces (``lbpair-aa-*``), joined by a veth that carries IPv4 and IPv6, share the
VIPs: each is MASTER of the instance it prefers, and an instance's IPv4 and IPv6 VIPs
move together when its MASTER stops. The VRRP firewall rules accept the peer's IPv6
VRRP (ip6tables and nftables).
"""


import pytest

from lab import netns
from lab.util import stop_process
from saltext.lbpair.node import firewall
from tests.functional.conftest import set_pillar
from tests.functional.rigs import connects, eventually, joined_pair, keepalived_on, listening_on, node_model, node_with_eth0

NODES = {"lb1": "lbpair-aa-lb1", "lb2": "lbpair-aa-lb2"}
ADDRESSES = {"lb1": ("192.0.2.11", "2001:db8::11"), "lb2": ("192.0.2.12", "2001:db8::12")}
FOO, BAR, FOO6 = "203.0.113.10", "203.0.113.20", "2001:db8::10"
PORT = 8080


@pytest.fixture(scope="module")
def node_namespace():
    """The namespace the loader tests run in (instead of the suite's shared one): an eth0 for keepalived -t."""
    with node_with_eth0("lbpair-aa-node") as namespace:
        yield namespace


def active_active(lbpair):
    """bar in a second instance, VRID 52, that lb2 prefers."""
    lbpair["vrrp"]["instances"] = {"web2": {"virtual_router_id": 52, "preferred": "lb2"}}
    lbpair["services"]["bar"]["instance"] = "web2"
    return lbpair


def dual_stack(lbpair, instance=None):
    """The nodes' IPv6 addresses and a service foo6 on an IPv6 VIP (in ``instance``, or the default one)."""
    for node, (_address, address6) in ADDRESSES.items():
        lbpair["nodes"][node]["address6"] = address6
    lbpair["services"]["foo6"] = {**lbpair["services"]["foo"], "vip": FOO6, **({"instance": instance} if instance else {})}
    return lbpair


VRRP_VARIANTS = {
    "default": {},
    "unicast": {"unicast": True},
    "nopreempt": {"preempt": False, "check": {"weight": 0}},
    "fast": {"profile": "fast"},
}


@pytest.mark.parametrize("variant", VRRP_VARIANTS)
def test_keepalived_and_haproxy_accept_instances_and_ipv6_vips(loaders, modules, pillar, variant):
    pillar["vrrp"].update(VRRP_VARIANTS[variant])
    set_pillar(loaders, active_active(dual_stack(pillar)))
    assert "vrrp_instance lbpair_51_6 {" in modules.lbpair_keepalived.render()
    modules.lbpair_keepalived.validate()  # raises on a refusal
    modules.lbpair_haproxy.validate()
    assert "bind [2001:db8::10]:80" in modules.lbpair_haproxy.render()


@pytest.fixture
def pair():
    """lb1 and lb2 joined by a veth, each with its IPv4 and IPv6 address."""
    with joined_pair(NODES):
        for node, (address, address6) in ADDRESSES.items():
            netns.add_address(NODES[node], "eth0", f"{address}/24")
            netns.ip(NODES[node], "address", "add", f"{address6}/64", "dev", "eth0", "nodad")
        yield NODES


def holders(nodes):
    """``{vip: [node, ...]}`` of the VIPs the nodes hold."""
    held = {}
    for node, namespace in nodes.items():
        listing = netns.ip(namespace, "addr", "show", "eth0").stdout
        for vip in (FOO, BAR, FOO6):
            if f" {vip}/" in listing:
                held.setdefault(vip, []).append(node)
    return held


def wait_for(nodes, expected):
    return eventually(lambda: holders(nodes) == expected)


def test_each_node_is_master_of_the_instance_it_prefers(pair, seed_pillar, tmp_path):
    with keepalived_on(pair, active_active(seed_pillar), tmp_path):
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb2"]}), holders(pair)


def test_the_ipv4_and_ipv6_vips_of_an_instance_move_together(pair, seed_pillar, tmp_path):
    with keepalived_on(pair, dual_stack(seed_pillar), tmp_path) as processes:
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb1"], FOO6: ["lb1"]}), holders(pair)
        stop_process(processes["lb1"])
        assert wait_for(pair, {FOO: ["lb2"], BAR: ["lb2"], FOO6: ["lb2"]}), holders(pair)


def test_active_active_with_both_families(pair, seed_pillar, tmp_path):
    with keepalived_on(pair, dual_stack(active_active(seed_pillar), instance="web2"), tmp_path) as processes:
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb2"], FOO6: ["lb2"]}), holders(pair)
        stop_process(processes["lb2"])
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb1"], FOO6: ["lb1"]}), holders(pair)


DROP_IPV6 = {  # IPv6 dropped unless accepted (neighbour discovery still passes)
    "iptables": [["ip6tables", "-P", "INPUT", "DROP"], ["ip6tables", "-A", "INPUT", "-p", "icmpv6", "-j", "ACCEPT"]],
    "nftables": [
        ["nft", "add table inet filter"],
        ["nft", "add chain inet filter input { type filter hook input priority filter; policy accept; }"],
        ["nft", "add rule inet filter input meta nfproto ipv6 meta l4proto != ipv6-icmp drop"],
    ],
}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_the_ipv6_vrrp_rule_turns_split_brain_into_one_master(pair, seed_pillar, tmp_path, backend):
    # foo6 alone in an instance of its own: no sync group to keep IPv4 adverts deciding for it
    seed_pillar["vrrp"]["instances"] = {"web6": {"virtual_router_id": 56}}
    dual_stack(seed_pillar, instance="web6")["firewall"] = {"backend": backend}
    for namespace in pair.values():
        for command in DROP_IPV6[backend]:
            netns.run(namespace, command)
    with keepalived_on(pair, seed_pillar, tmp_path):
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb1"], FOO6: ["lb1", "lb2"]}), holders(pair)
        for node, namespace in pair.items():
            with netns.enter(namespace):
                added = firewall.allow(node_model(seed_pillar, node))["added"]
                again = firewall.allow(node_model(seed_pillar, node))
            peer6 = ADDRESSES["lb2" if node == "lb1" else "lb1"][1]
            assert f"lbpair-vrrp {peer6} to ff02::12" in added, added
            assert again == {"added": [], "removed": []}, again  # both families' rules found in place
        assert wait_for(pair, {FOO: ["lb1"], BAR: ["lb1"], FOO6: ["lb1"]}), holders(pair)


@pytest.fixture
def listening_vips():
    """A namespace with an IPv4 and an IPv6 VIP on lo, a server listening on each."""
    with listening_on("lbpair-aa-hold", [FOO, FOO6], PORT) as namespace:
        yield namespace


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_handover_holds_new_connections_to_ipv6_vips_too(listening_vips, backend):
    model = {"firewall": {"backend": backend, "nft_table": "inet filter", "nft_chain": "input"}}
    assert connects(listening_vips, FOO, PORT) and connects(listening_vips, FOO6, PORT)
    with netns.enter(listening_vips):
        firewall.hold_new_connections(model, [FOO, FOO6])
    assert not connects(listening_vips, FOO, PORT) and not connects(listening_vips, FOO6, PORT)
    with netns.enter(listening_vips):
        assert firewall.release_new_connections(model) == 2
    assert connects(listening_vips, FOO, PORT) and connects(listening_vips, FOO6, PORT)
