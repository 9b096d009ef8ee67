"""The VRRP firewall rules as data: which rules, their text, finding them again, reading the rogue senders."""

import json
import pathlib

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import firewall, keepalived_config
from saltext.lbpair.node.firewall import Rule, holds, iptables, nftables, peers, rogue, ruleset

ACCEPT = "lbpair-vrrp 192.0.2.12 to 224.0.0.18"
DROP4, DROP6 = "lbpair-vrrp drop ipv4 on eth0", "lbpair-vrrp drop ipv6 on eth0"
RECORD4, RECORD6 = "lbpair-vrrp record ipv4 vrid 51 on eth0", "lbpair-vrrp record ipv6 vrid 51 on eth0"


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def test_iptables_accepts_each_peer_then_records_the_pair_vrids_and_drops_other_vrrp_of_both_families(seed_pillar):
    rules = firewall.wanted_rules(model_for(seed_pillar))
    assert list(rules.items()) == [
        (ACCEPT, Rule("accept", "ipv4", "192.0.2.12", "224.0.0.18", None)),
        (RECORD4, Rule("record", "ipv4", None, None, "eth0", "51")),
        (RECORD6, Rule("record", "ipv6", None, None, "eth0", "51")),
        (DROP4, Rule("drop", "ipv4", None, None, "eth0")),
        (DROP6, Rule("drop", "ipv6", None, None, "eth0")),
    ]


def test_record_rules_name_every_vrid_of_the_pair(seed_pillar):
    seed_pillar["vrrp"]["instances"] = {"web2": {"virtual_router_id": 7}}
    seed_pillar["services"]["bar"]["instance"] = "web2"
    records = [comment for comment, rule in firewall.wanted_rules(model_for(seed_pillar)).items() if rule.action == "record"]
    assert records == ["lbpair-vrrp record ipv4 vrid 7,51 on eth0", "lbpair-vrrp record ipv6 vrid 7,51 on eth0"]


def test_unicast_accepts_adverts_to_the_node_address(seed_pillar):
    seed_pillar["vrrp"]["unicast"] = True
    rules = firewall.wanted_rules(model_for(seed_pillar, "lb2"))
    assert list(rules) == ["lbpair-vrrp 192.0.2.11 to 192.0.2.12", RECORD4, RECORD6, DROP4, DROP6]


def test_drop_rules_name_the_pair_interface(seed_pillar):
    seed_pillar["vrrp"]["interface"] = "ens3.42"
    assert list(firewall.wanted_rules(model_for(seed_pillar)))[1:] == [
        "lbpair-vrrp record ipv4 vrid 51 on ens3.42", "lbpair-vrrp record ipv6 vrid 51 on ens3.42",
        "lbpair-vrrp drop ipv4 on ens3.42", "lbpair-vrrp drop ipv6 on ens3.42",
    ]  # fmt: skip


def test_nft_table_family_decides_which_families_are_dropped(seed_pillar):
    expected = {"inet filter": ["ipv4", "ipv6"], "ip filter": ["ipv4"], "ip6 filter": ["ipv6"]}
    for table, families in expected.items():
        seed_pillar["firewall"] = {"backend": "nftables", "nft_table": table}
        rules = firewall.wanted_rules(model_for(seed_pillar)).values()
        assert [rule.family for rule in rules if rule.action == "record"] == families, table
        assert [rule.family for rule in rules if rule.action == "drop"] == families, table


def test_iptables_rule_arguments():
    accept = Rule("accept", "ipv4", "192.0.2.12", "224.0.0.18", None)
    assert iptables.iptables_spec(accept, ACCEPT) == [
        "-s", "192.0.2.12", "-d", "224.0.0.18", "-p", "112", "-m", "comment", "--comment", ACCEPT, "-j", "ACCEPT",
    ]  # fmt: skip
    record4 = Rule("record", "ipv4", None, None, "eth0", "51,52")
    assert iptables.iptables_spec(record4, RECORD4) == [
        "-i", "eth0", "-p", "112", "-m", "u32", "--u32", "0>>22&0x3C@0>>16&0xFF=51,52", "-m", "comment", "--comment", RECORD4,
        "-m", "recent", "--name", "lbpair_rogue_vrrp", "--rsource", "--set", "-j", "DROP",
    ]  # fmt: skip
    record6 = Rule("record", "ipv6", None, None, "eth0", "51")
    assert iptables.iptables_spec(record6, RECORD6)[4:8] == ["-m", "u32", "--u32", "40>>16&0xFF=51"]
    drop = Rule("drop", "ipv6", None, None, "eth0")
    assert iptables.iptables_spec(drop, DROP6) == ["-i", "eth0", "-p", "112", "-m", "comment", "--comment", DROP6, "-j", "DROP"]


def test_nft_rule_texts():
    accept = Rule("accept", "ipv4", "192.0.2.12", "224.0.0.18", None)
    assert nftables.nft_rule(accept, ACCEPT) == f'ip saddr 192.0.2.12 ip daddr 224.0.0.18 ip protocol 112 accept comment "{ACCEPT}"'
    assert nftables.nft_rule(Rule("record", "ipv4", None, None, "eth0", "51,52"), RECORD4) == (
        f'iifname "eth0" ip protocol 112 @th,8,8 {{ 51, 52 }} add @lbpair_rogue_v4 {{ ip saddr }} drop comment "{RECORD4}"'
    )
    assert nftables.nft_rule(Rule("record", "ipv6", None, None, "eth0", "51"), RECORD6) == (
        f'iifname "eth0" ip6 nexthdr 112 @th,8,8 {{ 51 }} add @lbpair_rogue_v6 {{ ip6 saddr }} drop comment "{RECORD6}"'
    )
    assert nftables.nft_rule(Rule("drop", "ipv6", None, None, "eth0"), DROP6) == f'iifname "eth0" meta protocol ip6 meta l4proto 112 drop comment "{DROP6}"'
    assert nftables.nft_rogue_set("ipv6") == "{ type ipv6_addr; flags dynamic,timeout; timeout 1h; }"


def test_iptables_listing_gives_our_rules_with_their_positions():
    listing = (
        "-P INPUT ACCEPT\n"
        "-A INPUT -i lo -j ACCEPT\n"
        f'-A INPUT -s 192.0.2.12/32 -d 224.0.0.18/32 -p vrrp -m comment --comment "{ACCEPT}" -j ACCEPT\n'
        '-A INPUT -p tcp -m comment --comment "lbpair-vrrp 192.0.2.9 to 224.0.0.18 kept by hand" -j ACCEPT\n'
        f'-A INPUT -i eth0 -p vrrp -m comment --comment "{DROP4}" -m recent --set --name lbpair_rogue_vrrp '
        "--mask 255.255.255.255 --rsource -j DROP\n"
    )
    assert list(iptables.comments_in_iptables(listing).items()) == [(ACCEPT, 2), (DROP4, 4)]


#: ``nft -j list chain inet filter input`` of nft 1.0.6 (Debian 12), captured after adding, in this order: the VRRP
#: accept rules of both families, a user's rule whose comment starts like ours, record rules (VRIDs 51,52; 51), a drop
#: rule, a hold, a peers rule and a rule without a comment
NFT_CHAIN = (pathlib.Path(__file__).parent / "nft_1.0.6_chain.json").read_text()


def test_nft_json_listing_gives_our_rules_with_their_handles_in_chain_order():
    assert list(nftables.comments_in_nft(NFT_CHAIN).items()) == [
        (ACCEPT, 12), ("lbpair-vrrp 2001:db8::12 to ff02::12", 13),
        ("lbpair-vrrp record ipv4 vrid 51,52 on eth0", 16), (RECORD6, 17), (DROP4, 18),
    ]  # fmt: skip
    assert list(nftables.comments_in_nft(NFT_CHAIN, peers.COMMENT_RE).items()) == [("lbpair-peers 192.0.2.12 to 192.0.2.11 port 10000", 20)]


def test_nft_json_listing_gives_every_rule_with_its_comment():
    listed = nftables.chain_rules(NFT_CHAIN)
    assert [handle for handle, _ in listed] == [12, 13, 14, 16, 17, 18, 19, 20, 21]
    assert listed[2] == (14, "lbpair-vrrp 192.0.2.9 to 224.0.0.18 kept by hand") and listed[-1] == (21, None)


NFT_JSON_ROWS = [
    # (what ``nft -j`` output might be instead, the text)
    ("not JSON (an error message)", "Error: No such file or directory"),
    ("a list", "[1, 2]"),
    ("a rule without a handle", '{"nftables": [{"rule": {"comment": "lbpair-vrrp drop ipv4 on eth0"}}]}'),
    ("a handle that is text", '{"nftables": [{"rule": {"handle": "1; flush ruleset", "comment": "lbpair-vrrp drop ipv4 on eth0"}}]}'),
    ("a handle that is true", '{"nftables": [{"rule": {"handle": true, "comment": "lbpair-vrrp drop ipv4 on eth0"}}]}'),
    ("items that are not objects", '{"nftables": [7, "rule", null]}'),
]


@pytest.mark.parametrize(("what", "text"), NFT_JSON_ROWS, ids=[row[0] for row in NFT_JSON_ROWS])
def test_nft_json_that_is_not_a_chain_listing_gives_no_rules(what, text):
    assert nftables.chain_rules(text) == [], what


def test_an_nft_comment_is_ours_only_all_of_it():
    assert ruleset.is_ours(DROP4)
    assert not ruleset.is_ours(f"{DROP4} kept by hand")
    assert not ruleset.is_ours(f'x" "{DROP4}')
    assert not ruleset.is_ours(None)


def test_hold_rules_are_found_by_their_comment_whatever_their_vips():
    hold = "INPUT -d {} -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment lbpair-handover -j DROP"
    listing = (
        "-P INPUT ACCEPT\n"
        f"-A {hold.format('203.0.113.10/32')}\n"
        '-A INPUT -d 203.0.113.20/32 -p tcp -m comment --comment "lbpair-handover kept by hand" -j DROP\n'
        f'-A INPUT -i eth0 -p vrrp -m comment --comment "{DROP4}" -j DROP\n'
        f"-A {hold.format('2001:db8::10/128')}\n"
    )
    assert holds.holds_in_iptables(listing) == [hold.format(vip).split() for vip in ("203.0.113.10/32", "2001:db8::10/128")]
    assert holds.holds_in_nft(NFT_CHAIN) == [19]


def test_record_and_drop_rules_before_an_accept_rule_or_out_of_order_are_misplaced(seed_pillar):
    wanted = firewall.wanted_rules(model_for(seed_pillar))
    assert ruleset.misplaced({ACCEPT: 1, RECORD4: 2, RECORD6: 3, DROP4: 4, DROP6: 5}, wanted) == set()
    assert ruleset.misplaced({RECORD4: 1, RECORD6: 2}, wanted) == set()  # the missing ones are added after them
    assert ruleset.misplaced({RECORD4: 1, ACCEPT: 2, RECORD6: 3, DROP4: 4, DROP6: 5}, wanted) == {RECORD4, DROP4}
    assert ruleset.misplaced({ACCEPT: 1, RECORD6: 2, RECORD4: 3, DROP6: 4, DROP4: 5}, wanted) == set()  # families apart
    assert ruleset.misplaced({ACCEPT: 1, DROP4: 2, RECORD4: 3, RECORD6: 4, DROP6: 5}, wanted) == {DROP4, RECORD4}
    assert ruleset.misplaced({ACCEPT: 1, DROP4: 2, DROP6: 3}, wanted) == {DROP4, DROP6}  # the record rules go before them
    old = "lbpair-vrrp drop ipv4 on eth9"  # not wanted: removed anyway
    assert ruleset.misplaced({ACCEPT: 1, old: 2, RECORD4: 3, RECORD6: 4, DROP4: 5, DROP6: 6}, wanted) == set()


def test_rogue_senders_from_xt_recent():
    text = (
        "src=192.0.2.66 ttl: 255 last_seen: 4299045450 oldest_pkt: 3 4299045250, 4299045350, 4299045450\n"
        "src=2001:db8::66 ttl: 255 last_seen: 4299045450 oldest_pkt: 1 4299045450\n"
        "src=198.51.100.7 ttl: 64 last_seen: 4299045451 oldest_pkt: 1 4299045451\n"
    )
    assert rogue.senders_in_recent(text) == ["192.0.2.66", "198.51.100.7", "2001:db8::66"]


def test_rogue_senders_from_an_nft_set():
    listing = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"set": {"family": "inet", "name": "lbpair_rogue_v4", "elem": [{"elem": {"val": "192.0.2.66", "expires": 3599}}, "192.0.2.67"]}},
    ]}  # fmt: skip
    assert rogue.senders_in_nft_set(json.dumps(listing)) == ["192.0.2.66", "192.0.2.67"]
    assert rogue.senders_in_nft_set(json.dumps({"nftables": [{"set": {"name": "lbpair_rogue_v6"}}]})) == []


def test_unicast_keepalived_takes_adverts_from_the_peers_only(seed_pillar):
    assert "check_unicast_src" not in keepalived_config.render_config(model_for(seed_pillar))
    seed_pillar["vrrp"]["unicast"] = True
    text = keepalived_config.render_config(model_for(seed_pillar))
    assert "    unicast_peer {\n        192.0.2.12\n    }\n    check_unicast_src\n" in text


NFT_BATCH_ROWS = [
    # (what tries to add a line to the nft batch, the pillar change, the key named, words of the message)
    ("an nft chain with a newline", lambda p: p.update(firewall={"backend": "nftables", "nft_chain": "input\nflush ruleset"}),
     "lbpair:firewall:nft_chain", "single line"),
    ("an nft table ending in a newline", lambda p: p.update(firewall={"backend": "nftables", "nft_table": "inet filter\n"}),
     "lbpair:firewall:nft_table", "single line"),
    ("an interface with a newline", lambda p: p["vrrp"].update(interface="eth0\nflush ruleset"), "lbpair:vrrp:interface", "single line"),
    ("an nft chain with a semicolon", lambda p: p.update(firewall={"backend": "nftables", "nft_chain": "input;flush"}),
     "lbpair:firewall:nft_chain", "safe name"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "key", "words"), NFT_BATCH_ROWS, ids=[row[0] for row in NFT_BATCH_ROWS])
def test_nothing_from_the_pillar_adds_a_line_to_the_nft_batch(seed_pillar, what, change, key, words):
    change(seed_pillar)
    with pytest.raises(InvalidValue) as caught:
        pillar.normalize(seed_pillar)
    assert caught.value.path == key and words in str(caught.value), what
