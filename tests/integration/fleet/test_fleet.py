"""
Two pairs on one master, learnt from their nodes' pillar: a failover of both at once (a small
storm) is recorded, named and followed by each pair's own DNS records; an event in another
pair's name and an outsider's are ignored; status shows both pairs.
"""

import concurrent.futures
import time

from lab.util import wait_until
from tests.integration.fleet.conftest import API_RECORD, PAIRS

ADDRESSES = {"lb1": "192.0.2.11", "lb2": "192.0.2.12", "lb3": "192.0.2.13", "lb4": "192.0.2.14"}


def fail_over_both(fleet):
    """Both pairs fail over at once, for real: the second node of each becomes MASTER."""
    for name, (_, second) in PAIRS.items():
        for node in fleet.pair[name].nodes.values():
            node.set_healthy(node.name == second)
    for name, (_, second) in PAIRS.items():
        fleet.pair[name].wait_masters([second])


def test_a_failover_of_both_pairs_is_recorded_named_and_followed_by_each_pairs_dns(fleet, salt_run_cli):
    fail_over_both(fleet)
    moves = [(node, state, previous) for first, second in PAIRS.values()
             for node, state, previous in ((first, "BACKUP", "MASTER"), (second, "MASTER", "BACKUP"))]  # fmt: skip
    entries = {node: fleet.journal(node, state, previous) for node, state, previous in moves}
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(len(entries)) as senders:  # four minions send at once
        list(senders.map(lambda node: fleet.fire(node, [entries[node]]), entries))
    records = fleet.wait_history(lambda h: len([r for r in h if r["kind"] == "transition"]) == 4 and h, what="4 transitions")
    assert sorted((r["pair"], r["minion"], r["state"]) for r in records if r["kind"] == "transition") == [
        ("api", "lb3", "BACKUP"), ("api", "lb4", "MASTER"), ("lb1+lb2", "lb1", "BACKUP"), ("lb1+lb2", "lb2", "MASTER"),
    ]  # fmt: skip
    # each pair's own records follow its own MASTER
    wait_until(lambda: fleet.named.query("active", "A") == [ADDRESSES["lb2"]], 30, what="DNS active pointing at lb2")
    wait_until(lambda: fleet.named.query(API_RECORD, "A") == [ADDRESSES["lb4"]], 30, what=f"DNS {API_RECORD} pointing at lb4")
    # the history notes each update just after BIND took it
    dns = lambda history: sorted((r["pair"], r["minion"]) for r in history if r["kind"] == "dns" and r["ok"])  # noqa: E731
    fleet.wait_history(lambda history: dns(history) == [("api", "lb4"), ("lb1+lb2", "lb2")], what="both DNS updates recorded")
    # the messages name their pair
    wait_until(lambda: len([t for t in fleet.webhook.texts() if "is MASTER" in t]) == 2, 30, what="two MASTER messages")
    masters = sorted(t for t in fleet.webhook.texts() if "is MASTER" in t)
    assert masters[0].startswith("[api] lbpair lbpair_51: lb4 is MASTER") and masters[1].startswith("[lb1+lb2] lbpair lbpair_51: lb2 is MASTER")
    print(f"two pairs: last DNS update {time.time() - started:.1f} s after the events were sent")
    # status: both pairs, healthy
    status = salt_run_cli.run("lbpair.status", "pair=api", "--out=json")
    assert status.returncode == 0 and list(status.data["pairs"]) == ["api"], status.stdout
    assert status.data["pairs"]["api"]["instances"]["lbpair_51"]["MASTER"] == ["lb4"]
    timeline = fleet.salt_run("lbpair.history", "pair=api")
    assert "api/lbpair_51" in timeline and "lb1+lb2/" not in timeline and "lb4 BACKUP -> MASTER" in timeline, timeline


def test_status_shows_every_pair_and_the_outsider(fleet, salt_run_cli):
    status = salt_run_cli.run("lbpair.status", "--out=json")
    assert status.returncode != 0, status.stdout  # lb5 claims pair api: a problem to fix in pillar
    assert sorted(status.data["pairs"]) == ["api", "lb1+lb2"]
    assert status.data["pairs"]["lb1+lb2"]["instances"]["lbpair_51"]["MASTER"] == ["lb1"]
    assert status.data["pairs"]["api"]["instances"]["lbpair_51"]["MASTER"] == ["lb3"]
    assert [p for p in status.data["problems"] if p.startswith("lb5: an outsider: its pillar puts it in pair api")], status.data
    fleet_view = salt_run_cli.run("lbpair.check_config", "--out=json").data["fleet"]
    assert fleet_view["pairs"]["api"]["nodes"] == ["lb3", "lb4"] and "lb5" in fleet_view["left_out"]


def test_an_event_in_another_pairs_name_and_an_outsiders_are_ignored(fleet):
    started = time.time()
    forged = {**fleet.journal("lb1", "MASTER", "BACKUP"), "seq": 7}  # lb1 (pair lb1+lb2) sends in lb3's name (pair api)
    fleet.fire("lb1", [forged], claimed="lb3")
    fleet.fire("lb5", [fleet.journal("lb5", "MASTER", "BACKUP")])  # lb5's own journal, but lb5 is no node of api
    returns = fleet.wait_reactions("on_beacon", started, 2)
    assert {"ignored": "not in the node's journal"} in returns, returns
    assert [r for r in returns if r.get("ignored", "").startswith("'lb5' is not a node of any pair: an outsider")], returns
    assert fleet.history() == [] and fleet.webhook.posts == []
