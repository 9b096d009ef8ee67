"""
Notifications of the lbpair master: message text, flap damping, a JSON webhook
(Slack/Mattermost incoming-webhook payload, or a generic schema) and mail over
SMTP (STARTTLS and authentication).

A notification is a :class:`~saltext.lbpair.master.records.Notice` built by
:func:`transition_notice`, :func:`summary_notice`, :func:`alarm_notice`, :func:`claim_notice` or
:func:`warning_notice`; the generic webhook posts its JSON::

    {"kind": "transition", "severity": "info", "instance": "lbpair_51",
     "subject": "...", "text": "...", "details": {...}}

Secrets (the webhook URL, the SMTP password) are used to send and never appear
in what these functions return or log.

"""

import email.message
import enum
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request

from saltext.lbpair.master.records import UNKNOWN_STATE, Notice, Seen, Severity, change
from saltext.lbpair.model.keepalived_model import VrrpState

log = logging.getLogger(__name__)

SUMMARY_LINES = 10


# --- message text -------------------------------------------------------------


def _vips(vips):
    return ", ".join(vips) if vips else "no VIPs known"


def transition_notice(record, previous_master=None):
    """
    The notification for one transition of the history (a :class:`~saltext.lbpair.master.records.Transition`).

    ``previous_master`` is the node that held MASTER before, if known.
    """
    node, state, instance = record.minion, record.state, record.instance
    was = record.previous_state or UNKNOWN_STATE
    if record.becomes_master:
        origin = previous_master if previous_master and previous_master != node else "?"
        move = f"VIPs {_vips(record.vips)} move from {origin} to {node}"
    else:
        move = f"VIPs {_vips(record.vips)} leave {node}" if was == VrrpState.MASTER else f"VIPs {_vips(record.vips)}"
    seen = "seen live" if record.seen == Seen.LIVE else "caught up late from the node's journal"
    trust = "confirmed by the node" if record.confirmed else "NOT confirmed by the node"
    subject = f"lbpair {instance}: {node} is {state} (was {was}){', planned' if record.planned else ''}"
    text = f"{subject}; {move}. At {record.at} ({seen}, {trust})."
    values = record.to_json()
    details = {key: values.get(key) for key in ("minion", "seq", "state", "previous_state", "vips", "at", "seen", "confirmed", "planned")}
    details["from"], details["to"] = (previous_master, node) if record.becomes_master else (node, None)
    return Notice("transition", Severity.INFO, instance, subject, text, details)


def summary_notice(instance, records, window):
    """
    The notification summarising transitions held back by flap damping (``records``: their briefs).
    """
    lines = [f"{change(r)} at {r.get('at')} ({r.get('seen', 'live')})" for r in records[:SUMMARY_LINES]]
    if len(records) > SUMMARY_LINES:
        lines.append(f"... and {len(records) - SUMMARY_LINES} more (salt-run lbpair.history instance={instance})")
    subject = f"lbpair {instance}: {len(records)} more transitions held back by flap damping"
    text = f"{subject} (at most one message per {window} s):\n" + "\n".join(lines)
    details = {"suppressed": len(records), "transitions": [{k: r.get(k) for k in ("minion", "seq", "state", "at")} for r in records]}
    return Notice("summary", Severity.INFO, instance, subject, text, details)


def _storm_line(record):
    """A line of a storm's summary: a transition, or a flap-damping summary (its brief counts ``summary`` transitions)."""
    where = f"{record.get('pair')}/{record.get('instance')}"
    if "summary" in record:
        held = f"{record['summary']} transitions held back by flap damping"
        return f"{where}: {held} ({record.get('first')} to {record.get('last')})"
    return f"{where}: {change(record)} at {record.get('at')}"


def storm_notice(records, window):
    """
    The one notification, per channel, of the messages a storm held back (``records``: their
    briefs, of transitions and of flap-damping summaries): more failovers within ``window`` seconds
    than messages worth reading one by one.
    """
    pairs = sorted({str(r.get("pair")) for r in records})
    count = sum(r.get("summary", 1) for r in records)
    lines = [_storm_line(r) for r in records[:SUMMARY_LINES]]
    if len(records) > SUMMARY_LINES:
        lines.append(f"... and {len(records) - SUMMARY_LINES} more (salt-run lbpair.history, salt-run lbpair.status)")
    subject = f"lbpair storm: {count} more transitions in {len(pairs)} pairs ({', '.join(pairs[:SUMMARY_LINES])})"
    text = f"{subject}, held back to send one message for them (at most two messages per {window} s and channel before it):\n"
    transitions = [{k: r.get(k) for k in ("pair", "minion", "seq", "state", "at")} for r in records if "summary" not in r]
    summaries = [{k: r.get(k) for k in ("pair", "instance", "summary", "first", "last")} for r in records if "summary" in r]
    details = {"suppressed": count, "pairs": pairs, "transitions": transitions, "summaries": summaries}
    return Notice("storm", Severity.INFO, None, subject, text + "\n".join(lines), details)


def alarm_notice(kind, instance, message, details=None):
    """
    A critical notification (``split_brain``, ``no_master``, ``dns_failed``).
    """
    subject = f"CRITICAL lbpair {instance}: {message}"
    return Notice(kind, Severity.CRITICAL, instance, subject, subject, details or {})


def claim_notice(minion, claim, count):
    """
    The notification for events a node sent but did not confirm (it did not answer):
    claims, not facts, and nothing was done about them.
    """
    what = f"{claim.get('instance')} {claim.get('state')}, seq {claim.get('seq')}" if claim.get("seq") else claim.get("code")
    subject = f"lbpair: {minion} sent {count} event(s) it has not confirmed"
    text = (
        f"{subject} (latest: {what}). Not acted on: an event is a claim until {minion}'s own journal"
        " confirms it (salt-run lbpair.status shows the open claims)."
    )
    details = {"minion": minion, "claims": count}
    return Notice("claim", Severity.WARNING, claim.get("instance"), subject, text, details)


def warning_notice(minion, code, message):
    """
    The notification for a warning a node's beacon sent (e.g. ``keepalived_not_on_bus``).
    """
    subject = f"WARNING lbpair: {minion} {code.replace('_', ' ')}"
    details = {"minion": minion, "code": code, "message": message}
    text = f"{subject}: {message}"
    return Notice("warning", Severity.WARNING, None, subject, text, details)


# --- flap damping (pure, on a state mapping the caller persists) ----------------


class Admission(enum.StrEnum):
    """Whether a transition's notice goes out now (:func:`admit`); equal to its value as text."""

    SEND = "send"
    HOLD = "hold"
    HOLD_FIRST = "hold_first"  # the first held in this window: its caller sees that the summary is sent


def admit(state, instance, now, window, record):
    """
    Decide whether the notice of a transition (``record``, its brief) goes out now: an
    :class:`Admission`. Updates ``state`` in place.

    One notice per window, except that the first node to become MASTER in a
    window is always announced: in a failover the old MASTER's transition often
    arrives first, and who holds the VIPs now must not wait for the summary.
    """
    slot = state.setdefault(instance, {"until": 0, "held": []})
    becomes_master = record.get("state") == VrrpState.MASTER
    if now >= slot["until"] and not slot["held"]:
        slot["until"] = now + window
        slot["master_announced"] = becomes_master
        return Admission.SEND
    if becomes_master and not slot.get("master_announced"):
        slot["master_announced"] = True
        return Admission.SEND
    slot["held"].append(record)
    return Admission.HOLD_FIRST if len(slot["held"]) == 1 else Admission.HOLD


def release(state, instance, now, window):
    """Take the held records of ``instance`` (a summary is about to go out); a new window starts."""
    slot = state.setdefault(instance, {"until": 0, "held": []})
    held, slot["held"] = slot["held"], []
    if held:
        slot["until"] = now + window
        slot["master_announced"] = False
    return held


def due(state, now):
    """The instances whose window has ended with records still held."""
    return [instance for instance, slot in state.items() if slot["held"] and now >= slot["until"]]


# --- delivery -----------------------------------------------------------------


def chat_text(text):
    """
    ``text`` as plain text in Slack and Mattermost: their control syntax (``<!channel>``,
    ``<url|label>``) escaped as they document it, and ``@`` mentions (``@all``, ``@here``)
    broken with a zero-width space, so that a node's text can neither alert everyone nor
    dress up a link.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("@", "@\u200b")


def webhook_payload(notice, fmt):
    """
    The JSON body for a notice: ``slack`` and ``mattermost`` get an incoming-webhook
    payload (``text``, escaped for chat), ``generic`` the whole notice.
    """
    if fmt in ("slack", "mattermost"):
        prefix = ":rotating_light: " if notice.critical else ""
        return {"username": "lbpair", "text": prefix + chat_text(notice.text)}
    return {"source": "lbpair", **notice.to_json()}


def post_webhook(notice, webhook, timeout=10):
    """Post ``notice`` to the configured webhook; raise ``OSError`` without the URL on failure."""
    body = json.dumps(webhook_payload(notice, webhook["format"])).encode()
    try:
        request = urllib.request.Request(webhook["url"], data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec: operator-configured URL
            response.read()
    except urllib.error.HTTPError as exc:
        raise OSError(f"the webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise OSError(f"the webhook could not be reached: {type(getattr(exc, 'reason', exc)).__name__}") from None
    except ValueError:  # its text would carry the URL, a secret
        raise OSError("the webhook URL was refused by the HTTP client") from None


def mail_message(notice, smtp):
    """The e-mail for a notice (no secrets in it)."""
    message = email.message.EmailMessage()
    message["Subject"] = " ".join(notice.subject.split())  # a header is one line
    message["From"] = smtp["from"]
    message["To"] = ", ".join(smtp["to"])
    if notice.critical:
        message["X-Priority"] = "1"
        message["Importance"] = "high"
    message.set_content(notice.text + "\n")
    return message


def send_mail(notice, smtp, timeout=10):
    """Send ``notice`` by SMTP, with STARTTLS and login when configured."""
    context = ssl.create_default_context(cafile=smtp.get("ca_file"))
    try:
        with smtplib.SMTP(smtp["host"], smtp["port"], timeout=timeout) as client:
            if smtp["starttls"]:
                client.starttls(context=context)
            if smtp.get("user"):
                client.login(smtp["user"], smtp["password"])
            client.send_message(mail_message(notice, smtp))
    except smtplib.SMTPAuthenticationError as exc:
        raise OSError(f"the SMTP server refused the login ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise OSError(f"mail not sent: {type(exc).__name__}: {exc}") from None


CHANNELS = (("webhook", post_webhook), ("smtp", send_mail))


def channels(config):
    """The notification channels ``config`` sets up, in delivery order."""
    return [name for name, _ in CHANNELS if config.get(name)]


def send(notice, config, channel):
    """
    Send ``notice`` through one configured ``channel`` of ``config`` (a pair's settings: the notice
    names the pair), ``"sent"``; raise ``OSError`` (without secrets) if it fails.
    """
    dict(CHANNELS)[channel](notice.in_pair(config.get("pair")), config[channel])
    return "sent"


def deliver(notice, config, only=None, through=None):
    """
    Send ``notice`` through every configured channel (or those in ``only``);
    returns ``{channel: "sent" | "failed: <reason>"}``. ``through(notice, channel)`` sends through
    one channel and says what became of the notice: by default :func:`send`; a pair's notifier
    may instead hold it for a storm's summary.

    A failure is logged as an error and reported in the result, never raised:
    one broken channel must not silence the others.
    """
    through = through or (lambda notice, channel: send(notice, config, channel))
    outcome = {}
    for name in channels(config):
        if only is not None and name not in only:
            continue
        try:
            outcome[name] = through(notice, name)
        except OSError as exc:
            log.error("lbpair: %s notification %r failed: %s", name, notice.subject, exc)
            outcome[name] = f"failed: {exc}"
    log.info("lbpair: notified %r: %s", notice.subject, outcome)
    return outcome
