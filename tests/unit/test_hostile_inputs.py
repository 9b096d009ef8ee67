"""
The table of hostile inputs: each row is something an attacker (or a slip) could put in the
pillar, the beacon's configuration or the files lbpair keeps, and what lbpair does with it.
Grow it: every hole found becomes a row.
"""

import pytest

from lbpair_lib import beacon, pillar, store
from lbpair_lib.errors import InvalidValue


def foo(lbpair):
    return lbpair["services"]["foo"]


PILLAR_ROWS = [
    # (what it tries, the change, the pillar key named, words of the message)
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
]  # fmt: skip


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
    assert beacon.secret_keys(meta) == refused
    assert beacon.check_config([{"meta": meta}])[0] is (not refused)


@pytest.mark.parametrize("damage", ["[1, 2]", '"text"', "42", "null", '{"seq": 3, "cut'])
def test_a_damaged_line_in_a_store_is_skipped_and_the_next_append_stands_alone(tmp_path, damage):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"seq": 1}])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(damage)
    store.append_records(path, [{"seq": 2}])
    assert store.read_records(path) == [{"seq": 1}, {"seq": 2}]
