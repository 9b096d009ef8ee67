"""
lbpair's failover reactions, end to end: beacon events reach a real salt-master,
its reactor calls the ``lbpair`` runner, which checks with the real keepalived
nodes through the minions and updates a real named, posts to a real webhook
receiver and sends mail through a real SMTP server.
"""

import json
import time

from lab import netns
from lab.util import fill, wait_until
from tests.integration.reactor.conftest import DAMPING_WINDOW, INSTANCE, WEBHOOK_TOKEN

PAIR_NAME = "lb1+lb2"  # the name of the pair lbpair_reactions:nodes lists


def test_master_transition_updates_dns_notifies_and_is_recorded(lab, salt_run_cli):
    lab.pair.make_master("lb2")
    entry = lab.transition("lb2", "MASTER", "BACKUP")

    wait_until(lambda: lab.named.query("active", "A") == ["192.0.2.12"], 30, what="DNS A record on lb2")
    assert lab.named.query("active", "TXT") == ['"lb2"']

    wait_until(lambda: lab.webhook.posts and lab.mailbox.messages, 15, what="webhook and mail")
    text = lab.webhook.texts()[0]
    for part in ("lbpair_51", "lb2 is MASTER", "from lb1 to lb2", "203.0.113.10", "seen live", "confirmed by the node"):
        assert part in text, text
    mail = lab.mailbox.messages[0]
    assert mail["tls"] and mail["login"] and mail["to"] == ["ops@pair.example"]
    assert "lb2 is MASTER" in mail["body"] and "from lb1 to lb2" in mail["body"]

    record = lab.wait_history(lambda h: [r for r in h if r["kind"] == "transition"], what="history entry")[0]
    assert (record["minion"], record["seq"], record["state"]) == ("lb2", entry["seq"], "MASTER")
    assert record["seen"] == "live" and record["confirmed"] is True

    timeline = lab.salt_run("lbpair.history", "minion=lb2")  # the operator's default output
    assert "lbpair_51  lb2 BACKUP -> MASTER" in timeline, timeline
    as_json = salt_run_cli.run("lbpair.history", "instance=lbpair_51", "--out=json")
    assert [(r["minion"], r["seq"]) for r in as_json.data if r["kind"] == "transition"] == [("lb2", entry["seq"])]
    dns = [r for r in lab.history() if r["kind"] == "dns"]
    assert dns and dns[-1]["ok"] and dns[-1]["minion"] == "lb2"


def test_secrets_never_leave_the_master_config(lab, salt_run_cli):
    lab.pair.make_master("lb2")
    started = time.time()
    lab.transition("lb2", "MASTER", "BACKUP")
    lab.wait_reactions("on_beacon", started, 1)
    returns = json.dumps(lab.reactions("on_beacon", started))
    config = salt_run_cli.run("lbpair.check_config").stdout
    history = open(lab.history_path, encoding="utf-8").read()
    log = open(lab.master.config["log_file"], encoding="utf-8", errors="replace").read()
    for secret in (lab.named.secret, lab.smtp_password, WEBHOOK_TOKEN):
        for where, text in (("runner returns", returns), ("check_config", config), ("history", history), ("log", log)):
            assert secret not in text, f"a secret appears in the {where}"
    assert "**********" in config


def test_status_shows_master_backup_and_vips(lab, salt_run_cli):
    lab.transition("lb1", "MASTER", "BACKUP")  # the VIPs as the node's journal names them
    lab.wait_history(lambda h: h, what="a transition")
    ret = salt_run_cli.run("lbpair.status", "--out=json")
    assert ret.returncode == 0, ret.stdout
    assert list(ret.data["pairs"]) == [PAIR_NAME] and ret.data["problems"] == []  # the one pair lbpair_reactions:nodes lists
    instance = ret.data["pairs"][PAIR_NAME]["instances"][INSTANCE]
    assert instance["MASTER"] == ["lb1"] and instance["BACKUP"] == ["lb2"] and instance["problem"] is None
    assert "203.0.113.10" in instance["vips"]
    assert ret.data["claims"] == {} and ret.data["open_reactions"] == {} and ret.data["history_bad_lines"] == 0


def test_damaged_history_lines_are_skipped_and_counted(lab, salt_run_cli):
    lab.transition("lb1", "MASTER", "BACKUP")
    lab.wait_history(lambda h: h, what="a transition")
    with open(lab.history_path, "ab") as history:
        history.write(b'[1, 2]\n{"kind": "transition", "minion": "lb2", "se')  # not an object, then a crash
    lab.transition("lb2", "BACKUP", "MASTER")
    lab.wait_history(lambda h: len([r for r in h if r["kind"] == "transition"]) == 2, what="the next transition")
    assert "(2 damaged lines skipped)" in lab.salt_run("lbpair.history")
    assert salt_run_cli.run("lbpair.status").data["history_bad_lines"] == 2


def test_split_brain_is_critical(lab, salt_run_cli):
    netns.run(lab.pair.nodes["lb2"].namespace, ["iptables", "-A", "INPUT", "-p", "vrrp", "-j", "DROP"])
    lab.pair.wait_masters(["lb1", "lb2"])
    lab.transition("lb2", "MASTER", "BACKUP")
    wait_until(lambda: any("CRITICAL" in t and "split brain" in t for t in lab.webhook.texts()), 30, what="critical webhook")
    wait_until(lambda: any("CRITICAL" in m["body"] and "split brain" in m["body"] for m in lab.mailbox.messages), 15)
    assert [r["kind"] for r in lab.history()].count("split_brain") == 1
    status = salt_run_cli.run("lbpair.status", "--out=json")
    assert status.returncode != 0 and status.data["pairs"][PAIR_NAME]["instances"][INSTANCE]["problem"] == "split_brain"
    assert status.data["problems"] == [f"{PAIR_NAME}: {INSTANCE}: split_brain"]


def test_no_master_is_critical(lab, salt_run_cli):
    for node in lab.pair.nodes.values():
        netns.ip(node.namespace, "link", "set", "eth0", "down")
    wait_until(lambda: lab.pair.masters() == [], 20, what="no VIP holder")
    lab.transition("lb1", "FAULT", "MASTER")
    wait_until(lambda: any("CRITICAL" in t and "no MASTER" in t for t in lab.webhook.texts()), 30, what="critical webhook")
    wait_until(lambda: any("no MASTER" in m["body"] for m in lab.mailbox.messages), 15)
    status = salt_run_cli.run("lbpair.status", "--out=json")
    assert status.returncode != 0 and status.data["pairs"][PAIR_NAME]["instances"][INSTANCE]["problem"] == "no_master"


def test_burst_of_transitions_gives_one_message_and_a_summary(lab):
    started = time.time()
    states = ["MASTER", "BACKUP"] * 10
    entries = [lab.journal("lb2", state, "BACKUP" if state == "MASTER" else "MASTER") for state in states]
    lab.fire("lb2", entries)  # one salt-call: the 20 events leave together, after its start-up (1-2.5 s)
    assert time.time() - started < DAMPING_WINDOW / 2, "the burst must fit well inside one damping window"
    lab.wait_history(lambda h: len([r for r in h if r["kind"] == "transition"]) == 20, what="20 history entries")
    lab.wait_reactions("on_beacon", started, 20, timeout=40)
    # The reactor's threads take the events in any order. The first one is announced, and so is
    # the first MASTER if the first was not one; the background job sends the summary of the
    # rest when the damping window ends.
    texts = wait_until(lambda: any("held back" in t for t in lab.webhook.texts()) and lab.webhook.texts(),
                       DAMPING_WINDOW + 20, what="the summary")  # fmt: skip
    time.sleep(1)  # nothing more comes
    assert lab.webhook.texts() == texts
    announced = texts[:-1]
    assert len(announced) in (1, 2) and any("lb2 is MASTER" in t for t in announced), texts
    assert f"{20 - len(announced)} more transitions held back" in texts[-1], texts[-1]
    assert len(lab.mailbox.messages) == len(texts)
    background = wait_until(lambda: [r for r in lab.reactions("flush", started) if isinstance(r, dict)], 20, what="the job's return")
    assert any(item.get("summary") == f"{PAIR_NAME}/{INSTANCE}" for ret in background for item in ret["done"]), background
    assert sorted(r["seq"] for r in lab.transitions()) == sorted(e["seq"] for e in entries)


def test_events_from_strangers_and_forgeries_change_nothing(lab):
    dns_before = (lab.named.query("active", "A"), lab.named.query("active", "TXT"))
    started = time.time()
    stranger = lab.journal("lb3", "MASTER", "BACKUP")
    lab.fire("lb3", [stranger])
    lab.pair.make_master("lb2")  # even with lb2 really MASTER, only lb2 may say so
    real_last = lab.journal("lb2", "BACKUP", "MASTER")
    forged_next = {**real_last, "state": "MASTER", "previous_state": "BACKUP", "seq": real_last["seq"] + 1}
    forged_known = {**real_last, "state": "MASTER", "previous_state": "BACKUP"}
    lab.fire("lb1", [forged_next, forged_known], claimed="lb2")
    returns = lab.wait_reactions("on_beacon", started, 3)
    assert all("ignored" in ret for ret in returns), returns
    assert lab.history() == []
    assert lab.webhook.posts == [] and lab.mailbox.messages == []
    assert (lab.named.query("active", "A"), lab.named.query("active", "TXT")) == dns_before


def test_transition_while_master_is_down_is_caught_up_late(lab):
    started = time.time()
    lab.transition("lb2", "BACKUP", "MASTER")  # seen live: the history knows lb2 up to here
    lab.wait_history(lambda h: len(h) == 1, what="the live transition")
    with lab.master.stopped():
        lab.pair.make_master("lb2")
        missed = lab.journal("lb2", "MASTER", "BACKUP")
    record = lab.wait_history(
        lambda h: [r for r in h if r["kind"] == "transition" and (r["minion"], r["seq"]) == ("lb2", missed["seq"])],
        timeout=60,
        what="the missed transition",
    )[0]
    assert record["seen"] == "late" and record["confirmed"] is True and record["state"] == "MASTER"
    late = wait_until(lambda: [t for t in lab.webhook.texts() if "lb2 is MASTER" in t and "caught up late" in t or
                               "lb2 BACKUP -> MASTER" in t and "(late)" in t], 30, what="late notification")
    assert late
    # Right after a master restart a minion's returns can go unheard for a while: the pair check then
    # waits for the brief ask and the confirm timeout (3 + 10 s), each followed by Salt's find_job.
    wait_until(lambda: lab.named.query("active", "A") == ["192.0.2.12"], 40, what="DNS after catch-up")
    assert time.time() - started < 120


def test_dns_update_is_retried_reported_and_later_works(lab):
    lab.named.stop()
    try:
        lab.pair.make_master("lb2")
        lab.transition("lb2", "MASTER", "BACKUP")
        failed = lab.wait_history(lambda h: [r for r in h if r["kind"] == "dns"], what="DNS outcome")[0]
        assert failed["ok"] is False and failed["attempts"] == 3, failed
        wait_until(lambda: any("CRITICAL" in t and "DNS update to lb2 failed" in t for t in lab.webhook.texts()), 15)
    finally:
        lab.named.start()
    lab.pair.make_master("lb1")
    lab.transition("lb1", "MASTER", "BACKUP")
    wait_until(lambda: lab.named.query("active", "A") == ["192.0.2.11"], 30, what="DNS A record on lb1")
    assert lab.named.query("active", "TXT") == ['"lb1"']


def _event(entry, minion):
    """The tag and data of ``minion``'s beacon event for a journal entry (as the operator replays it)."""
    return f"salt/beacon/{minion}/lbpair_vrrp/{entry['instance']}/{entry['state']}", json.dumps({**entry, "id": minion})


def test_an_event_its_node_cannot_confirm_is_a_claim_until_its_journal_answers(lab, salt_run_cli):
    dns_before = lab.named.query("active", "A")
    started = time.time()
    real = lab.journal("lb2", "BACKUP", "MASTER")  # lb2's journal: seq 1 is what it really did
    with lab.minions["lb2"].stopped():  # lb2 cannot answer: lb1 claims things in its name
        forged = {**real, "state": "MASTER", "previous_state": "BACKUP", "seq": 2**40}
        lab.fire("lb1", [forged, {**forged, "seq": 2**40 + 1}], claimed="lb2")
        returns = lab.wait_reactions("on_beacon", started, 2, timeout=60)
        assert sorted(ret["claim"]["seq"] for ret in returns) == [2**40, 2**40 + 1], returns
        assert [r["kind"] for r in lab.history()] == ["claim", "claim"]
        assert lab.named.query("active", "A") == dns_before
        claims = [t for t in lab.webhook.texts() if "has not confirmed" in t]
        assert len(claims) == 1 and not [t for t in lab.webhook.texts() if "is MASTER" in t], lab.webhook.texts()
        status = salt_run_cli.run("lbpair.status")  # non-zero: lb2 does not answer
        assert sorted(claim["seq"] for claim in status.data["claims"]["lb2"]) == [2**40, 2**40 + 1], status.data  # two threads: any order
    # lb2 is back: its journal settles the claims and its real transition is recorded
    settled = lab.wait_history(lambda h: [r for r in h if r["kind"] == "claim_settled"], timeout=90, what="claims settled")
    assert {r["outcome"] for r in settled} == {"refuted: not in the node's journal"}
    record = lab.wait_history(lambda h: [r for r in h if r["kind"] == "transition"], what="the real transition")[0]
    assert (record["seq"], record["state"], record["confirmed"]) == (real["seq"], "BACKUP", True)


def test_a_failing_channel_stops_no_other_step_and_a_replay_completes_it(lab):
    lab.webhook.failing = True
    try:
        lab.pair.make_master("lb2")
        entry = lab.transition("lb2", "MASTER", "BACKUP")
        wait_until(lambda: lab.named.query("active", "A") == ["192.0.2.12"], 30, what="DNS on lb2 all the same")
        wait_until(lambda: any("step webhook failed" in m["body"] for m in lab.mailbox.messages), 30, what="alarm by mail")
        assert any("lb2 is MASTER" in m["body"] for m in lab.mailbox.messages)
    finally:
        lab.webhook.failing = False
    assert lab.webhook.posts == []
    tag, data = _event(entry, "lb2")
    lab.salt_run("lbpair.on_beacon", tag, data, "wait=True")  # the operator replays the event: only the webhook is redone
    assert [t for t in lab.webhook.texts() if "lb2 is MASTER" in t]
    assert "duplicate" in lab.salt_run("lbpair.on_beacon", tag, data, "wait=True")
    assert len([m for m in lab.mailbox.messages if "lb2 is MASTER" in m["body"]]) == 1
    assert len(lab.webhook.texts()) == 1 and len(lab.transitions()) == 1


def test_a_full_disk_stops_no_reaction_and_the_event_again_records_it(lab, history_dir):
    filler = fill(history_dir)  # (an append that fits in the last page of a file would still succeed)
    try:
        lab.pair.make_master("lb2")
        started = time.time()
        entry = lab.transition("lb2", "MASTER", "BACKUP")
        wait_until(lambda: lab.named.query("active", "A") == ["192.0.2.12"], 30, what="DNS on lb2 all the same")
        wait_until(lambda: any("step record failed" in t for t in lab.webhook.texts()), 30, what="the alarm")
        # the alarm about the record step goes out first, then the webhook step sends the transition
        wait_until(lambda: [t for t in lab.webhook.texts() if "lb2 is MASTER" in t], 10, what="the transition's message")
        lab.wait_reactions("on_beacon", started, 1)  # the reaction ended (its last step, the pair check, moved DNS)
        assert lab.transitions() == []
    finally:
        filler.unlink()
    started = time.time()
    lab.fire("lb2", [entry])  # the same event again: the record is written, nothing is sent twice
    lab.wait_reactions("on_beacon", started, 1)
    assert [r["minion"] for r in lab.transitions()] == ["lb2"]
    assert len([t for t in lab.webhook.texts() if "lb2 is MASTER" in t]) == 1
    started = time.time()
    lab.fire("lb2", [entry])
    assert lab.wait_reactions("on_beacon", started, 1) == [{"duplicate": ["lb2", entry["seq"]]}]


def test_a_forged_warning_is_not_announced(lab):
    started = time.time()
    tag = "salt/beacon/lb1/lbpair_vrrp/warning/keepalived_not_on_bus"
    ret = lab.minions["lb1"].salt_call_cli(timeout=30).run(
        "event.fire_master", "{}", "lbpair/test",
        preload=json.dumps({"events": [{"tag": tag, "data": {"message": "<!channel> restart me", "id": "lb1"}}]}),
    )  # fmt: skip
    assert ret.returncode == 0, ret.stderr
    assert lab.wait_reactions("on_beacon", started, 1) == [{"ignored": "the node's own status does not confirm it"}]
    assert lab.webhook.posts == [] and lab.mailbox.messages == [] and lab.history() == []
