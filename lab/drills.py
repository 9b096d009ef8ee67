"""
Unplanned failures of the MASTER (lb1) on the lab, and what the pair does about them: for the
bench (timings) and the tests (order of events, failed requests).

Each drill breaks lb1 while the client sends requests to the VIPs, notes when the VIPs are on
lb2 (or that they stayed), mends lb1 and waits until the VIPs are back. A machine's journal gives
keepalived's transitions (``Entering MASTER STATE``) in order.
"""

import contextlib
import re
import time

from lab import netns, scenarios
from lab.util import wait_until

MASTER, PEER = "lb1", "lb2"
REQUEST_TIMEOUT = 2.1  # lab/http_load.py's timeout: a request sent before a snapshot has ended by then
POLL = 0.01  # s between two looks at where the VIPs are
KEEPALIVED_STATE = re.compile(r"\((\S+)\) Entering (\w+) STATE")
PROBE_FAILED = "VRRP_Script(lbpair_probe) failed"


class DrillFailed(RuntimeError):
    """The pair did not do what the drill expects."""


def moment_vips_on(lab, node, vips, timeout=30):
    """The monotonic moment *node* was first seen holding every one of *vips*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.vips_on(node, vips) == vips:
            return time.monotonic()
        time.sleep(POLL)
    raise DrillFailed(f"the VIPs were not on {node} within {timeout} s")


def now_on(lab, node):
    """The machine's clock (epoch seconds), for :func:`transitions`."""
    return float(lab.exec(node, ["date", "+%s.%N"]).stdout)


def keepalived_log(lab, node, since):
    """What keepalived on *node* logged since *since* (its clock)."""
    return lab.exec(node, ["journalctl", "-u", "keepalived", "--since", f"@{since:.3f}", "-o", "cat", "--no-pager"]).stdout


def transitions(lab, node, since, instance=None):
    """keepalived's state changes on *node* since *since* (its clock): ``["FAULT", "BACKUP", ...]``, of *instance* or all."""
    found = KEEPALIVED_STATE.finditer(keepalived_log(lab, node, since))
    return [match.group(2) for match in found if instance in (None, match.group(1))]


def probe_failed(lab, node, since, timeout=10):
    """
    Wait until keepalived on *node* has seen its HAProxy probe fail since *since* (its clock).
    HAProxy started again before that (within about 2 s of a stop) races the probe under way:
    keepalived may leave FAULT when systemd says HAProxy is back, then enter it again for a
    moment when that probe fails.
    """
    wait_until(
        lambda: PROBE_FAILED in keepalived_log(lab, node, since),
        timeout,
        interval=0.2,
        what=f"keepalived on {node} seeing its HAProxy probe fail",
    )


def haproxy(lab, node, action):
    """``stop``/``start`` HAProxy's unit, or send its processes a signal (``KILL``, ``STOP``, ``CONT``)."""
    if action in ("stop", "start"):
        lab.exec(node, ["systemctl", action, "haproxy"])
    else:
        lab.exec(node, ["systemctl", "kill", "-s", action, "haproxy"])


def power_cut(lab, node, vips):
    """
    *node* goes dark at once: its cable first, then its container killed. Killing the container
    alone now and then gives keepalived the moment to send a priority-0 advert (the peer then
    takes over in its skew time), which a real power cut never does.
    """
    lab.cable(node, plugged=False)
    lab.machine(node).power_cut()
    for vip in vips:  # the machine's network namespace outlives it
        netns.run(lab.hosts[node].netns, ["ip", "addr", "del", f"{vip}/32", "dev", "eth0"], check=False)


def power_on(lab, node):
    """*node* boots again on its disk, its cable back in; keepalived and HAProxy start as at any boot."""
    lab.cable(node, plugged=True)
    lab.machine(node).boot_again()


#: how each drill breaks lb1 and mends it: ``(break(lab, vips), mend(lab))``
BREAKS = {
    "stop": (lambda lab, vips: haproxy(lab, MASTER, "stop"), lambda lab: haproxy(lab, MASTER, "start")),
    "hang": (lambda lab, vips: haproxy(lab, MASTER, "STOP"), lambda lab: haproxy(lab, MASTER, "CONT")),
    "power": (lambda lab, vips: power_cut(lab, MASTER, vips), lambda lab: power_on(lab, MASTER)),
}


def sent_between(earlier, later, final):
    """
    The requests sent between two snapshots of the client's counts, how many of them failed as
    ``final`` knows it, and the first failures' ``examples`` (request number, moment, error).
    """
    first, last = earlier["requests"], later["requests"]
    examples = [example for example in final["examples"] if first < int(example.split()[1]) <= last]
    return {"requests": last - first, "failures": sum(1 for number in final["failed"] if first < number <= last), "examples": examples}


def failover(lab, load, vips, kind, settle=1.0):
    """
    Break lb1 (*kind*: a key of :data:`BREAKS`) until the VIPs are on lb2, mend it until they are
    back. Returns ``moved_ms`` (break -> VIPs on lb2), ``back_ms``, the requests sent during the
    failover and how many failed, and lb2's keepalived transitions.
    """
    breaks, mends = BREAKS[kind]
    since, before = now_on(lab, PEER), load.counts()
    broken = time.monotonic()
    breaks(lab, vips)
    moved = moment_vips_on(lab, PEER, vips)
    after = load.counts()
    time.sleep(settle)
    mended = time.monotonic()
    mends(lab)
    back = moment_vips_on(lab, MASTER, vips, timeout=120)
    time.sleep(REQUEST_TIMEOUT)  # a request is counted in the phase it was sent in, failed or not
    return {
        "moved_ms": 1000 * (moved - broken),
        "back_ms": 1000 * (back - mended),
        "failover": sent_between(before, after, load.counts()),
        "peer_transitions": transitions(lab, PEER, since),
    }


def switchover(lab, load, master, vips, node):
    """
    ``salt-run lbpair.switchover to=<node>`` under the client's load (*master*: a
    :class:`lab.salt_master.Master`): returns how long the runner took (it returns once the
    master's history has *node*'s confirmed MASTER), the requests sent meanwhile and how many
    failed, and the runner's timeline.
    """
    before = load.counts()
    asked = time.monotonic()
    moved = master.run("lbpair.switchover", f"to={node}")
    returned = time.monotonic()
    if not isinstance(moved, dict) or not moved.get("moved") or lab.vips_on(node, vips) != vips:
        raise DrillFailed(f"lbpair.switchover to={node}: {moved}")
    after = load.counts()
    time.sleep(REQUEST_TIMEOUT)
    return {
        "returned_ms": 1000 * (returned - asked),
        "requests": sent_between(before, after, load.counts()),
        "timeline": moved["timeline"],
    }


def peer_settled(lab, timeout=10):
    """
    Wait until lb2's keepalived is BACKUP in the seed's instance: a graceful failback ends with a
    moment of FAULT on it. (Its last transition of all may be in an instance removed since.)
    """
    wait_until(lambda: transitions(lab, PEER, 0, scenarios.SEED_INSTANCE)[-1:] == ["BACKUP"], timeout, interval=0.2, what=f"{PEER} BACKUP")


def healed_crash(lab, load, vips, watch=3.0):
    """
    SIGKILL lb1's HAProxy (systemd starts it again): returns the requests sent in the *watch*
    seconds after and how many failed, keepalived's transitions on both nodes, and where the VIPs are.
    """
    peer_settled(lab)
    since = {node: now_on(lab, node) for node in (MASTER, PEER)}
    before = load.counts()
    haproxy(lab, MASTER, "KILL")
    time.sleep(watch)
    after = load.counts()
    time.sleep(REQUEST_TIMEOUT)
    return {
        "requests": sent_between(before, after, load.counts()),
        "transitions": {node: transitions(lab, node, moment) for node, moment in since.items()},
        "vips_on_master": lab.vips_on(MASTER, vips) == vips,
    }


@contextlib.contextmanager
def vrrp_cut(lab, nodes=(MASTER, PEER)):
    """VRRP between the nodes dropped (an iptables rule on top of INPUT on each) while inside."""
    rule = ["INPUT", "-p", "vrrp", "-m", "comment", "--comment", "lab: VRRP cut", "-j", "DROP"]
    for node in nodes:
        lab.exec(node, ["iptables", "-I", *rule])
    try:
        yield
    finally:
        for node in nodes:
            lab.exec(node, ["iptables", "-D", *rule], check=False)
