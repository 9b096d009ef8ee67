"""Rendering: deterministic text laid out from the normalised model."""

import ipaddress

import pytest

from lab.scenarios import VIP_POOL, many_services
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, haproxy, keepalived_config, stats


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def test_rendering_is_byte_for_byte_deterministic(seed_pillar):
    reordered = dict(reversed(list(seed_pillar["services"].items())))
    first = haproxy.render_config(model_for(seed_pillar))
    second = haproxy.render_config(model_for({**seed_pillar, "services": reordered}))
    assert first == second
    assert keepalived_config.render_config(model_for(seed_pillar)) == keepalived_config.render_config(
        model_for({**seed_pillar, "services": reordered})
    )


def test_listen_section_has_cookie_persistence_and_round_robin(seed_pillar):
    text = haproxy.render_config(model_for(seed_pillar))
    assert "listen foo\n    bind 203.0.113.10:80\n    mode http\n    balance roundrobin\n" in text
    assert "    cookie foo-server-id insert indirect nocache\n" in text
    assert "    server foo1 198.51.100.11:80 check cookie foo1\n" in text


def test_option_lines_keep_their_order(seed_pillar):
    seed_pillar["services"]["foo"]["options"] = ["http-request deny if { path /b }", "http-request allow"]
    text = haproxy.render_config(model_for(seed_pillar))
    assert text.index("http-request deny") < text.index("http-request allow")


def test_preferred_master_starts_as_master_and_peer_as_backup(seed_pillar):
    seed_pillar["vrrp"]["failback_delay"] = 0  # with one, every node starts as BACKUP (keepalived's preempt_delay)
    assert "    state MASTER\n    interface eth0\n" in keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    lb2 = keepalived_config.render_config(model_for(seed_pillar, "lb2"))
    assert "    state BACKUP\n" in lb2 and "    priority 100\n" in lb2 and "mcast_src_ip 192.0.2.12" in lb2


def test_no_preempt_renders_both_nodes_as_backup(seed_pillar):
    seed_pillar["vrrp"]["preempt"] = False
    seed_pillar["vrrp"]["check"]["weight"] = 0
    text = keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    assert "    state BACKUP\n" in text and "    nopreempt\n" in text


def test_the_preferred_node_back_from_fault_waits_the_failback_delay(seed_pillar):
    lb1 = keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    assert "    state BACKUP\n" in lb1 and "    preempt_delay 10\n" in lb1  # keepalived ignores it on a node starting as MASTER
    assert keepalived_config.failbacks_awaited(model_for(seed_pillar, "lb1"), deferring=False) == ["lbpair_51"]
    assert keepalived_config.failbacks_awaited(model_for(seed_pillar, "lb1"), deferring=True) == []
    assert keepalived_config.failbacks_awaited(model_for(seed_pillar, "lb2"), deferring=False) == []
    seed_pillar["vrrp"]["failback_delay"] = 0  # keepalived preempts at once
    assert "preempt_delay" not in keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    assert keepalived_config.failbacks_awaited(model_for(seed_pillar, "lb1"), deferring=False) == []
    seed_pillar["vrrp"].update(failback_delay=5, preempt=False, check={"weight": 0})
    assert "preempt_delay" not in keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    assert keepalived_config.failbacks_awaited(model_for(seed_pillar, "lb1"), deferring=False) == []


def test_the_full_priority_is_the_node_s_own_with_its_check_succeeding(seed_pillar):
    seed_pillar["vrrp"]["instances"] = {"web2": {"virtual_router_id": 52, "preferred": "lb2"}}
    seed_pillar["services"]["baz"]["instance"] = "web2"
    assert keepalived_config.full_priorities(model_for(seed_pillar, "lb1")) == {"lbpair_51": 103, "lbpair_52": 102}  # 101/100 swapped in web2
    assert keepalived_config.full_priorities(model_for(seed_pillar, "lb2")) == {"lbpair_51": 102, "lbpair_52": 103}


def test_a_node_below_its_full_priority_is_named_until_its_check_has_risen(seed_pillar):
    model = model_for(seed_pillar, "lb1")
    assert keepalived_config.below_full_priority(model, ["lbpair_51"], {"lbpair_51": {"priority": 101}}) == ["lbpair_51"]
    assert keepalived_config.below_full_priority(model, ["lbpair_51"], {}) == ["lbpair_51"]  # not in keepalived (yet)
    assert keepalived_config.below_full_priority(model, ["lbpair_51"], {"lbpair_51": {"priority": None}}) == ["lbpair_51"]  # no priority in the dump
    assert keepalived_config.below_full_priority(model, ["lbpair_51"], {"lbpair_51": {"priority": 103}}) == []
    assert keepalived_config.full_priority_wait(model) == 5  # half the failback delay (10 s): the rest is the hand-over's
    seed_pillar["vrrp"]["failback_delay"] = 20
    assert keepalived_config.full_priority_wait(model_for(seed_pillar, "lb1")) == 6  # (rise 2 + 1) x interval 2


def test_adverts_with_another_vip_list_are_accepted_while_a_change_rolls_out(seed_pillar):
    assert "    skip_check_adv_addr\n" in keepalived_config.render_config(model_for(seed_pillar, "lb2"))


def test_unicast_lists_the_peers(seed_pillar):
    seed_pillar["vrrp"]["unicast"] = True
    text = keepalived_config.render_config(model_for(seed_pillar, "lb1"))
    assert "    unicast_src_ip 192.0.2.11\n    unicast_peer {\n        192.0.2.12\n    }\n" in text


def test_dbus_and_script_security_are_enabled(seed_pillar):
    text = keepalived_config.render_config(model_for(seed_pillar))
    assert "    enable_dbus\n" in text and "    enable_script_security\n" in text


def test_adverts_carry_the_lowest_vip_and_the_rest_are_excluded(seed_pillar):
    text = keepalived_config.render_config(model_for(many_services(seed_pillar, 1000)))
    included, excluded = text.split("virtual_ipaddress_excluded {")
    assert included.count("/32 dev eth0") == 1
    assert f"{min(VIP_POOL, key=ipaddress.ip_address)}/32 dev eth0" in included
    assert excluded.count("/32 dev eth0") == len(VIP_POOL) - 1


def test_adding_a_service_leaves_the_adverts_unchanged(seed_pillar):
    before = keepalived_config.render_config(model_for(seed_pillar)).split("virtual_ipaddress_excluded")[0]
    seed_pillar["services"]["qux"] = {**seed_pillar["services"]["foo"], "vip": "203.0.113.40"}
    after = keepalived_config.render_config(model_for(seed_pillar)).split("virtual_ipaddress_excluded")[0]
    assert before == after


def test_diff_masks_passwords():
    old = "defaults\n    stats auth admin:oldsecret\n"
    new = "defaults\n    stats auth admin:newsecret\n"
    diff = deploy.unified_diff(old, new, "/etc/haproxy/haproxy.cfg")
    assert "oldsecret" not in diff and "newsecret" not in diff
    assert "only secret values changed" in diff
    assert "stats auth admin:******" in deploy.unified_diff(old, "", "x")


def test_stat_csv_is_parsed_into_servers():
    csv_text = "# pxname,svname,status,weight,scur,stot,check_status,lastchg,addr\nfoo,FRONTEND,OPEN,,0,0,,,\nfoo,foo1,UP,1,0,3,L4OK,10,198.51.100.11:80\nfoo,BACKEND,UP,1,0,3,,10,\n"
    assert stats.parse_stat(csv_text) == {
        "foo": {"foo1": {"status": "UP", "weight": "1", "scur": "0", "stot": "3", "check_status": "L4OK", "lastchg": "10", "addr": "198.51.100.11:80"}}
    }


def test_server_names_are_checked_before_the_stats_socket_is_used(tmp_path):
    socket_path = str(tmp_path / "absent.sock")
    with pytest.raises(InvalidValue, match="server"):
        stats.set_server(socket_path, "foo", "foo1/../bar", "drain")
    with pytest.raises(InvalidValue, match="state"):
        stats.set_server(socket_path, "foo", "foo1", "down; shutdown")
