"""
The master's look at the nodes' TLS certificates (``salt-run lbpair.certificates``, scheduled
daily): a warning ``certificates:warn_days`` before one expires, recorded in the history and
sent through the reactions' channels at most once a day per certificate and node.

What a node answers is untrusted: only names that pass the schema, an ISO date and a number of
days are used, and the message is built from those alone.
"""

import datetime
import time

from lbpair_lib import notify, reaction_state, schema
from lbpair_lib.errors import InvalidValue
from lbpair_lib.times import iso_utc

FUNCTION = "lbpair_haproxy.certificates"
QUIET = 24 * 3600  # s between two messages about one certificate of one node


def _row(minion, service, name, row):
    """A validated warning row of ``minion``'s report, or None if it warns of nothing (or is malformed)."""
    try:
        schema.name(service, "service")
        schema.name(name, "certificate")
        if not isinstance(row, dict) or row.get("warning") is not True:
            return None
        if "error" in row:
            return {"minion": minion, "service": service, "certificate": name, "problem": "cannot be read or is not valid"}
        not_after = datetime.datetime.fromisoformat(schema.string(row["not_after"], "not_after")).astimezone(datetime.timezone.utc)
        days = schema.integer(row["days_left"], "days_left", -100_000, 100_000)
    except (InvalidValue, KeyError, TypeError, ValueError):
        return None
    problem = f"expired on {not_after:%Y-%m-%d}" if days < 0 else f"expires on {not_after:%Y-%m-%d} ({days} days left)"
    return {"minion": minion, "service": service, "certificate": name, "problem": problem}


def expiring(answers):
    """The warnings in the nodes' ``lbpair_haproxy.certificates`` answers (``{minion: report}``), in order."""
    rows = []
    for minion, report in sorted(answers.items()):
        for service, found in sorted(report.items()) if isinstance(report, dict) else ():
            for name, row in sorted(found.items()) if isinstance(found, dict) else ():
                warning = _row(minion, service, name, row)
                if warning:
                    rows.append(warning)
    return rows


def _message(row):
    return f"{row['service']} certificate {row['certificate']} on {row['minion']} {row['problem']}"


def check(reactions, now=None):
    """Ask every node, record and announce what expires soon; returns what was found and who did not answer."""
    now = time.time() if now is None else now
    warn_days = reactions.config["certificates"]["warn_days"]
    nodes = list(reactions.config["nodes"])
    answers, _ = reactions.ask(nodes, FUNCTION, {"warn_days": warn_days}, reactions.config["confirm"]["timeout"])
    rows = expiring(answers)
    with reaction_state.ReactionState(reactions.state_path) as state:
        quiet = state.setdefault("certificates_warned", {})
        due = [row for row in rows if now >= quiet.get(_key(row), 0)]
        for row in due:
            quiet[_key(row)] = now + QUIET
    if due:
        reactions.history.append([{"at": iso_utc(now), "kind": "certificate", **row, "message": _message(row)} for row in due])
    notified = [notify.deliver(notify.warning_notice(row["minion"], "certificate_expiry", _message(row)), reactions.config) for row in due]
    return {"expiring": [_message(row) for row in rows], "notified": notified, "silent": sorted(set(nodes) - set(answers))}


def _key(row):
    return f"{row['minion']}:{row['service']}:{row['certificate']}"
