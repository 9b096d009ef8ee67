"""
Notifications of the lbpair master: message text, flap damping, a JSON webhook
(Slack/Mattermost incoming-webhook payload, or a generic schema) and mail over
SMTP (STARTTLS and authentication).

A notification is a mapping built by :func:`transition_notice`,
:func:`summary_notice` or :func:`alarm_notice`::

    {"kind": "transition", "severity": "info", "instance": "lbpair_51",
     "subject": "...", "text": "...", "details": {...}}

Secrets (the webhook URL, the SMTP password) are used to send and never appear
in what these functions return or log.

"""

import email.message
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

SUMMARY_LINES = 10


# --- message text -------------------------------------------------------------


def _vips(vips):
    return ", ".join(vips) if vips else "no VIPs known"


def transition_notice(record, previous_master=None):
    """
    The notification for one transition record of the history.

    ``previous_master`` is the node that held MASTER before, if known.
    """
    node, state, instance = record["minion"], record["state"], record["instance"]
    was = record.get("previous_state", "UNKNOWN")
    if state == "MASTER":
        origin = previous_master if previous_master and previous_master != node else "?"
        move = f"VIPs {_vips(record.get('vips'))} move from {origin} to {node}"
    else:
        move = f"VIPs {_vips(record.get('vips'))} leave {node}" if was == "MASTER" else f"VIPs {_vips(record.get('vips'))}"
    seen = "seen live" if record.get("seen") == "live" else "caught up late from the node's journal"
    trust = "confirmed by the node" if record.get("confirmed") else "NOT confirmed by the node"
    subject = f"lbpair {instance}: {node} is {state} (was {was}){', planned' if record.get('planned') else ''}"
    text = f"{subject}; {move}. At {record.get('at')} ({seen}, {trust})."
    details = {key: record.get(key) for key in ("minion", "seq", "state", "previous_state", "vips", "at", "seen", "confirmed", "planned")}
    details["from"], details["to"] = (previous_master, node) if state == "MASTER" else (node, None)
    return {"kind": "transition", "severity": "info", "instance": instance, "subject": subject, "text": text, "details": details}


def summary_notice(instance, records, window):
    """
    The notification summarising transitions held back by flap damping.
    """
    lines = [
        f"{r['minion']} {r.get('previous_state', '?')} -> {r['state']} at {r.get('at')} ({r.get('seen', 'live')})"
        for r in records[:SUMMARY_LINES]
    ]
    if len(records) > SUMMARY_LINES:
        lines.append(f"... and {len(records) - SUMMARY_LINES} more (salt-run lbpair.history instance={instance})")
    subject = f"lbpair {instance}: {len(records)} more transitions held back by flap damping"
    text = f"{subject} (at most one message per {window} s):\n" + "\n".join(lines)
    details = {"suppressed": len(records), "transitions": [{k: r.get(k) for k in ("minion", "seq", "state", "at")} for r in records]}
    return {"kind": "summary", "severity": "info", "instance": instance, "subject": subject, "text": text, "details": details}


def alarm_notice(kind, instance, message, details=None):
    """
    A critical notification (``split_brain``, ``no_master``, ``dns_failed``).
    """
    subject = f"CRITICAL lbpair {instance}: {message}"
    return {"kind": kind, "severity": "critical", "instance": instance, "subject": subject, "text": subject, "details": details or {}}


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
    return {"kind": "claim", "severity": "warning", "instance": claim.get("instance"), "subject": subject, "text": text, "details": details}


def warning_notice(minion, code, message):
    """
    The notification for a warning a node's beacon sent (e.g. ``keepalived_not_on_bus``).
    """
    subject = f"WARNING lbpair: {minion} {code.replace('_', ' ')}"
    details = {"minion": minion, "code": code, "message": message}
    text = f"{subject}: {message}"
    return {"kind": "warning", "severity": "warning", "instance": None, "subject": subject, "text": text, "details": details}


# --- flap damping (pure, on a state mapping the caller persists) ----------------


def admit(state, instance, now, window, record):
    """
    Decide whether a transition notice goes out now: ``send``, ``hold`` or
    ``hold_first`` (the first held in this window: its caller delivers the
    summary when the window ends). Updates ``state`` in place.

    One notice per window, except that the first node to become MASTER in a
    window is always announced: in a failover the old MASTER's transition often
    arrives first, and who holds the VIPs now must not wait for the summary.
    """
    slot = state.setdefault(instance, {"until": 0, "held": []})
    becomes_master = record.get("state") == "MASTER"
    if now >= slot["until"] and not slot["held"]:
        slot["until"] = now + window
        slot["master_announced"] = becomes_master
        return "send"
    if becomes_master and not slot.get("master_announced"):
        slot["master_announced"] = True
        return "send"
    slot["held"].append(record)
    return "hold_first" if len(slot["held"]) == 1 else "hold"


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
        prefix = ":rotating_light: " if notice["severity"] == "critical" else ""
        return {"username": "lbpair", "text": prefix + chat_text(notice["text"])}
    return {"source": "lbpair", **notice}


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
    message["Subject"] = " ".join(notice["subject"].split())  # a header is one line
    message["From"] = smtp["from"]
    message["To"] = ", ".join(smtp["to"])
    if notice["severity"] == "critical":
        message["X-Priority"] = "1"
        message["Importance"] = "high"
    message.set_content(notice["text"] + "\n")
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
    """Send ``notice`` through one configured ``channel``; raise ``OSError`` (without secrets) if it fails."""
    dict(CHANNELS)[channel](notice, config[channel])


def deliver(notice, config, only=None):
    """
    Send ``notice`` through every configured channel (or those in ``only``);
    returns ``{channel: "sent" | "failed: <reason>"}``.

    A failure is logged as an error and reported in the result, never raised:
    one broken channel must not silence the others.
    """
    outcome = {}
    for name in channels(config):
        if only is not None and name not in only:
            continue
        try:
            send(notice, config, name)
            outcome[name] = "sent"
        except OSError as exc:
            log.error("lbpair: %s notification %r failed: %s", name, notice["subject"], exc)
            outcome[name] = f"failed: {exc}"
    log.info("lbpair: notified %r: %s", notice["subject"], outcome)
    return outcome
