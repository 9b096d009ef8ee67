"""
A node hands its VIPs to its peer with no failed request (``lbpair.switchover``).

On the node that holds the VIPs, in order:

1. new TCP connections to the VIPs are dropped, not refused: a client sends its
   SYN again one second later, and by then to the node that took the VIPs over;
2. the connections under way finish (``DRAIN``);
3. the node defers (its priority drops below its peer's, track file ``defer``)
   and goes to FAULT for a moment (track file ``handover``): keepalived sends a
   priority-0 advert and removes the VIPs, and the peer takes them over after
   its skew time (under one advert interval);
4. FAULT ends: the node is BACKUP, deferring, so it does not take the VIPs back;
   new connections are no longer held.

A request is at most about a second slower; only a connection still open after
``DRAIN`` (a long download, an idle keep-alive) is cut.

A handover cut short (the minion killed midway) would leave the node in FAULT and
new connections held: :func:`undo_interrupted` (run by the
``lbpair_keepalived.handover_undone`` state, so by any highstate) undoes that
unless a handover is under way.
"""

import time

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import pillar
from saltext.lbpair.model.keepalived_model import VrrpState
from saltext.lbpair.node import firewall, track

LOCK = "/run/lbpair/handover.lock"  # held while a handover is under way

DRAIN = 0.1  # s: the lab's requests take milliseconds; the peer must hold the VIPs before a held SYN is sent again (1 s)
FAULT_TIMEOUT = 5  # s for keepalived to read the track file and go to FAULT
TAKEOVER_MARGIN = 0.5  # s beyond one advert interval (the peer's longest skew time)


def hand_over(model, local, write_track, sleep=time.sleep, lock=LOCK, defer=True):
    """
    Hand this node's VIPs to its peer (see the module). ``local``: a
    :class:`~saltext.lbpair.node.keepalived_process.Local`; ``write_track(name, value)`` writes one of
    lbpair's keepalived track files. ``defer=False``: the node does not defer afterwards
    (a failback to the preferred node: the failback delay keeps this one from preempting
    while the peer's check rises). Returns what was done, step by step, with times.
    Refused unless this node is MASTER of an instance (active/active: FAULT hands
    over every instance it holds), or while another handover is under way.
    """
    states = {name: info.get("state") for name, info in local.status().items()}
    if VrrpState.MASTER not in states.values():
        shown = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
        raise LbpairError(f"this node holds no VIPs to hand over ({shown})")
    with store.try_locked(lock) as mine:
        if not mine:
            raise LbpairError("a handover is under way on this node already")
        return _hand_over(model, local, write_track, sleep, defer)


def _hand_over(model, local, write_track, sleep, defer):
    vips = pillar.vips(model)
    started = time.monotonic()
    steps = []

    def step(what):
        steps.append({"step": what, "after_ms": round(1000 * (time.monotonic() - started))})

    firewall.hold_new_connections(model, vips)
    step("new connections to the VIPs held")
    try:
        sleep(DRAIN)
        if defer:
            write_track("defer", 1)
        write_track("handover", 1)
        step("deferring, FAULT asked" if defer else "FAULT asked")
        _wait_for_fault(local, sleep)
        step("FAULT: the VIPs are released")
        sleep(float(model["vrrp"]["advert_int"]) + TAKEOVER_MARGIN)
    finally:
        write_track("handover", 0)
        firewall.release_new_connections(model)
    step(f"BACKUP{', deferring' if defer else ''}; new connections no longer held")
    return steps


def _wait_for_fault(local, sleep):
    deadline = time.monotonic() + FAULT_TIMEOUT
    while time.monotonic() < deadline:
        states = {info.get("state") for info in local.status().values()}
        if states == {VrrpState.FAULT}:
            return
        sleep(0.05)
    raise LbpairError(f"keepalived did not go to FAULT within {FAULT_TIMEOUT} s (is the handover track file configured?)")


def undo_interrupted(model, test=False, lock=LOCK, track_directory=track.DIRECTORY):
    """
    Undo what a handover cut short left behind, unless one is under way: the
    ``handover`` track file back to 0, new connections no longer held. Returns
    ``{"result", "comment", "changes"}`` as a state does, ``changes`` naming what was
    undone under ``interrupted_handover`` (would be, with ``test``: only the track
    file is looked at).
    """
    undone = _undo_interrupted(model, test, lock, track_directory)
    if undone is None:
        return {"result": True, "comment": "a handover is under way: nothing to undo", "changes": {}}
    if not undone:
        return {"result": True, "comment": "no handover was cut short", "changes": {}}
    changes = {"interrupted_handover": undone}
    if test:
        return {"result": None, "comment": "a handover cut short would be undone", "changes": changes}
    return {"result": True, "comment": "a handover cut short is undone", "changes": changes}


def _undo_interrupted(model, test, lock, track_directory):
    """What :func:`undo_interrupted` undid (would undo, with ``test``); None while a handover is under way."""
    with store.try_locked(lock) as free:
        if not free:
            return None
        undone = ["handover track file"] if track.read(track.HANDOVER, track_directory) else []
        if test:
            return undone
        if undone:
            track.write(track.HANDOVER, 0, track_directory)
        if firewall.release_new_connections(model):
            undone.append("held new connections")
        return undone
