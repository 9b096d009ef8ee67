"""
Both ways of installing lbpair, with the real daemons: the library and the loader modules
synced from the master's file_roots to a minion that never had them (the beacon starts right
after its first ``saltutil.sync_all``, without a restart), and pip-installed on a minion and on
the master. Each minion runs the ``lbpair_vrrp`` beacon on a real keepalived node. And the
documentation's grant for an ops group (docs/operations.md, "Granting operators"), given to a
user of Salt's test eauth (``auto``): they drain, ready and query, and nothing else.
"""

import re
import time

import pytest
import yaml

from lab.beacon_rig import BEACON
from lab.salt_master import REPO, state_tree
from lab.util import wait_until
from tests.support.journal import beacon_events

SYNCED, PIP = "lb1", "lb2"
OPS = ["-a", "auto", "--username", "ops", "--password", "anything"]


def documented_grant():
    """The ``external_auth`` example of docs/operations.md, for a user ``ops`` of the ``auto`` eauth instead of pam's group."""
    block = re.search(r"```yaml\n(external_auth:\n.*?)```", (REPO / "docs" / "operations.md").read_text(), re.DOTALL).group(1)
    grant = yaml.safe_load(block)["external_auth"]["pam"]["ops%"]
    return {"auto": {"ops": grant}}


def with_pythonpath(factory, folder):
    """``factory`` with ``folder`` on its daemon's PYTHONPATH (the manager's environment is shared: copy it)."""
    factory.environ = {**factory.environ, "PYTHONPATH": str(folder)}
    return factory


@pytest.fixture(scope="module")
def salt_master(vrrp_factories, pillar_tree, pip_installed, tmp_path_factory):
    """The master: lbpair pip-installed, and this repository's tree in its file_roots for the minions."""
    overrides = {
        "interface": "127.0.0.1",
        "auto_accept": True,
        "pillar_roots": {"base": [str(pillar_tree)]},
        "file_roots": {"base": [str(state_tree(tmp_path_factory.mktemp("file_roots") / "base"))]},
        "external_auth": documented_grant(),
        "lbpair_reactions": {"nodes": {SYNCED: {"address": "192.0.2.11"}, PIP: {"address": "192.0.2.12"}},
                             "history": {"path": str(tmp_path_factory.mktemp("history") / "history.jsonl")}},
    }  # fmt: skip
    factory = with_pythonpath(vrrp_factories.salt_master_daemon("lbpair-install-master", overrides=overrides), pip_installed)
    with factory.started():
        yield factory


def beacon_minion(salt_master, node, journal_path):
    overrides = {
        "lbpair_keepalived": node.minion_options(),
        "lbpair_journal": {"path": str(journal_path)},
        "beacons": {BEACON: [{"bus": node.bus_address}, {"metrics": "none"}]},  # not the host's node_exporter directory
    }
    return salt_master.salt_minion_daemon(node.name, overrides=overrides)


@pytest.fixture(scope="module")
def minions(salt_master, nodes, pip_installed, tmp_path_factory):
    """lb1 with nothing of lbpair (it comes with sync_all), lb2 with lbpair pip-installed."""
    journals = tmp_path_factory.mktemp("journals")
    synced = beacon_minion(salt_master, nodes[SYNCED], journals / "lb1.jsonl")
    pip = with_pythonpath(beacon_minion(salt_master, nodes[PIP], journals / "lb2.jsonl"), pip_installed)
    with synced.started(), pip.started():
        yield {SYNCED: synced, PIP: pip}


def first_event(master_events, salt_master, minion, since, timeout=30):
    events = wait_until(lambda: beacon_events(master_events, salt_master, minion, since), timeout, what=f"an event of {minion}")
    return events[0]


def test_first_sync_all_starts_the_beacon_without_a_restart(minions, salt_master, master_events):
    salt = salt_master.salt_cli(timeout=120)
    assert salt.run("sys.list_functions", "lbpair_keepalived", minion_tgt=SYNCED).data == []
    since = time.time()
    synced = salt.run("saltutil.sync_all", minion_tgt=SYNCED).data
    assert "utils.saltext.lbpair.node.beacon" in synced["utils"] and "beacons.lbpair_vrrp" in synced["beacons"]
    event = first_event(master_events, salt_master, SYNCED, since)
    assert (event.data["state"], event.data["source"]) == ("MASTER", "reconstructed")
    assert salt.run("lbpair_keepalived.transitions", minion_tgt=SYNCED).data[0]["seq"] == event.data["seq"]


def test_pip_installed_minion_and_master_work_without_a_sync(minions, salt_master, master_events, pip_installed):
    since = time.time() - 60  # its beacon started with the minion
    event = first_event(master_events, salt_master, PIP, since)
    assert event.data["state"] == "BACKUP"
    status = salt_master.salt_cli(timeout=60).run("lbpair_keepalived.status", minion_tgt=PIP).data
    assert status["lbpair_51"]["state"] == "BACKUP"
    salt_run = with_pythonpath(salt_master.salt_run_cli(timeout=60), pip_installed)  # salt-run runs runners itself
    checked = salt_run.run("lbpair.check_config").data
    assert checked["nodes"] == {SYNCED: {"address": "192.0.2.11"}, PIP: {"address": "192.0.2.12"}}


def test_a_failover_reaches_the_master_from_both(minions, nodes, salt_master, master_events):
    since = time.time()
    nodes[SYNCED].set_healthy(False)
    try:
        for minion, state in ((SYNCED, "BACKUP"), (PIP, "MASTER")):
            event = first_event(master_events, salt_master, minion, since)
            assert (event.data["state"], event.data["source"]) == (state, "live")
    finally:
        nodes[SYNCED].set_healthy(True)


def test_the_documented_grant_lets_ops_query_and_drain_and_nothing_else(minions, salt_master, pip_installed):
    salt = salt_master.salt_cli(timeout=60)
    status = salt.run(*OPS, "lbpair_keepalived.status", minion_tgt=PIP)
    assert status.data["lbpair_51"]["state"] in ("MASTER", "BACKUP"), status.stdout + status.stderr
    drain = salt.run(*OPS, "lbpair_haproxy.set_server", "foo", "foo1", "drain", minion_tgt=PIP)
    assert "stats socket" in str(drain.data), drain.stdout  # allowed: it reached the node (no HAProxy here)
    for function in (["cmd.run", "id"], ["lbpair_haproxy.reload"], ["lbpair_firewall.vrrp_allow"], ["state.apply"]):
        denied = salt.run(*OPS, *function, minion_tgt=PIP)
        assert denied.stdout.strip() == "Authorization error occurred.", (function, denied.stdout)
    salt_run = with_pythonpath(salt_master.salt_run_cli(timeout=60), pip_installed)
    history = salt_run.run(*OPS, "lbpair.history")  # with eauth the master runs it: the timeline text
    assert "no transitions recorded" in history.stdout, history.stdout  # allowed: an empty history
    denied = salt_run.run(*OPS, "lbpair.dns_update", "lb1")
    assert denied.stdout.startswith('Authentication failure of type "eauth"'), denied.stdout
