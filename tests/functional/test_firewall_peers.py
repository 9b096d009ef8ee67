"""
The peers-port firewall rules, proven by behaviour: lb1, lb2 and a third host on one
segment (IPv4 and IPv6), a TCP server on lb1's addresses at the peers port. With the
rules, lb2 (and lb1 itself) still connect and the third host's SYNs are dropped, with
either backend; applying again changes nothing; a new port replaces the rules (each new
rule in place before an old one goes); without stick tables they go; and the VRRP rules
and the peers rules leave each other alone. A service VIP on the same port stays open.
"""

import contextlib
import socket

import pytest

from lab import netns, rogue
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import iptables, nftables, peers
from tests.functional.conftest import set_pillar
from tests.functional.rigs import connects, node_model

SWITCH = "lbpair-fwp-sw"
HOSTS = {"lb1": "lbpair-fwp-lb1", "lb2": "lbpair-fwp-lb2", "third": "lbpair-fwp-x"}
ADDRESSES = {
    "lb1": ("192.0.2.11", "2001:db8::11"),
    "lb2": ("192.0.2.12", "2001:db8::12"),
    "third": ("192.0.2.66", "2001:db8::66"),
}
VIP = "203.0.113.10"  # service foo's, put on the peers port below
PORT, NEW_PORT = 10000, 10001
NFT_CHAIN = ["inet", "filter", "input"]
LISTINGS = {
    "iptables": [["iptables", "-S", "INPUT"], ["ip6tables", "-S", "INPUT"]],
    "nftables": [["nft", "list", "chain", "inet", "filter", "input"]],
}


def wanted(port):
    """lb1's peers rules at *port*, sorted as ``allow`` lists them."""
    accepts = [f"lbpair-peers {source} to {destination} port {port}" for destination in ADDRESSES["lb1"] for source in
               (destination, ADDRESSES["lb2"][ADDRESSES["lb1"].index(destination)])]  # fmt: skip
    drops = [f"lbpair-peers drop ipv4 to 192.0.2.11 port {port}", f"lbpair-peers drop ipv6 to 2001:db8::11 port {port}"]
    return sorted(accepts + drops)


@pytest.fixture
def segment():
    """lb1, lb2 and a third host on one bridge (the default ACCEPT policy), each with an IPv4 and an IPv6 address."""
    with contextlib.ExitStack() as stack:
        netns.add(SWITCH)
        stack.callback(netns.delete, SWITCH)
        netns.bridge(SWITCH, "br0")
        for host, namespace in HOSTS.items():
            stack.enter_context(rogue.on_segment(SWITCH, "br0", namespace, f"{ADDRESSES[host][0]}/24"))
            netns.ip(namespace, "address", "add", f"{ADDRESSES[host][1]}/64", "dev", "eth0", "nodad")  # usable at once
        netns.add_address(HOSTS["lb1"], "eth0", f"{VIP}/32")
        netns.add_route(HOSTS["third"], "203.0.113.0/24", "eth0")
        _neighbours_resolved()
        yield HOSTS


def _neighbours_resolved():
    """
    Each host has reached lb1's addresses once: a neighbour solicitation lost on a fresh segment
    is sent again only after 1 s, longer than :func:`connects` waits for a connection, and the
    checks below are about the firewall, not about the first packet on a new link.
    """
    for host in ("lb2", "third"):
        with netns.enter(HOSTS[host]):
            for address in ADDRESSES["lb1"]:
                _answered(address)


def _answered(address, attempts=5):
    """lb1 answers a connection to *address* (a refusal is an answer: nothing listens yet)."""
    for _ in range(attempts):
        try:
            socket.create_connection((address, NEW_PORT), timeout=2).close()
            return
        except ConnectionRefusedError:
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{address} does not answer on the fresh segment")


@pytest.fixture
def lbpair(seed_pillar, backend):
    """The seed pillar with IPv6 node addresses, service foo sticky (so HAProxy has a peers section) on the peers port."""
    for node, (_, address6) in ADDRESSES.items():
        if node in seed_pillar["nodes"]:
            seed_pillar["nodes"][node]["address6"] = address6
    seed_pillar["services"]["foo"].update(stick={"expire": 600}, port=PORT)
    seed_pillar["firewall"] = {"backend": backend}
    return seed_pillar


@contextlib.contextmanager
def servers(port, addresses=(*ADDRESSES["lb1"], VIP)):
    """TCP servers on lb1 at *port* (its node addresses and the VIP): the kernel completes connections without an accept."""
    with contextlib.ExitStack() as stack, netns.enter(HOSTS["lb1"]):
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            stack.enter_context(contextlib.closing(socket.create_server((address, port), family=family)))
        yield


def reach(port):
    """``{host: [IPv4, IPv6]}``: whether each host's connection to lb1's addresses at *port* is made."""
    return {host: [connects(namespace, address, port) for address in ADDRESSES["lb1"]] for host, namespace in HOSTS.items()}


OPEN = {"lb1": [True, True], "lb2": [True, True], "third": [True, True]}
PAIR_ONLY = {"lb1": [True, True], "lb2": [True, True], "third": [False, False]}


def on_lb1(function, lbpair):
    with netns.enter(HOSTS["lb1"]):
        return function(node_model(lbpair, "lb1"))


def listing(backend):
    """lb1's INPUT chains as the backend lists them."""
    return "".join(netns.run(HOSTS["lb1"], command, timeout=10).stdout for command in LISTINGS[backend])


def vrrp_lines(backend):
    return [line for line in listing(backend).splitlines() if "lbpair-vrrp" in line]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_the_peers_port_refuses_a_third_address_and_applying_again_changes_nothing(segment, lbpair, backend):
    with servers(PORT):
        assert reach(PORT) == OPEN  # the control: without the rules anyone connects
        assert on_lb1(firewall.allow, lbpair)["added"]
        vrrp_before = vrrp_lines(backend)
        assert on_lb1(peers.allow, lbpair) == {"added": wanted(PORT), "removed": []}
        assert reach(PORT) == PAIR_ONLY
        assert connects(HOSTS["third"], VIP, PORT)  # a service on the same port, on its VIP, stays open
        assert on_lb1(peers.allow, lbpair) == {"added": [], "removed": []}
        assert on_lb1(peers.rules, lbpair) == dict.fromkeys(wanted(PORT), True)
        text = listing(backend)
        assert sorted(comment for comment in wanted(PORT) if text.count(f'"{comment}"') == 1) == wanted(PORT), text
        assert text.count("lbpair-peers") == len(wanted(PORT)), text  # no duplicates
        assert vrrp_lines(backend) == vrrp_before  # the VRRP rules untouched
        assert on_lb1(firewall.allow, lbpair) == {"added": [], "removed": []}  # and still all in place
        assert reach(PORT) == PAIR_ONLY


@pytest.mark.parametrize("backend", ["iptables"])
def test_the_drop_rules_follow_the_accept_rules_in_each_family(segment, lbpair, backend):
    """The iptables listing itself: accept rules, then the drop rule, per family; the texts as iptables reads them."""
    on_lb1(peers.allow, lbpair)
    ipv4, ipv6 = (netns.run(HOSTS["lb1"], command, timeout=10).stdout for command in LISTINGS["iptables"])
    assert list(iptables.comments_in_iptables(ipv4, peers.COMMENT_RE)) == [
        "lbpair-peers 192.0.2.12 to 192.0.2.11 port 10000",
        "lbpair-peers 192.0.2.11 to 192.0.2.11 port 10000",
        "lbpair-peers drop ipv4 to 192.0.2.11 port 10000",
    ]
    assert '-s 192.0.2.12/32 -d 192.0.2.11/32 -p tcp -m tcp --dport 10000 -m comment --comment "lbpair-peers 192.0.2.12' in ipv4
    assert '-d 192.0.2.11/32 -p tcp -m tcp --dport 10000 -m comment --comment "lbpair-peers drop ipv4' in ipv4
    assert list(iptables.comments_in_iptables(ipv6, peers.COMMENT_RE))[-1] == "lbpair-peers drop ipv6 to 2001:db8::11 port 10000"


@pytest.fixture
def deletions_seen(monkeypatch, backend):
    """
    Each peers rule the backend deletes, with the peers comments in lb1's chains at that moment
    (the spies call the real ones): with iptables as each ``-D`` runs; with nftables, whose
    deletions are in the one batch with the additions, as the batch commits.
    """
    seen = []
    if backend == "iptables":
        real_delete = iptables.delete

        def delete(model, comment, handle):
            seen.append((comment, _comments(listing(backend))))
            real_delete(model, comment, handle)

        monkeypatch.setattr(iptables, "delete", delete)
        return seen
    real_batch = nftables.run_batch

    def run_batch(lines):
        chain = netns.run(HOSTS["lb1"], ["nft", "-j", "list", "chain", *NFT_CHAIN], check=False, timeout=10).stdout  # "" before the first
        before = dict(nftables.chain_rules(chain))
        real_batch(lines)
        after = _comments(listing(backend))
        deleted = [before[int(line.split()[-1])] for line in lines if line.startswith("delete rule")]
        seen.extend((comment, after) for comment in deleted if comment.startswith(peers.COMMENT_PREFIX))

    monkeypatch.setattr(nftables, "run_batch", run_batch)
    return seen


def _comments(text):
    return {match.group(1) for match in peers.COMMENT_RE.finditer(text)}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_new_peers_port_replaces_the_rules_adding_before_deleting(segment, lbpair, backend, deletions_seen):
    on_lb1(firewall.allow, lbpair)
    vrrp_before = vrrp_lines(backend)
    assert on_lb1(peers.allow, lbpair)["added"] == wanted(PORT)
    lbpair["haproxy"] = {"peers_port": NEW_PORT}
    with servers(NEW_PORT, ADDRESSES["lb1"]), servers(PORT, ADDRESSES["lb1"]):
        assert on_lb1(peers.allow, lbpair) == {"added": wanted(NEW_PORT), "removed": wanted(PORT)}
        assert reach(NEW_PORT) == PAIR_ONLY
        assert reach(PORT) == OPEN  # the old port's rules are gone
    assert sorted(comment for comment, _ in deletions_seen) == wanted(PORT)
    assert all(set(wanted(NEW_PORT)) <= present for _, present in deletions_seen), deletions_seen  # never a moment without
    assert _comments(listing(backend)) == set(wanted(NEW_PORT))
    assert vrrp_lines(backend) == vrrp_before
    assert on_lb1(peers.allow, lbpair) == {"added": [], "removed": []}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_without_stick_tables_the_rules_go_and_the_vrrp_rules_stay(segment, lbpair, backend):
    on_lb1(firewall.allow, lbpair)
    assert on_lb1(peers.allow, lbpair)["added"] == wanted(PORT)
    del lbpair["services"]["foo"]["stick"]
    with servers(PORT, ADDRESSES["lb1"]):
        assert on_lb1(peers.rules, lbpair) == {}
        assert on_lb1(peers.allow, lbpair) == {"added": [], "removed": wanted(PORT)}
        assert reach(PORT) == OPEN
    assert "lbpair-peers" not in listing(backend)
    assert on_lb1(firewall.allow, lbpair) == {"added": [], "removed": []}
    assert on_lb1(peers.allow, lbpair) == {"added": [], "removed": []}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_changed_vrrp_rules_leave_the_peers_rules_alone(segment, lbpair, backend):
    on_lb1(peers.allow, lbpair)
    on_lb1(firewall.allow, lbpair)
    peers_before = [line for line in listing(backend).splitlines() if "lbpair-peers" in line]
    lbpair["vrrp"]["interface"] = "eth1"  # every record and drop rule of VRRP replaced
    assert on_lb1(firewall.allow, lbpair)["removed"]
    assert [line for line in listing(backend).splitlines() if "lbpair-peers" in line] == peers_before
    assert on_lb1(peers.allow, lbpair) == {"added": [], "removed": []}


@pytest.mark.parametrize("backend", ["iptables"])
def test_the_state_predicts_applies_and_then_changes_nothing(segment, lbpair, backend, loaders):
    set_pillar(loaders, lbpair)
    with netns.enter(HOSTS["lb1"]):
        predicted = loaders.states.lbpair_firewall.peers_allowed(name="peers", test=True)
        assert predicted.result is None and predicted.changes == {"added": wanted(PORT)}, predicted
        assert "lbpair-peers" not in listing(backend)
        applied = loaders.states.lbpair_firewall.peers_allowed(name="peers")
        assert applied.result is True and applied.changes == {"added": wanted(PORT)}, applied
        again = loaders.states.lbpair_firewall.peers_allowed(name="peers")
        assert again.result is True and again.changes == {} and "in place" in again.comment, again
        assert loaders.modules.lbpair_firewall.peers_rules() == dict.fromkeys(wanted(PORT), True)
