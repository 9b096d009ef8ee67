"""
The real ``haproxy -c`` accepts what lbpair refuses (quoted and escaped keywords run as written), and
every allowed example, rendered by lbpair into the seed's full configuration, passes it.
"""

import subprocess

import pytest

from lbpair_lib import haproxy, pillar
from lbpair_lib.errors import InvalidValue
from tests.unit.test_sandbox import ALLOWED

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
HOSTILE = ["'listen' x", "\\x6cisten x", 'li"st"en x', "\\x6c'isten' x"]


def haproxy_check(tmp_path, text):
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    return subprocess.run(["haproxy", "-c", "-f", str(config)], cwd=tmp_path, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("line", HOSTILE)
def test_haproxy_runs_what_lbpair_refuses(tmp_path, seed_pillar, line):
    assert haproxy_check(tmp_path, MINIMAL.format(line=line)).returncode == 0
    seed_pillar["services"]["foo"]["options"] = [line]
    with pytest.raises(InvalidValue):
        pillar.normalize(seed_pillar)


def test_every_allowed_example_passes_haproxy(tmp_path, seed_pillar):
    seed_pillar["services"]["foo"]["options"] = ["acl admin path_beg /admin", *(written for written, _ in ALLOWED if "capture" not in written)]
    seed_pillar["services"]["foo"]["servers"]["foo1"]["options"] = "'inter' 2s fall 3 weight 10"
    config = haproxy.render_config(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))
    result = haproxy_check(tmp_path, config)
    assert result.returncode == 0, result.stderr
