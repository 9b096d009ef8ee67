"""Stick tables both nodes share (an HAProxy ``peers`` section): a client keeps its server across a failover."""

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy
from tests.unit.test_routing import section, with_shop


def rendered(lbpair, node="lb1"):
    return haproxy.render_config(pillar.for_node(pillar.normalize(lbpair), node))


def test_a_sticky_service_shares_its_table_with_the_peer_node(seed_pillar):
    seed_pillar["services"]["foo"]["stick"] = {"expire": 600}
    for node in ("lb1", "lb2"):
        text = rendered(seed_pillar, node)
        assert f"localpeer {node}" in section(text, "global")
        assert section(text, "peers lbpair") == ["peer lb1 192.0.2.11:10000", "peer lb2 192.0.2.12:10000"]
        foo = section(text, "listen foo")
        assert foo[foo.index("stick-table type ip size 100000 expire 600s peers lbpair") + 1] == "stick on src"


def test_a_routed_service_backend_can_be_sticky(seed_pillar):
    lbpair = with_shop(seed_pillar)
    lbpair["services"]["shop"]["backends"]["api"]["stick"] = {"size": 5000}
    lbpair["haproxy"]["peers_port"] = 10001
    text = rendered(lbpair)
    assert "stick-table type ip size 5000 expire 1800s peers lbpair" in section(text, "backend shop.api")
    assert "peer lb2 192.0.2.12:10001" in section(text, "peers lbpair")


def test_without_a_sticky_service_there_is_no_peers_section(seed_pillar):
    text = rendered(seed_pillar)
    assert "peers lbpair" not in text and "localpeer" not in text


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda p: p["services"]["foo"].update(stick={"on": "hdr(x-user)"}), "services:foo:stick:on", "expected one of src"),
        (lambda p: p["services"]["foo"].update(stick={"size": 0}), "services:foo:stick:size", "from 1"),
        (lambda p: p["services"]["foo"].update(stick={"expire": "30m peers evil"}), "services:foo:stick:expire", "integer"),
        (lambda p: p["services"]["foo"].update(stick={"peers": "other"}), "services:foo:stick:peers", "unknown"),
        (lambda p: p["haproxy"].update(peers_port="10000\n    peer evil 198.51.100.66:10000"), "haproxy:peers_port", "integer"),
    ],
)
def test_bad_stick_settings_are_refused_naming_the_key(seed_pillar, change, key, words):
    change(seed_pillar)
    with pytest.raises(InvalidValue, match=words) as refused:
        pillar.normalize(seed_pillar)
    assert refused.value.path == f"lbpair:{key}"
