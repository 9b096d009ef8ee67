"""
Values that reach keepalived.conf are read by keepalived as written: hostile global_defs
overrides, check scripts and track files, as attackers write them (quoted, commented,
condition-prefixed, ``$``-expanded, brace-split, over-long), refused naming the key; allowed
values (the defaults, the examples of docs/pillar.md) pass and every line lbpair renders reads as written.
tests/functional/test_keepalived_syntax.py shows the real ``keepalived -t`` accepting what the
rows marked ``True`` would write.
"""

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_syntax, pillar, schema
from saltext.lbpair.node import keepalived_config, track

GLOBAL_DEFS = "lbpair:keepalived:global_defs"
SCRIPT = "lbpair:vrrp:check:script"
#: a known keyword of two words (keepalived reads the first) long enough that a 900-byte value overflows the line
LONG_KEYWORD = "notification_email_from " + "b" * 120


def global_defs(keyword, value):
    return lambda p: p.update(keepalived={"global_defs": {keyword: value}})


def script(text):
    return lambda p: p["vrrp"].update(check={"script": text})


def track_file(file_path):
    return lambda p: p["vrrp"].update(track_files={"web": {"file": file_path}})


def split_at_line_end(tail):
    """A value whose line ends exactly at keepalived's 1023 bytes, ``tail`` read as the next line."""
    return "a" * (keepalived_syntax.MAX_LINE_BYTES - len(f"    {LONG_KEYWORD} ")) + tail


ROWS = [
    # (what it tries, the pillar change, the key named, words of the message,
    #  whether the real keepalived -t accepts the line lbpair would have written: True, False, or None untested)
    # --- include
    ("includer: an include keepalived checks", global_defs("includer", "/etc/keepalived/conf.d/*.conf"),
     f"{GLOBAL_DEFS}:includer", "include directives", True),
    ("includea: another include", global_defs("includea", "/etc/keepalived/*.conf"), f"{GLOBAL_DEFS}:includea", "include", None),
    ("includeb: another include", global_defs("includeb", "/etc/keepalived/conf.d/*.conf"), f"{GLOBAL_DEFS}:includeb", "include", True),
    ("a plain include", global_defs("include", "/etc/shadow"), f"{GLOBAL_DEFS}:include", "include", None),
    ("a quoted include keyword", global_defs('"include"', "/etc/shadow"), f'{GLOBAL_DEFS}:"include"', "directive keyword", None),
    ("an include after a brace", global_defs("notification_email_from", "x } include /etc/shadow"),
     f"{GLOBAL_DEFS}:notification_email_from", "braces", False),
    ("an include after a condition", global_defs("notification_email_from", "x @^nohost include /etc/shadow"),
     f"{GLOBAL_DEFS}:notification_email_from", "'@'", True),
    ("an include from a definition", global_defs("notification_email_from", "x ${_HASH} include /etc/shadow"),
     f"{GLOBAL_DEFS}:notification_email_from", "'$'", True),
    # --- router_id
    ("router_id on a line of its own past 1023 bytes", global_defs(LONG_KEYWORD, split_at_line_end("router_id evil")),
     f"{GLOBAL_DEFS}:{LONG_KEYWORD}", "1023 bytes", True),
    ("router_id after a brace", global_defs("notification_email_from", "x } router_id evil"),
     f"{GLOBAL_DEFS}:notification_email_from", "braces", False),
    ("router_id after an escaped comment", global_defs("notification_email_from", "x \\# router_id evil"),
     f"{GLOBAL_DEFS}:notification_email_from", "backslash", True),
    ("router_id conditioned", global_defs("notification_email_from", "@^nohost router_id evil"),
     f"{GLOBAL_DEFS}:notification_email_from", "'@'", True),
    ("router_id in a sequence", global_defs("notification_email_from", "~SEQ(N,1,1) router_id evil"),
     f"{GLOBAL_DEFS}:notification_email_from", "'~'", True),
    ("router_id double-quoted in a value", global_defs("notification_email_from", 'x "router_id" evil'),
     f"{GLOBAL_DEFS}:notification_email_from", "double quotes", True),
    # --- a new block
    ("a vrrp_instance after a brace", global_defs("notification_email_from", "x } vrrp_instance evil {"),
     f"{GLOBAL_DEFS}:notification_email_from", "braces", False),
    ("a virtual_server after a brace", global_defs("notification_email_from", "x } virtual_server 198.51.100.9 80 {"),
     f"{GLOBAL_DEFS}:notification_email_from", "braces", False),
    ("a vrrp_instance past 1023 bytes", global_defs(LONG_KEYWORD, split_at_line_end("vrrp_instance evil")),
     f"{GLOBAL_DEFS}:{LONG_KEYWORD}", "1023 bytes", None),
    ("a brace hidden in double quotes (no split)", global_defs("notification_email_from", '"lb}1"'),
     f"{GLOBAL_DEFS}:notification_email_from", "double quotes", True),
    # --- what lbpair checked is not what keepalived reads
    ("a comment drops the value's tail", global_defs("notification_email_from", "lb@example.com # x"),
     f"{GLOBAL_DEFS}:notification_email_from", "comment", True),
    ("a comment inside a word", global_defs("vrrp_garp_master_refresh", "60!0"), f"{GLOBAL_DEFS}:vrrp_garp_master_refresh", "comment", True),
    ("$_HASH makes a comment", global_defs("vrrp_garp_master_refresh", "60$_HASH 0"), f"{GLOBAL_DEFS}:vrrp_garp_master_refresh", "'$'", True),
    ("$_PWD expands to a path", global_defs("notification_email_from", "$_PWD"), f"{GLOBAL_DEFS}:notification_email_from", "'$'", True),
    ("a trailing backslash", global_defs("notification_email_from", "lb@example.com \\"), f"{GLOBAL_DEFS}:notification_email_from",
     "backslash", True),
    ("single quotes", global_defs("notification_email_from", "'lb @example.com'"), f"{GLOBAL_DEFS}:notification_email_from",
     "single quotes", True),
    ("a non-ASCII letter", global_defs("notification_email_from", "lb@exämple.com"), f"{GLOBAL_DEFS}:notification_email_from",
     "printable ASCII", None),
    ("a no-break space", global_defs("notification_email_from", "lb@example.com\u00a0x"), f"{GLOBAL_DEFS}:notification_email_from",
     "printable ASCII", None),
    ("a program run at start-up", global_defs("startup_script", "/usr/bin/true"), f"{GLOBAL_DEFS}:startup_script",
     "runs a program", True),
    ("a program fed every transition", global_defs("vrrp_notify_fifo_script", "/usr/bin/true"),
     f"{GLOBAL_DEFS}:vrrp_notify_fifo_script", "runs a program", None),
    ("a FIFO made by root anywhere", global_defs("vrrp_notify_fifo", "/etc/cron.d/x"), f"{GLOBAL_DEFS}:vrrp_notify_fifo", "FIFO", None),
    ("a configuration saved anywhere", global_defs("config_save_dir", "/root/.ssh"), f"{GLOBAL_DEFS}:config_save_dir", "write a file", None),
    ("a reload file anywhere", global_defs("reload_time_file", "/etc/shadow"), f"{GLOBAL_DEFS}:reload_time_file", "write a file", None),
    # --- the check script
    ("a script run by /bin/sh hides a second command", script("</dev/null;/usr/bin/touch /tmp/lbpair-pwned"), SCRIPT,
     "absolute path", True),
    ("a script in single quotes hides a second argument list", script("/bin/sh -c '/usr/bin/pgrep -x haproxy; /bin/true'"), SCRIPT,
     "single quotes", True),
    ("an escaped quote in a script (keepalived: unbalanced)", script("/usr/bin/pgrep -x \\x22haproxy"), SCRIPT, "backslash", False),
    ("an escaped letter in a script", script("/usr/bin/pgrep -x \\x68aproxy"), SCRIPT, "backslash", True),
    ("a newline escape splits a script's word", script("/usr/bin/pgrep -x hap\\nroxy"), SCRIPT, "backslash", True),
    ("$_HASH in a script", script("/usr/bin/pgrep -x haproxy$_HASH"), SCRIPT, "'$'", True),
    ("a quote ends the script", script('/usr/bin/pgrep" -x haproxy'), SCRIPT, "double quotes", None),
    ("a brace in a script (literal in its quotes; no use)", script("/usr/bin/pgrep -x haproxy }"), SCRIPT, "braces", True),
    ("a bare program name (keepalived's PATH)", script("pgrep -x haproxy"), SCRIPT, "absolute path", True),
    ("a conditioned word in a script", script("/usr/bin/pgrep @^lb2"), SCRIPT, "'@'", True),
    ("a script past the length lbpair allows", script("/usr/bin/true " + "x" * 300), SCRIPT, "bytes", None),
    # --- track files
    ("a comment in a track file's path", track_file("/var/lib/lbpair/track/web#x"), "lbpair:vrrp:track_files:web:file", "comment", None),
    ("a definition in a track file's path", track_file("/var/lib/lbpair/track/$_PWD"), "lbpair:vrrp:track_files:web:file", "'$'", None),
]

ALLOWED = [
    # (what, the pillar change): passes lbpair, and the real keepalived -t accepts the rendered configuration
    ("the defaults", lambda p: None),
    ("the pillar reference's global_defs", global_defs("vrrp_garp_master_refresh", 60)),
    ("an e-mail address ('@' inside a word)", global_defs("notification_email_from", "lb@example.com")),
    ("a flag", global_defs("vrrp_skip_check_adv_addr", True)),
    ("a number", global_defs("max_auto_priority", 49)),
    ("the pillar reference's check script", script("/usr/bin/pgrep -x haproxy")),
    ("'!' inside the script's quotes is literal", script("/usr/bin/test ! -e /run/lbpair-maintenance")),
    ("the pillar reference's track file", track_file("/var/lib/lbpair/track/web")),
]


@pytest.mark.parametrize(("what", "change", "key", "words", "accepted"), ROWS, ids=[row[0] for row in ROWS])
def test_a_value_keepalived_reads_otherwise_is_refused_naming_the_key(seed_pillar, what, change, key, words, accepted):
    change(seed_pillar)
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert error.value.path == key, (what, str(error.value))
    assert words in str(error.value), (what, str(error.value))


@pytest.mark.parametrize(("what", "change"), ALLOWED, ids=[row[0] for row in ALLOWED])
def test_an_allowed_value_passes_and_every_rendered_line_reads_as_written(seed_pillar, what, change):
    change(seed_pillar)
    text = keepalived_config.render_config(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))
    assert [line for line in text.splitlines() if _rendered_line_problem(line)] == [], what


def _rendered_line_problem(line):
    """How keepalived_syntax judges a line lbpair rendered: a block's braces and lbpair's quotes around a script apart."""
    body = line.strip()
    if body == "}" or line.startswith("#"):  # a block's end, lbpair's header
        return None
    body = body.removesuffix(" {")
    if body.startswith('script "') and body.endswith('"'):
        return keepalived_syntax.script_problem(body[len('script "') : -1])
    return keepalived_syntax.line_problem(body)


@pytest.mark.parametrize(
    ("what", "pattern"),
    [("names (nodes, interface, track files)", schema.NAME_RE), ("track file names", track.FILE_NAME_RE), ("keywords", pillar.KEYWORD_RE)],
)
def test_names_lbpair_writes_unquoted_have_no_character_keepalived_reads_specially(what, pattern):
    """Node names (router_id), the interface and track file names are checked by pattern: none lets a special character through."""
    for character in map(chr, range(0x110000)):
        for name in (f"{character}a", f"a{character}"):
            if pattern.fullmatch(name):
                assert keepalived_syntax.value_problem(name) is None, (what, name)


@pytest.mark.parametrize(
    ("text", "quoted", "words"),
    [
        ("lb1#x", False, "comment"),
        ("lb1#x", True, None),
        ("ev!l", True, None),
        ("x y", False, None),
        ("x @y", False, "'@'"),
        ("x@y", False, None),
        ("x~y", False, None),
        ("~x", False, "'~'"),
        ("\t", False, "printable ASCII"),
        ("\x7f", False, "printable ASCII"),
        ("x'y", True, "single quotes"),
        ("${X}", True, "'$'"),
        ("{", True, "braces"),
    ],
)
def test_value_problem(text, quoted, words):
    problem = keepalived_syntax.value_problem(text, quoted=quoted)
    assert problem is None if words is None else words in problem


def test_a_line_at_the_limit_passes_and_one_byte_more_is_refused():
    fits = "notification_email_from " + "a" * (keepalived_syntax.MAX_LINE_BYTES - keepalived_syntax.INDENT_BYTES - 24)
    assert keepalived_syntax.line_problem(fits) is None
    assert "1023 bytes" in keepalived_syntax.line_problem(fits + "a")


@pytest.mark.parametrize("keyword", ["include", "includer", "includem", "includew", "includeb", "includea"])
def test_every_include_directive_is_refused(keyword):
    assert "include" in keepalived_syntax.line_problem(f"{keyword} /etc/x")


def test_words_that_only_start_like_include_pass():
    assert keepalived_syntax.line_problem("includex /etc/x") is None
    assert keepalived_syntax.line_problem("notification_email_from include") is None
