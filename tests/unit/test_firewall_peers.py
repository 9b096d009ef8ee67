"""The peers-port firewall rules as data: which rules, their text."""

import re

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy
from saltext.lbpair.node.firewall import peers
from saltext.lbpair.node.firewall.peers import Rule


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def test_no_stick_tables_no_rules(seed_pillar):
    assert peers.wanted_rules(model_for(seed_pillar)) == {}


def test_accepts_the_pair_nodes_then_drops_everyone_else(seed_pillar):
    seed_pillar["services"]["foo"]["stick"] = {"expire": 600}
    rules = peers.wanted_rules(model_for(seed_pillar))
    assert list(rules.items()) == [
        ("lbpair-peers 192.0.2.11 to 192.0.2.11 port 10000", Rule("accept", "ipv4", "192.0.2.11", "192.0.2.11", 10000)),
        ("lbpair-peers 192.0.2.12 to 192.0.2.11 port 10000", Rule("accept", "ipv4", "192.0.2.12", "192.0.2.11", 10000)),
        ("lbpair-peers drop ipv4 to 192.0.2.11 port 10000", Rule("drop", "ipv4", None, "192.0.2.11", 10000)),
    ]
    for comment in rules:
        assert peers.COMMENT_RE.search(f'"{comment}"')


def test_rule_texts():
    accept = Rule("accept", "ipv4", "192.0.2.12", "192.0.2.11", 10000)
    assert peers.iptables_spec(accept, "c") == [
        "-s", "192.0.2.12", "-d", "192.0.2.11", "-p", "tcp", "--dport", "10000", "-m", "comment", "--comment", "c", "-j", "ACCEPT",
    ]  # fmt: skip
    drop = Rule("drop", "ipv6", None, "2001:db8::11", 10000)
    assert peers.nft_rule(drop, "c") == 'ip6 daddr 2001:db8::11 tcp dport 10000 drop comment "c"'


def test_both_families_when_the_nodes_have_ipv6_addresses(seed_pillar):
    seed_pillar["services"]["foo"]["stick"] = {"expire": 600}
    seed_pillar["nodes"]["lb1"]["address6"], seed_pillar["nodes"]["lb2"]["address6"] = "2001:db8::11", "2001:db8::12"
    assert list(peers.wanted_rules(model_for(seed_pillar, "lb2"))) == [
        "lbpair-peers 192.0.2.11 to 192.0.2.12 port 10000",
        "lbpair-peers 192.0.2.12 to 192.0.2.12 port 10000",
        "lbpair-peers 2001:db8::11 to 2001:db8::12 port 10000",
        "lbpair-peers 2001:db8::12 to 2001:db8::12 port 10000",
        "lbpair-peers drop ipv4 to 192.0.2.12 port 10000",
        "lbpair-peers drop ipv6 to 2001:db8::12 port 10000",
    ]
    seed_pillar["firewall"] = {"backend": "nftables", "nft_table": "ip filter"}  # an ip table sees no IPv6
    assert {rule.family for rule in peers.wanted_rules(model_for(seed_pillar)).values()} == {"ipv4"}


def sticky(change):
    """A pillar change on top of a sticky service foo (so that there is a peers section, and peers rules)."""
    return lambda p: (p["services"]["foo"].update(stick={"expire": 600}), change(p))


#: what an attacker (or a slip) tries through the pillar, the change, the key named, words of the message
HOSTILE = [
    ("peers on the SSH port: HAProxy cannot bind it, the drop rule would lock admins out", sticky(lambda p: p["haproxy"].update(peers_port=22)),
     "lbpair:haproxy:peers_port", "privileged port"),
    ("peers on another privileged port", sticky(lambda p: p["haproxy"].update(peers_port=1023)), "lbpair:haproxy:peers_port", "1024-65535"),
    ("port 0 (any port)", sticky(lambda p: p["haproxy"].update(peers_port=0)), "lbpair:haproxy:peers_port", "from 1 to 65535"),
    ("a port past 65535", sticky(lambda p: p["haproxy"].update(peers_port=65536)), "lbpair:haproxy:peers_port", "from 1 to 65535"),
    ("a port that smuggles iptables options", sticky(lambda p: p["haproxy"].update(peers_port="10000 -j ACCEPT")),
     "lbpair:haproxy:peers_port", "integer"),
    ("a port that smuggles nft text", sticky(lambda p: p["haproxy"].update(peers_port='10000 accept comment "lbpair-peers x"')),
     "lbpair:haproxy:peers_port", "integer"),
    ("true for a port", sticky(lambda p: p["haproxy"].update(peers_port=True)), "lbpair:haproxy:peers_port", "integer"),
    ("a node address that widens the accept rule to a network", sticky(lambda p: p["nodes"]["lb2"].update(address="192.0.2.0/24")),
     "lbpair:nodes:lb2:address", "not an IP address"),
    ("a node address6 that smuggles nft text", sticky(lambda p: p["nodes"]["lb2"].update(address6="2001:db8::12 accept")),
     "lbpair:nodes:lb2:address6", "not an IP address"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "key", "words"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_peers_settings_are_refused_naming_the_key(seed_pillar, what, change, key, words):
    change(seed_pillar)
    with pytest.raises(InvalidValue, match=re.escape(words)) as refused:
        model_for(seed_pillar)
    assert refused.value.path == key, what


@pytest.mark.parametrize(
    ("what", "port_of"),
    [("a service's port", lambda p: p["services"]["foo"]["port"]), ("the probe's port", lambda p: p["vrrp"]["probe"]["port"])],
)
def test_a_peers_port_shared_with_a_service_or_the_probe_filters_only_the_node_addresses(seed_pillar, what, port_of):
    """Services listen on their VIPs and the probe on 127.0.0.1: the same port on the nodes' addresses clashes with neither."""
    seed_pillar["services"]["foo"]["port"] = 10080
    seed_pillar["services"]["foo"]["stick"] = {"expire": 600}
    seed_pillar["haproxy"] = {"peers_port": port_of(seed_pillar)}
    model = model_for(seed_pillar)
    rules = peers.wanted_rules(model).values()
    assert {rule.destination for rule in rules} == {"192.0.2.11"}, what
    assert {rule.port for rule in rules} == {model["haproxy"]["peers_port"]}
    assert f"peer lb1 192.0.2.11:{model['haproxy']['peers_port']}" in haproxy.render_config(model)
