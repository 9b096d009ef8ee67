"""The exporter's firewall rules as data: which rules, their text."""

import functools

from saltext.lbpair.node.firewall import exporter, peers, ruleset
from saltext.lbpair.node.firewall.peers import Rule
from tests.unit import test_exporter
from tests.unit.test_exporter import model_for

SCRAPERS = ["198.51.100.0/28", "198.51.100.77/32"]
with_exporter = functools.partial(test_exporter.with_exporter, allow=SCRAPERS)


def test_no_exporter_no_rules(seed_pillar):
    assert exporter.wanted_rules(model_for(seed_pillar)) == {}


def test_accepts_the_allowed_networks_then_drops_everyone_else(seed_pillar):
    rules = exporter.wanted_rules(model_for(with_exporter(seed_pillar), "lb2"))
    assert list(rules.items()) == [
        ("lbpair-prometheus 198.51.100.0/28 to 192.0.2.12 port 8404", Rule("accept", "ipv4", "198.51.100.0/28", "192.0.2.12", 8404)),
        ("lbpair-prometheus 198.51.100.77/32 to 192.0.2.12 port 8404", Rule("accept", "ipv4", "198.51.100.77/32", "192.0.2.12", 8404)),
        ("lbpair-prometheus drop ipv4 to 192.0.2.12 port 8404", Rule("drop", "ipv4", None, "192.0.2.12", 8404)),
    ]
    for comment in rules:
        assert exporter.COMMENT_RE.search(f'"{comment}"')
        assert not peers.COMMENT_RE.search(f'"{comment}"') and not ruleset.COMMENT_RE.search(f'"{comment}"')


def test_the_rule_texts_of_both_backends(seed_pillar):
    rules = list(exporter.wanted_rules(model_for(with_exporter(seed_pillar, port=9101))).items())
    (accept_comment, accept), (drop_comment, drop) = rules[0], rules[-1]
    assert exporter.EXPORTER.iptables_spec(accept, accept_comment) == [
        "-s", "198.51.100.0/28", "-d", "192.0.2.11", "-p", "tcp", "--dport", "9101", "-m", "comment", "--comment", accept_comment,
        "-j", "ACCEPT",
    ]  # fmt: skip
    assert exporter.EXPORTER.nft_rule(drop, drop_comment) == (
        'ip daddr 192.0.2.11 tcp dport 9101 drop comment "lbpair-prometheus drop ipv4 to 192.0.2.11 port 9101"'
    )


def test_an_ipv6_exporter_gets_ipv6_rules(seed_pillar):
    with_exporter(seed_pillar, address={"lb1": "fd00::11", "lb2": "fd00::12"}, allow=["2001:db8:1::/64"])
    rules = exporter.wanted_rules(model_for(seed_pillar))
    assert list(rules) == ["lbpair-prometheus 2001:db8:1::/64 to fd00::11 port 8404", "lbpair-prometheus drop ipv6 to fd00::11 port 8404"]
    assert exporter.EXPORTER.nft_rule(*reversed(list(rules.items())[0])) == (
        'ip6 saddr 2001:db8:1::/64 ip6 daddr fd00::11 tcp dport 8404 accept comment "lbpair-prometheus 2001:db8:1::/64 to fd00::11 port 8404"'
    )


def test_a_wildcard_matches_any_destination_of_its_family(seed_pillar):
    with_exporter(seed_pillar, address="0.0.0.0", wildcard=True, port=9100)
    rules = exporter.wanted_rules(model_for(seed_pillar))
    assert {rule.destination for rule in rules.values()} == {None}
    drop_comment, drop = list(rules.items())[-1]
    assert drop_comment == "lbpair-prometheus drop ipv4 to 0.0.0.0 port 9100"
    assert "-d" not in exporter.EXPORTER.iptables_spec(drop, drop_comment)
    assert exporter.EXPORTER.nft_rule(drop, drop_comment).startswith("meta protocol ip tcp dport 9100 drop")


def test_the_exporter_on_a_vip_is_guarded_on_both_nodes(seed_pillar):
    with_exporter(seed_pillar, address="203.0.113.10", on_vip=True, port=9100)
    for node in ("lb1", "lb2"):
        assert {rule.destination for rule in exporter.wanted_rules(model_for(seed_pillar, node)).values()} == {"203.0.113.10"}


def test_the_peers_rules_keep_their_texts(seed_pillar):
    """The exporter shares the peers rules' texts: a peers rule still names its destination."""
    drop = Rule("drop", "ipv4", None, "192.0.2.11", 10000)
    assert peers.iptables_spec(drop, "c")[:2] == ["-d", "192.0.2.11"]
    assert peers.nft_rule(drop, "c") == 'ip daddr 192.0.2.11 tcp dport 10000 drop comment "c"'
