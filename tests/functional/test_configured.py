"""
Configuring HAProxy and keepalived, with the real binaries validating every candidate.

Salt's functional state wrapper runs states through ``state.single`` with a
loader of its own, where the service stand-in cannot reach; so most tests call
the function behind the states (``lbpair_deploy.configured_state``) and one
checks the state modules themselves in test mode.
"""

import pytest

from lab.scenarios import many_services
from tests.functional.conftest import set_pillar

DAEMONS = ("haproxy", "keepalived")


class Result:
    def __init__(self, ret):
        self.result, self.comment, self.changes = ret["result"], ret["comment"], ret["changes"]


def apply(modules, daemon):
    name = f"{daemon} configuration is managed"
    test = modules.opts.get("test", False)
    return Result(modules.lbpair_deploy.configured_state(name, daemon, test=test))


def live_text(modules, daemon):
    with open(modules[f"lbpair_{daemon}.config_path"](), encoding="utf-8") as handle:
        return handle.read()


def test_seed_scenario_renders_and_the_binaries_accept_it(modules, tmp_path):
    for daemon in DAEMONS:
        candidate = tmp_path / daemon
        candidate.write_text(modules[f"lbpair_{daemon}.render"]())
        modules[f"lbpair_{daemon}.validate"](str(candidate))


@pytest.mark.parametrize("daemon", DAEMONS)
def test_first_apply_installs_and_reloads(states, modules, services, daemon):
    ret = apply(modules, daemon)
    assert ret.result is True, ret.comment
    assert "+listen foo" in ret.changes["diff"] or "+vrrp_instance lbpair_51 {" in ret.changes["diff"]
    assert live_text(modules, daemon) == modules[f"lbpair_{daemon}.render"]()
    assert services.calls == [("reload", daemon)]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_second_apply_reports_no_changes_and_reloads_nothing(modules, services, daemon):
    assert apply(modules, daemon).result is True
    services.calls.clear()
    ret = apply(modules, daemon)
    assert ret.result is True and ret.changes == {}
    assert services.calls == []


@pytest.mark.parametrize("daemon", DAEMONS)
def test_stopped_daemon_is_started_not_reloaded(modules, services, daemon):
    services.running[daemon] = False
    assert apply(modules, daemon).result is True
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


def test_adding_a_service_changes_both_configs(loaders, states, modules, pillar):
    for daemon in DAEMONS:
        apply(modules, daemon)
    pillar["services"]["qux"] = {
        "vip": "203.0.113.40",
        "port": 80,
        "cookie": "qux-server-id",
        "servers": {"qux1": {"address": "198.51.100.41", "port": 80}},
    }
    set_pillar(loaders, pillar)
    haproxy, keepalived = (apply(modules, daemon) for daemon in DAEMONS)
    assert "+listen qux\n" in haproxy.changes["diff"]
    assert "+        203.0.113.40/32 dev eth0\n" in keepalived.changes["diff"]


def test_removing_a_service_removes_it(loaders, states, modules, pillar):
    for daemon in DAEMONS:
        apply(modules, daemon)
    del pillar["services"]["bar"]
    set_pillar(loaders, pillar)
    for daemon in DAEMONS:
        assert apply(modules, daemon).result is True
    assert "listen bar" not in live_text(modules, "haproxy")
    assert "203.0.113.20" not in live_text(modules, "keepalived")


def break_haproxy(pillar):
    pillar["services"]["foo"]["options"] = ["no-such-directive on"]
    return "HAProxy rejected the configuration", "no-such-directive"


def break_keepalived(pillar):
    pillar["vrrp"]["interface"] = "eth9"
    return "keepalived rejected the configuration", "eth9"


@pytest.mark.parametrize(("daemon", "break_config"), [("haproxy", break_haproxy), ("keepalived", break_keepalived)])
def test_candidate_rejected_by_the_binary_is_never_installed(loaders, modules, pillar, services, daemon, break_config):
    assert apply(modules, daemon).result is True
    before = live_text(modules, daemon)
    services.calls.clear()
    rejection, offender = break_config(pillar)
    set_pillar(loaders, pillar)
    ret = apply(modules, daemon)
    assert ret.result is False
    assert rejection in ret.comment and offender in ret.comment
    assert live_text(modules, daemon) == before
    assert services.calls == []


def test_failed_reload_restores_the_previous_file(loaders, states, modules, pillar, services):
    assert apply(modules, "haproxy").result is True
    before = live_text(modules, "haproxy")
    del pillar["services"]["bar"]
    set_pillar(loaders, pillar)
    modules["service.reload"] = lambda name, *args, **kwargs: False
    ret = apply(modules, "haproxy")
    assert ret.result is False and "restored" in ret.comment
    assert live_text(modules, "haproxy") == before


def test_bad_pillar_is_named_and_nothing_is_written(loaders, states, modules, pillar, services):
    for daemon in DAEMONS:
        apply(modules, daemon)
    before = {daemon: live_text(modules, daemon) for daemon in DAEMONS}
    services.calls.clear()
    pillar["services"]["foo"]["servers"]["foo1"]["address"] = "198.51.100.11\n    bind 0.0.0.0:22"
    set_pillar(loaders, pillar)
    for daemon in DAEMONS:
        ret = apply(modules, daemon)
        assert ret.result is False
        assert ret.comment.startswith("lbpair:services:foo:servers:foo1:address:")
        assert live_text(modules, daemon) == before[daemon]
    assert services.calls == []


def test_thousand_services_validate(modules, pillar, tmp_path):
    pillar = many_services(pillar, 1000)
    for daemon in DAEMONS:
        candidate = tmp_path / daemon
        candidate.write_text(modules[f"lbpair_{daemon}.render"](pillar=pillar))
        modules[f"lbpair_{daemon}.validate"](str(candidate))


def test_missing_minion_in_pair_is_a_clear_error(modules):
    with pytest.raises(Exception) as error:
        modules.lbpair_config.model(node="lb9")
    assert "'lb9' is not a node" in str(error.value)


def test_model_is_normalised_once_per_pillar(loaders, modules, pillar):
    first = modules.lbpair_config.model()
    assert modules.lbpair_config.model()["services"] is first["services"]
    pillar["services"]["foo"]["port"] = 8080
    set_pillar(loaders, pillar)
    assert modules.lbpair_config.model()["services"]["foo"]["port"] == 8080
