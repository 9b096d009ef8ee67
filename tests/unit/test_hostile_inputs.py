"""
The table of hostile inputs: each row is something an attacker (or a slip) could put in the
pillar, the beacon's configuration or the files lbpair keeps, and what lbpair does with it.
Grow it: every hole found becomes a row.
"""

import copy
import dataclasses
import pathlib

import pytest
import yaml

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.master import notify, reactions, reactions_config
from saltext.lbpair.master.history import History
from saltext.lbpair.model import certificates, pillar
from saltext.lbpair.node import beacon_config, deploy, haproxy, journal
from saltext.lbpair.node.firewall import iptables, rogue
from tests.conftest import REPO
from tests.unit.test_certificates import KEY, NOW, PATH_KEY, shared_pki
from tests.unit.test_planned import Pair
from tests.unit.test_reaction_steps import _reactions
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca


def foo(lbpair):
    return lbpair["services"]["foo"]


PILLAR_ROWS = [
    # (what it tries, the change, the pillar key named, words of the message)
    ("a pair name that breaks a log or chat line", lambda p: p.update(pair="web\n*lbpair*: all clear"), "lbpair:pair", "single line"),
    ("a pair name in chat markup", lambda p: p.update(pair="*web*"), "lbpair:pair", "safe name"),
    ("a pair name that is not text", lambda p: p.update(pair=["web"]), "lbpair:pair", "string"),
    ("a server address opens a bind line", lambda p: foo(p)["servers"]["foo1"].update(address="198.51.100.11\n    bind 0.0.0.0:22"),
     "lbpair:services:foo:servers:foo1:address", "single line"),
    ("an options line opens a new section", lambda p: foo(p).update(options=["listen x", "bind 0.0.0.0:2222"]),
     "lbpair:services:foo:options:0", "open a section"),
    ("an options line opens a frontend", lambda p: foo(p).update(options=["  frontend admin"]),
     "lbpair:services:foo:options:0", "open a section"),
    ("a global override opens a section", lambda p: p["haproxy"].update({"global": {"listen": "x"}}),
     "lbpair:haproxy:global:listen", "open a section"),
    ("a defaults override opens a backend", lambda p: p["haproxy"].update(defaults={"backend": "evil"}),
     "lbpair:haproxy:defaults:backend", "open a section"),
    ("a keyword ending in a newline adds a line", lambda p: p["haproxy"].update({"global": {"maxconn\n": "1"}}),
     "lbpair:haproxy:global:maxconn\n", "directive keyword"),
    ("a second admin socket via 'stats'", lambda p: p["haproxy"].update({"global": {"stats": "socket /tmp/x level admin"}}),
     "lbpair:haproxy:global:stats", "stats_socket"),
    ("a second admin socket via 'stats socket'", lambda p: p["haproxy"].update({"global": {"stats socket": "/tmp/x"}}),
     "lbpair:haproxy:global:stats socket", "stats_socket"),
    ("keepalived includes another file", lambda p: p.update(keepalived={"global_defs": {"include": "/etc/shadow"}}),
     "lbpair:keepalived:global_defs:include", "include"),
    ("keepalived router_id spoofed", lambda p: p.update(keepalived={"global_defs": {"router_id": "lb2"}}),
     "lbpair:keepalived:global_defs:router_id", "minion id"),
    ("a keepalived value longer than a line", lambda p: p.update(keepalived={"global_defs": {"notification_email_from": "a" * 2000}}),
     "lbpair:keepalived:global_defs:notification_email_from", "bytes"),
    ("a check script of 1 KiB", lambda p: p["vrrp"].update(check={"script": "/usr/bin/true " + "x" * 1024}),
     "lbpair:vrrp:check:script", "bytes"),
    ("a brace closes keepalived's block", lambda p: p["vrrp"].update(check={"script": "/bin/true }"}),
     "lbpair:vrrp:check:script", "braces"),
    ("a quote ends the check script", lambda p: p["vrrp"].update(check={"script": '/bin/true" }'}),
     "lbpair:vrrp:check:script", "double quotes"),
    ("a keepalived value closes its block on two lines",
     lambda p: p.update(keepalived={"global_defs": {"notification_email_from": "x }\nvrrp_instance evil {"}}),
     "lbpair:keepalived:global_defs:notification_email_from", "single line"),
    ("a keepalived value closes its block on one line",
     lambda p: p.update(keepalived={"global_defs": {"router_id_x": "x } vrrp_instance evil {"}}),
     "lbpair:keepalived:global_defs:router_id_x", "braces"),
    ("an options line with a newline", lambda p: p["services"]["baz"]["options"].append("option httplog\nlisten evil"),
     "lbpair:services:baz:options:1", "single line"),
    ("a name with surrounding blanks", lambda p: p["services"].update({" foo": p["services"].pop("foo")}),
     "lbpair:services: foo", "safe name"),
    ("a Unicode line separator", lambda p: foo(p).update(options=["http-request deny\u2028listen x"]),
     "lbpair:services:foo:options:0", "single line"),
    ("a next-line character", lambda p: foo(p)["servers"]["foo1"].update(options="check\u0085listen x"),
     "lbpair:services:foo:servers:foo1:options", "single line"),
    ("the unspecified address as a VIP", lambda p: foo(p).update(vip="0.0.0.0"), "lbpair:services:foo:vip", "unspecified"),
    ("the broadcast address as a VIP", lambda p: foo(p).update(vip="255.255.255.255"), "lbpair:services:foo:vip", "broadcast"),
    ("VRRP's multicast group as a VIP", lambda p: foo(p).update(vip="224.0.0.18"), "lbpair:services:foo:vip", "multicast"),
    ("loopback as a VIP", lambda p: foo(p).update(vip="127.0.0.1"), "lbpair:services:foo:vip", "loopback"),
    ("a node's own address as a VIP", lambda p: foo(p).update(vip="192.0.2.12"), "lbpair:services:foo:vip", "node lb2"),
    ("a multicast node address", lambda p: p["nodes"]["lb2"].update(address="239.1.1.1"), "lbpair:nodes:lb2:address", "multicast"),
    ("a link-local node address", lambda p: p["nodes"]["lb2"].update(address="169.254.1.1"), "lbpair:nodes:lb2:address", "link-local"),
    ("an interface that closes the nft rule's string", lambda p: p["vrrp"].update(interface='eth0" accept #'),
     "lbpair:vrrp:interface", "safe name"),
    ("an nft chain that adds a command", lambda p: p.update(firewall={"backend": "nftables", "nft_chain": "input; flush ruleset"}),
     "lbpair:firewall:nft_chain", "safe name"),
    ("an nft table that adds a command", lambda p: p.update(firewall={"backend": "nftables", "nft_table": "inet filter; flush ruleset"}),
     "lbpair:firewall:nft_table", "FAMILY NAME"),
    ("a sub-second advert with VRRPv2", lambda p: p["vrrp"].update(advert_int=0.1, version=2), "lbpair:vrrp:advert_int", "needs VRRPv3"),
    ("a sub-second advert that is not whole centiseconds", lambda p: p["vrrp"].update(advert_int=0.125, version=3),
     "lbpair:vrrp:advert_int", "centiseconds"),
    ("an unknown profile", lambda p: p["vrrp"].update(profile="turbo"), "lbpair:vrrp:profile", "expected one of default, fast"),
    ("a failback delay beyond keepalived's", lambda p: p["vrrp"].update(failback_delay=1001), "lbpair:vrrp:failback_delay", "from 0 to 1000"),
    ("a failback delay in strict mode", lambda p: p["vrrp"].update(
        strict=True, version=3, higher_prio_send_advert=False, garp_lower_prio_repeat=0, failback_delay=5),
     "lbpair:vrrp:failback_delay", "strict mode requires it to be 0"),
    ("a failback delay as text", lambda p: p["vrrp"].update(failback_delay="10; reboot"), "lbpair:vrrp:failback_delay", "integer"),
    ("a profile that is a mapping", lambda p: p["vrrp"].update(profile={"version": 3}), "lbpair:vrrp:profile", "expected one of"),
    ("a track file outside lbpair's directory", lambda p: p["vrrp"].update(track_files={"x": {"file": "/etc/shadow"}}),
     "lbpair:vrrp:track_files:x:file", "directly in lbpair's /var/lib/lbpair/track/"),
    ("a track file climbing out of lbpair's directory",
     lambda p: p["vrrp"].update(track_files={"x": {"file": "/var/lib/lbpair/track/../../../etc/passwd"}}),
     "lbpair:vrrp:track_files:x:file", "directly in"),
    ("a track file in a subdirectory", lambda p: p["vrrp"].update(track_files={"x": {"file": "/var/lib/lbpair/track/a/b"}}),
     "lbpair:vrrp:track_files:x:file", "directly in"),
    ("a track file taking lbpair's maintenance file", lambda p: p["vrrp"].update(track_files={"x": {"file": "/var/lib/lbpair/track/maintenance"}}),
     "lbpair:vrrp:track_files:x:file", "lbpair's own"),
    ("a track file named like lbpair's", lambda p: p["vrrp"].update(track_files={"lbpair_haproxy": {"file": "/var/lib/lbpair/track/x"}}),
     "lbpair:vrrp:track_files:lbpair_haproxy", "lbpair's own"),
    ("a track file whose name closes the block", lambda p: p["vrrp"].update(track_files={"x }": {"file": "/var/lib/lbpair/track/x"}}),
     "lbpair:vrrp:track_files:x }", "safe name"),
    ("a track file weight beyond keepalived's", lambda p: p["vrrp"].update(track_files={"x": {"file": "/var/lib/lbpair/track/x", "weight": 300}}),
     "lbpair:vrrp:track_files:x:weight", "from -253 to 253"),
    ("strict mode with VRRPv2 (keepalived resets accept: the VIPs would drop HAProxy's traffic)",
     lambda p: p["vrrp"].update(strict=True, higher_prio_send_advert=False, garp_lower_prio_repeat=0), "lbpair:vrrp:strict", "version 3"),
    ("strict mode with unicast", lambda p: p["vrrp"].update(strict=True, unicast=True, version=3), "lbpair:vrrp:unicast", "strict mode"),
    ("strict mode with a split-brain remedy it refuses", lambda p: p["vrrp"].update(strict=True, higher_prio_send_advert=True, version=3),
     "lbpair:vrrp:higher_prio_send_advert", "strict mode"),
    ("vrrp_strict slipped into global_defs", lambda p: p.update(keepalived={"global_defs": {"vrrp_strict": True}}),
     "lbpair:keepalived:global_defs:vrrp_strict", "lbpair:vrrp:strict"),
    ("a realtime priority slipped into global_defs", lambda p: p.update(keepalived={"global_defs": {"vrrp_rt_priority": 99}}),
     "lbpair:keepalived:global_defs:vrrp_rt_priority", "lbpair:vrrp:realtime"),
    ("realtime as text", lambda p: p["vrrp"].update(realtime="yes"), "lbpair:vrrp:realtime", "true or false"),
    ("a probe port that adds a command", lambda p: p["vrrp"].update(probe={"port": "8405; reboot"}), "lbpair:vrrp:probe:port", "integer"),
    ("a service named like lbpair's probe frontend", lambda p: p["services"].update({"lbpair-probe": p["services"].pop("foo")}),
     "lbpair:services:lbpair-probe", "probe frontend"),
    ("a route to an unknown backend", lambda p: p["services"].update(shop=shop(routes=[{"path": "/", "backend": "admin"}])),
     "lbpair:services:shop:routes:0:backend", "no backend 'admin'"),
    ("two routes that shadow each other", lambda p: p["services"].update(shop=shop(routes=[{"path": "/a", "backend": "api"}, {"path": "/ab", "backend": "web"}])),
     "lbpair:services:shop:routes:1", "shadowed"),
    ("a route host that smuggles an ACL", lambda p: p["services"].update(shop=shop(routes=[{"host": "a } || { always_true", "backend": "api"}])),
     "lbpair:services:shop:routes:0:host", "a host name"),
    ("a route path with a space and a brace", lambda p: p["services"].update(shop=shop(routes=[{"path": "/a }", "backend": "api"}])),
     "lbpair:services:shop:routes:0:path", "URL path"),
    ("a route path with a line break", lambda p: p["services"].update(shop=shop(routes=[{"path": "/a\n    bind :22", "backend": "api"}])),
     "lbpair:services:shop:routes:0:path", "single line"),
    ("a backend named to open a section", lambda p: p["services"].update(shop=shop(backends={"x\nlisten y": SHOP["backends"]["web"]})),
     "lbpair:services:shop:backends:x\nlisten y", "single line"),
    ("a quoted route path HAProxy reads unquoted (/api/'x'/ matches /api/x/)",
     lambda p: p["services"].update(shop=shop(routes=[{"path": "/api/'x'/", "backend": "api"}])), "lbpair:services:shop:routes:0:path", "quote"),
    ("a route path HAProxy would expand", lambda p: p["services"].update(shop=shop(routes=[{"path": "/${HOME}", "backend": "api"}])),
     "lbpair:services:shop:routes:0:path", "URL path"),
    ("a route path with a backslash escape", lambda p: p["services"].update(shop=shop(routes=[{"path": "/a\\ b", "backend": "api"}])),
     "lbpair:services:shop:routes:0:path", "URL path"),
    ("a quoted health check path", lambda p: p["services"]["foo"].update(health={"path": "/'health'"}),
     "lbpair:services:foo:health:path", "quote"),
    ("a server on the node's loopback (its local services to the world)", lambda p: foo(p)["servers"]["foo1"].update(address="127.0.0.1"),
     "lbpair:services:foo:servers:foo1:address", "loopback"),
    ("a server on loopback, IPv4-mapped", lambda p: foo(p)["servers"]["foo1"].update(address="::ffff:127.0.0.1"),
     "lbpair:services:foo:servers:foo1:address", "loopback"),
    ("a server at the cloud's metadata service", lambda p: foo(p)["servers"]["foo1"].update(address="169.254.169.254"),
     "lbpair:services:foo:servers:foo1:address", "link-local"),
    ("a server at the unspecified address", lambda p: foo(p)["servers"]["foo1"].update(address="0.0.0.0"),
     "lbpair:services:foo:servers:foo1:address", "unspecified"),
    ("a server at a node (its peers port from the node's own address)", lambda p: foo(p)["servers"]["foo1"].update(address="192.0.2.12", port=10000),
     "lbpair:services:foo:servers:foo1:address", "address of node lb2"),
    ("a VIP on loopback, IPv4-mapped", lambda p: foo(p).update(vip6="::ffff:127.0.0.1"), "lbpair:services:foo:vip6", "loopback"),
    ("a health check path with a newline", lambda p: p["services"]["foo"].update(health={"path": "/\nbind :22"}),
     "lbpair:services:foo:health:path", "single line"),
    ("a health check status that is not HTTP", lambda p: p["services"]["foo"].update(health={"status": 999}), "lbpair:services:foo:health:status", "from 100 to 599"),
    ("a redirect loop", lambda p: p["services"]["foo"].update(redirects={"a.example.net": "a.example.net"}),
     "lbpair:services:foo:redirects:a.example.net", "redirected itself"),
    ("a stick key that is a fetch expression", lambda p: p["services"]["foo"].update(stick={"on": "req.hdr(x) } || { always_true"}),
     "lbpair:services:foo:stick:on", "expected one of src"),
    ("a peers port that smuggles a peer", lambda p: p["haproxy"].update(peers_port="10000\n    peer evil 198.51.100.66:10000"),
     "lbpair:haproxy:peers_port", "integer"),
    ("TLS on a tcp service", lambda p: foo(p).update(mode="tcp", tls=tls()), "lbpair:services:foo:tls", "needs mode http"),
    ("an ALPN protocol HAProxy is not asked for", lambda p: foo(p).update(tls=tls(alpn=["h2", "h2c"])), "lbpair:services:foo:tls:alpn:1",
     "expected one of h2, http/1.1"),
    ("an ALPN list that adds a bind option", lambda p: foo(p).update(tls=tls(alpn=["h2 crt /etc/shadow"])), "lbpair:services:foo:tls:alpn:0",
     "expected one of"),
    ("a pem that is not PEM", lambda p: foo(p).update(tls=tls(certificates={"x": {"pem": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}})),
     "lbpair:services:foo:tls:certificates:x:pem", "not PEM"),
    ("a certificate path to /etc/shadow", lambda p: foo(p).update(tls=tls(certificates={"x": {"path": "/etc/shadow"}})),
     "lbpair:services:foo:tls:certificates:x:path", "not in a directory"),
    ("a certificate path taking lbpair's own file", lambda p: foo(p).update(tls=tls(certificates={"x": {"path": f"/etc/haproxy/certs/lbpair/{'0' * 64}.pem"}})),
     "lbpair:services:foo:tls:certificates:x:path", "lbpair's own"),
    ("a certificate path with a space that adds a bind option", lambda p: foo(p).update(tls=tls(certificates={"x": {"path": "/etc/haproxy/certs/x.pem verify none"}})),
     "lbpair:services:foo:tls:certificates:x:path", "an absolute path"),
    ("the same certificate under two names", lambda p: foo(p).update(tls=tls(certificates={"a": {"path": "/etc/haproxy/certs/x.pem"}, "b": {"path": "/etc/haproxy/certs/x.pem"}})),
     "lbpair:services:foo:tls:certificates:b", "same certificate as lbpair:services:foo:tls:certificates:a"),
    ("the same bundle under two names", lambda p: foo(p).update(tls=tls(certificates={"a": {"pem": shared_ca().shop}, "b": {"pem": shared_ca().shop}})),
     "lbpair:services:foo:tls:certificates:b", "same certificate as"),
    ("a certificate name that opens a line", lambda p: foo(p).update(tls=tls(certificates={"x\nlisten y": {"path": "/etc/haproxy/certs/x.pem"}})),
     "lbpair:services:foo:tls:certificates:x\nlisten y", "single line"),
    ("a TLS port equal to the plain port", lambda p: foo(p).update(tls=tls(port=80)), "lbpair:services:foo:tls:port", "plain HTTP port"),
    ("a TLS port another service listens on", lambda p: foo(p).update(vip=p["services"]["bar"]["vip"], port=8080, tls=tls(port=80)),
     "lbpair:services:foo:tls:port", "already used by service bar"),
    ("more instances than the firewall rule's comment can name",
     lambda p: p["vrrp"].update(instances={f"i{n}": {"virtual_router_id": 200 + n} for n in range(20)}), "lbpair:vrrp:instances", "at most 19"),
    ("a VRID used twice", lambda p: instance(p, virtual_router_id=51), "lbpair:vrrp:instances:web2:virtual_router_id",
     "already used by lbpair:vrrp:virtual_router_id"),
    ("a VRID beyond VRRP's", lambda p: instance(p, virtual_router_id=256), "lbpair:vrrp:instances:web2:virtual_router_id", "from 1 to 255"),
    ("a service in an unknown instance", lambda p: foo(p).update(instance="web9"), "lbpair:services:foo:instance", "no VRRP instance 'web9'"),
    ("an instance no service uses", lambda p: p["vrrp"].update(instances={"web2": {"virtual_router_id": 52}}),
     "lbpair:vrrp:instances:web2", "no service uses it"),
    ("an instance preferred by a host outside the pair", lambda p: instance(p, preferred="lb3"), "lbpair:vrrp:instances:web2:preferred",
     "not a node of the pair"),
    ("an instance named like the default one", lambda p: p["vrrp"].update(instances={"default": {"virtual_router_id": 52}}),
     "lbpair:vrrp:instances:default", "lbpair:vrrp:virtual_router_id"),
    ("an instance name that closes keepalived's block", lambda p: p["vrrp"].update(instances={"x }": {"virtual_router_id": 52}}),
     "lbpair:vrrp:instances:x }", "safe name"),
    ("an IPv6 VIP in a pair without IPv6 node addresses", lambda p: foo(p).update(vip="2001:db8::10"), "lbpair:services:foo:vip",
     "IPv6 address on every node"),
    ("an IPv6 VIP with one node without IPv6 address", lambda p: address6(p, lb2=None) and foo(p).update(vip="2001:db8::10"),
     "lbpair:services:foo:vip", "lbpair:nodes:lb2:address6"),
    ("an IPv6 VIP in strict mode (keepalived refuses it without a link-local VIP)",
     lambda p: address6(p)["vrrp"].update(strict=True, version=3, higher_prio_send_advert=False, garp_lower_prio_repeat=0, failback_delay=0)
     or foo(p).update(vip="2001:db8::10"),
     "lbpair:services:foo:vip", "strict mode"),
    ("an IPv4 address given as address6", lambda p: address6(p, lb1="192.0.2.111"), "lbpair:nodes:lb1:address6", "not an IPv6 address"),
    ("an IPv6 address given as address", lambda p: p["nodes"]["lb1"].update(address="2001:db8::11"), "lbpair:nodes:lb1:address",
     "not an IPv4 address"),
    ("a link-local address6", lambda p: address6(p, lb1="fe80::11"), "lbpair:nodes:lb1:address6", "link-local"),
    ("the same address6 on both nodes", lambda p: address6(p, lb2="2001:db8::11"), "lbpair:nodes:lb2:address6", "already used by lb1"),
    ("a node's own IPv6 address as a VIP", lambda p: address6(p) and foo(p).update(vip="2001:db8::12"), "lbpair:services:foo:vip", "node lb2"),
    ("IPv6 VRRP's multicast group as a VIP", lambda p: address6(p) and foo(p).update(vip="ff02::12"), "lbpair:services:foo:vip", "multicast"),
    ("an IPv6 VIP with a zone that closes keepalived's block", lambda p: address6(p) and foo(p).update(vip="2001:db8::10%eth0 }"),
     "lbpair:services:foo:vip", "without a zone"),
    ("a VIP shared by services of two instances", lambda p: instance(p) or p["services"]["bar"].update(vip=foo(p)["vip"], port=81),
     "lbpair:services:foo:instance", "a VIP belongs to one instance"),
    ("an IPv4 address as vip6", lambda p: address6(p) and foo(p).update(vip6="203.0.113.60"), "lbpair:services:foo:vip6",
     "not an IPv6 address"),
    ("vip6 beside an IPv6 vip", lambda p: address6(p) and foo(p).update(vip="2001:db8::10", vip6="2001:db8::60"),
     "lbpair:services:foo:vip6", "IPv4 vip"),
    ("vip6 in a pair without IPv6 node addresses", lambda p: foo(p).update(vip6="2001:db8::10"), "lbpair:services:foo:vip6",
     "lbpair:nodes:lb1:address6"),
    ("vip6 that is a node's address", lambda p: address6(p) and foo(p).update(vip6="2001:db8::11"), "lbpair:services:foo:vip6",
     "node lb1"),
    ("vip6 that is another service's IPv6 vip on the same port",
     lambda p: address6(p) and foo(p).update(vip6="2001:db8::10") or p["services"]["bar"].update(vip6="2001:db8::10"),
     "lbpair:services:foo:vip6", "already used by service bar"),
    ("vip6 that closes keepalived's block", lambda p: address6(p) and foo(p).update(vip6="2001:db8::10 }"), "lbpair:services:foo:vip6",
     "not an IP address"),
    ("an IPv6 server address with a zone that adds words", lambda p: foo(p)["servers"]["foo1"].update(address="2001:db8::1%x backup"),
     "lbpair:services:foo:servers:foo1:address", "without a zone"),
]  # fmt: skip


def instance(lbpair, **fields):
    """A second VRRP instance, web2, carrying service bar, its fields changed."""
    lbpair["vrrp"]["instances"] = {"web2": {"virtual_router_id": 52, "preferred": "lb2", **fields}}
    lbpair["services"]["bar"]["instance"] = "web2"


def address6(lbpair, **changes):
    """IPv6 addresses on the nodes (2001:db8::11, ::12), changed (None: none); returns the pillar."""
    for node, value in {"lb1": "2001:db8::11", "lb2": "2001:db8::12", **changes}.items():
        lbpair["nodes"][node].pop("address6", None)
        if value is not None:
            lbpair["nodes"][node]["address6"] = value
    return lbpair


def tls(**changes):
    """A tls block with one certificate on the node, changed."""
    return {"certificates": {"x": {"path": "/etc/haproxy/certs/x.pem"}}, **changes}


def shop(**changes):
    """The routed service of the routing tests, changed."""
    return {**copy.deepcopy(SHOP), **changes}


@pytest.mark.parametrize(("what", "change", "path", "words"), PILLAR_ROWS, ids=[row[0] for row in PILLAR_ROWS])
def test_hostile_pillar_is_refused_naming_the_key(seed_pillar, what, change, path, words):
    change(seed_pillar)
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert error.value.path == path, (what, str(error.value))
    assert words in str(error.value), (what, str(error.value))


def test_ordinary_options_and_overrides_still_pass(seed_pillar):
    foo(seed_pillar).update(options=["option httpchk GET /", "http-request set-header X-Listen listen"])
    seed_pillar["haproxy"]["global"] = {"stats timeout": "1m", "maxconn": 4000}
    model = pillar.normalize(seed_pillar)
    assert model["services"]["foo"]["options"][1] == "http-request set-header X-Listen listen"


META_ROWS = [
    ({"smtp_password": "x"}, ["smtp_password"]),
    ({"apiKey": "x"}, ["apiKey"]),
    ({"db": {"pwd": "x"}}, ["db:pwd"]),
    ({"credentials": "x"}, ["credentials"]),
    ({"x-auth-token": "x"}, ["x-auth-token"]),
    ({"private": "x"}, ["private"]),
    ({"monkey": 1, "keyboard": 2, "passenger": 3, "site": "paris"}, []),
]


@pytest.mark.parametrize(("meta", "refused"), META_ROWS, ids=[str(row[0]) for row in META_ROWS])
def test_beacon_meta_refuses_secret_words_not_words_that_contain_them(meta, refused):
    assert beacon_config.secret_keys(meta) == refused
    assert beacon_config.check_config([{"meta": meta}])[0] is (not refused)


ROGUE_RECORD_ROWS = [
    # (what the firewall's record of rogue VRRP senders holds, the reader, the text, the addresses lbpair reports)
    ("a source that is a command", rogue.senders_in_recent, "src=$(reboot) ttl: 0 last_seen: 1\n", []),
    ("a scoped IPv6 address carrying text", rogue.senders_in_recent, "src=fe80::1%<!channel> ttl: 0\n", []),
    ("a line that only mentions src=", rogue.senders_in_recent, "x src=192.0.2.66\n", []),
    ("the same sender twice", rogue.senders_in_recent, "src=192.0.2.66 a\nsrc=192.0.2.66 b\n", ["192.0.2.66"]),
    ("nft output that is not JSON", rogue.senders_in_nft_set, "Error: No such file or directory", []),
    ("nft JSON that is a list", rogue.senders_in_nft_set, "[1, 2]", []),
    ("set elements that are objects and numbers", rogue.senders_in_nft_set,
     '{"nftables": [{"set": {"elem": [{"elem": {"val": {"prefix": {"addr": "192.0.2.0", "len": 24}}}}, 7, "192.0.2.66"]}}]}',
     ["192.0.2.66"]),
    ("a set element with a newline", rogue.senders_in_nft_set, '{"nftables": [{"set": {"elem": ["192.0.2.66\\nWARNING"]}}]}', []),
]  # fmt: skip


@pytest.mark.parametrize(("what", "read", "text", "senders"), ROGUE_RECORD_ROWS, ids=[row[0] for row in ROGUE_RECORD_ROWS])
def test_only_plain_addresses_come_out_of_the_rogue_sender_record(what, read, text, senders):
    assert read(text) == senders, what


def test_a_users_rule_that_looks_like_lbpairs_is_not_taken_for_it():
    listing = '-A INPUT -s 192.0.2.9/32 -p vrrp -m comment --comment "lbpair-vrrp 192.0.2.9 to 224.0.0.18 (mine)" -j ACCEPT\n'
    assert iptables.comments_in_iptables(listing) == {}


STORE_ROWS = [
    # (what a crash, a full disk or a hand edit leaves in a JSON-lines store, the bytes)
    ("a list", b"[1, 2]"), ("text", b'"text"'), ("a number", b"42"), ("null", b"null"),
    ("a line cut by a crash", b'{"seq": 3, "cut'),
    ("invalid UTF-8 in a line", b'{"seq": 3, "state": "MA\xffSTER"}'),
    ("a block of NUL bytes (a crash on some filesystems)", b"\x00" * 4096),
    ("a NUL byte inside a record", b'{"seq": 3,\x00 "state": "MASTER"}'),
    ("UTF-16 that json.loads(bytes) would accept", '{"seq": 3}'.encode("utf-16-le")),
    ("a huge cut line", b'{"seq": 3, "pad": "' + b"x" * (4 << 20)),
    ("deeply nested JSON", b"[" * 100000),
    ("a number too long to convert", b'{"seq": ' + b"9" * 5000 + b"}"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "damage"), STORE_ROWS, ids=[row[0] for row in STORE_ROWS])
def test_a_damaged_line_in_a_store_is_skipped_counted_and_the_next_append_stands_alone(tmp_path, what, damage):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"seq": 1}])
    with open(path, "ab") as handle:
        handle.write(damage)
    store.append_records(path, [{"seq": 2}])
    assert store.read_records(path) == [{"seq": 1}, {"seq": 2}], what
    assert store.scan(path) == ([{"seq": 1}, {"seq": 2}], 1), what
    assert list(store.records_backward(path, block=1024)) == [{"seq": 2}, {"seq": 1}], what


def plant(line):
    return lambda history: store.append_records(history.path, [line])


HISTORY_ROWS = [
    # (what the history or its index holds, how it gets there)
    ("a seq that is text", plant({"kind": "transition", "minion": "lb1", "seq": "7", "confirmed": True})),
    ("a seq that is a boolean", plant({"kind": "transition", "minion": "lb1", "seq": True})),
    ("a seq that is a float", plant({"kind": "transition", "minion": "lb1", "seq": 7.0})),
    ("a seq past SQLite's integers", plant({"kind": "transition", "minion": "lb1", "seq": 2**80})),
    ("a minion that is a list", plant({"kind": "transition", "minion": ["lb1"], "seq": 7})),
    ("a minion with a lone surrogate", plant({"kind": "transition", "minion": "lb1\ud800", "seq": 7})),
    ("an index file that is garbage", lambda history: pathlib.Path(history.index_path).write_bytes(b"\x00garbage" * 1000)),
    ("an index file damaged past its header",
     lambda history: pathlib.Path(history.index_path).write_bytes(pathlib.Path(history.index_path).read_bytes()[:100] + b"\xff" * 8000)),
]  # fmt: skip


@pytest.mark.parametrize(("what", "harm"), HISTORY_ROWS, ids=[row[0] for row in HISTORY_ROWS])
def test_a_hostile_history_neither_breaks_nor_fools_deduplication(tmp_path, what, harm):
    records = History(str(tmp_path / "history.jsonl"))
    records.append([{"kind": "transition", "minion": "lb1", "seq": 6, "confirmed": True}])
    harm(records)
    seven = {"kind": "transition", "minion": "lb1", "seq": 7, "confirmed": True}
    assert records.append([seven]) == [seven], what
    assert records.append([seven]) == [] and records.last_seq("lb1") == 7 and records.bad_lines() == 0, what


NODES = {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}
EVENT = {"id": "lb2", "instance": "lbpair_51", "state": "MASTER", "previous_state": "BACKUP", "seq": 7, "vips": ["203.0.113.10"]}
TAG = "salt/beacon/lb2/lbpair_vrrp/lbpair_51/MASTER"
EVENT_ROWS = [
    # (what a minion sends, the tag, the data, words of the reason it is ignored)
    ("a tag with a trailing newline", TAG + "\n", EVENT, "unexpected tag"),
    ("another node's name in the data", TAG, {**EVENT, "id": "lb1"}, "claims"),
    ("a state keepalived never has", TAG.replace("MASTER", "OWNED"), {**EVENT, "state": "OWNED"}, "state"),
    ("an instance name with markup", "salt/beacon/lb2/lbpair_vrrp/<!channel>/MASTER", {**EVENT, "instance": "<!channel>"}, "instance"),
    ("a previous state with a newline", TAG, {**EVENT, "previous_state": "BACKUP\nCRITICAL"}, "previous_state"),
    ("VIPs that are not addresses", TAG, {**EVENT, "vips": ["203.0.113.10", "@all"]}, "vips"),
    ("VIPs that are not a list", TAG, {**EVENT, "vips": "203.0.113.10"}, "vips"),
    ("too many VIPs", TAG, {**EVENT, "vips": [f"198.51.100.{n % 250}" for n in range(300)]}, "vips"),
    ("a boolean sequence number", TAG, {**EVENT, "seq": True}, "seq"),
    ("a huge sequence number", TAG, {**EVENT, "seq": 2**80}, "seq"),
    ("a negative sequence number", TAG, {**EVENT, "seq": -1}, "seq"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "tag", "data", "words"), EVENT_ROWS, ids=[row[0] for row in EVENT_ROWS])
def test_malformed_or_forged_events_are_ignored_with_a_reason(what, tag, data, words):
    assert reactions.trust_problem(TAG, EVENT, NODES) is None
    problem = reactions.trust_problem(tag, data, NODES)
    assert problem and words in problem, (what, problem)


WARNING_ROWS = [
    # (what a node's job return says when the master asks it to confirm a warning, the code, the return, confirmed)
    ("keepalived on D-Bus: a forged 'not on bus'", "keepalived_not_on_bus", {"lbpair_51": {"source": "dbus"}}, False),
    ("a status that is text", "keepalived_not_on_bus", "source json", False),
    ("a status whose instances are text", "keepalived_not_on_bus", {"lbpair_51": "json"}, False),
    ("really off D-Bus", "keepalived_not_on_bus", {"lbpair_51": {"source": "json"}}, True),
    ("no rogue sender seen", "rogue_vrrp", [], False),
    ("rogue senders that are not addresses", "rogue_vrrp", ["<!channel>", "203.0.113.66"], False),
    ("rogue senders that are not a list", "rogue_vrrp", "203.0.113.66", False),
    ("a flood of rogue senders", "rogue_vrrp", [f"198.51.100.{n}" for n in range(256)] * 2, False),
    ("a rogue sender", "rogue_vrrp", ["203.0.113.66"], True),
]  # fmt: skip


@pytest.mark.parametrize(("what", "code", "answer", "confirmed"), WARNING_ROWS, ids=[row[0] for row in WARNING_ROWS])
def test_a_warning_is_confirmed_only_by_what_the_node_itself_returns(what, code, answer, confirmed):
    message = reactions.WARNING_CHECKS[code]["confirms"](answer)
    assert bool(message) is confirmed, what
    if message:
        assert "<" not in message and "@" not in message


def test_node_text_cannot_alert_everyone_or_dress_up_a_link_in_chat():
    notice = notify.warning_notice("lb1", "keepalived_not_on_bus", "<!channel> @all see <https://evil.example|the fix>")
    text = notify.webhook_payload(notice, "slack")["text"]
    assert "<!channel>" not in text and "@all" not in text and "<https://" not in text
    assert "&lt;!channel&gt;" in text


def test_a_header_injection_stays_in_the_subject():
    notice = dataclasses.replace(notify.alarm_notice("no_master", "lbpair_51", "x"), subject="no MASTER\r\nBcc: everyone@example.net")
    message = notify.mail_message(notice, {"from": "lbpair@example.net", "to": ["ops@example.net"]})
    assert message["Bcc"] is None and "Bcc: everyone" in message["Subject"]


def test_a_webhook_url_the_http_client_refuses_is_not_shown():
    with pytest.raises(OSError) as error:
        notify.post_webhook(notify.alarm_notice("no_master", "lbpair_51", "x"), {"url": "https://[hook-secret-Q7", "format": "slack"})
    assert "hook-secret-Q7" not in str(error.value)


def shipped_reactions():
    """The shipped block, for the one pair its comment shows (``nodes``)."""
    block = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())["lbpair_reactions"]
    return {**block, "nodes": {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}}


CONFIG_ROWS = [
    # (what would fail at run time, the change, the key named)
    ("one node", lambda c: c["nodes"].pop("lb2"), "lbpair_reactions:nodes"),
    ("two nodes, one address", lambda c: c["nodes"]["lb2"].update(address=c["nodes"]["lb1"]["address"]), "lbpair_reactions:nodes:lb2:address"),
    ("an IPv6 node with an A record", lambda c: c["nodes"]["lb2"].update(address="2001:db8::12"), "lbpair_reactions:dns:records:0:type"),
    ("an AAAA record with a node without address6", lambda c: c["dns"]["records"].append({"name": "active", "type": "AAAA"}),
     "lbpair_reactions:dns:records:2:type"),
    ("an IPv4 address as address6", lambda c: c["nodes"]["lb1"].update(address6="192.0.2.111"), "lbpair_reactions:nodes:lb1:address6"),
    ("one address6 on both nodes", lambda c: [node.update(address6="2001:db8::11") for node in c["nodes"].values()],
     "lbpair_reactions:nodes:lb2:address6"),
    ("a record name dnspython refuses", lambda c: c["dns"]["records"][0].update(name="act ive"), "lbpair_reactions:dns:records:0:name"),
    ("a record following an instance that is no name", lambda c: c["dns"]["records"][0].update(instance="lbpair_51 } x"),
     "lbpair_reactions:dns:records:0:instance"),
    ("a zone with an empty label", lambda c: c["dns"].update(zone="pair..example"), "lbpair_reactions:dns:zone"),
    ("an empty TSIG secret", lambda c: c["dns"].update(key_secret=""), "lbpair_reactions:dns:key_secret"),
    ("a history path that is a directory", lambda c: c["history"].update(path="/tmp"), "lbpair_reactions:history:path"),
    ("a relative history path", lambda c: c["history"].update(path="history.jsonl"), "lbpair_reactions:history:path"),
    ("a certificate warning period given as text", lambda c: c.update(certificates={"warn_days": "30; rm"}), "lbpair_reactions:certificates:warn_days"),
    ("a webhook URL without a host", lambda c: c["webhook"].update(url="https:///hooks/secret-Q7"), "lbpair_reactions:webhook:url"),
    ("a webhook URL the HTTP client refuses", lambda c: c["webhook"].update(url="https://[secret-Q7/x"), "lbpair_reactions:webhook:url"),
    ("a mail recipient that adds another", lambda c: c["smtp"].update(to=["ops@example.net, boss@example.net"]), "lbpair_reactions:smtp:to"),
    ("pairs given as a list", lambda c: c.update(pairs=["web"]), "lbpair_reactions:pairs"),
    ("a pair name with a slash (a state key's separator)", lambda c: c.update(pairs={"web/x": {}}), "lbpair_reactions:pairs:web/x"),
    ("a pair name climbing out of a lock's directory", lambda c: c.update(pairs={"../web": {}}), "lbpair_reactions:pairs:../web"),
    ("a pair name with a newline", lambda c: c.update(pairs={"web\nCRITICAL": {}}), "lbpair_reactions:pairs:web\nCRITICAL"),
    ("a pair's own nodes (they come from pillar)", lambda c: c.update(pairs={"web": {"nodes": {}}}), "lbpair_reactions:pairs:web:nodes"),
    ("a pair's own history (one for the fleet)", lambda c: c.update(pairs={"web": {"history": {}}}), "lbpair_reactions:pairs:web:history"),
    ("a pair's webhook URL without a host", lambda c: c.update(pairs={"web": {"webhook": {"url": "https:///secret-Q7"}}}),
     "lbpair_reactions:pairs:web:webhook:url"),
    ("a pair's damping window given as text", lambda c: c.update(pairs={"web": {"damping_window": "60; rm"}}),
     "lbpair_reactions:pairs:web:damping_window"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "path"), CONFIG_ROWS, ids=[row[0] for row in CONFIG_ROWS])
def test_a_reactions_block_that_would_fail_at_run_time_is_refused_without_its_secrets(what, change, path):
    config = shipped_reactions()
    config.setdefault("history", {"path": "/var/lib/salt/lbpair/history.jsonl"})
    change(config)
    with pytest.raises(InvalidValue) as error:
        reactions_config.normalise(config)
    assert error.value.path == path, (what, str(error.value))
    assert "secret-Q7" not in str(error.value) and config["smtp"]["password"] not in str(error.value)


REJECTION_ROWS = [
    # (what, the change to the normalised model (the pillar refuses these lines: tests/unit/test_sandbox.py;
    # the masking still guards a line that gets there), HAProxy's message ({n}: the number of the line `text`), text, words)
    ("HAProxy quotes a stats password back", lambda m: m["haproxy"]["defaults"].append(("stats auth", "admin:S3cret-Q9")),
     "[ALERT] (1) : config : parsing [/tmp/c/haproxy.cfg:{n}] : bad 'stats auth admin:S3cret-Q9'", "stats auth admin:S3cret-Q9",
     'lbpair:haproxy:defaults:stats auth (line {n}: "stats auth admin:******")'),
    ("a password in a service's options line", lambda m: foo(m)["options"].extend(["stats enable", "stats auth admin:S3cret-Q9"]),
     "[ALERT] (1) : config : [/tmp/c/haproxy.cfg:{n}] : S3cret-Q9", "stats auth admin:S3cret-Q9",
     'lbpair:services:foo:options:1 (line {n}: "stats auth admin:******"): [ALERT] (1) : config : [/tmp/c/haproxy.cfg:{n}] : ******'),
    ("a message naming a line past the end", lambda p: None, "[ALERT] (1) : config : parsing [/tmp/c/haproxy.cfg:99999] : x", None,
     "(exit 1):\n[ALERT] (1) : config : parsing [/tmp/c/haproxy.cfg:99999] : x"),
    ("a message naming line 0", lambda p: None, "[ALERT] (1) : config : parsing [/tmp/c/haproxy.cfg:0] : x", None,
     "(exit 1):\n[ALERT] (1) : config : parsing [/tmp/c/haproxy.cfg:0] : x"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "message", "text", "words"), REJECTION_ROWS, ids=[row[0] for row in REJECTION_ROWS])
def test_a_rejection_names_the_pillar_key_and_never_a_secret(seed_pillar, what, change, message, text, words):
    model = pillar.for_node(pillar.normalize(seed_pillar), "lb1")
    change(model)
    lines = haproxy.render_lines(model)
    number = next((n for n, (line, _key) in enumerate(lines, 1) if line.strip() == text), 0)
    error = deploy.rejection(haproxy.daemon({}), 1, message.format(n=number), lines)
    assert words.format(n=number) in error, (what, error)
    assert "S3cret-Q9" not in error, (what, error)


PLANNED_ROWS = [
    ("a switchover to a stranger", lambda moves: moves.switchover("lb9", 30), "not a node of the pair"),
    ("a switchover to a name with a line break", lambda moves: moves.switchover("lb2\nCRITICAL", 30), "not a node of the pair"),
    ("a switchover whose timeout is text", lambda moves: moves.switchover("lb2", "30; sleep 9"), "timeout"),
    ("a switchover that would stay planned for ever", lambda moves: moves.switchover("lb2", 10**9), "timeout"),
    ("a rebalance whose timeout is text", lambda moves: moves.rebalance("30; sleep 9"), "timeout"),
    ("a maintenance release given as text (truthy)", lambda moves: moves.maintenance("lb1", "False", 30), "release"),
    ("maintenance of a stranger", lambda moves: moves.maintenance("lb9", False, 30), "not a node of the pair"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "words"), PLANNED_ROWS, ids=[row[0] for row in PLANNED_ROWS])
def test_a_hostile_planned_move_is_refused_and_moves_nothing(tmp_path, what, call, words):
    pair = Pair()
    moves = _reactions(tmp_path, pair)[0].planned_moves(grace=0)
    with pytest.raises((InvalidValue, LbpairError), match=words):
        call(moves)
    assert pair.states == {"lb1": "MASTER", "lb2": "BACKUP"} and not pair.deferring and not pair.in_maintenance


SINCE_OF_ROWS = [
    # (what a caller of lbpair_keepalived.transitions gives as since_of, the key named, words of the message)
    ("a sequence number as text", {"lb1": "41; rm -rf /"}, "since_of:lb1", "integer"),
    ("a sequence number as a boolean (a count to Python)", {"lb1": True}, "since_of:lb1", "integer"),
    ("a negative sequence number", {"lb1": -1}, "since_of:lb1", "from 0"),
    ("a sequence number past 2**63", {"lb1": 2**63 + 1}, "since_of:lb1", "from 0"),
    ("a fractional sequence number", {"lb1": 41.5}, "since_of:lb1", "integer"),
    ("another node's bad number fails the whole job", {"lb1": 41, "lb2": [7]}, "since_of:lb2", "integer"),
    ("a list, not a mapping", ["lb1", 41], "since_of", "mapping"),
    ("a minion id that is not text", {41: 7}, "since_of", "string"),
    ("a minion id that breaks a log line", {"lb1\nCRITICAL lbpair: split brain": 7}, "since_of", "single line"),
    ("more nodes than the cap", {f"lb{i}": 1 for i in range(journal.MAX_SINCE_OF + 1)}, "since_of", f"at most {journal.MAX_SINCE_OF}"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "since_of", "path", "words"), SINCE_OF_ROWS, ids=[row[0] for row in SINCE_OF_ROWS])
def test_a_hostile_since_of_is_refused_naming_its_key(what, since_of, path, words):
    with pytest.raises(InvalidValue, match=words) as error:
        journal.since_for("lb1", 0, since_of)
    assert error.value.path == path, (what, str(error.value))


CERTIFICATE_ROWS = [
    # (what the pillar gives as a TLS certificate, the check, the key named, words of the message)
    ("text that is not PEM", lambda pki: certificates.load("MIIB not a certificate", KEY, NOW), KEY, "not PEM"),
    ("a key that is not the certificate's", lambda pki: certificates.load(pki.bundle(pki.www, pki.other_key), KEY, NOW), KEY, "does not belong"),
    ("an expired certificate", lambda pki: certificates.load(pki.bundle(pki.expired, pki.www_key), KEY, NOW), KEY, "expired"),
    ("a certificate not valid yet", lambda pki: certificates.load(pki.bundle(pki.future, pki.www_key), KEY, NOW), KEY, "not valid yet"),
    ("an encrypted key", lambda pki: certificates.load(pki.bundle(pki.www) + pki.encrypted(pki.www_key), KEY, NOW), KEY, "encrypted"),
    ("two keys", lambda pki: certificates.load(pki.bundle(pki.www, pki.www_key, pki.other_key), KEY, NOW), KEY, "2 private keys"),
    ("a certificate path to /etc/shadow", lambda pki: certificates.readable_path("/etc/shadow", PATH_KEY), PATH_KEY, "not in a directory"),
    ("a certificate path climbing out of its directory",
     lambda pki: certificates.readable_path("/etc/haproxy/certs/../../shadow", PATH_KEY), PATH_KEY, "normalised"),
    ("a certificate path in /proc", lambda pki: certificates.readable_path("/proc/self/environ", PATH_KEY), PATH_KEY, "not in a directory"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "check", "path", "words"), CERTIFICATE_ROWS, ids=[row[0] for row in CERTIFICATE_ROWS])
def test_a_hostile_certificate_is_refused_naming_the_key_and_never_showing_a_private_key(what, check, path, words):
    pki = shared_pki()
    with pytest.raises(InvalidValue) as error:
        check(pki)
    assert error.value.path == path, (what, str(error.value))
    assert words in str(error.value), (what, str(error.value))
    assert not pki.shows_a_key(str(error.value)), what


def _unclosed(pem):
    """The bundle with its key's END line gone."""
    return pem.replace("-----END PRIVATE KEY-----", "")


def _key_of_another(pem):
    return pem.split("-----BEGIN PRIVATE KEY-----")[0] + "-----BEGIN PRIVATE KEY-----" + shared_ca().api.split("-----BEGIN PRIVATE KEY-----")[1]


TLS_SECRET_ROWS = [
    # (a broken bundle from the pillar: refused naming its key, no line of any private key in the message)
    ("a key block without its END line", _unclosed),
    ("another certificate's key", _key_of_another),
    ("the key alone", lambda pem: "-----BEGIN PRIVATE KEY-----" + pem.split("-----BEGIN PRIVATE KEY-----")[1]),
    ("a key before a damaged certificate", lambda pem: pem.split("-----BEGIN PRIVATE KEY-----", 1)[0].replace("M", "!", 3) + pem),
]


@pytest.mark.parametrize(("what", "damage"), TLS_SECRET_ROWS, ids=[row[0] for row in TLS_SECRET_ROWS])
def test_a_broken_bundle_is_refused_by_its_key_and_the_message_holds_no_key(seed_pillar, what, damage):
    ca = shared_ca()
    foo(seed_pillar)["tls"] = tls(certificates={"x": {"pem": damage(ca.shop)}})
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert error.value.path == "lbpair:services:foo:tls:certificates:x:pem", (what, str(error.value))
    assert not ca.shows_a_key(str(error.value)) and not ca.shows_a_key(repr(error.value)), what


def test_a_hostile_key_cannot_add_lines_to_the_error(seed_pillar):
    """The error names the key escaped: a state comment or a log line stays one line, with no terminal escape."""
    seed_pillar["services"]["foo\nCRITICAL lbpair: split brain\x1b[2J"] = seed_pillar["services"].pop("foo")
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)
    assert str(error.value).startswith("lbpair:services:foo\\nCRITICAL lbpair: split brain\\x1b[2J: ")
