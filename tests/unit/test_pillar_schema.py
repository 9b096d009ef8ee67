"""The lbpair pillar schema: good pillars normalise, bad ones name the bad key."""

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar


def normalize(lbpair):
    return pillar.normalize(lbpair)


def rejects(lbpair, path, message=""):
    with pytest.raises(InvalidValue) as error:
        normalize(lbpair)
    assert error.value.path == path, str(error.value)
    assert message in str(error.value)
    return error.value


def test_seed_pillar_normalises_with_defaults(seed_pillar):
    model = normalize(seed_pillar)
    assert list(model["services"]) == ["bar", "baz", "foo"]
    assert model["vrrp"]["virtual_router_id"] == 51
    assert model["services"]["foo"]["servers"]["foo1"] == {"address": "198.51.100.11", "port": 80, "options": None}
    assert ("maxconn", "4000") in model["haproxy"]["global"]


def test_minimal_pillar_gets_defaults():
    model = normalize({"nodes": {"a": {"address": "192.0.2.1", "priority": 101}, "b": {"address": "192.0.2.2", "priority": 100}}})
    assert model["services"] == {}
    assert model["vrrp"]["check"]["weight"] == 2
    assert model["firewall"]["backend"] == "iptables"


#: (what is wrong, how the seed pillar is changed, the key named, what the error says)
REJECTED = [
    ("server_address_with_newline_and_bind_line",
     lambda p: p["services"]["foo"]["servers"]["foo1"].update(address="198.51.100.11\n    bind 0.0.0.0:22"),
     "lbpair:services:foo:servers:foo1:address", "single line"),
    ("service_name_with_brace", lambda p: p["services"].update({"foo}": p["services"].pop("foo")}), "lbpair:services:foo}", "not a safe name"),
    ("server_name_with_space", lambda p: p["services"]["bar"]["servers"].update({"bar 1": p["services"]["bar"]["servers"].pop("bar1")}),
     "lbpair:services:bar:servers:bar 1", "not a safe name"),
    ("vrid_zero", lambda p: p["vrrp"].update(virtual_router_id=0), "lbpair:vrrp:virtual_router_id", "from 1 to 255"),
    ("priority_300", lambda p: p["nodes"]["lb1"].update(priority=300), "lbpair:nodes:lb1:priority", "from 1 to 254"),
    ("duplicate_vip_and_port", lambda p: p["services"]["foo"].update(vip=p["services"]["bar"]["vip"]),
     "lbpair:services:foo:vip", "already used by service bar"),
    ("weight_not_larger_than_priority_gap", lambda p: p["nodes"]["lb2"].update(priority=90), "lbpair:vrrp:check:weight", "never move the virtual IPs"),
    ("unknown_key", lambda p: p["services"]["foo"].update(balancing="roundrobin"), "lbpair:services:foo:balancing", "unknown key"),
    ("unknown_top_level_key", lambda p: p.update(service={}), "lbpair:service", "unknown key"),
    ("port_of_wrong_type", lambda p: p["services"]["baz"].update(port="80"), "lbpair:services:baz:port", "expected an integer"),
    ("boolean_is_not_an_integer", lambda p: p["vrrp"].update(advert_int=True), "lbpair:vrrp:advert_int", "expected an integer"),
    ("vip_that_is_not_an_address", lambda p: p["services"]["foo"].update(vip="203.0.113.300"), "lbpair:services:foo:vip", "not an IP address"),
    ("integer_address", lambda p: p["nodes"]["lb1"].update(address=3221225995), "lbpair:nodes:lb1:address", "expected a string"),
    ("ipv6_vip_without_node_ipv6_addresses", lambda p: p["services"]["foo"].update(vip="2001:db8::10"),
     "lbpair:services:foo:vip", "needs an IPv6 address on every node (lbpair:nodes:lb1:address6)"),
    ("single_node_is_not_a_pair", lambda p: p["nodes"].pop("lb2"), "lbpair:nodes", "at least two nodes"),
    ("duplicate_node_address", lambda p: p["nodes"]["lb2"].update(address=p["nodes"]["lb1"]["address"]),
     "lbpair:nodes:lb2:address", "already used by lb1"),
    ("cookie_needs_http_mode", lambda p: p["services"]["foo"].update(mode="tcp"), "lbpair:services:foo:cookie", "needs mode http"),
    ("unknown_balance_algorithm", lambda p: p["services"]["foo"].update(balance="fastest"), "lbpair:services:foo:balance", "not a balance algorithm"),
    ("service_mapping_of_wrong_type", lambda p: p["services"]["foo"].update(servers=["foo1", "foo2"]),
     "lbpair:services:foo:servers", "expected a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "path", "message"), REJECTED, ids=[row[0] for row in REJECTED])
def test_a_bad_pillar_is_rejected_naming_the_key(seed_pillar, what, change, path, message):
    change(seed_pillar)
    rejects(seed_pillar, path, message)


def test_without_preempt_a_failed_check_means_fault(seed_pillar):
    seed_pillar["vrrp"]["preempt"] = False
    del seed_pillar["vrrp"]["check"]["weight"]
    assert normalize(seed_pillar)["vrrp"]["check"]["weight"] == 0


def test_without_preempt_a_weighted_check_is_rejected(seed_pillar):
    seed_pillar["vrrp"]["preempt"] = False
    seed_pillar["vrrp"]["check"]["weight"] = 2
    rejects(seed_pillar, "lbpair:vrrp:check:weight", "must be 0 with preempt false")


def test_override_null_removes_a_default(seed_pillar):
    seed_pillar["haproxy"]["global"]["chroot"] = None
    keywords = [keyword for keyword, _ in normalize(seed_pillar)["haproxy"]["global"]]
    assert "chroot" not in keywords
    assert keywords.index("log") == 0


def test_minion_outside_the_pair_is_named(seed_pillar):
    with pytest.raises(InvalidValue) as error:
        pillar.for_node(normalize(seed_pillar), "lb3")
    assert error.value.path == "lbpair:nodes"
    assert "'lb3' is not a node" in str(error.value)


def test_model_is_normalised_once_per_pillar_object(seed_pillar):
    cache = {}
    first = pillar.node_model(seed_pillar, "lb1", cache)
    assert pillar.node_model(seed_pillar, "lb2", cache)["services"] is first["services"]
    changed = {**seed_pillar, "services": {}}
    assert pillar.node_model(changed, "lb1", cache)["services"] == {}
