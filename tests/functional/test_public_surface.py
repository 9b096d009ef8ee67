"""
The public surface can be granted: every public ``lbpair*`` function that Salt's
loader offers is one an operator would call, documented with a CLI example, and
none takes a command line, a pid, a signal, a URL or a file path.
"""

import inspect
import re

import pytest
import salt.loader

from tests.conftest import EXTENSION_DIRS

#: argument names that would let a caller choose what runs, what is signalled or what is touched
FORBIDDEN_ARGUMENT = re.compile(r"^(cmd|command|args?|argv|shell|pid|signal|signum|url|uri|path|file|dir|binary|exe)$|_(path|file|dir|url|cmd)$")
OPERATOR_FUNCTIONS = {
    "lbpair_config.check",
    "lbpair_haproxy.render", "lbpair_haproxy.validate", "lbpair_haproxy.reload",
    "lbpair_haproxy.servers", "lbpair_haproxy.set_server", "lbpair_haproxy.certificates", "lbpair_haproxy.ocsp_refresh",
    "lbpair_keepalived.render", "lbpair_keepalived.validate", "lbpair_keepalived.reload",
    "lbpair_keepalived.status", "lbpair_keepalived.transitions",
    "lbpair_keepalived.defer", "lbpair_keepalived.maintenance", "lbpair_keepalived.hand_over", "lbpair_keepalived.preferred",
    "lbpair_firewall.vrrp_rules", "lbpair_firewall.vrrp_allow", "lbpair_firewall.rogue_senders", "lbpair_firewall.peers_rules",
    "lbpair_firewall.prometheus_rules",
    "lbpair.on_beacon", "lbpair.on_minion_start", "lbpair.on_pillar_refresh", "lbpair.catch_up", "lbpair.flush", "lbpair.status",
    "lbpair.history", "lbpair.check_config", "lbpair.dns_update",
    "lbpair.switchover", "lbpair.rebalance", "lbpair.maintenance", "lbpair.certificates",
}  # fmt: skip


@pytest.fixture(scope="module")
def master_opts(salt_factories):
    return salt_factories.salt_master_daemon("surface", overrides=dict(EXTENSION_DIRS)).config.copy()


@pytest.fixture
def public_functions(modules, master_opts):
    runners = salt.loader.runner(master_opts, utils=salt.loader.utils(master_opts))
    found = {}
    for loader in (modules, runners):
        for name in list(loader.keys()):
            if name.split(".")[0].startswith("lbpair"):
                function = loader[name]
                found[name] = getattr(function, "func", function)
    return found


def test_only_operator_functions_are_public(public_functions):
    assert set(public_functions) == OPERATOR_FUNCTIONS


def test_every_public_function_has_a_cli_example(public_functions):
    missing = [name for name, function in public_functions.items() if "CLI Example:" not in (function.__doc__ or "")]
    assert not missing


def test_no_public_function_takes_a_command_a_pid_a_signal_a_url_or_a_path(public_functions):
    offending = {
        name: parameter
        for name, function in public_functions.items()
        for parameter in inspect.signature(function).parameters
        if FORBIDDEN_ARGUMENT.search(parameter)
    }
    assert not offending


def test_states_are_documented(states):
    for name in (
        "lbpair_haproxy.configured", "lbpair_haproxy.watched", "lbpair_keepalived.configured",
        "lbpair_keepalived.handover_undone", "lbpair_firewall.vrrp_allowed",
        "lbpair_firewall.peers_allowed", "lbpair_firewall.prometheus_allowed",
    ):
        module, function = name.split(".")
        assert getattr(getattr(states, module), function).__doc__
