"""
Size and time bounds of the schema, and DNS records that must follow an instance the pair has.

Hostile rows: what an attacker (or a generator gone wrong) could put in the pillar to make
validation slow, and what lbpair does with it: refused at the cap, naming the key, quickly.
"Quickly" is this process's CPU time (a busy machine does not fail it; a validation gone
quadratic does); the figures themselves come from ``bench/schema_bounds.py``.
"""

import copy
import time

import pytest
import yaml

from lab import scenarios
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import reactions_config
from saltext.lbpair.model import pillar, services
from tests.conftest import REPO
from tests.unit.test_active_active import active_active, dual_stack
from tests.unit.test_routing import SHOP

MIB = 1024 * 1024


def shop(lbpair):
    lbpair["services"]["shop"] = copy.deepcopy(SHOP)
    return lbpair["services"]["shop"]


def foo(lbpair):
    return lbpair["services"]["foo"]


def _servers(count):
    return {f"s{index}": {"address": f"198.51.100.{index % 250 + 1}", "port": 1024 + index} for index in range(count)}


ROWS = [
    # (what it tries, the change, the pillar key named, words of the message)
    ("more routes than the cap", lambda p: shop(p).update(routes=[{"path": f"/{i}", "backend": "web"} for i in range(services.MAX_ROUTES + 1)]),
     "lbpair:services:shop:routes", f"at most {services.MAX_ROUTES} routes"),
    ("more redirects than the cap",
     lambda p: shop(p).update(redirects={f"h{i}.example.net": "shop.example.net" for i in range(services.MAX_REDIRECTS + 1)}),
     "lbpair:services:shop:redirects", f"at most {services.MAX_REDIRECTS} redirects"),
    ("more servers in a pool than the cap", lambda p: foo(p).update(servers=_servers(services.MAX_SERVERS + 1)),
     "lbpair:services:foo:servers", f"at most {services.MAX_SERVERS} servers"),
    ("more servers in a backend than the cap", lambda p: shop(p)["backends"]["web"].update(servers=_servers(services.MAX_SERVERS + 1)),
     "lbpair:services:shop:backends:web:servers", "servers in one pool"),
    ("more backends than the cap",
     lambda p: shop(p).update(backends={f"b{i}": {"servers": _servers(1)} for i in range(services.MAX_BACKENDS + 1)}, routes=[]),
     "lbpair:services:shop:backends", f"at most {services.MAX_BACKENDS} backends"),
    ("more services than the cap",
     lambda p: p.update(services={f"s{i}": {"vip": "203.0.113.9", "port": i % 60000 + 1} for i in range(services.MAX_SERVICES + 1)}),
     "lbpair:services", f"at most {services.MAX_SERVICES} services"),
    ("a 1 MiB service name", lambda p: p["services"].update({"x" * MIB: foo(p)}), "lbpair:services:" + "x" * MIB, "safe name"),
    ("a 1 MiB host in a redirect", lambda p: shop(p).update(redirects={"a." * (MIB // 2): "shop.example.net"}),
     "lbpair:services:shop:redirects:" + "a." * (MIB // 2), "host name"),
    ("a 1 MiB route path", lambda p: shop(p)["routes"].append({"path": "/" + "a" * MIB, "backend": "web"}),
     "lbpair:services:shop:routes:2:path", "URL path"),
    ("1 MiB of distinct characters in a server address",
     lambda p: foo(p)["servers"]["foo1"].update(address="".join(map(chr, range(0x10000, 0x10000 + MIB)))),
     "lbpair:services:foo:servers:foo1:address", "single line"),
    ("a route shadowed after 999 others (the old pairwise test's worst case)",
     lambda p: shop(p).update(routes=[{"host": f"h{i}.example.net", "path": f"/p{i}/", "backend": "web"} for i in range(999)]
                              + [{"host": "h998.example.net", "path": "/p998/x", "backend": "api"}]),
     "lbpair:services:shop:routes:999", "shadowed by lbpair:services:shop:routes:998"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "key", "words"), ROWS, ids=[row[0] for row in ROWS])
def test_hostile_sizes_are_refused_quickly_naming_the_key(seed_pillar, what, change, key, words):
    change(seed_pillar)
    start = time.process_time()
    with pytest.raises(InvalidValue, match=words) as error:
        pillar.normalize(seed_pillar)
    assert time.process_time() - start < 1, what
    assert error.value.path == key


def test_routes_at_the_cap_of_every_path_length_validate_within_a_second(seed_pillar):
    """Paths of every length, none a prefix of another: the most prefixes a route looks up."""
    shop(seed_pillar)["routes"] = [{"path": "/" + "a" * length + "z", "backend": "web"} for length in range(services.MAX_ROUTES)]
    start = time.process_time()
    routes = pillar.normalize(seed_pillar)["services"]["shop"]["routes"]
    assert time.process_time() - start < 1
    assert len(routes) == services.MAX_ROUTES


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ({"path": "/api"}, {"path": "/apix"}, True),  # a character prefix, as HAProxy's path_beg
        ({"path": "/api/"}, {"path": "/api"}, False),
        ({"path": "/api"}, {"host": "a.example.net"}, False),  # a path route never covers one without a path
        ({"host": "a.example.net"}, {"host": "a.example.net", "path": "/x"}, True),
        ({"host": "a.example.net"}, {"host": "b.example.net", "path": "/x"}, False),
        ({"host": "a.example.net", "path": "/x"}, {"path": "/x/y"}, False),  # any host is wider than one
        ({"path": "/x"}, {"host": "a.example.net", "path": "/x/y"}, True),
    ],
)
def test_a_route_is_shadowed_exactly_when_an_earlier_one_matches_all_it_matches(seed_pillar, earlier, later, shadowed):
    shop(seed_pillar)["routes"] = [{**earlier, "backend": "api"}, {"path": "/other", "backend": "web"}, {**later, "backend": "web"}]
    if shadowed:
        with pytest.raises(InvalidValue, match="shadowed by lbpair:services:shop:routes:0") as error:
            pillar.normalize(seed_pillar)
        assert error.value.path == "lbpair:services:shop:routes:2"
    else:
        assert len(pillar.normalize(seed_pillar)["services"]["shop"]["routes"]) == 3


def test_the_first_covering_route_is_named(seed_pillar):
    shop(seed_pillar)["routes"] = [
        {"path": "/a/b", "backend": "api"}, {"path": "/a", "backend": "api"}, {"path": "/a/b/c", "backend": "web"},
    ]  # fmt: skip
    with pytest.raises(InvalidValue, match="shadowed by lbpair:services:shop:routes:0"):
        pillar.normalize(seed_pillar)


def test_a_thousand_services_with_ten_servers_each_stay_valid(seed_pillar):
    services_ = pillar.normalize(scenarios.many_services(seed_pillar, 1000, servers=lambda index: 10))["services"]
    assert len(services_) == 1000


# --- DNS records and the pair's instances ---------------------------------------------


@pytest.fixture
def reactions(request):
    block = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())["lbpair_reactions"]
    block["dns"]["records"] = [{"name": "active", "type": "A"}, {"name": "api", "type": "A", "instance": "lbpair_52"}]
    return block


def test_pair_instances_are_keepalived_names_of_each_family(seed_pillar):
    lbpair = dual_stack(active_active(seed_pillar))
    assert reactions_config.pair_instances({"lb1": lbpair, "lb2": lbpair}) == {"lbpair_51", "lbpair_51_6", "lbpair_52"}


def test_a_record_following_an_instance_of_the_pair_is_accepted(seed_pillar, reactions):
    config = reactions_config.normalise(reactions)
    instances = reactions_config.pair_instances({"lb1": active_active(seed_pillar)})
    reactions_config.check_record_instances(config, instances)


ROWS_DNS = [
    # (what it tries, the instance a record names, the pair's pillar change, words of the message)
    ("a record follows an instance no pair has (it would never be updated)", "lbpair_99", active_active,
     "lbpair_99 is not an instance of the pair.*instances: lbpair_51, lbpair_52"),
    ("an IPv6 instance of a pair without IPv6 VIPs", "lbpair_51_6", lambda p: p, "instances: lbpair_51\\)"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "instance", "change", "words"), ROWS_DNS, ids=[row[0] for row in ROWS_DNS])
def test_a_record_naming_another_instance_is_refused(seed_pillar, reactions, what, instance, change, words):
    reactions["dns"]["records"][1]["instance"] = instance
    config = reactions_config.normalise(reactions)
    lbpair = change(seed_pillar)
    with pytest.raises(InvalidValue, match=words) as error:
        reactions_config.check_record_instances(config, reactions_config.pair_instances({"lb1": lbpair, "lb2": lbpair}))
    assert error.value.path == "lbpair_reactions:dns:records:1:instance"


def test_a_node_without_a_valid_lbpair_pillar_is_named(seed_pillar):
    with pytest.raises(InvalidValue, match="has no lbpair pillar") as error:
        reactions_config.pair_instances({"lb1": seed_pillar, "lb2": None})
    assert error.value.path == "lbpair_reactions:nodes:lb2"
    seed_pillar["services"]["foo"]["port"] = 0
    with pytest.raises(InvalidValue, match="not valid .*lbpair:services:foo:port") as error:
        reactions_config.pair_instances({"lb1": seed_pillar})
    assert error.value.path == "lbpair_reactions:nodes:lb1"


def test_records_without_instances_need_no_pillar(reactions):
    reactions["dns"]["records"].pop()
    assert reactions_config.records_with_instance(reactions_config.normalise(reactions)) == []
