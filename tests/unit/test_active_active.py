"""Several VRRP instances (active/active) and IPv6 VIPs: the schema, keepalived.conf, HAProxy's binds, the VRRP rules."""

import os

from saltext.lbpair.model import keepalived_model, pillar
from saltext.lbpair.node import beacon, firewall, haproxy, keepalived_config, keepalived_process
from saltext.lbpair.node.firewall import Rule, iptables, nftables, ruleset
from tests.unit.tls_ca import shared_ca


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def active_active(lbpair):
    """The seed with bar in a second instance that lb2 prefers."""
    lbpair["vrrp"]["instances"] = {"web2": {"virtual_router_id": 52, "preferred": "lb2"}}
    lbpair["services"]["bar"]["instance"] = "web2"
    return lbpair


def dual_stack(lbpair):
    """The seed with IPv6 node addresses and a service on an IPv6 VIP."""
    lbpair["nodes"]["lb1"]["address6"] = "2001:db8::11"
    lbpair["nodes"]["lb2"]["address6"] = "2001:db8::12"
    lbpair["services"]["foo6"] = {**lbpair["services"]["foo"], "vip": "2001:db8::10"}
    return lbpair


def instance_block(text, name):
    start = text.index(f"vrrp_instance {name} {{\n")
    return text[start : text.index("\n}\n", start)]


def test_each_instance_has_its_vrid_and_vips(seed_pillar):
    text = keepalived_config.render_config(model_for(active_active(seed_pillar)))
    first, second = instance_block(text, "lbpair_51"), instance_block(text, "lbpair_52")
    assert "virtual_router_id 51" in first and "203.0.113.10/32" in first and "203.0.113.20" not in first
    assert "virtual_router_id 52" in second and "203.0.113.20/32" in second and "203.0.113.10" not in second
    assert keepalived_model.instance_vips(model_for(seed_pillar)) == {
        "lbpair_51": ["203.0.113.10", "203.0.113.30"], "lbpair_52": ["203.0.113.20"],
    }  # fmt: skip


def test_the_preferred_node_of_an_instance_has_the_higher_priority_in_it(seed_pillar):
    active_active(seed_pillar)
    seed_pillar["vrrp"]["failback_delay"] = 0  # with one, every node starts as BACKUP (keepalived's preempt_delay)
    lb1, lb2 = (keepalived_config.render_config(model_for(seed_pillar, node)) for node in ("lb1", "lb2"))
    assert "state MASTER" in instance_block(lb1, "lbpair_51") and "priority 101" in instance_block(lb1, "lbpair_51")
    assert "state BACKUP" in instance_block(lb1, "lbpair_52") and "priority 100" in instance_block(lb1, "lbpair_52")
    assert "state BACKUP" in instance_block(lb2, "lbpair_51") and "priority 100" in instance_block(lb2, "lbpair_51")
    assert "state MASTER" in instance_block(lb2, "lbpair_52") and "priority 101" in instance_block(lb2, "lbpair_52")


def test_node_level_reasons_apply_to_every_instance(seed_pillar):
    text = keepalived_config.render_config(model_for(active_active(seed_pillar)))
    for name in ("lbpair_51", "lbpair_52"):
        block = instance_block(text, name)
        assert "lbpair_haproxy\n" in block and "lbpair_probe" in block and "lbpair_maintenance" in block and "lbpair_defer" in block


def test_each_line_names_its_key_and_a_swapped_priority_the_node_it_comes_from(seed_pillar):
    lines = keepalived_config.render_lines(model_for(active_active(dual_stack(seed_pillar))))
    assert all(isinstance(key, str) and key for _line, key in lines)
    keys = dict(lines)
    assert keys["    virtual_router_id 52"] == "lbpair:vrrp:instances:web2:virtual_router_id"
    assert keys["    virtual_router_id 51"] == "lbpair:vrrp:virtual_router_id"
    assert keys["    priority 100"] == "lbpair:nodes:lb2:priority"  # lb1's priority in web2, which lb2 prefers
    assert keys["    mcast_src_ip 2001:db8::11"] == "lbpair:nodes:lb1:address6"
    assert keys["vrrp_sync_group lbpair_51 {"] == "the vrrp_sync_group lbpair_51 section lbpair writes"


def test_ipv6_vips_go_to_a_sibling_instance_synced_with_the_ipv4_one(seed_pillar):
    text = keepalived_config.render_config(model_for(dual_stack(seed_pillar), "lb2"))
    assert "vrrp_sync_group lbpair_51 {\n    group {\n        lbpair_51\n        lbpair_51_6\n    }\n    sync_group_tracking_weight\n}\n" in text
    six = instance_block(text, "lbpair_51_6")
    assert "    native_ipv6\n" in six and "    version 3\n" in six and "    virtual_router_id 51\n" in six
    assert "    mcast_src_ip 2001:db8::12\n" in six and "2001:db8::10/128 dev eth0" in six and "203.0.113" not in six
    assert "2001:db8" not in instance_block(text, "lbpair_51")
    assert keepalived_model.instance_vips(model_for(seed_pillar))["lbpair_51_6"] == ["2001:db8::10"]


def test_ipv6_unicast_adverts_go_between_the_ipv6_addresses(seed_pillar):
    dual_stack(seed_pillar)["vrrp"]["unicast"] = True
    six = instance_block(keepalived_config.render_config(model_for(seed_pillar)), "lbpair_51_6")
    assert "    unicast_src_ip 2001:db8::11\n    unicast_peer {\n        2001:db8::12\n    }\n" in six


def test_an_instance_of_ipv6_vips_only_has_no_ipv4_instance_and_no_sync_group(seed_pillar):
    active_active(dual_stack(seed_pillar))["services"]["bar"]["vip"] = "2001:db8::20"
    text = keepalived_config.render_config(model_for(seed_pillar))
    assert "vrrp_instance lbpair_52_6 {" in text and "vrrp_instance lbpair_52 {" not in text
    assert "vrrp_sync_group lbpair_52" not in text and "vrrp_sync_group lbpair_51" in text


def test_vips_of_both_families_in_address_order(seed_pillar):
    model = model_for(dual_stack(seed_pillar))
    assert pillar.vips(model) == ["203.0.113.10", "203.0.113.20", "203.0.113.30", "2001:db8::10"]
    assert pillar.vips(model, family=6) == ["2001:db8::10"]


def test_haproxy_binds_an_ipv6_vip_in_brackets(seed_pillar):
    dual_stack(seed_pillar)["services"]["foo6"]["mode"] = "http"
    text = haproxy.render_config(model_for(seed_pillar))
    assert "listen foo6\n    bind [2001:db8::10]:80\n" in text


def test_the_peer_is_accepted_over_ipv6_too(seed_pillar):
    rules = firewall.wanted_rules(model_for(dual_stack(seed_pillar)))
    assert rules["lbpair-vrrp 2001:db8::12 to ff02::12"] == Rule("accept", "ipv6", "2001:db8::12", "ff02::12", None)
    assert list(rules) == [
        "lbpair-vrrp 192.0.2.12 to 224.0.0.18", "lbpair-vrrp 2001:db8::12 to ff02::12",
        "lbpair-vrrp record ipv4 vrid 51 on eth0", "lbpair-vrrp record ipv6 vrid 51 on eth0",
        "lbpair-vrrp drop ipv4 on eth0", "lbpair-vrrp drop ipv6 on eth0",
    ]  # fmt: skip


def test_iptables_rules_of_both_families_are_in_place_one_chain_after_the_other(seed_pillar):
    """iptables lists the IPv4 chain, then the IPv6 one: the IPv6 accept rule after the IPv4 drop rule is no disorder."""
    wanted = firewall.wanted_rules(model_for(dual_stack(seed_pillar)))
    chains = [comment for family in ("ipv4", "ipv6") for comment, rule in wanted.items() if rule.family == family]
    assert ruleset.misplaced(dict.fromkeys(chains), wanted) == set()


def test_an_ipv6_accept_rule_renders_for_both_backends():
    rule, comment = Rule("accept", "ipv6", "2001:db8::12", "ff02::12", None), "lbpair-vrrp 2001:db8::12 to ff02::12"
    assert nftables.nft_rule(rule, comment) == f'ip6 saddr 2001:db8::12 ip6 daddr ff02::12 meta l4proto 112 accept comment "{comment}"'
    assert iptables.iptables_spec(rule, comment)[:4] == ["-s", "2001:db8::12", "-d", "ff02::12"]


def test_an_nft_table_of_one_family_gets_the_accept_rules_of_that_family_only(seed_pillar):
    dual_stack(seed_pillar)["firewall"] = {"backend": "nftables", "nft_table": "ip6 filter"}
    assert list(firewall.wanted_rules(model_for(seed_pillar))) == [
        "lbpair-vrrp 2001:db8::12 to ff02::12", "lbpair-vrrp record ipv6 vrid 51 on eth0", "lbpair-vrrp drop ipv6 on eth0",
    ]  # fmt: skip


def test_the_seed_keeps_its_one_instance(seed_pillar):
    model = model_for(seed_pillar)
    assert list(model["vrrp"]["instances"]) == ["default"]
    assert [vrrp.name for vrrp in keepalived_model.vrrp_instances(model)] == ["lbpair_51"]
    assert "vrrp_sync_group" not in keepalived_config.render_config(model)


def test_a_pair_without_services_keeps_its_instance(seed_pillar):
    seed_pillar["services"] = {}
    assert keepalived_model.instance_vips(model_for(seed_pillar)) == {"lbpair_51": []}


def test_an_instance_without_preferred_is_preferred_by_the_highest_priority(seed_pillar):
    active_active(seed_pillar)["vrrp"]["instances"]["web2"] = {"virtual_router_id": 52}
    assert pillar.normalize(seed_pillar)["vrrp"]["instances"]["web2"]["preferred"] == "lb1"


def dual_stack_service(lbpair):
    """The seed with IPv6 node addresses and foo on an IPv6 VIP beside its IPv4 one (``vip6``)."""
    dual_stack(lbpair)["services"].pop("foo6")
    lbpair["services"]["foo"]["vip6"] = "2001:db8::10"
    return lbpair


def test_a_dual_stack_service_binds_both_vips_in_one_section(seed_pillar):
    model = model_for(dual_stack_service(seed_pillar))
    text = haproxy.render_config(model)
    section = text[text.index("listen foo\n") :].split("\n\n")[0]
    assert "bind 203.0.113.10:80\n" in section and "bind [2001:db8::10]:80\n" in section
    assert keepalived_model.instance_vips(model) == {"lbpair_51": ["203.0.113.10", "203.0.113.20", "203.0.113.30"], "lbpair_51_6": ["2001:db8::10"]}
    assert dict(haproxy.render_lines(model))["    bind [2001:db8::10]:80"] == "lbpair:services:foo:vip6"


def test_a_dual_stack_tls_service_terminates_tls_on_both_vips(seed_pillar):
    bundle = shared_ca().bundle("foo.example.net")
    dual_stack_service(seed_pillar)["services"]["foo"]["tls"] = {"certificates": {"site": {"pem": bundle}}}
    text = haproxy.render_config(model_for(seed_pillar))
    assert " ".join(line.split()[1] for line in text.splitlines() if " ssl crt " in line) == "203.0.113.10:443 [2001:db8::10]:443"


def test_the_vips_of_an_installed_keepalived_conf_are_those_it_was_rendered_with(seed_pillar):
    for lbpair in (seed_pillar, active_active(dual_stack_service(seed_pillar))):
        for node in ("lb1", "lb2"):
            model = model_for(lbpair, node)
            assert keepalived_config.installed_vips(keepalived_config.render_config(model)) == keepalived_model.instance_vips(model)


def test_the_beacon_reads_the_vips_of_the_installed_configuration_again_when_it_changes(tmp_path, seed_pillar):
    config = tmp_path / "keepalived.conf"
    vips = beacon.InstalledVips(keepalived_process.Local({"config_file": str(config)}))
    assert vips.get("lbpair_51", []) == []  # no configuration yet
    config.write_text(keepalived_config.render_config(model_for(seed_pillar)))
    assert vips.get("lbpair_51") == ["203.0.113.10", "203.0.113.20", "203.0.113.30"]
    config.write_text(keepalived_config.render_config(model_for(active_active(dual_stack_service(seed_pillar)))))
    os.utime(config, ns=(1, 1))  # a new modification time, even within the file system's granularity
    assert vips.get("lbpair_52") == ["203.0.113.20"] and vips.get("lbpair_51_6") == ["2001:db8::10"]
