"""
HAProxy's Prometheus exporter from ``lbpair:haproxy:prometheus``: what the pillar gives, what
haproxy.cfg gets, and the table of what an attacker (or a slip) tries through the pillar.
"""

import re

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import haproxy_exporter, pillar
from saltext.lbpair.node import haproxy

KEY = "lbpair:haproxy:prometheus"
SCRAPERS = ["198.51.100.0/28"]


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def with_exporter(lbpair, **settings):
    """``lbpair`` with an exporter of ``settings``, allowing :data:`SCRAPERS` unless they say otherwise."""
    lbpair["haproxy"]["prometheus"] = {"allow": SCRAPERS, **settings}
    return lbpair


def exporter_section(config):
    """The exporter's section of a rendered haproxy.cfg, its lines without indent."""
    sections = config.split("\n\n")
    found = [section for section in sections if section.startswith(f"frontend {haproxy_exporter.FRONTEND}")]
    return [line.strip() for line in found[0].splitlines()] if found else None


def test_absent_means_no_exporter(seed_pillar):
    model = model_for(seed_pillar)
    assert model["haproxy"]["prometheus"] is None
    config = haproxy.render_config(model)
    assert exporter_section(config) is None
    assert "prometheus" not in config


def test_each_node_binds_its_own_address_by_default(seed_pillar):
    with_exporter(seed_pillar)
    for node, address in (("lb1", "192.0.2.11"), ("lb2", "192.0.2.12")):
        assert exporter_section(haproxy.render_config(model_for(seed_pillar, node))) == [
            "frontend lbpair_prometheus",
            f"bind {address}:8404",
            "mode http",
            "no log",
            "http-request use-service prometheus-exporter if { path /metrics }",
            "http-request deny",
        ]


def test_the_exporter_section_comes_last_and_its_lines_name_their_keys(seed_pillar):
    with_exporter(seed_pillar, address={"lb1": "10.0.0.11", "lb2": "10.0.0.12"}, port=9101)
    lines = haproxy.render_lines(model_for(seed_pillar, "lb2"))
    keys = {line.strip(): key for line, key in lines}
    assert keys["bind 10.0.0.12:9101"] == f"{KEY}:address:lb2"
    assert keys["http-request deny"] == KEY
    assert haproxy.render_config(model_for(seed_pillar)).rstrip().endswith("http-request deny")


@pytest.mark.parametrize(
    ("settings", "bind"),
    [
        ({"address": "fd00::11", "allow": ["fd00:1::/64"]}, "bind [fd00::11]:8404"),
        ({"address": "::", "wildcard": True, "allow": ["2001:db8:1::/64"]}, "bind [::]:8404 v6only"),
        ({"address": "0.0.0.0", "wildcard": True, "port": 9100}, "bind 0.0.0.0:9100"),
        ({"address": "203.0.113.10", "on_vip": True, "port": 9100}, "bind 203.0.113.10:9100"),
        ({"address": "127.0.0.1", "allow": ["127.0.0.1"]}, "bind 127.0.0.1:8404"),
    ],
    ids=["ipv6", "ipv6 wildcard, IPv6 only", "ipv4 wildcard when asked", "a VIP when asked", "loopback"],
)
def test_the_operator_picks_the_address(seed_pillar, settings, bind):
    with_exporter(seed_pillar, **settings)
    assert exporter_section(haproxy.render_config(model_for(seed_pillar)))[1] == bind


def test_allow_networks_are_canonical(seed_pillar):
    with_exporter(seed_pillar, allow=["198.51.100.7", "198.51.100.16/255.255.255.240"])
    assert model_for(seed_pillar)["haproxy"]["prometheus"]["allow"] == ["198.51.100.7/32", "198.51.100.16/28"]


def test_a_node_address6_is_the_nodes_own(seed_pillar):
    """A global IPv6 address is fine when it is the node's own ``address6``."""
    seed_pillar["nodes"]["lb1"]["address6"], seed_pillar["nodes"]["lb2"]["address6"] = "2a00:1450::11", "2a00:1450::12"
    with_exporter(seed_pillar, address={"lb1": "2a00:1450::11", "lb2": "2a00:1450::12"}, allow=["2001:db8:1::/64"])
    assert exporter_section(haproxy.render_config(model_for(seed_pillar, "lb2")))[1] == "bind [2a00:1450::12]:8404"


def test_a_service_cannot_take_the_exporters_frontend_name(seed_pillar):
    seed_pillar["services"]["lbpair_prometheus"] = seed_pillar["services"].pop("foo")
    with pytest.raises(InvalidValue, match="Prometheus exporter frontend") as refused:
        pillar.normalize(seed_pillar)
    assert refused.value.path == "lbpair:services:lbpair_prometheus"


def exporter_of(**settings):
    """A change that gives the pillar an exporter with ``settings`` (``allow`` the scrapers unless given)."""
    return lambda p: p["haproxy"].update(prometheus={"allow": SCRAPERS, **settings})


def sticky(p):
    p["services"]["foo"]["stick"] = {"expire": 600}


#: what an attacker (or a slip) tries through the exporter's settings: the change, the key named, words of the message
HOSTILE = [
    ("an unknown key", exporter_of(path="/admin"), f"{KEY}:path", "unknown key"),
    ("no allow list: open to anyone", lambda p: p["haproxy"].update(prometheus={"port": 8404}), f"{KEY}:allow", "is required"),
    ("an empty allow list", exporter_of(allow=[]), f"{KEY}:allow", "at least one network"),
    ("allow as one string", exporter_of(allow="198.51.100.0/28"), f"{KEY}:allow", "list of networks"),
    ("the whole Internet allowed", exporter_of(allow=["0.0.0.0/0"]), f"{KEY}:allow:0", "every address"),
    ("the whole IPv6 Internet allowed", exporter_of(address="fd00::11", allow=["::/0"]), f"{KEY}:allow:0", "every address"),
    ("a network with host bits set", exporter_of(allow=["198.51.100.1/24"]), f"{KEY}:allow:0", "host bits"),
    ("a network that is not one", exporter_of(allow=["prometheus.example.net"]), f"{KEY}:allow:0", "not a network"),
    ("a network that smuggles iptables options", exporter_of(allow=["198.51.100.0/28 -j ACCEPT"]), f"{KEY}:allow:0", "not a network"),
    ("a network that smuggles nft text", exporter_of(allow=['198.51.100.0/28 accept comment "x"']), f"{KEY}:allow:0", "not a network"),
    ("a network with a newline", exporter_of(allow=["198.51.100.0/28\n-A INPUT -j ACCEPT"]), f"{KEY}:allow:0", "single line"),
    ("a network with blanks around it", exporter_of(allow=[" 198.51.100.0/28"]), f"{KEY}:allow:0", "as written"),
    ("a network with a zone", exporter_of(address="fd00::11", allow=["fe80::%eth0/64"]), f"{KEY}:allow:0", "not a network"),
    ("a network twice", exporter_of(allow=["198.51.100.7", "198.51.100.7/32"]), f"{KEY}:allow:1", "already allow:0"),
    ("a network of the other family", exporter_of(allow=["198.51.100.0/28", "2001:db8::/64"]), f"{KEY}:allow:1", "not of the family"),
    ("too many networks", exporter_of(allow=[f"198.51.100.{n}" for n in range(65)]), f"{KEY}:allow", "at most 64"),
    ("a number for a network", exporter_of(allow=[3325256704]), f"{KEY}:allow:0", "expected a string"),
    ("a VIP: the exporter facing the service's clients", exporter_of(address="203.0.113.10"), f"{KEY}:address", "foo's VIP"),
    ("an IPv6 VIP", lambda p: (p["nodes"]["lb1"].update(address6="2001:db8::11"), p["nodes"]["lb2"].update(address6="2001:db8::12"),
                                p["services"]["foo"].update(vip6="2001:db8::10"), exporter_of(address="2001:db8::10", allow=["2001:db8:1::/64"])(p)),
     f"{KEY}:address", "foo's VIP"),
    ("a VIP given to one node", exporter_of(address={"lb1": "192.0.2.11", "lb2": "203.0.113.20"}), f"{KEY}:address:lb2", "bar's VIP"),
    ("a VIP written IPv4-mapped", exporter_of(address="::ffff:203.0.113.10"), f"{KEY}:address", "IPv4-mapped"),
    ("on_vip with an address that is no VIP", exporter_of(on_vip=True), f"{KEY}:address", "no service's VIP"),
    ("on_vip as text", exporter_of(address="203.0.113.10", on_vip="yes"), f"{KEY}:on_vip", "true or false"),
    ("the IPv4 wildcard, every address (VIPs too)", exporter_of(address="0.0.0.0"), f"{KEY}:address", "wildcard: true"),
    ("the IPv6 wildcard", exporter_of(address="::", allow=["2001:db8::/64"]), f"{KEY}:address", "wildcard: true"),
    ("the wildcard as an empty string", exporter_of(address=""), f"{KEY}:address", "must not be empty"),
    ("wildcard: true with a plain address", exporter_of(wildcard=True), f"{KEY}:address", "not a wildcard"),
    ("an address with a newline that adds a bind", exporter_of(address="192.0.2.11:8404\n    bind 0.0.0.0:22"), f"{KEY}:address", "single line"),
    ("an address with a space that adds a bind option", exporter_of(address="192.0.2.11 ssl crt /etc/shadow"), f"{KEY}:address", "not an IP address"),
    ("an address with a comment", exporter_of(address="192.0.2.11 # x"), f"{KEY}:address", "not an IP address"),
    ("an address with a port", exporter_of(address="192.0.2.11:9100"), f"{KEY}:address", "not an IP address"),
    ("an address with a zone", exporter_of(address="fe80::1%eth0"), f"{KEY}:address", "without a zone"),
    ("a host name", exporter_of(address="lb1.example.net"), f"{KEY}:address", "not an IP address"),
    ("a multicast address", exporter_of(address="224.0.0.18"), f"{KEY}:address", "multicast"),
    ("a link-local address", exporter_of(address="169.254.169.254"), f"{KEY}:address", "link-local"),
    ("the broadcast address", exporter_of(address="255.255.255.255"), f"{KEY}:address", "broadcast"),
    ("a global address the pillar does not know as the node's", exporter_of(address="8.8.8.8"), f"{KEY}:address", "global address"),
    ("one node's address for both nodes", exporter_of(address="192.0.2.11"), f"{KEY}:address", "address of node lb1, not of lb2"),
    ("the other node's address", exporter_of(address={"lb1": "192.0.2.12", "lb2": "192.0.2.12"}), f"{KEY}:address:lb1", "node lb2"),
    ("an address for a node not in the pair", exporter_of(address={"lb1": "10.0.0.11", "lb2": "10.0.0.12", "lb3": "10.0.0.13"}),
     f"{KEY}:address:lb3", "unknown key (allowed: lb1, lb2)"),
    ("a node left out of the mapping", exporter_of(address={"lb1": "10.0.0.11"}), f"{KEY}:address:lb2", "is required"),
    ("a list of addresses", exporter_of(address=["10.0.0.11"]), f"{KEY}:address", "expected a string"),
    ("port 0", exporter_of(port=0), f"{KEY}:port", "from 1 to 65535"),
    ("a port past 65535", exporter_of(port=65536), f"{KEY}:port", "from 1 to 65535"),
    ("a port as text with a command", exporter_of(port="8404; reboot"), f"{KEY}:port", "integer"),
    ("true for a port", exporter_of(port=True), f"{KEY}:port", "integer"),
    ("the peers port on the node's address", exporter_of(port=10000), f"{KEY}:port", "peers port"),
    ("the peers port with stick tables", lambda p: (sticky(p), exporter_of(port=10000)(p)), f"{KEY}:port", "peers port"),
    ("a service's port on its VIP", exporter_of(address="203.0.113.10", on_vip=True, port=80), f"{KEY}:port", "service foo listens"),
    ("a service's port under the IPv4 wildcard", exporter_of(address="0.0.0.0", wildcard=True, port=80), f"{KEY}:port", "service bar listens"),
    ("the probe's port on loopback", exporter_of(address="127.0.0.1", allow=["127.0.0.1"], port=8405), f"{KEY}:port", "probe"),
    ("the probe's port under the IPv4 wildcard", exporter_of(address="0.0.0.0", wildcard=True, port=8405), f"{KEY}:port", "probe"),
    ("an IPv6 address behind an nft table that sees IPv4 only",
     lambda p: (p.update(firewall={"backend": "nftables", "nft_table": "ip filter"}), exporter_of(address="fd00::11", allow=["fd00:1::/64"])(p)),
     f"{KEY}:address", "sees no ipv6"),
    ("a mapping for the exporter's settings", lambda p: p["haproxy"].update(prometheus=["198.51.100.0/28"]), KEY, "mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "key", "words"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_exporter_settings_are_refused_naming_the_key(seed_pillar, what, change, key, words):
    change(seed_pillar)
    with pytest.raises(InvalidValue, match=re.escape(words)) as refused:
        pillar.normalize(seed_pillar)
    assert refused.value.path == key, (what, str(refused.value))


def test_the_probe_port_is_free_for_the_exporter_when_the_probe_is_off(seed_pillar):
    seed_pillar["vrrp"]["probe"] = {"enabled": False}
    with_exporter(seed_pillar, address="127.0.0.1", allow=["127.0.0.1"], port=8405)
    assert exporter_section(haproxy.render_config(model_for(seed_pillar)))[1] == "bind 127.0.0.1:8405"


def test_a_services_port_on_another_address_is_fine(seed_pillar):
    """Services listen on their VIPs: the exporter may share their port on the node's own address."""
    with_exporter(seed_pillar, port=80)
    assert exporter_section(haproxy.render_config(model_for(seed_pillar)))[1] == "bind 192.0.2.11:80"
