"""
The real ``haproxy -c`` accepts what lbpair refuses (quoted and escaped keywords run as written), and
every allowed example, rendered by lbpair into the seed's full configuration, passes it.

Each row of the unit table of hostile entries is also given, as written, to the real binary: the
rows it would have run show that lbpair refuses what HAProxy would have run; the few it refuses by
itself are listed, so that a change in either verdict shows.
"""

import subprocess

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy
from tests.unit.test_sandbox import ALLOWED, BALANCES, ROWS

MINIMAL = """defaults
    mode http
    timeout client 1s
    timeout server 1s
    timeout connect 1s
listen foo
    bind 127.0.0.1:18080
    {line}
    server foo1 127.0.0.1:18081
"""
#: the whole configuration a hostile row's lines go into, as written (global, defaults, the service, its server)
AS_WRITTEN = """global
{global_lines}
defaults
    mode http
    timeout client 1s
    timeout server 1s
    timeout connect 1s
{defaults_lines}
listen foo
    bind 127.0.0.1:18080
    server foo1 127.0.0.1:18081 {server_options}
    balance {balance}
{service_lines}
backend bar
    server bar1 127.0.0.1:18082
backend other
    stick-table type ip size 1k
backend t
    stick-table type ip size 1k
"""
#: rows of the unit table the binary refuses by itself (lbpair refuses them all the same, naming the key)
HAPROXY_REFUSES = {
    "a newline escape": "2.6 keeps the escaped newline inside the word",
    "a \\x0a escape": "2.6 keeps the escaped newline inside the word",
    "an unbalanced quote": "a syntax error",
    "a stats socket": "stats socket belongs in global (a socket lbpair's own global forbids too)",
    "a quoted stats socket": "stats socket belongs in global",
    "a bind with crt": "/etc/shadow is no certificate; another service's PEM would load",
    "an errorfile": "/etc/shadow holds no HTTP response; a file that does would be served",
    "lua in a header": "no Lua is loaded here; with a lua-load in global it would run",
    "a path rewrite on a response": "no such response action",
    "a status on a request": "no such request action",
    "a del-header with a made-up flag": "not a condition",
    "a del-header with a made-up match": "no such matching method",
    "a del-header with a dangling flag": "-m needs its method",
    "a set-status with a made-up keyword": "not a condition",
    "text between the names": "not a sample expression",
    "use-server to a stranger": "no such server in the proxy",
    "an undefined named ACL": "no such ACL",
    "a bad time": "not a time",
    "an unknown timeout": "no such timeout",
    "a bad status": "not a status",
    "a bad regex": "not a regular expression",
    "a server crt": "/etc/shadow is no certificate; another service's PEM would load",
    "a server ca-file": "/etc/shadow is no CA file; any PEM of CAs would load",
    "a quoted server section": "a server line takes no section keyword",
    "a server track": "bar1 has no check here; one with checks would be tracked",
    "global lua-load": "/tmp/x.lua does not exist; an existing script would run",
    "global escaped lua": "maxconn takes one argument",
    "defaults stats admin": "stats admin needs a listen or backend",
    "defaults errorfile": "/etc/shadow holds no HTTP response",
    "defaults quoted listen": "the escaped space stays inside the option's name",
    "defaults bind": "no bind in defaults",
    "a balance header by escape": "hdr() takes use_domain_only only",
    "defaults external-check option": "needs global external-check and an external-check command (both refused too)",
}
HOSTILE = ["'listen' x", "\\x6cisten x", 'li"st"en x', "\\x6c'isten' x"]


#: what the environment of an attacker's choice would hold when HAProxy starts
ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KW": "listen", "X": "1"}


def haproxy_check(tmp_path, text):
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    command = ["haproxy", "-c", "-f", str(config)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30, env=ENVIRONMENT)


@pytest.mark.parametrize("line", HOSTILE)
def test_haproxy_runs_what_lbpair_refuses(tmp_path, seed_pillar, line):
    assert haproxy_check(tmp_path, MINIMAL.format(line=line)).returncode == 0
    seed_pillar["services"]["foo"]["options"] = [line]
    with pytest.raises(InvalidValue):
        pillar.normalize(seed_pillar)


@pytest.mark.parametrize("balance", [written for written, _ in BALANCES])
def test_every_allowed_balance_passes_haproxy(tmp_path, seed_pillar, balance):
    seed_pillar["services"]["foo"]["balance"] = balance
    config = haproxy.render_config(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))
    result = haproxy_check(tmp_path, config)
    assert result.returncode == 0, result.stderr


def test_every_allowed_example_passes_haproxy(tmp_path, seed_pillar):
    seed_pillar["services"]["foo"]["options"] = ["acl admin path_beg /admin", *(written for written, _ in ALLOWED if "capture" not in written)]
    seed_pillar["services"]["foo"]["servers"]["foo1"]["options"] = "'inter' 2s fall 3 weight 10"
    config = haproxy.render_config(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))
    result = haproxy_check(tmp_path, config)
    assert result.returncode == 0, result.stderr


def as_written(change):
    """The configuration of a hostile row's lines without lbpair in between."""
    lbpair = {"services": {"foo": {"servers": {"foo1": {}}}}, "haproxy": {}}
    change(lbpair)
    service = lbpair["services"]["foo"]
    overrides = {section: lbpair["haproxy"].get(section, {}) for section in ("global", "defaults")}
    indent = lambda lines: "\n".join(f"    {line}" for line in lines)  # noqa: E731
    directives = lambda section: (keyword if value is True else f"{keyword} {value}" for keyword, value in overrides[section].items())  # noqa: E731
    return AS_WRITTEN.format(
        global_lines=indent(directives("global")),
        defaults_lines=indent(directives("defaults")),
        service_lines=indent(service.get("options", [])),
        server_options=service["servers"]["foo1"].get("options", ""),
        balance=service.get("balance", "roundrobin"),
    )


@pytest.mark.parametrize(("what", "change"), [row[:2] for row in ROWS], ids=[row[0] for row in ROWS])
def test_the_binary_would_have_run_each_hostile_entry(tmp_path, what, change):
    result = haproxy_check(tmp_path, as_written(change))
    verdict = "refuses" if result.returncode else "runs"
    expected = "refuses" if what in HAPROXY_REFUSES else "runs"
    assert verdict == expected, result.stderr
