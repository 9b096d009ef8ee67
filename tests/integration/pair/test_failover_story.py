"""
The demo's failover drill, asserted step by step on the whole lab: HAProxy on lb1 stops, the VIPs
move to lb2, the beacons' events reach the master, and the history, DNS, webhook and mail follow;
HAProxy comes back, the pair fails back (preempt), and that is recorded and announced too.
"""

import pytest

from lab.demo import history_records, one_failover
from lab.load import ClientLoad
from tests.integration.pair.conftest import NODES, VIPS, wait_for_vips
from tests.support.journal import last_seq, transitions

# HAProxy stopped for good puts lb1 in FAULT (its priority-0 advert hands the VIPs over at once);
# back, lb1 waits the failback delay while the master has lb2 hand the VIPs back (a brief FAULT)
MOVES = [
    ("lb1", "MASTER", "FAULT"), ("lb2", "BACKUP", "MASTER"),
    ("lb1", "FAULT", "BACKUP"), ("lb2", "MASTER", "FAULT"), ("lb1", "BACKUP", "MASTER"), ("lb2", "FAULT", "BACKUP"),
]  # fmt: skip


@pytest.fixture(scope="module")
def drill(lab, highstated, salt_cli, reactions):
    """One failover and failback under client load, with everything it set off; the journals' seq before it."""
    wait_for_vips(lab, "lb1")
    # what an operator does after an upgrade; earlier beacon loads must not report transitions again
    salt_cli.run("saltutil.sync_all", minion_tgt="lb*", _timeout=120)  # both nodes at once
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="lb*")
    seq_before = {node: last_seq(salt_cli, node) for node in NODES}
    load = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS])
    try:
        result = one_failover(lab, load, VIPS, reactions)
    finally:
        load.stop()
    return result, seq_before


def reactions_named(moves):
    return [what for _, what in moves]


def test_every_step_of_the_failover_and_the_failback_is_seen(drill):
    result, _ = drill
    for move, minion in (("failover_reactions", "lb2"), ("failback_reactions", "lb1")):
        seen = reactions_named(result[move])
        assert seen[0] == f"VRRP transition: keepalived on {minion} signals MASTER", seen
        assert seen[1] == "event on the master", seen
        for reaction in ("transition in the master's history", "webhook message delivered", "mail delivered"):
            assert reaction in seen


def test_each_transition_is_journalled_sent_and_recorded_once(drill, salt_cli, history_path, events):
    _, seq_before = drill
    for node in NODES:
        entries = transitions(salt_cli, node, since=seq_before[node])
        moves = [(node, entry["previous_state"], entry["state"]) for entry in entries]
        assert moves == [move for move in MOVES if move[0] == node], entries
        assert [entry["seq"] for entry in entries] == [seq_before[node] + 1 + n for n in range(len(entries))]
        assert {entry["source"] for entry in entries} == {"live"}
        sent = [data["seq"] for _, tag, data in events.events
                if tag.startswith(f"salt/beacon/{node}/lbpair_vrrp/lbpair_") and data["seq"] > seq_before[node]]  # fmt: skip
        assert sent == [entry["seq"] for entry in entries], "one event per transition, in order"
    recorded = [
        (record["minion"], record["previous_state"], record["state"], record["seen"], record["confirmed"])
        for record in history_records(history_path)
        if record.get("kind") == "transition" and record["seq"] > seq_before[record["minion"]]
    ]
    assert sorted(recorded) == sorted((*move, "live", True) for move in MOVES)


def test_dns_follows_the_master_and_the_messages_say_what_moved(drill, services):
    assert services.named.query("active", "A") == ["192.0.2.11"]
    assert services.named.query("active", "TXT") == ['"lb1"']
    to_lb2 = [text for text in services.webhook.texts() if "lb2 is MASTER (was BACKUP)" in text]
    assert to_lb2 and "203.0.113.10, 203.0.113.20, 203.0.113.30" in to_lb2[-1] and "move from lb1 to lb2" in to_lb2[-1]
    mails = [mail for mail in services.smtp.mailbox.messages if "lb2 is MASTER" in mail["body"]]
    assert mails and all(mail["tls"] and mail["login"] for mail in mails)


def test_no_request_fails_once_the_vips_have_moved(drill):
    result, _ = drill
    assert result["failback"]["requests"] > 100
    assert result["failback"]["failures"] == 0, (result["failback"], {moment: result[moment] for moment in ("moved", "started", "back")})


def test_the_operator_reads_the_failover_in_history_and_status(drill, salt_master):
    salt_run = salt_master.salt_run_cli(timeout=60)
    history = salt_run.run("lbpair.history", "instance=lbpair_51", "minion=lb2", "--out=txt")
    assert "lb2 BACKUP -> MASTER" in history.stdout and "lb2 MASTER -> FAULT" in history.stdout, history.stdout
    handed_back = [line for line in history.stdout.splitlines() if "lb2 MASTER -> FAULT" in line or "lb2 FAULT -> BACKUP" in line]
    assert handed_back and all("planned" in line for line in handed_back[-2:]), history.stdout  # the graceful failback
    assert "lb1+lb2/lbpair_51" in history.stdout, history.stdout  # the pair its nodes' pillar names, by default
    status = salt_run.run("lbpair.status")
    assert status.returncode == 0, status.stdout
    assert list(status.data["pairs"]) == ["lb1+lb2"], status.data  # learnt from the nodes' pillar: the master lists no nodes
    pair = status.data["pairs"]["lb1+lb2"]["instances"]["lbpair_51"]
    assert (pair["MASTER"], pair["BACKUP"], pair["vips"]) == (["lb1"], ["lb2"], VIPS), status.data
