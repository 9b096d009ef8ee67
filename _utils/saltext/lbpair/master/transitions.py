"""
The events and records of the reactions, pure: whether a beacon event may be trusted, whether a
node's journal confirms it, what the journal says of a claim, the warnings the beacon
sends and how each is confirmed, and the split of Salt's job returns. Nothing here asks a node,
reads a file or keeps state.
"""

import enum
import ipaddress
import logging
import re

from saltext.lbpair.master.node_client import SILENT_WINDOW
from saltext.lbpair.master.records import UNKNOWN_STATE, transitions
from saltext.lbpair.model import schema
from saltext.lbpair.model.keepalived_model import VrrpState

log = logging.getLogger(__name__)

MAX_VIPS = 255  # keepalived's limit for one virtual_ipaddress block


class Verdict(enum.StrEnum):
    """What a node's own journal says of an event (:func:`journal_verdict`); equal to its value as text."""

    CONFIRMED = "confirmed"
    REFUTED = "refuted"  # the journal answered and holds no such transition
    UNCONFIRMED = "unconfirmed"  # the node did not answer


STATES = tuple(state.value for state in VrrpState)
TAG_RE = re.compile(r"salt/beacon/(?P<minion>[^/\s]+)/lbpair_vrrp/(?P<instance>[^/\s]+)/(?P<state>[^/\s]+)")
MAX_ROGUE_SHOWN = 10
JOURNAL_FUNCTION = "lbpair_keepalived.transitions"
STATUS_FUNCTION = "lbpair_keepalived.status"


def trust_problem(tag, data, nodes):
    """Why a beacon event must be ignored (a message), or ``None`` if it may trigger a reaction."""
    match = TAG_RE.fullmatch(tag or "")
    if not match:
        return f"unexpected tag {tag!r}"
    minion = match["minion"]
    if minion not in nodes:
        return f"{minion!r} is not a node of the pair"
    if data.get("id") not in (None, minion):
        return f"the tag names {minion!r} but the data claims {data.get('id')!r}"
    if match["instance"] == "warning":
        return None
    if data.get("instance") != match["instance"] or data.get("state") != match["state"]:
        return "the tag and the data disagree on the instance or the state"
    return entry_problem(data)


def entry_problem(entry):
    """
    Why a transition (an event's data or a journal entry: text a node controls) is malformed,
    or ``None``. Only a well-formed transition is recorded, announced or trusted.
    """
    checks = (
        ("instance", lambda value: isinstance(value, str) and schema.NAME_RE.fullmatch(value)),
        ("state", lambda value: value in STATES),
        ("previous_state", lambda value: value in (*STATES, UNKNOWN_STATE)),
        ("seq", lambda value: isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**53),
        ("vips", _addresses),
    )
    for key, valid in checks:
        if not valid(entry.get(key)):
            return f"{key} is missing or malformed"
    return None


def _addresses(vips):
    if not isinstance(vips, list) or len(vips) > MAX_VIPS:
        return False
    try:
        return all(isinstance(vip, str) and ipaddress.ip_address(vip) for vip in vips)
    except ValueError:
        return False


def log_text(value):
    """A value a node controls, for a log line: one line, bounded, control characters escaped."""
    return repr(str(value)[:200])


def unconfirmed_reason(silent, failure):
    """Why a node did not confirm an event, for the log: not asked (*silent*), its job's *failure*, or no answer."""
    if silent:
        return f"not asked: it left a job unanswered in the last {SILENT_WINDOW} s"
    return "no answer" if failure is None else log_text(failure)


def claim_outcome(claim, journal_entry, since):
    """What a node's journal (entries after ``since``) says of one of its claims."""
    if journal_entry is not None:
        same = all(journal_entry.get(key) == claim.get(key) for key in ("instance", "state"))
        return "confirmed by the node's journal" if same else "refuted: the journal holds another transition"
    if claim["seq"] <= since:
        return "superseded: the history already holds the node's transitions up to that seq"
    return "refuted: not in the node's journal"


def _keepalived_not_on_bus(status):
    if isinstance(status, dict) and any(isinstance(info, dict) and info.get("source") == "json" for info in status.values()):
        return "keepalived runs but is not on D-Bus: restart keepalived (lbpair follows its JSON dump meanwhile)"
    return None


def _rogue_vrrp(senders):
    if not _addresses(senders) or not senders:
        return None
    shown = ", ".join(senders[:MAX_ROGUE_SHOWN]) + (" ..." if len(senders) > MAX_ROGUE_SHOWN else "")
    return f"VRRP adverts from outside the pair were dropped: {shown}"


#: the warnings lbpair's beacon sends, and how the master confirms each with the node's own job return
WARNING_CHECKS = {
    "keepalived_not_on_bus": {"function": STATUS_FUNCTION, "confirms": _keepalived_not_on_bus},
    "rogue_vrrp": {"function": "lbpair_firewall.rogue_senders", "confirms": _rogue_vrrp},
}


def journal_verdict(event, journal):
    """
    Compare an event with the node's own journal (a job return).

    Returns ``("confirmed", entry)``, ``("refuted", None)`` when the journal
    answered and holds no such transition, or ``("unconfirmed", None)`` when the
    node did not answer.
    """
    if not isinstance(journal, list):
        return Verdict.UNCONFIRMED, None
    for entry in journal:
        if isinstance(entry, dict) and entry.get("seq") == event["seq"]:
            same = entry.get("instance") == event["instance"] and entry.get("state") == event["state"]
            return (Verdict.CONFIRMED, entry) if same and entry_problem(entry) is None else (Verdict.REFUTED, None)
    return Verdict.REFUTED, None


def previous_master(records, record, nodes):
    """
    The node the VIPs came from: the last other node the history (``records``, JSON mappings)
    saw as MASTER of ``record``'s instance (a :class:`~saltext.lbpair.master.records.Transition`); without one, in a pair, the other node.
    """
    for earlier in reversed(transitions(records)):
        if (
            earlier.instance == record.instance
            and earlier.minion != record.minion
            and VrrpState.MASTER in (earlier.state, earlier.previous_state)
        ):
            return earlier.minion
    others = [node for node in nodes if node != record.minion]
    return others[0] if len(others) == 1 else None


def not_synced(reason):
    """Whether a failed job says the function is unknown there (lbpair's modules are not synced)."""
    return isinstance(reason, str) and reason.endswith("is not available.")


def split_returns(fun, returns):
    """
    Salt's full job returns (``{minion: {"ret", "retcode"}}``) as ``({minion: return},
    {minion: failure reason})``: the successful jobs' returns and the others' reasons.
    """
    answers, failures = {}, {}
    for minion, ret in (returns or {}).items():
        if isinstance(ret, dict) and ret.get("retcode", 0) == 0:
            answers[minion] = ret.get("ret")
            continue
        failures[minion] = ret.get("ret") if isinstance(ret, dict) else ret
        if not_synced(failures[minion]):
            log.info("lbpair: %s is not on %s yet (saltutil.sync_all)", fun, minion)
        else:
            log.warning("lbpair: %s on %s failed: %s", fun, minion, failures[minion])
    return answers, failures
