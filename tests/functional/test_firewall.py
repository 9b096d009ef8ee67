"""
The VRRP firewall rules, proven by behaviour: two real keepalived nodes in network
namespaces with a default-drop INPUT policy both become MASTER (split brain)
without lbpair's rules, and agree on one MASTER with them; on a segment with the
default ACCEPT policy, a rogue keepalived claiming the pair's VRID with a higher
priority takes the VIPs without the rules and changes nothing with them, and is
reported; a stranger's adverts of another VRID are dropped but not reported.
"""

import contextlib
import socket
import time

import pytest
from saltfactories.utils.functional import Loaders

from lab import netns, rogue
from lab.util import wait_until
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import iptables, ruleset
from tests.conftest import EXTENSION_DIRS
from tests.functional.conftest import set_pillar
from tests.functional.rigs import eventually, joined_pair, keepalived_on, node_model

NODES = {"lb1": "lbpair-fw-lb1", "lb2": "lbpair-fw-lb2"}
SEGMENT = {"lb1": "lbpair-fws-lb1", "lb2": "lbpair-fws-lb2"}
SWITCH, ROGUE = "lbpair-fws-sw", "lbpair-fws-rogue"
ROGUE_ADDRESS = "192.0.2.66"
VIP = "203.0.113.10"
ACCEPT = "lbpair-vrrp 192.0.2.12 to 224.0.0.18"
DROP4, DROP6 = "lbpair-vrrp drop ipv4 on eth0", "lbpair-vrrp drop ipv6 on eth0"
RECORD4, RECORD6 = "lbpair-vrrp record ipv4 vrid 51 on eth0", "lbpair-vrrp record ipv6 vrid 51 on eth0"
WANTED = [ACCEPT, DROP4, DROP6, RECORD4, RECORD6]  # sorted, as the functions list them


@pytest.fixture
def pair_namespaces(seed_pillar):
    with joined_pair(NODES):
        for node, namespace in NODES.items():
            netns.add_address(namespace, "eth0", f"{seed_pillar['nodes'][node]['address']}/24")
            netns.run(namespace, ["iptables", "-P", "INPUT", "DROP"])
        yield NODES


@pytest.fixture
def node_loaders(salt_factories, seed_pillar, tmp_path):
    loaders = {}
    for node in NODES:
        overrides = {
            **EXTENSION_DIRS,
            "file_client": "local",
            "lbpair_keepalived": {"config_file": str(tmp_path / node / "keepalived.conf")},
        }
        opts = salt_factories.salt_minion_daemon(node, overrides=overrides).config.copy()
        opts["pillar"] = {"lbpair": seed_pillar}
        loaders[node] = Loaders(opts)
    yield loaders
    for loader in loaders.values():
        loader.reset_state()


@pytest.fixture
def keepalived_pair(pair_namespaces, seed_pillar, tmp_path):
    with keepalived_on(pair_namespaces, seed_pillar, tmp_path):
        yield pair_namespaces


@pytest.fixture
def segment(seed_pillar):
    """lb1 and lb2 on one bridge with the default ACCEPT policy, and a host for a rogue router."""
    with contextlib.ExitStack() as stack:
        netns.add(SWITCH)
        stack.callback(netns.delete, SWITCH)
        netns.bridge(SWITCH, "br0")
        for node, namespace in SEGMENT.items():
            stack.enter_context(rogue.on_segment(SWITCH, "br0", namespace, f"{seed_pillar['nodes'][node]['address']}/24"))
        stack.enter_context(rogue.on_segment(SWITCH, "br0", ROGUE, f"{ROGUE_ADDRESS}/24"))
        yield SEGMENT


def holders_of_vip(namespaces):
    return sorted(
        node for node, namespace in namespaces.items() if VIP in netns.ip(namespace, "-4", "addr", "show", "eth0").stdout
    )


def wait_for_holders(namespaces, expected):
    return eventually(lambda: holders_of_vip(namespaces) == expected)


def test_vrrp_rule_turns_split_brain_into_one_master(keepalived_pair, node_loaders):
    assert wait_for_holders(keepalived_pair, ["lb1", "lb2"]), "without the rule both nodes should be MASTER"
    for node, namespace in keepalived_pair.items():
        with netns.enter(namespace):
            result = node_loaders[node].modules.lbpair_firewall.vrrp_allow()
        assert result["added"], result
    assert wait_for_holders(keepalived_pair, ["lb1"]), holders_of_vip(keepalived_pair)


def test_vrrp_rule_is_idempotent_and_test_mode_changes_nothing(pair_namespaces, node_loaders):
    modules = node_loaders["lb1"].modules
    with netns.enter(pair_namespaces["lb1"]):
        assert modules.lbpair_firewall.vrrp_allow(test=True)["added"] == WANTED
        assert modules.lbpair_firewall.vrrp_rules() == dict.fromkeys(WANTED, False)
        assert modules.lbpair_firewall.vrrp_allow()["added"] == WANTED
        assert modules.lbpair_firewall.vrrp_allow() == {"added": [], "removed": []}
        assert modules.lbpair_firewall.vrrp_rules() == dict.fromkeys(WANTED, True)
        listing = netns.run(pair_namespaces["lb1"], ["iptables", "-S", "INPUT"]).stdout
        listing6 = netns.run(pair_namespaces["lb1"], ["ip6tables", "-S", "INPUT"]).stdout
    assert listing.count("lbpair-vrrp") == 3 and listing6.count("lbpair-vrrp") == 2
    accept = listing.index("-s 192.0.2.12/32 -d 224.0.0.18/32 -p vrrp")
    record4 = listing.index(
        f'-i eth0 -p vrrp -m u32 --u32 "0x0>>0x16&0x3c@0x0>>0x10&0xff=0x33" -m comment --comment "{RECORD4}" '
        "-m recent --set --name lbpair_rogue_vrrp"
    )
    assert accept < record4 < listing.index(f'-i eth0 -p vrrp -m comment --comment "{DROP4}" -j DROP')
    record6 = listing6.index(f'-i eth0 -p vrrp -m u32 --u32 "0x28>>0x10&0xff=0x33" -m comment --comment "{RECORD6}" -m recent --set')
    assert record6 < listing6.index(f'-i eth0 -p vrrp -m comment --comment "{DROP6}" -j DROP')


def test_state_test_mode_predicts_and_a_second_apply_changes_nothing(pair_namespaces, node_loaders):
    states = node_loaders["lb1"].states
    with netns.enter(pair_namespaces["lb1"]):
        predicted = states.lbpair_firewall.vrrp_allowed(name="VRRP rules", test=True)
        assert predicted.result is None and predicted.changes == {"added": WANTED}, predicted
        assert netns.run(pair_namespaces["lb1"], ["iptables", "-S", "INPUT"]).stdout.count("lbpair-vrrp") == 0
        applied = states.lbpair_firewall.vrrp_allowed(name="VRRP rules")
        assert applied.result is True and applied.changes == {"added": WANTED}, applied
        again = states.lbpair_firewall.vrrp_allowed(name="VRRP rules")
        assert again.result is True and again.changes == {}, again


def test_record_and_drop_rules_found_before_the_accept_rule_are_put_after_it(pair_namespaces, node_loaders):
    namespace = pair_namespaces["lb1"]
    with netns.enter(namespace):
        node_loaders["lb1"].modules.lbpair_firewall.vrrp_allow()
        accept = firewall.Rule("accept", "ipv4", "192.0.2.12", "224.0.0.18", None)
        netns.run(namespace, ["iptables", "-D", "INPUT", "1"])  # the accept rule, put back below the drop
        netns.run(namespace, ["iptables", "-A", "INPUT", *iptables.iptables_spec(accept, ACCEPT)])
        assert node_loaders["lb1"].modules.lbpair_firewall.vrrp_rules()[DROP4] is False
        assert node_loaders["lb1"].modules.lbpair_firewall.vrrp_allow() == {"added": [DROP4, RECORD4], "removed": [DROP4, RECORD4]}
        listing = netns.run(namespace, ["iptables", "-S", "INPUT"]).stdout
    assert list(iptables.comments_in_iptables(listing)) == [ACCEPT, RECORD4, DROP4]


def test_a_drop_rule_written_by_an_earlier_version_is_replaced(pair_namespaces, node_loaders):
    """Before the record rules, the drop rule recorded every sender: the record rule goes before it, as written now."""
    namespace = pair_namespaces["lb1"]
    earlier = ["-i", "eth0", "-p", "112", "-m", "comment", "--comment", DROP4, "-m", "recent", "--name", "lbpair_rogue_vrrp",
               "--rsource", "--set", "-j", "DROP"]  # fmt: skip
    netns.run(namespace, ["iptables", "-A", "INPUT", *earlier])
    with netns.enter(namespace):
        assert node_loaders["lb1"].modules.lbpair_firewall.vrrp_allow() == {"added": WANTED, "removed": [DROP4]}
        listing = netns.run(namespace, ["iptables", "-S", "INPUT"]).stdout
    assert list(iptables.comments_in_iptables(listing)) == [ACCEPT, RECORD4, DROP4]
    assert f'-i eth0 -p vrrp -m comment --comment "{DROP4}" -j DROP' in listing


def test_rule_of_a_node_that_left_is_removed(pair_namespaces, node_loaders, seed_pillar):
    loader = node_loaders["lb1"]
    with netns.enter(pair_namespaces["lb1"]):
        loader.modules.lbpair_firewall.vrrp_allow()
        seed_pillar["nodes"]["lb2"]["address"] = "192.0.2.13"
        set_pillar(loader, seed_pillar)
        result = loader.modules.lbpair_firewall.vrrp_allow()
        listing = netns.run(pair_namespaces["lb1"], ["iptables", "-S", "INPUT"]).stdout
    assert result == {"added": ["lbpair-vrrp 192.0.2.13 to 224.0.0.18"], "removed": ["lbpair-vrrp 192.0.2.12 to 224.0.0.18"]}
    assert "192.0.2.12" not in listing and "192.0.2.13" in listing


def lb1_with_backend(node_loaders, seed_pillar, backend):
    """lb1's loaders, its pillar set to the firewall *backend*."""
    seed_pillar["firewall"] = {"backend": backend}
    set_pillar(node_loaders["lb1"], seed_pillar)
    return node_loaders["lb1"]


@pytest.mark.parametrize("backend", ["nftables"])
def test_nftables_backend_adds_and_finds_its_rule(pair_namespaces, node_loaders, seed_pillar, backend):
    loader = lb1_with_backend(node_loaders, seed_pillar, backend)
    with netns.enter(pair_namespaces["lb1"]):
        assert loader.modules.lbpair_firewall.vrrp_allow()["added"] == WANTED
        assert loader.modules.lbpair_firewall.vrrp_allow() == {"added": [], "removed": []}
        listing = netns.run(pair_namespaces["lb1"], ["nft", "list", "chain", "inet", "filter", "input"]).stdout
    accept = listing.index('ip saddr 192.0.2.12 ip daddr 224.0.0.18 ip protocol vrrp accept comment "lbpair-vrrp 192.0.2.12 to 224.0.0.18"')
    record4 = listing.index(f'iifname "eth0" ip protocol vrrp @th,8,8 0x33 add @lbpair_rogue_v4 {{ ip saddr }} drop comment "{RECORD4}"')
    record6 = listing.index(f'iifname "eth0" ip6 nexthdr vrrp @th,8,8 0x33 add @lbpair_rogue_v6 {{ ip6 saddr }} drop comment "{RECORD6}"')
    drop4 = listing.index(f'iifname "eth0" meta protocol ip meta l4proto vrrp drop comment "{DROP4}"')
    drop6 = listing.index(f'iifname "eth0" meta protocol ip6 meta l4proto vrrp drop comment "{DROP6}"')
    assert accept < record4 < record6 < drop4 < drop6


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_drop_rules_follow_the_pair_interface(pair_namespaces, node_loaders, seed_pillar, backend):
    loader = lb1_with_backend(node_loaders, seed_pillar, backend)
    with netns.enter(pair_namespaces["lb1"]):
        assert loader.modules.lbpair_firewall.vrrp_allow()["added"] == WANTED
        seed_pillar["vrrp"]["interface"] = "eth1"
        set_pillar(loader, seed_pillar)
        moved = [rule.replace(" on eth0", " on eth1") for rule in WANTED[1:]]
        assert loader.modules.lbpair_firewall.vrrp_allow() == {"added": moved, "removed": WANTED[1:]}
        assert loader.modules.lbpair_firewall.vrrp_rules() == dict.fromkeys([ACCEPT, *moved], True)


def on_both(function, seed_pillar):
    """``{node: function(model)}``, each run in its node's namespace of the segment."""
    results = {}
    for node, namespace in SEGMENT.items():
        with netns.enter(namespace):
            results[node] = function(node_model(seed_pillar, node))
    return results


def stays(namespaces, expected, seconds):
    """Whether the VIP holders stay *expected* for *seconds* (checked every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if holders_of_vip(namespaces) != expected:
            return False
        time.sleep(0.2)
    return True


FLUSH = {"iptables": ["iptables", "-F", "INPUT"], "nftables": ["nft", "flush", "chain", "inet", "filter", "input"]}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_rogue_router_changes_nothing_with_the_rules_and_is_reported(segment, seed_pillar, backend, tmp_path):
    seed_pillar["firewall"] = {"backend": backend}
    assert {node: result["added"] for node, result in on_both(firewall.allow, seed_pillar).items()} == {
        "lb1": WANTED, "lb2": ["lbpair-vrrp 192.0.2.11 to 224.0.0.18", *WANTED[1:]],
    }  # fmt: skip
    with keepalived_on(segment, seed_pillar, tmp_path):
        assert wait_for_holders(segment, ["lb1"]), holders_of_vip(segment)
        with rogue.RogueRouter(ROGUE, tmp_path / "rogue", vrid=51, priority=254, vips=[VIP]) as router:
            assert wait_for_holders(segment, ["lb1"]) and stays(segment, ["lb1"], 6), holders_of_vip(segment)
            assert router.is_master(), router.log()  # it claimed the VRID all along
            assert on_both(firewall.rogue_senders, seed_pillar) == {"lb1": [ROGUE_ADDRESS], "lb2": [ROGUE_ADDRESS]}

            # the control: without lbpair's rules the same rogue takes the VIPs from the pair
            for namespace in segment.values():
                netns.run(namespace, FLUSH[backend])
            assert wait_for_holders(segment, []), holders_of_vip(segment)
            flushed = [ACCEPT, DROP4, RECORD4] if backend == "iptables" else WANTED  # iptables -F left ip6tables alone
            assert on_both(firewall.allow, seed_pillar)["lb1"]["added"] == flushed
            assert wait_for_holders(segment, ["lb1"]), holders_of_vip(segment)


#: a stranger's two addresses on the segment: one sends the pair's VRID, the other another VRID; lb1's address
STRANGER = {socket.AF_INET: (ROGUE_ADDRESS, "192.0.2.67"), socket.AF_INET6: ("2001:db8::66", "2001:db8::67")}
LB1 = {socket.AF_INET: "192.0.2.11", socket.AF_INET6: "2001:db8::11"}
PAIR_VRID, OTHER_VRID = 51, 99
VRRP = int(ruleset.VRRP_PROTOCOL)


def send_advert(family, source, vrid):
    """From the stranger's *source*, a VRRPv3 advert of *vrid* to lb1 (checksum 0: only the VRID is looked at)."""
    with netns.enter(ROGUE), socket.socket(family, socket.SOCK_RAW, VRRP) as sender:
        sender.bind((source, 0))
        sender.sendto(bytes([0x31, vrid, 254, 1, 0, 100, 0, 0]), (LB1[family], 0))


def received(receiver):
    """Whether a VRRP packet reached lb1's *receiver* (a raw socket: it sees what the firewall let in)."""
    try:
        receiver.recv(64)
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_stranger_is_recorded_for_the_pair_vrid_only_and_dropped_for_any(segment, seed_pillar, backend):
    """Another VRRP router on the segment, with a VRID of its own, is no rogue: dropped, not reported."""
    seed_pillar["firewall"] = {"backend": backend}

    def on_lb1(function):
        with netns.enter(segment["lb1"]):
            return function(node_model(seed_pillar, "lb1"))

    netns.ip(segment["lb1"], "address", "add", f"{LB1[socket.AF_INET6]}/64", "dev", "eth0", "nodad")
    for address in STRANGER[socket.AF_INET6]:
        netns.ip(ROGUE, "address", "add", f"{address}/64", "dev", "eth0", "nodad")
    netns.ip(ROGUE, "address", "add", f"{STRANGER[socket.AF_INET][1]}/24", "dev", "eth0")
    with contextlib.ExitStack() as stack:
        with netns.enter(segment["lb1"]):
            receivers = {family: stack.enter_context(socket.socket(family, socket.SOCK_RAW, VRRP)) for family in LB1}
        for family, receiver in receivers.items():
            receiver.settimeout(0.5)
            send_advert(family, STRANGER[family][1], OTHER_VRID)
            assert received(receiver), family  # the control: without the rules the advert arrives
        assert on_lb1(firewall.allow)["added"] == WANTED
        for family, (pair_vrid_sender, other_vrid_sender) in STRANGER.items():
            send_advert(family, other_vrid_sender, OTHER_VRID)
            send_advert(family, pair_vrid_sender, PAIR_VRID)
        recorded = [ROGUE_ADDRESS, STRANGER[socket.AF_INET6][0]]
        assert wait_until(lambda: on_lb1(firewall.rogue_senders) == recorded, 5)
        assert not any(received(receiver) for receiver in receivers.values())
        assert on_lb1(firewall.rogue_senders) == recorded


def test_unicast_keepalived_conf_passes_keepalived_t(loaders, modules, pillar):
    pillar["vrrp"]["unicast"] = True
    set_pillar(loaders, pillar)
    assert "    check_unicast_src\n" in modules.lbpair_keepalived.render()
    assert "error" not in modules.lbpair_keepalived.validate().lower()


@pytest.mark.parametrize("checked", [True, False], ids=["check_unicast_src", "control_without_it"])
def test_in_unicast_mode_keepalived_ignores_a_rogue_even_without_the_rules(segment, seed_pillar, tmp_path, checked):
    seed_pillar["vrrp"]["unicast"] = True
    peers = [seed_pillar["nodes"][node]["address"] for node in SEGMENT]
    with keepalived_on(segment, seed_pillar, tmp_path, without=None if checked else "check_unicast_src"):
        assert wait_for_holders(segment, ["lb1"]), holders_of_vip(segment)
        with rogue.RogueRouter(ROGUE, tmp_path / "rogue", vrid=51, priority=254, vips=[VIP], unicast_peers=peers) as router:
            assert wait_until(router.is_master, 10), router.log()
            if checked:
                assert stays(segment, ["lb1"], 6), holders_of_vip(segment)
            else:
                assert wait_for_holders(segment, []), holders_of_vip(segment)
