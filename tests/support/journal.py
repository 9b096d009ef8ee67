"""
What the nodes journalled and the master saw and recorded: the journal of a salt-factories minion
(and a transition written into it, its beacon event sent, as the beacon would), the beacon's
events on the master's bus, the runner's returns, the master's history. Helpers, no fixtures.
"""

import datetime
import json
import time

from lab.beacon_rig import BEACON
from lab.util import wait_until
from saltext.lbpair.master.history import History
from saltext.lbpair.node.journal import Journal

INSTANCE = "lbpair_51"


def minion_journal(minion):
    """The journal of a salt-factories minion, where its ``lbpair_journal`` options put it."""
    options = minion.config.get("lbpair_journal")  # an ImmutableDict, which the schema takes for no mapping
    return Journal.from_options(None if options is None else dict(options), minion.config["cachedir"])


def journal(minion):
    """The transitions in a minion's journal, oldest first."""
    return minion_journal(minion).entries()


def journal_transition(minion, state, previous, instance=INSTANCE):
    """Journal a transition on a salt-factories ``minion`` as its beacon would; returns the entry with its seq."""
    entry = {
        "instance": instance, "interface": "eth0", "vrid": 51, "family": "IPv4", "state": state,
        "previous_state": previous, "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "time": time.time(), "source": "live", "vips": ["203.0.113.10", "203.0.113.20", "203.0.113.30"], "meta": {},
    }  # fmt: skip
    return minion_journal(minion).append(entry)


def fire_beacon_events(minion, entries, claimed=None):
    """
    ``minion`` sends its master the beacon's events for journal ``entries`` (one ``salt-call``), in
    the name of the minion id ``claimed`` if given.
    """
    who = claimed or minion.id
    events = [
        {"tag": f"salt/beacon/{who}/{BEACON}/{e['instance']}/{e['state']}", "data": {**e, "id": who}} for e in entries
    ]
    ret = minion.salt_call_cli(timeout=30).run("event.fire_master", "{}", "lbpair/test", preload=json.dumps({"events": events}))
    assert ret.returncode == 0, ret.stderr


def states_of(entries, instance=INSTANCE):
    """``(previous_state, state)`` of each entry of *instance*."""
    return [(entry["previous_state"], entry["state"]) for entry in entries if entry["instance"] == instance]


def beacon_events(listener, master, minion_id, since, kind="*"):
    """The beacon's events of ``minion_id`` that reached ``master``'s bus after ``since``, by seq."""
    pattern = (master.id, f"salt/beacon/{minion_id}/{BEACON}/{kind}")
    events = list(listener.get_events([pattern], after_time=since))
    return sorted(events, key=lambda event: (event.data.get("seq", 0), event.stamp))


def wait_beacon_events(listener, master, minion_id, seqs, since=0.0, kind=f"{INSTANCE}/*", timeout=15):
    """
    The beacon's events of ``minion_id`` (of *kind*) since ``since``, once those of every
    sequence number in *seqs* reached the master (not merely any new one); all of them at the
    deadline, for the caller's assertion to show.
    """

    def arrived():
        events = beacon_events(listener, master, minion_id, since, kind)
        return events if {event.data.get("seq") for event in events} >= set(seqs) else None

    try:
        return wait_until(arrived, timeout, interval=0.1, what=f"seqs {sorted(seqs)} of {minion_id}")
    except TimeoutError:
        return beacon_events(listener, master, minion_id, since, kind)


def runner_returns(listener, master, fun, since):
    """
    The returns of the lbpair runner's ``fun`` that ``master`` ran after ``since`` (epoch). The
    reactor's ``on_beacon`` only queues the event: its reactions are what the background worker
    did with each event (its ``lbpair/worker/done`` events); ``flush``'s are those rounds too.
    """
    events = listener.get_events([(master.id, "salt/run/*/ret")], after_time=since)
    returns = [event.data["return"] for event in events if event.data.get("fun") == f"runner.lbpair.{fun}"]
    rounds = [event.data for event in listener.get_events([(master.id, "lbpair/worker/done")], after_time=since)]
    if fun == "on_beacon":
        queued = [ret for ret in returns if isinstance(ret, dict) and "queued" in ret]
        return [ret for ret in returns if ret not in queued] + [item["outcome"] for done in rounds for item in done["done"] if "event" in item]
    return returns + rounds if fun == "flush" else returns


def history(path):
    """The master's history records at *path*, oldest first."""
    return History(path).read()


def transitions(salt_cli, node, since=0):
    """The transitions *node*'s beacon journalled after seq *since*, asked through Salt (``lbpair_keepalived.transitions``)."""
    entries = salt_cli.run("lbpair_keepalived.transitions", f"since={since}", minion_tgt=node, _timeout=30).data
    assert isinstance(entries, list), entries
    return entries


def last_seq(salt_cli, node):
    """The seq of *node*'s newest journalled transition (0: none)."""
    entries = transitions(salt_cli, node)
    return entries[-1]["seq"] if entries else 0
