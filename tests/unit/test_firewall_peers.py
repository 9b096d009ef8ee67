"""The peers-port firewall rules as data: which rules, their text."""

from lbpair_lib import firewall_peers, pillar
from lbpair_lib.firewall_peers import Rule


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def test_no_stick_tables_no_rules(seed_pillar):
    assert firewall_peers.wanted_rules(model_for(seed_pillar)) == {}


def test_accepts_the_pair_nodes_then_drops_everyone_else(seed_pillar):
    seed_pillar["services"]["foo"]["stick"] = {"expire": 600}
    rules = firewall_peers.wanted_rules(model_for(seed_pillar))
    assert list(rules.items()) == [
        ("lbpair-peers 192.0.2.11 to 192.0.2.11 port 10000", Rule("accept", "ipv4", "192.0.2.11", "192.0.2.11", 10000)),
        ("lbpair-peers 192.0.2.12 to 192.0.2.11 port 10000", Rule("accept", "ipv4", "192.0.2.12", "192.0.2.11", 10000)),
        ("lbpair-peers drop ipv4 to 192.0.2.11 port 10000", Rule("drop", "ipv4", None, "192.0.2.11", 10000)),
    ]
    for comment in rules:
        assert firewall_peers.COMMENT_RE.search(f'"{comment}"')


def test_rule_texts():
    accept = Rule("accept", "ipv4", "192.0.2.12", "192.0.2.11", 10000)
    assert firewall_peers.iptables_spec(accept, "c") == [
        "-s", "192.0.2.12", "-d", "192.0.2.11", "-p", "tcp", "--dport", "10000", "-m", "comment", "--comment", "c", "-j", "ACCEPT",
    ]  # fmt: skip
    drop = Rule("drop", "ipv6", None, "2001:db8::11", 10000)
    assert firewall_peers.nft_rule(drop, "c") == 'ip6 daddr 2001:db8::11 tcp dport 10000 drop comment "c"'
