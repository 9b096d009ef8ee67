"""
The master's look at the nodes' TLS certificates (``salt-run lbpair.certificates``, scheduled
daily): a warning ``certificates:warn_days`` before one expires, and one when the OCSP response a
node staples for it is stale (its nextUpdate passed, or none while the certificate names a
responder: :mod:`saltext.lbpair.node.ocsp`), recorded in the history and sent through the reactions'
channels at most once a day per certificate, node and kind of warning.

What a node answers is untrusted: only names that pass the schema, an ISO date and a number of
days are used, and the message is built from those alone.
"""

import datetime
import time

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.master import notify, records
from saltext.lbpair.model import schema

FUNCTION = "lbpair_haproxy.certificates"
QUIET = 24 * 3600  # s between two messages of one kind about one certificate of one node
EXPIRY, OCSP_STALE = "certificate_expiry", "ocsp_stale"  # the warnings' codes


def _expiry_problem(row):
    """What ``row`` warns of about expiry, or None (nothing, or malformed)."""
    if not isinstance(row, dict) or row.get("warning") is not True:
        return None
    if "error" in row:
        return "cannot be read or is not valid"
    not_after = datetime.datetime.fromisoformat(schema.string(row["not_after"], "not_after")).astimezone(datetime.timezone.utc)
    days = schema.integer(row["days_left"], "days_left", -100_000, 100_000)
    return f"expired on {not_after:%Y-%m-%d}" if days < 0 else f"expires on {not_after:%Y-%m-%d} ({days} days left)"


def _ocsp_problem(row):
    """What ``row`` warns of about its stapled OCSP response, or None (nothing stale, or malformed)."""
    stapling = row.get("ocsp") if isinstance(row, dict) else None
    if not isinstance(stapling, dict) or stapling.get("stale") is not True:
        return None
    if stapling.get("next_update") is None:
        return "has no OCSP response although it names a responder"
    next_update = datetime.datetime.fromisoformat(schema.string(stapling["next_update"], "next_update")).astimezone(datetime.timezone.utc)
    return f"staples a stale OCSP response (next update was {next_update:%Y-%m-%d %H:%M} UTC)"


def _warnings(answers, problem_of, code):
    """The rows ``problem_of`` finds in the nodes' ``lbpair_haproxy.certificates`` answers (``{minion: report}``), in order."""
    rows = []
    for minion, report in sorted(answers.items()):
        for service, found in sorted(report.items()) if isinstance(report, dict) else ():
            for name, row in sorted(found.items()) if isinstance(found, dict) else ():
                try:
                    schema.name(service, "service")
                    schema.name(name, "certificate")
                    problem = problem_of(row)
                except (InvalidValue, KeyError, TypeError, ValueError):
                    continue
                if problem:
                    rows.append({"minion": minion, "service": service, "certificate": name, "problem": problem, "code": code})
    return rows


def expiring(answers):
    """The expiry warnings in the nodes' answers, in order."""
    return _warnings(answers, _expiry_problem, EXPIRY)


def stale_ocsp(answers):
    """The stale OCSP responses in the nodes' answers, in order."""
    return _warnings(answers, _ocsp_problem, OCSP_STALE)
def _message(row):
    return f"{row['service']} certificate {row['certificate']} on {row['minion']} {row['problem']}"


def check(client, chronicle, store, config, now=None):
    """
    Ask every node (``client``, a :class:`~saltext.lbpair.master.node_client.NodeClient`), record (``chronicle``)
    and announce (``config``: the reactions') what expires soon, quiet a day per warning (``store``);
    returns what was found and who did not answer.
    """
    now = time.time() if now is None else now
    answers, _ = client.answers(client.nodes, FUNCTION, {"warn_days": config["certificates"]["warn_days"]})
    rows = expiring(answers) + stale_ocsp(answers)
    fresh = set(store.quiet_certificates([_key(row) for row in rows], now, QUIET))
    due = [row for row in rows if _key(row) in fresh]
    for row in due:
        chronicle.note(records.certificate(iso_utc(now), row, _message(row)))
    notified = [notify.deliver(notify.warning_notice(row["minion"], row["code"], _message(row)), config) for row in due]
    return {
        "expiring": [_message(row) for row in rows if row["code"] == EXPIRY],
        "ocsp_stale": [_message(row) for row in rows if row["code"] == OCSP_STALE],
        "notified": notified,
        "silent": sorted(set(client.nodes) - set(answers)),
    }


def _key(row):
    """Expiry and stale OCSP are quiet apart: one does not silence the other."""
    suffix = ":ocsp" if row["code"] == OCSP_STALE else ""
    return f"{row['minion']}:{row['service']}:{row['certificate']}{suffix}"
