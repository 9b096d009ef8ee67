"""Each rendered line knows the pillar key it comes from; a binary's rejection is told in those keys."""

import pytest

from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, haproxy, keepalived_config


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def keys_of(lines):
    """``{line text without indentation: key}`` (the first line with that text)."""
    keys = {}
    for line, key in lines:
        keys.setdefault(line.strip(), key)
    return keys


def line_number(lines, text):
    return next(number for number, (line, _key) in enumerate(lines, 1) if line.strip() == text)


@pytest.mark.parametrize("module", [haproxy, keepalived_config])
@pytest.mark.parametrize("unicast", [False, True])
def test_every_rendered_line_has_a_key_and_the_lines_are_the_text(seed_pillar, module, unicast):
    seed_pillar["vrrp"]["unicast"] = unicast
    model = model_for(seed_pillar)
    lines = module.render_lines(model)
    assert deploy.text_of(lines) == module.render_config(model)
    assert all(isinstance(key, str) and key for _line, key in lines)


def test_haproxy_lines_name_their_pillar_keys(seed_pillar):
    seed_pillar["services"]["foo"]["options"] = ["option httplog", "retries 7"]
    keys = keys_of(haproxy.render_lines(model_for(seed_pillar)))
    assert keys["retries 7"] == "lbpair:services:foo:options:1"
    assert keys["maxconn 4000"] == "lbpair:haproxy:global:maxconn"
    assert keys["timeout connect 5s"] == "lbpair:haproxy:defaults:timeout connect"
    assert keys["server foo1 198.51.100.11:80 check cookie foo1"] == "lbpair:services:foo:servers:foo1"
    assert keys["bind 203.0.113.10:80"] == "lbpair:services:foo:vip"
    assert keys["cookie foo-server-id insert indirect nocache"] == "lbpair:services:foo:cookie"
    assert keys["listen foo"] == "lbpair:services:foo"
    assert keys["stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners"] == "lbpair:haproxy:stats_socket"


def test_haproxy_defaults_are_named_by_the_key_that_overrides_them(seed_pillar):
    keys = keys_of(haproxy.render_lines(model_for(seed_pillar)))
    assert keys["chroot /var/lib/haproxy"] == "lbpair:haproxy:global:chroot"
    assert keys["global"] == "the global section lbpair writes"


def test_keepalived_lines_name_their_pillar_keys(seed_pillar):
    seed_pillar["vrrp"]["unicast"] = True
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar, "lb1")))
    assert keys["interface eth0"] == "lbpair:vrrp:interface"
    assert keys["priority 101"] == "lbpair:nodes:lb1:priority"
    assert keys["unicast_src_ip 192.0.2.11"] == "lbpair:nodes:lb1:address"
    assert keys["192.0.2.12"] == "lbpair:nodes:lb2:address"
    assert keys["203.0.113.20/32 dev eth0"] == "lbpair:services:bar:vip"
    assert keys["vrrp_garp_master_refresh 60"] == "lbpair:keepalived:global_defs:vrrp_garp_master_refresh"
    assert keys['script "/usr/bin/pgrep -x haproxy"'] == "lbpair:vrrp:check:script"
    assert keys["weight 2"] == "lbpair:vrrp:check:weight"
    assert keys["router_id lb1"] == "lbpair:nodes:lb1"


def test_keepalived_lines_lbpair_writes_name_their_section(seed_pillar):
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar)))
    for text in ("skip_check_adv_addr", "state BACKUP", "track_script {", "lbpair_haproxy", "virtual_ipaddress_excluded {"):
        assert keys[text] == "the vrrp_instance lbpair_51 section lbpair writes", text


def test_a_shared_vip_is_named_by_the_first_service_that_has_it(seed_pillar):
    seed_pillar["services"]["qux"] = {**seed_pillar["services"]["foo"], "port": 8080}
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar)))
    assert keys["203.0.113.10/32 dev eth0"] == "lbpair:services:foo:vip"


HAPROXY_REJECTIONS = [
    "[ALERT]    (1) : config : parsing [/tmp/c/haproxy.cfg:{n}] : unknown keyword 'bogus-keyword' in 'listen' section",
    "[ALERT]    (1) : config : [/tmp/c/haproxy.cfg:{n}] : 'server foo/foo1' : weight of server foo1 is not within 0 and 256 (9999)..",
]
KEEPALIVED_REJECTIONS = ["(Line {n}) Unknown keyword 'bogus_kw'", "(/tmp/c/keepalived.conf: Line {n}) WARNING - interface eth9 doesn't exist"]


@pytest.mark.parametrize("message", HAPROXY_REJECTIONS)
def test_a_haproxy_message_about_a_line_is_led_by_its_key(seed_pillar, message):
    seed_pillar["services"]["foo"]["options"] = ["retries 7"]
    lines = haproxy.render_lines(model_for(seed_pillar))
    number = line_number(lines, "retries 7")
    message = message.format(n=number)
    told = deploy.in_pillar_terms(f"[NOTICE]   (1) : haproxy version is 2.6.12\n{message}", lines, haproxy.LINE_REF)
    assert told.splitlines() == [
        "[NOTICE]   (1) : haproxy version is 2.6.12",
        f'lbpair:services:foo:options:0 (line {number}: "retries 7"): {message}',
    ]


@pytest.mark.parametrize("message", KEEPALIVED_REJECTIONS)
def test_a_keepalived_message_about_a_line_is_led_by_its_key(seed_pillar, message):
    lines = keepalived_config.render_lines(model_for(seed_pillar))
    number = line_number(lines, "interface eth0")
    told = deploy.in_pillar_terms(f"{message.format(n=number)}\nNon-existent interface specified in configuration", lines, keepalived_config.LINE_REF)
    assert told.splitlines() == [
        f'lbpair:vrrp:interface (line {number}: "interface eth0"): {message.format(n=number)}',
        "Non-existent interface specified in configuration",
    ]


@pytest.mark.parametrize("number", [0, 10_000, 10**40])
def test_a_line_number_outside_the_candidate_leaves_the_message_as_it_is(seed_pillar, number):
    lines = keepalived_config.render_lines(model_for(seed_pillar))
    assert deploy.in_pillar_terms(f"(Line {number}) Unknown keyword 'x'", lines, keepalived_config.LINE_REF) == f"(Line {number}) Unknown keyword 'x'"
