"""
Configuring HAProxy and keepalived, with the real binaries validating every candidate.

The states run through Salt's loader; Salt's ``service`` functions are the
recorder of ``conftest.py`` (there is no service manager here).
"""

import pytest

from lab.scenarios import many_services
from tests.functional.conftest import set_pillar

DAEMONS = ("haproxy", "keepalived")


class Result:
    def __init__(self, ret):
        self.result, self.comment, self.changes = ret["result"], ret["comment"], ret["changes"]


def apply(state_functions, daemon):
    return Result(state_functions[f"lbpair_{daemon}.configured"](f"{daemon} configuration is managed"))


def live_text(modules, daemon):
    with open(modules.opts[f"lbpair_{daemon}"]["config_file"], encoding="utf-8") as handle:
        return handle.read()


def test_seed_scenario_renders_and_the_binaries_accept_it(modules):
    for daemon in DAEMONS:
        assert "error" not in modules[f"lbpair_{daemon}.validate"]().lower()


@pytest.mark.parametrize("daemon", DAEMONS)
def test_first_apply_installs_and_reloads(state_functions, modules, services, daemon):
    ret = apply(state_functions, daemon)
    assert ret.result is True, ret.comment
    assert "+listen foo" in ret.changes["diff"] or "+vrrp_instance lbpair_51 {" in ret.changes["diff"]
    assert live_text(modules, daemon) == modules[f"lbpair_{daemon}.render"]()
    assert services.calls == [("reload", daemon)]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_second_apply_reports_no_changes_and_reloads_nothing(state_functions, modules, services, daemon):
    assert apply(state_functions, daemon).result is True
    services.calls.clear()
    ret = apply(state_functions, daemon)
    assert ret.result is True and ret.changes == {}
    assert services.calls == []


@pytest.mark.parametrize("daemon", DAEMONS)
def test_stopped_daemon_is_started_not_reloaded(state_functions, modules, services, daemon):
    services.running[daemon] = False
    assert apply(state_functions, daemon).result is True
    assert services.calls == [("start", daemon)]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_test_mode_shows_a_diff_and_writes_nothing(loaders, states, modules, services, daemon):
    loaders.opts["test"] = True
    ret = getattr(states, f"lbpair_{daemon}").configured(name=f"{daemon} configuration is managed")
    assert ret.result is None
    assert ret.changes["diff"].startswith("---")
    with pytest.raises(FileNotFoundError):
        live_text(modules, daemon)
    assert services.calls == []


def test_adding_a_service_changes_both_configs(loaders, state_functions, modules, pillar):
    for daemon in DAEMONS:
        apply(state_functions, daemon)
    pillar["services"]["qux"] = {
        "vip": "203.0.113.40",
        "port": 80,
        "cookie": "qux-server-id",
        "servers": {"qux1": {"address": "198.51.100.41", "port": 80}},
    }
    set_pillar(loaders, pillar)
    haproxy, keepalived = (apply(state_functions, daemon) for daemon in DAEMONS)
    assert "+listen qux\n" in haproxy.changes["diff"]
    assert "+        203.0.113.40/32 dev eth0\n" in keepalived.changes["diff"]


def test_removing_a_service_removes_it(loaders, state_functions, modules, pillar):
    for daemon in DAEMONS:
        apply(state_functions, daemon)
    del pillar["services"]["bar"]
    set_pillar(loaders, pillar)
    for daemon in DAEMONS:
        assert apply(state_functions, daemon).result is True
    assert "listen bar" not in live_text(modules, "haproxy")
    assert "203.0.113.20" not in live_text(modules, "keepalived")


def in_pillar_terms(modules, daemon, key, text):
    """How a rejection names the rendered line ``text``: its key, its number and itself."""
    lines = [line.strip() for line in modules[f"lbpair_{daemon}.render"]().splitlines()]
    return f'{key} (line {lines.index(text) + 1}: "{text}"): '


WORD_WITHOUT_ARGUMENTS = "http-request set-header X-Host %[req.hdr(host),word]"


def break_haproxy(pillar):
    # an allowed line the binary refuses (the converter word needs its arguments): the schema cannot judge everything
    pillar["services"]["foo"]["options"] = [WORD_WITHOUT_ARGUMENTS]
    return "HAProxy rejected the configuration", "converter 'word'", ("lbpair:services:foo:options:0", WORD_WITHOUT_ARGUMENTS)


def break_keepalived(pillar):
    pillar["vrrp"]["interface"] = "eth9"
    return "keepalived rejected the configuration", "eth9", ("lbpair:vrrp:interface", "interface eth9")


@pytest.mark.parametrize(("daemon", "break_config"), [("haproxy", break_haproxy), ("keepalived", break_keepalived)])
def test_candidate_rejected_by_the_binary_is_never_installed(state_functions, loaders, modules, pillar, services, daemon, break_config):
    assert apply(state_functions, daemon).result is True
    before = live_text(modules, daemon)
    services.calls.clear()
    rejection, offender, (key, line) = break_config(pillar)
    set_pillar(loaders, pillar)
    ret = apply(state_functions, daemon)
    assert ret.result is False
    assert rejection in ret.comment and offender in ret.comment
    assert in_pillar_terms(modules, daemon, key, line) in ret.comment
    assert live_text(modules, daemon) == before
    assert services.calls == []


def reject_in_haproxy(pillar):
    pillar["services"]["foo"]["options"] = ["option httplog", WORD_WITHOUT_ARGUMENTS]
    return "lbpair:services:foo:options:1", WORD_WITHOUT_ARGUMENTS, "converter 'word'"


def reject_in_keepalived(pillar):
    pillar["keepalived"]["global_defs"]["vrrp_garp_interval"] = "nope"
    return "lbpair:keepalived:global_defs:vrrp_garp_interval", "vrrp_garp_interval nope", "invalid number 'nope'"


REJECTIONS = [("haproxy", reject_in_haproxy), ("keepalived", reject_in_keepalived)]


def live_files(live_dir):
    return {path: path.read_bytes() for path in live_dir.rglob("*") if path.is_file()}


@pytest.mark.parametrize(("daemon", "reject"), REJECTIONS)
def test_test_mode_reports_a_candidate_the_binary_would_refuse_by_its_pillar_key(loaders, state_functions, modules, pillar, services, live_dir, daemon, reject):
    assert apply(state_functions, daemon).result is True
    before = live_files(live_dir)
    services.calls.clear()
    key, line, message = reject(pillar)
    set_pillar(loaders, pillar)
    state_functions.opts["test"] = True
    ret = apply(state_functions, daemon)
    assert ret.result is False, ret.comment
    assert in_pillar_terms(modules, daemon, key, line) in ret.comment and message in ret.comment
    assert live_files(live_dir) == before
    assert services.calls == []


@pytest.mark.parametrize(("daemon", "reject"), REJECTIONS)
def test_validate_names_the_pillar_key_of_a_refused_line(loaders, modules, pillar, daemon, reject):
    key, line, message = reject(pillar)
    set_pillar(loaders, pillar)
    with pytest.raises(Exception) as error:
        modules[f"lbpair_{daemon}.validate"]()
    assert in_pillar_terms(modules, daemon, key, line) in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("daemon", DAEMONS)
def test_test_mode_on_a_change_the_binary_accepts_shows_the_diff(loaders, state_functions, modules, pillar, services, live_dir, daemon):
    assert apply(state_functions, daemon).result is True
    before = live_files(live_dir)
    services.calls.clear()
    pillar["services"]["qux"] = {"vip": "203.0.113.40", "port": 80, "servers": {"qux1": {"address": "198.51.100.41", "port": 80}}}
    set_pillar(loaders, pillar)
    state_functions.opts["test"] = True
    ret = apply(state_functions, daemon)
    assert ret.result is None, ret.comment
    assert "accepts the new configuration" in ret.comment
    assert "+listen qux\n" in ret.changes["diff"] or "+        203.0.113.40/32 dev eth0\n" in ret.changes["diff"]
    assert live_files(live_dir) == before
    assert services.calls == []


@pytest.mark.parametrize("daemon", DAEMONS)
def test_test_mode_with_nothing_to_change_is_true(loaders, state_functions, modules, services, daemon):
    assert apply(state_functions, daemon).result is True
    services.calls.clear()
    state_functions.opts["test"] = True
    ret = apply(state_functions, daemon)
    assert ret.result is True and ret.changes == {}
    assert services.calls == []


def test_test_mode_rejection_masks_passwords(loaders, state_functions, modules, pillar):
    # a stats page in defaults is refused by the pillar now (tests/unit/test_sandbox.py), its password never quoted;
    # the masking of the binary's messages is tested on rendered lines in tests/unit/test_hostile_inputs.py
    pillar["haproxy"]["defaults"] = {"stats auth": "admin:s3cret-Q9", "stats": "bogusauth s3cret-Q9"}
    set_pillar(loaders, pillar)
    state_functions.opts["test"] = True
    ret = apply(state_functions, "haproxy")
    assert ret.result is False
    assert ret.comment.startswith("lbpair:haproxy:defaults:stats")
    assert "s3cret-Q9" not in ret.comment


def test_failed_reload_restores_the_previous_file(loaders, state_functions, modules, pillar, services):
    assert apply(state_functions, "haproxy").result is True
    before = live_text(modules, "haproxy")
    del pillar["services"]["bar"]
    set_pillar(loaders, pillar)
    modules["service.reload"] = lambda name, *args, **kwargs: False
    ret = apply(state_functions, "haproxy")
    assert ret.result is False and "restored" in ret.comment
    assert live_text(modules, "haproxy") == before


def test_bad_pillar_is_named_and_nothing_is_written(loaders, state_functions, modules, pillar, services):
    for daemon in DAEMONS:
        apply(state_functions, daemon)
    before = {daemon: live_text(modules, daemon) for daemon in DAEMONS}
    services.calls.clear()
    pillar["services"]["foo"]["servers"]["foo1"]["address"] = "198.51.100.11\n    bind 0.0.0.0:22"
    set_pillar(loaders, pillar)
    for daemon in DAEMONS:
        ret = apply(state_functions, daemon)
        assert ret.result is False
        assert ret.comment.startswith("lbpair:services:foo:servers:foo1:address:")
        assert live_text(modules, daemon) == before[daemon]
    assert services.calls == []


def test_thousand_services_validate(loaders, modules, pillar):
    set_pillar(loaders, many_services(pillar, 1000))
    for daemon in DAEMONS:
        modules[f"lbpair_{daemon}.validate"]()


def test_missing_minion_in_pair_is_a_clear_error(modules):
    with pytest.raises(Exception) as error:
        modules.lbpair_config.check(node="lb9")
    assert "'lb9' is not a node" in str(error.value)


def test_rendered_configuration_masks_passwords(loaders, modules, pillar):
    pillar["haproxy"]["defaults"] = {"stats auth": "admin:s3cret-Q9"}
    set_pillar(loaders, pillar)
    with pytest.raises(Exception) as error:  # refused by the pillar now: never rendered, never quoted
        modules.lbpair_haproxy.render()
    assert "lbpair:haproxy:defaults:stats auth" in str(error.value) and "s3cret-Q9" not in str(error.value)


def test_the_longest_values_the_pillar_allows_pass_the_real_binaries(loaders, modules, pillar):
    pillar["vrrp"]["check"]["script"] = "/usr/bin/pgrep -x " + "h" * (256 - len("/usr/bin/pgrep -x "))
    pillar["keepalived"] = {"global_defs": {"notification_email_from": "a" * 888 + "@example.net"}}
    set_pillar(loaders, pillar)
    modules.lbpair_keepalived.validate()


def test_strict_mode_with_vrrpv3_passes_the_real_keepalived(loaders, modules, pillar):
    pillar["vrrp"].update(strict=True, version=3, higher_prio_send_advert=False, garp_lower_prio_repeat=0, failback_delay=0)
    set_pillar(loaders, pillar)
    assert "accept" in modules.lbpair_keepalived.render()
    modules.lbpair_keepalived.validate()
