"""
A service's entry does no more than serve that service: hostile ``options`` lines, server options and
global/defaults overrides, as attackers write them (quoted, escaped, commented, env-expanded), refused
naming the key; allowed lines rendered canonically (HAProxy reads back exactly the checked words).
"""

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import haproxy_syntax, pillar

OPT = "lbpair:services:foo:options:0"
SRV = "lbpair:services:foo:servers:foo1:options"


def options(*lines):
    return lambda p: p["services"]["foo"].update(options=list(lines))


def server(text):
    return lambda p: p["services"]["foo"]["servers"]["foo1"].update(options=text)


def override(section, keyword, value):
    return lambda p: p["haproxy"].update({section: {keyword: value}})


ROWS = [
    # (what it tries, the change, the key named, words of the message)
    ("a quoted section keyword", options("'listen' x"), OPT, "open a section"),
    ("an escaped section keyword", options("\\x6cisten x"), OPT, "open a section"),
    ("a double-quoted frontend", options('"frontend" admin'), OPT, "open a section"),
    ("a split-quoted listen", options("li'sten' x"), OPT, "open a section"),
    ("a commented-out tail", options("http-request deny # if { src 10.0.0.1 }"), OPT, "comment"),
    ("an env-expanded keyword", options('"$KW" x'), OPT, "environment"),
    ("an env-expanded keyword in braces", options('"${KW}" x'), OPT, "environment"),
    ("a newline escape", options("retries 3\\nlisten x"), OPT, "control character"),
    ("a \\x0a escape", options("retries 3\\x0alisten x"), OPT, "control character"),
    ("an unbalanced quote", options("http-request set-header X 'a"), OPT, "unbalanced"),
    ("a stats socket", options("stats socket /tmp/x level admin"), OPT, "allow-list"),
    ("a quoted stats socket", options("'stats' \\x73ocket /tmp/x"), OPT, "allow-list"),
    ("a bind", options("bind 0.0.0.0:2222"), OPT, "lbpair:services:foo:vip"),
    ("a bind with crt", options("bind :443 ssl crt /etc/shadow"), OPT, "modelled"),
    ("a file served by return", options("http-request return status 200 content-type text/plain file /etc/shadow"), OPT, "'file'"),
    ("an lf-file served", options("http-request return status 200 content-type text/plain lf-file /etc/shadow"), OPT, "'lf-file'"),
    ("an errorfile", options("errorfile 503 /etc/shadow"), OPT, "allow-list"),
    ("lua in a header", options("http-request set-header X %[lua.evil]"), OPT, "lua.evil"),
    ("env() in a header", options("http-request set-header X %[env(HOME)]"), OPT, "'env'"),
    ("a map converter", options("http-request set-header X %[src,map(/etc/shadow)]"), OPT, "'map'"),
    ("an ACL from a file", options("http-request deny if { hdr(x) -f /etc/shadow }"), OPT, "file"),
    ("an ACL from a map", options("acl a hdr(x) -M -f /etc/shadow", "http-request deny if a"), OPT, "file"),
    ("a table fetch", options("http-request deny if { src_conn_rate(other) gt 1 }"), OPT, "src_conn_rate"),
    ("track-sc", options("http-request track-sc0 src table other"), OPT, "track-sc0"),
    ("use-service", options("http-request use-service prometheus-exporter"), OPT, "use-service"),
    ("set-map", options("http-request set-map(/etc/x) a b"), OPT, "set-map"),
    ("a path rewrite on a response", options("http-response set-path /x"), OPT, "'set-path' is not allowed"),
    ("a status on a request", options("http-request set-status 200"), OPT, "'set-status' is not allowed"),
    ("a del-header with a made-up flag", options("http-response del-header Server -f /etc/shadow"), OPT, "option '-f'"),
    ("a del-header with a made-up match", options("http-response del-header Server -m file"), OPT, "match 'file'"),
    ("a del-header with a dangling flag", options("http-response del-header Server -m"), OPT, "del-header takes a name"),
    ("a set-status with a made-up keyword", options("http-response set-status 200 file /etc/shadow"), OPT, "option 'file'"),
    ("a fetch off the allow-list", options("http-request set-header X %[proc]"), OPT, "sample fetch 'proc'"),
    ("another proxy's state", options("http-request deny if { nbsrv(bar) lt 1 }"), OPT, "sample fetch 'nbsrv'"),
    ("a variable set by anyone", options("http-request set-header X %[var(proc.secret)]"), OPT, "sample fetch 'var'"),
    ("a converter off the allow-list", options("http-request set-header X %[src,ipmask(24),in_table(t)]"), OPT, "'ipmask'"),
    ("text between the names", options('http-request set-header X "%[path env(HOME)]"'), OPT, "not a sample expression"),
    ("use_backend into another service", options("use_backend bar"), OPT, "lbpair:services:foo:routes"),
    ("use-server to a stranger", options("use-server evil if TRUE"), OPT, "server of this pool"),
    ("an undefined named ACL", options("http-request deny if nosuch"), OPT, "not defined"),
    ("a filter", options("filter trace"), OPT, "allow-list"),
    ("a log target", options("log 203.0.113.9:514 local0"), OPT, "allow-list"),
    ("external-check", options("external-check command /bin/sh"), OPT, "allow-list"),
    ("stats enable", options("stats enable"), OPT, "allow-list"),
    ("balance by a line", options("balance source"), OPT, "lbpair:services:foo:balance"),
    ("mode by a line", options("mode tcp"), OPT, "lbpair:services:foo:mode"),
    ("a server by a line", options("server evil 203.0.113.9:22"), OPT, "lbpair:services:foo:servers"),
    ("a stick-table by a line", options("stick-table type ip size 1"), OPT, "lbpair:services:foo:stick"),
    ("a balance hash over a map", lambda p: p["services"]["foo"].update(balance="hash src,map(/etc/shadow)"), "lbpair:services:foo:balance", "'map'"),
    ("a balance with a comment", lambda p: p["services"]["foo"].update(balance="roundrobin # x"), "lbpair:services:foo:balance", "comment"),
    ("a balance expanding $", lambda p: p["services"]["foo"].update(balance='"$ALG"'), "lbpair:services:foo:balance", "environment"),
    ("a balance with a tail", lambda p: p["services"]["foo"].update(balance="source 'listen' x"), "lbpair:services:foo:balance", "expects 0"),
    ("a balance header by escape", lambda p: p["services"]["foo"].update(balance="hdr(host) \\x6cisten"), "lbpair:services:foo:balance", "use_domain_only"),
    ("a bad time", options("timeout client 5x"), OPT, "a time"),
    ("an unknown timeout", options("timeout evil 5s"), OPT, "timeout 'evil'"),
    ("an unsafe option", options("option accept-invalid-http-request"), OPT, "option"),
    ("retries out of range", options("retries 1000"), OPT, "from 0 to 100"),
    ("a bad status", options("http-request deny deny_status 999"), OPT, "HTTP status"),
    ("a bad header name", options("http-request set-header 'X Y' z"), OPT, "header name"),
    ("a bad regex", options("http-request replace-header X ( y"), OPT, "regular expression"),
    ("a capture too long", options("capture request header Host len 99999"), OPT, "length"),
    ("too many lines", lambda p: p["services"]["foo"].update(options=["retries 3"] * 65), "lbpair:services:foo:options", "at most 64"),
    ("a line too long", options("http-request set-header X " + "a" * 1100), OPT, "1024 bytes"),
    ("httpchk beside health", lambda p: p["services"]["foo"].update(health={"path": "/"}, options=["option httpchk GET /"]),
     OPT, "lbpair:services:foo:health"),
    ("http-check beside health", lambda p: p["services"]["foo"].update(health={"path": "/"}, options=["http-check expect status 200"]),
     OPT, "lbpair:services:foo:health"),
    ("a server crt", server("ssl crt /etc/shadow"), SRV, "'crt'"),
    ("a server ca-file", server("ssl verify required ca-file /etc/shadow"), SRV, "'required'"),
    ("a quoted server section", server("inter 2s 'listen' x"), SRV, "'listen'"),
    ("a server cookie", server("cookie x"), SRV, "cookie key"),
    ("a server track", server("track bar/bar1"), SRV, "'track'"),
    ("a server addr", server("addr 203.0.113.9"), SRV, "'addr'"),
    ("global stats socket quoted", override("global", "stats", "'socket' /tmp/x level admin"), "lbpair:haproxy:global:stats", "stats_socket"),
    ("global lua-load", override("global", "lua-load", "/tmp/x.lua"), "lbpair:haproxy:global:lua-load", "program"),
    ("global escaped lua", override("global", "maxconn", "1 \\x6cua-load"), "lbpair:haproxy:global:maxconn", None),
    ("global setenv", override("global", "setenv", "X 1"), "lbpair:haproxy:global:setenv", "environment"),
    ("global insecure-fork-wanted", override("global", "insecure-fork-wanted", True), "lbpair:haproxy:global:insecure-fork-wanted", "programs"),
    ("global external-check", override("global", "external-check", True), "lbpair:haproxy:global:external-check", "programs"),
    ("global ssl-provider", override("global", "ssl-provider", "legacy"), "lbpair:haproxy:global:ssl-provider", "program"),
    ("global ssl-provider-path", override("global", "ssl-provider-path", "/tmp"), "lbpair:haproxy:global:ssl-provider-path", "program"),
    ("defaults external-check option", override("defaults", "option", "external-check"), "lbpair:haproxy:defaults:option", "programs"),
    ("global env expansion", override("global", "maxconn", "$X"), "lbpair:haproxy:global:maxconn", "environment"),
    ("global comment", override("global", "maxconn", "1 #x"), "lbpair:haproxy:global:maxconn", "comment"),
    ("defaults stats enable", override("defaults", "stats", "enable"), "lbpair:haproxy:defaults:stats", "stats page"),
    ("defaults stats auth", override("defaults", "stats auth", "admin:S3cret-Q9"), "lbpair:haproxy:defaults:stats auth", "stats page"),
    ("defaults stats admin", override("defaults", "stats admin", "if TRUE"), "lbpair:haproxy:defaults:stats admin", "stats page"),
    ("defaults errorfile", override("defaults", "errorfile", "503 /etc/shadow"), "lbpair:haproxy:defaults:errorfile", "file"),
    ("defaults quoted listen", override("defaults", "option", "httplog\\x20listen"), "lbpair:haproxy:defaults:option", None),
    ("defaults bind", override("defaults", "bind", ":22"), "lbpair:haproxy:defaults:bind", "listener"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "key", "words"), ROWS, ids=[row[0] for row in ROWS])
def test_a_hostile_entry_is_refused_naming_the_key(seed_pillar, what, change, key, words):
    change(seed_pillar)
    try:
        pillar.normalize(seed_pillar)
    except InvalidValue as error:
        assert error.path == key, (what, str(error))
        assert words is None or words in str(error), (what, str(error))
        assert "S3cret-Q9" not in str(error)
        return
    # words None: harmless once read as HAProxy reads them (an argument, not a keyword): rendered canonically
    assert words is None, (what, "accepted")


ALLOWED = [
    # (an options line as written, the canonical line lbpair renders)
    ("option httpchk GET /", "option httpchk GET /"),
    ("'option'   httplog", "option httplog"),
    ("timeout http-request 10s", "timeout http-request 10s"),
    ("no option http-server-close", "no option http-server-close"),
    ("option forwardfor except 127.0.0.0/8 header X-Real-IP", "option forwardfor except 127.0.0.0/8 header X-Real-IP"),
    ("retry-on conn-failure 503", "retry-on conn-failure 503"),
    ("compression algo gzip", "compression algo gzip"),
    ("compression type text/html application/json", "compression type text/html application/json"),
    ('http-request set-header X-Via "lbpair node"', "http-request set-header X-Via 'lbpair node'"),
    ("http-request set-header X-Host %[req.hdr(host),lower]", "http-request set-header X-Host %[req.hdr(host),lower]"),
    ("http-response del-header Server", "http-response del-header Server"),
    ("http-request redirect scheme https code 301 unless { ssl_fc }", "http-request redirect scheme https code 301 unless { ssl_fc }"),
    ("http-request deny deny_status 403 if { path_beg /admin }", "http-request deny deny_status 403 if { path_beg /admin }"),
    ("http-request return status 503 content-type text/plain string \"it's down\"",
     "http-request return status 503 content-type text/plain string \"it's down\""),
    ("http-response set-status 200 reason OK", "http-response set-status 200 reason OK"),
    ("http-request set-path /v2%[path]", "http-request set-path /v2%[path]"),
    ("http-response set-header X-Len %[res.hdr_cnt(set-cookie),add(1)]", "http-response set-header X-Len %[res.hdr_cnt(set-cookie),add(1)]"),
    ("http-request deny if { hdr_dom(host) -i example.org }", "http-request deny if { hdr_dom(host) -i example.org }"),
    ("hash-type consistent sdbm avalanche", "hash-type consistent sdbm avalanche"),
    ("http-reuse safe", "http-reuse safe"),
    ("capture request header Host len 64", "capture request header Host len 64"),
    ("maxconn 1000", "maxconn 1000"),
]  # fmt: skip


#: balance values as written and as lbpair renders them
BALANCES = [
    ("roundrobin", "roundrobin"), ("random(2)", "random(2)"), ("hdr(host) use_domain_only", "hdr(host) use_domain_only"),
    ("uri whole len 10 depth 2", "uri whole len 10 depth 2"), ("url_param userid check_post", "url_param userid check_post"),
    ("rdp-cookie(mstshash)", "rdp-cookie(mstshash)"), ("hash req.hdr(host),lower", "hash req.hdr(host),lower"),
    ("'source'", "source"),
]  # fmt: skip


@pytest.mark.parametrize(("written", "rendered"), BALANCES, ids=[row[0] for row in BALANCES])
def test_a_balance_value_renders_canonically(seed_pillar, written, rendered):
    seed_pillar["services"]["foo"]["balance"] = written
    assert pillar.normalize(seed_pillar)["services"]["foo"]["balance"] == rendered


@pytest.mark.parametrize(("written", "rendered"), ALLOWED, ids=[row[0] for row in ALLOWED])
def test_an_allowed_line_renders_canonically(seed_pillar, written, rendered):
    seed_pillar["services"]["foo"]["options"] = ["acl admin path_beg /admin", written]
    model = pillar.normalize(seed_pillar)
    assert model["services"]["foo"]["options"][1] == rendered


def test_named_acls_and_use_server_of_the_pool(seed_pillar):
    seed_pillar["services"]["foo"]["options"] = ["acl admin path_beg /admin", "use-server foo1 if admin", "http-request deny if !admin"]
    assert pillar.normalize(seed_pillar)["services"]["foo"]["options"][1] == "use-server foo1 if admin"


def test_server_options_render_canonically(seed_pillar):
    seed_pillar["services"]["foo"]["servers"]["foo1"]["options"] = "'inter'  2s fall 3 weight 10 backup"
    assert pillar.normalize(seed_pillar)["services"]["foo"]["servers"]["foo1"]["options"] == "inter 2s fall 3 weight 10 backup"


ROUND_TRIP = [
    ["listen"], ["a b"], ["it's"], ['say "hi"'], ["$HOME"], ["a#b"], ["back\\slash"], ["%[req.hdr(host)]"], ["{", "ssl_fc", "}"],
    ["x\ty"[:1] + "y"], ["'"], ['"'], ["a'b\"c$d\\e"], ["tab and  spaces"], ["!admin"], ["a,b;c"],
]  # fmt: skip


@pytest.mark.parametrize("words", ROUND_TRIP, ids=[repr(w) for w in ROUND_TRIP])
def test_the_canonical_line_reads_back_as_its_words(words):
    assert haproxy_syntax.parse(haproxy_syntax.line(words)) == words


@pytest.mark.parametrize(("text", "words"), [
    ("'listen' x", ["listen", "x"]), ("\\x6cisten x", ["listen", "x"]), ('li"st"en', ["listen"]), ("a\\ b", ["a b"]),
    ("'a\\b'", ["a\\b"]), ('"a\\"b"', ['a"b']), ("  x\t y ", ["x", "y"]), ("\\#x", ["#x"]), ("'$X'", ["$X"]),
])  # fmt: skip
def test_the_tokenizer_reads_as_haproxy_does(text, words):
    assert haproxy_syntax.parse(text) == words
