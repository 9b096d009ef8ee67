"""
The real ``keepalived -t`` accepts what lbpair refuses: for each hostile row of
tests/unit/test_keepalived_syntax.py marked as accepted, the line lbpair would have written, put
into the seed's rendered keepalived.conf, passes the check (and the rows marked refused fail it),
while the pillar is refused. Where keepalived reads a file or a line of its own, or runs a
shell, it is shown doing so. Every allowed value, rendered by lbpair, passes ``keepalived -t``.
"""

import copy
import subprocess

import pytest

from lab.util import stop_process, wait_until
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_syntax, pillar
from saltext.lbpair.node import keepalived_config
from tests.unit.test_keepalived_syntax import ALLOWED, GLOBAL_DEFS, LONG_KEYWORD, ROWS, SCRIPT, split_at_line_end

TIMEOUT = 30
CHECKED = [row for row in ROWS if row[4] is not None]
#: lbpair's check script line in the seed's keepalived.conf
SEED_SCRIPT_LINE = '    script "/usr/bin/pgrep -x haproxy"\n'


def keepalived_check(tmp_path, text):
    config = tmp_path / "keepalived.conf"
    config.write_text(text)
    command = ["keepalived", "--config-test", "--log-console", "--use-file", str(config)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)


def seed_config(seed_pillar):
    return keepalived_config.render_config(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))


def value_at(lbpair, key):
    """The value at a full pillar key (``lbpair:vrrp:check:script``) of an ``lbpair`` pillar."""
    value = lbpair
    for part in key.split(":")[1:]:
        value = value[part]
    return value


def as_lbpair_writes(text, key, value):
    """The seed's keepalived.conf ``text`` with ``value`` written where lbpair writes ``key``, unchecked."""
    if key == SCRIPT:
        assert SEED_SCRIPT_LINE in text
        return text.replace(SEED_SCRIPT_LINE, "    " + keepalived_syntax.SCRIPT_LINE.format(value) + "\n")
    keyword = key.removeprefix(f"{GLOBAL_DEFS}:")
    return text.replace("global_defs {\n", f"global_defs {{\n    {keyword} {value}\n", 1)


@pytest.mark.parametrize(("what", "change", "key", "words", "accepted"), CHECKED, ids=[row[0] for row in CHECKED])
def test_keepalived_reads_what_lbpair_refuses(tmp_path, seed_pillar, what, change, key, words, accepted):
    text = seed_config(copy.deepcopy(seed_pillar))
    change(seed_pillar)
    result = keepalived_check(tmp_path, as_lbpair_writes(text, key, value_at(seed_pillar, key)))
    assert (result.returncode == 0) == accepted, (what, result.returncode, result.stdout + result.stderr)
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert error.value.path == key and words in str(error.value)


@pytest.mark.parametrize(("what", "change"), ALLOWED, ids=[row[0] for row in ALLOWED])
def test_every_allowed_value_passes_keepalived(tmp_path, seed_pillar, what, change):
    change(seed_pillar)
    result = keepalived_check(tmp_path, seed_config(seed_pillar))
    assert result.returncode == 0, (what, result.stdout + result.stderr)


def test_an_includer_in_global_defs_reads_the_file(tmp_path, seed_pillar):
    """The included file is read there: its error is keepalived's (a file of good lines would pass unseen)."""
    included = tmp_path / "evil.conf"
    included.write_text("no_such_keyword_from_the_include\n")
    text = as_lbpair_writes(seed_config(seed_pillar), f"{GLOBAL_DEFS}:includer", included)
    result = keepalived_check(tmp_path, text)
    assert "no_such_keyword_from_the_include" in result.stdout + result.stderr


def test_the_bytes_past_1023_are_a_directive_of_their_own(tmp_path, seed_pillar):
    text = as_lbpair_writes(seed_config(seed_pillar), f"{GLOBAL_DEFS}:{LONG_KEYWORD}", split_at_line_end("no_such_keyword_past_the_end"))
    result = keepalived_check(tmp_path, text)
    assert "Unknown keyword 'no_such_keyword_past_the_end'" in result.stdout + result.stderr


def test_a_script_starting_with_a_redirection_runs_a_second_command_through_the_shell(tmp_path):
    """keepalived runs ``</dev/null;/usr/bin/touch FILE`` with /bin/sh: FILE appears (a config of its own: no D-Bus)."""
    marker = tmp_path / "pwned"
    config = tmp_path / "keepalived.conf"
    config.write_text(
        "global_defs {\n    enable_script_security\n    script_user root\n}\n"
        f"vrrp_script hostile {{\n    {keepalived_syntax.SCRIPT_LINE.format(f'</dev/null;/usr/bin/touch {marker}')}\n    interval 1\n}}\n"
        "vrrp_instance hostile {\n    state BACKUP\n    interface eth0\n    virtual_router_id 250\n    priority 100\n"
        "    virtual_ipaddress {\n        198.51.100.250/32 dev eth0\n    }\n    track_script {\n        hostile\n    }\n}\n"
    )
    pids = [f"--{kind}={tmp_path / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
    command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(config), *pids]
    with open(tmp_path / "keepalived.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(marker.exists, 15, interval=0.2, what="the second command's file")
    finally:
        stop_process(process)
