"""The lbpair pillar schema: good pillars normalise, bad ones name the bad key."""

import pytest

from lbpair_lib import pillar
from lbpair_lib.errors import InvalidValue


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


def test_server_address_with_newline_and_bind_line_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["servers"]["foo1"]["address"] = "198.51.100.11\n    bind 0.0.0.0:22"
    rejects(seed_pillar, "lbpair:services:foo:servers:foo1:address", "single line")


def test_service_name_with_brace_is_rejected(seed_pillar):
    seed_pillar["services"]["foo}"] = seed_pillar["services"].pop("foo")
    rejects(seed_pillar, "lbpair:services:foo}", "not a safe name")


def test_server_name_with_space_is_rejected(seed_pillar):
    servers = seed_pillar["services"]["bar"]["servers"]
    servers["bar 1"] = servers.pop("bar1")
    rejects(seed_pillar, "lbpair:services:bar:servers:bar 1", "not a safe name")


def test_vrid_zero_is_rejected(seed_pillar):
    seed_pillar["vrrp"]["virtual_router_id"] = 0
    rejects(seed_pillar, "lbpair:vrrp:virtual_router_id", "from 1 to 255")


def test_priority_300_is_rejected(seed_pillar):
    seed_pillar["nodes"]["lb1"]["priority"] = 300
    rejects(seed_pillar, "lbpair:nodes:lb1:priority", "from 1 to 254")


def test_duplicate_vip_and_port_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["vip"] = seed_pillar["services"]["bar"]["vip"]
    rejects(seed_pillar, "lbpair:services:foo:vip", "already used by service bar")


def test_weight_not_larger_than_priority_gap_is_rejected(seed_pillar):
    seed_pillar["nodes"]["lb2"]["priority"] = 90
    rejects(seed_pillar, "lbpair:vrrp:check:weight", "never move the virtual IPs")


def test_without_preempt_a_failed_check_means_fault(seed_pillar):
    seed_pillar["vrrp"]["preempt"] = False
    del seed_pillar["vrrp"]["check"]["weight"]
    assert normalize(seed_pillar)["vrrp"]["check"]["weight"] == 0


def test_without_preempt_a_weighted_check_is_rejected(seed_pillar):
    seed_pillar["vrrp"]["preempt"] = False
    seed_pillar["vrrp"]["check"]["weight"] = 2
    rejects(seed_pillar, "lbpair:vrrp:check:weight", "must be 0 with preempt false")


def test_unknown_key_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["balancing"] = "roundrobin"
    rejects(seed_pillar, "lbpair:services:foo:balancing", "unknown key")


def test_unknown_top_level_key_is_rejected(seed_pillar):
    seed_pillar["service"] = {}
    rejects(seed_pillar, "lbpair:service", "unknown key")


def test_port_of_wrong_type_is_rejected(seed_pillar):
    seed_pillar["services"]["baz"]["port"] = "80"
    rejects(seed_pillar, "lbpair:services:baz:port", "expected an integer")


def test_boolean_is_not_an_integer(seed_pillar):
    seed_pillar["vrrp"]["advert_int"] = True
    rejects(seed_pillar, "lbpair:vrrp:advert_int", "expected an integer")


def test_vip_that_is_not_an_address_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["vip"] = "203.0.113.300"
    rejects(seed_pillar, "lbpair:services:foo:vip", "not an IP address")


def test_integer_address_is_rejected(seed_pillar):
    seed_pillar["nodes"]["lb1"]["address"] = 3221225995
    rejects(seed_pillar, "lbpair:nodes:lb1:address", "expected a string")


def test_ipv6_vip_without_node_ipv6_addresses_is_rejected_plainly(seed_pillar):
    seed_pillar["services"]["foo"]["vip"] = "2001:db8::10"
    rejects(seed_pillar, "lbpair:services:foo:vip", "needs an IPv6 address on every node (lbpair:nodes:lb1:address6)")


def test_single_node_is_not_a_pair(seed_pillar):
    del seed_pillar["nodes"]["lb2"]
    rejects(seed_pillar, "lbpair:nodes", "at least two nodes")


def test_duplicate_node_address_is_rejected(seed_pillar):
    seed_pillar["nodes"]["lb2"]["address"] = seed_pillar["nodes"]["lb1"]["address"]
    rejects(seed_pillar, "lbpair:nodes:lb2:address", "already used by lb1")


def test_cookie_needs_http_mode(seed_pillar):
    seed_pillar["services"]["foo"]["mode"] = "tcp"
    rejects(seed_pillar, "lbpair:services:foo:cookie", "needs mode http")


def test_unknown_balance_algorithm_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["balance"] = "fastest"
    rejects(seed_pillar, "lbpair:services:foo:balance", "not a balance algorithm")


def test_service_mapping_of_wrong_type_is_rejected(seed_pillar):
    seed_pillar["services"]["foo"]["servers"] = ["foo1", "foo2"]
    rejects(seed_pillar, "lbpair:services:foo:servers", "expected a mapping")


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
