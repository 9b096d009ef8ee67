"""
Storms: many pairs failing over at once (a switch reboots) must not flood a channel. Each channel
destination (the block's webhook, or a pair's own; the same for mail) sends, within a storm window,
the transition messages of the first two pairs as usual (flap damping per instance applies first);
the messages of any further pair are held and sent as one summary when the window ends (by the
background job). Flap-damping summaries pass the same gate: after a storm in which every pair
flapped, their windows end together, and the summaries of the pairs beyond the first two are
folded into one storm summary too. Alarms, claims and warnings are never held.

The storm's state lives in the reaction state under keys that name the channel and its
destination (``storm:webhook:default``, ``storm:smtp:pair=shop``), never a secret.
"""

import logging

from saltext.lbpair.master import notify
from saltext.lbpair.master.notify import Admission
from saltext.lbpair.master.records import RecordKind

log = logging.getLogger(__name__)

WINDOW = 5  # s: short, so that a message held for the summary is at most this late
PAIRS_BEFORE_A_STORM = 2  # pairs whose messages go out one by one in a window: one pair's failover, or two, is no storm
PREFIX = "storm:"
DEFAULT = "default"
KINDS = (RecordKind.TRANSITION, "summary")  # the kinds of notice a storm may hold: a failover's, and their flap-damping summaries
HELD = "held for the storm's summary"


def key(channel, settings):
    """The storm key of ``channel`` for the pair of ``settings`` (its own destination, or the block's)."""
    pair = settings["pair"]
    source = f"pair={pair}" if channel in settings["pairs"].get(pair, {}) else DEFAULT
    return f"{PREFIX}{channel}:{source}"


def parse(storm_key):
    """``(channel, pair)`` of a storm key (``pair`` ``None``: the block's destination), or ``None`` for another key."""
    if not storm_key.startswith(PREFIX):
        return None
    channel, _, source = storm_key[len(PREFIX) :].partition(":")
    return channel, (source[len("pair=") :] if source.startswith("pair=") else None)


def admit(state, storm_key, now, record):
    """
    Whether the message of ``record`` (the brief of a transition or of a flap-damping summary,
    naming its ``pair``) goes out through the destination of ``storm_key`` now: an
    :class:`~saltext.lbpair.master.notify.Admission`.
    Updates ``state`` (``{storm key: slot}``) in place. The messages of the first
    :data:`PAIRS_BEFORE_A_STORM` pairs of a window go out; those of any further pair are held.
    """
    slot = state.get(storm_key)
    if slot is None or (now >= slot["until"] and not slot["held"]):
        slot = state[storm_key] = {"until": now + WINDOW, "pairs": [], "held": []}
    if record["pair"] in slot["pairs"] or len(slot["pairs"]) < PAIRS_BEFORE_A_STORM:
        slot["pairs"] = sorted({*slot["pairs"], record["pair"]})
        return Admission.SEND
    slot["held"].append(record)
    return Admission.HOLD_FIRST if len(slot["held"]) == 1 else Admission.HOLD


def due(state, now):
    """The storm keys whose window ended with messages held."""
    return [storm_key for storm_key, slot in state.items() if slot["held"] and now >= slot["until"]]


def release(state, storm_key, now):
    """Take the messages held for ``storm_key``'s summary; a new window starts, which lets the first pairs through again."""
    slot = state.get(storm_key) or {"held": []}
    held = slot["held"]
    if held:
        state[storm_key] = {"until": now + WINDOW, "pairs": [], "held": []}
    return held


def brief(notice, pair):
    """
    What a storm's summary says of ``notice`` of ``pair``: of a transition, or of a flap-damping
    summary (``summary``: the transitions it counts, ``first`` and ``last``: when).
    """
    if notice.kind == "summary":
        held = notice.details["transitions"]
        times = {"summary": notice.details["suppressed"], "first": held[0]["at"], "last": held[-1]["at"]}
        return {**times, "instance": notice.instance, "pair": pair}
    fields = {name: notice.details.get(name) for name in ("minion", "seq", "state", "previous_state", "at")}
    return {**fields, "instance": notice.instance, "pair": pair}


def send_summary(store, storm_key, settings, now):
    """The summary of what a storm held back for the destination of ``storm_key`` (``settings``: a pair's or the block's), sent."""
    channel, _ = parse(storm_key)
    held = store.release_storm(storm_key, now)
    if not held:
        return []
    log.warning("lbpair: a storm: %d messages held back for %s, sent as one", len(held), storm_key)
    return [notify.deliver(notify.storm_notice(held, WINDOW), settings, only=[channel])]
