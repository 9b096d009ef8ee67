"""
The VRRP firewall rule, proven by behaviour: two real keepalived nodes in network
namespaces with a default-drop INPUT policy both become MASTER (split brain)
without lbpair's rule, and agree on one MASTER with it.
"""

import contextlib
import copy
import time

import pytest
from saltfactories.utils.functional import Loaders

from lab import netns
from tests.conftest import EXTENSION_DIRS

NODES = {"lb1": "lbpair-fw-lb1", "lb2": "lbpair-fw-lb2"}
VIP = "203.0.113.10"


@pytest.fixture
def pair_namespaces(seed_pillar):
    for namespace in NODES.values():
        netns.add(namespace)
    try:
        netns.veth(NODES["lb1"], "eth0", NODES["lb2"], "eth0")
        for node, namespace in NODES.items():
            netns.add_address(namespace, "eth0", f"{seed_pillar['nodes'][node]['address']}/24")
            netns.run(namespace, ["iptables", "-P", "INPUT", "DROP"])
        yield NODES
    finally:
        for namespace in NODES.values():
            netns.delete(namespace)


@pytest.fixture
def node_loaders(salt_factories, seed_pillar, tmp_path):
    loaders = {}
    for node in NODES:
        overrides = {
            **EXTENSION_DIRS,
            "file_client": "local",
            "lbpair_keepalived": {"config_file": str(tmp_path / node / "keepalived.conf")},
        }
        opts = salt_factories.salt_minion_daemon(node, overrides=overrides).config.copy()
        opts["pillar"] = {"lbpair": seed_pillar}
        loaders[node] = Loaders(opts)
    yield loaders
    for loader in loaders.values():
        loader.reset_state()


@pytest.fixture
def keepalived_pair(pair_namespaces, node_loaders, tmp_path):
    processes = []
    for node, namespace in pair_namespaces.items():
        conf = tmp_path / node / "keepalived.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(node_loaders[node].modules.lbpair_keepalived.render())
        pids = [f"--{kind}={tmp_path / node / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf), *pids]
        processes.append(netns.popen(namespace, command, stdout=open(tmp_path / f"{node}.log", "w"), stderr=-2))
    yield pair_namespaces
    for process in processes:
        process.terminate()
        with contextlib.suppress(Exception):
            process.wait(timeout=10)


def holders_of_vip(namespaces):
    return sorted(
        node for node, namespace in namespaces.items() if VIP in netns.ip(namespace, "-4", "addr", "show", "eth0").stdout
    )


def wait_for_holders(namespaces, expected, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holders_of_vip(namespaces) == expected:
            return True
        time.sleep(0.2)
    return False


def test_vrrp_rule_turns_split_brain_into_one_master(keepalived_pair, node_loaders):
    assert wait_for_holders(keepalived_pair, ["lb1", "lb2"]), "without the rule both nodes should be MASTER"
    for node, namespace in keepalived_pair.items():
        with netns.enter(namespace):
            result = node_loaders[node].modules.lbpair_firewall.vrrp_allow()
        assert result["added"], result
    assert wait_for_holders(keepalived_pair, ["lb1"]), holders_of_vip(keepalived_pair)


def test_vrrp_rule_is_idempotent_and_test_mode_changes_nothing(pair_namespaces, node_loaders):
    modules = node_loaders["lb1"].modules
    with netns.enter(pair_namespaces["lb1"]):
        assert modules.lbpair_firewall.vrrp_allow(test=True)["added"] == ["lbpair-vrrp 192.0.2.12 to 224.0.0.18"]
        assert modules.lbpair_firewall.vrrp_rules() == {"lbpair-vrrp 192.0.2.12 to 224.0.0.18": False}
        assert modules.lbpair_firewall.vrrp_allow()["added"]
        assert modules.lbpair_firewall.vrrp_allow() == {"added": [], "removed": []}
        listing = netns.run(pair_namespaces["lb1"], ["iptables", "-S", "INPUT"]).stdout
    assert listing.count("lbpair-vrrp") == 1
    assert "-s 192.0.2.12/32 -d 224.0.0.18/32 -p vrrp" in listing


def test_rule_of_a_node_that_left_is_removed(pair_namespaces, node_loaders, seed_pillar):
    loader = node_loaders["lb1"]
    with netns.enter(pair_namespaces["lb1"]):
        loader.modules.lbpair_firewall.vrrp_allow()
        seed_pillar["nodes"]["lb2"]["address"] = "192.0.2.13"
        loader.opts["pillar"]["lbpair"] = copy.deepcopy(seed_pillar)
        result = loader.modules.lbpair_firewall.vrrp_allow()
        listing = netns.run(pair_namespaces["lb1"], ["iptables", "-S", "INPUT"]).stdout
    assert result == {"added": ["lbpair-vrrp 192.0.2.13 to 224.0.0.18"], "removed": ["lbpair-vrrp 192.0.2.12 to 224.0.0.18"]}
    assert "192.0.2.12" not in listing and "192.0.2.13" in listing


@pytest.mark.parametrize("backend", ["nftables"])
def test_nftables_backend_adds_and_finds_its_rule(pair_namespaces, node_loaders, seed_pillar, backend):
    loader = node_loaders["lb1"]
    seed_pillar["firewall"] = {"backend": backend}
    loader.opts["pillar"]["lbpair"] = copy.deepcopy(seed_pillar)
    with netns.enter(pair_namespaces["lb1"]):
        assert loader.modules.lbpair_firewall.vrrp_allow()["added"]
        assert loader.modules.lbpair_firewall.vrrp_allow() == {"added": [], "removed": []}
        listing = netns.run(pair_namespaces["lb1"], ["nft", "list", "chain", "inet", "filter", "input"]).stdout
    assert 'ip saddr 192.0.2.12 ip daddr 224.0.0.18 ip protocol vrrp accept comment "lbpair-vrrp 192.0.2.12 to 224.0.0.18"' in listing
