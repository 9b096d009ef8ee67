"""
DNS for the lbpair master: an RFC 2136 dynamic update, signed with TSIG
(dnspython), pointing the configured records at the pair's MASTER.

Values come only from the master's ``lbpair_reactions`` configuration: an
``A`` record gets the node's configured ``address``, an ``AAAA`` record its
``address6`` (or an IPv6 ``address``), a ``TXT`` record its minion id.
The TSIG secret is used to sign and never returned or logged.

"""

import logging
import time

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update

from saltext.lbpair.master import reactions_config

log = logging.getLogger(__name__)


def for_instance(dns_config, instance):
    """The DNS settings with only the records that follow ``instance`` (those naming it, and those naming none)."""
    return {**dns_config, "records": [r for r in dns_config["records"] if r.get("instance") in (None, instance)]}


def record_values(records, node, addresses):
    """
    The ``(name, type, ttl, value)`` tuples that point ``records`` at ``node``, whose
    configured addresses are ``addresses`` (``{"address": ..., "address6": ...}``).
    """
    values = []
    for record in records:
        value = f'"{node}"' if record["type"] == "TXT" else reactions_config.record_address(record["type"], addresses)
        values.append((record["name"], record["type"], record["ttl"], value))
    return values


def build_update(dns_config, node, addresses):
    """The signed ``dns.update.UpdateMessage`` replacing the configured records."""
    keyring = dns.tsigkeyring.from_text({dns_config["key_name"]: dns_config["key_secret"]})
    update = dns.update.UpdateMessage(
        dns_config["zone"], keyring=keyring, keyname=dns_config["key_name"], keyalgorithm=dns_config["key_algorithm"]
    )
    for name, rdtype, ttl, value in record_values(dns_config["records"], node, addresses):
        update.replace(name, ttl, rdtype, value)
    return update


def send_update(dns_config, node, addresses):
    """Send one update over TCP; raise ``OSError`` with the reason if it is not applied."""
    update = build_update(dns_config, node, addresses)
    try:
        response = dns.query.tcp(update, dns_config["server"], port=dns_config["port"], timeout=dns_config["timeout"])
    except (dns.exception.DNSException, OSError) as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    if response.rcode() != dns.rcode.NOERROR:
        raise OSError(f"the server answered {dns.rcode.to_text(response.rcode())}")


def update_with_retries(dns_config, node, addresses, sleep=time.sleep):
    """
    Point the records at ``node``, retrying with exponential backoff.

    Returns ``{"ok": bool, "attempts": n, "error": str | None}``; never raises for
    a server that is down or refuses.
    """
    delay, error = dns_config["backoff"], None
    for attempt in range(1, dns_config["attempts"] + 1):
        try:
            send_update(dns_config, node, addresses)
            log.info("lbpair: DNS records of %s point at %s (%s), attempt %d", dns_config["zone"], node, addresses["address"], attempt)
            return {"ok": True, "attempts": attempt, "error": None}
        except OSError as exc:
            error = str(exc)
            log.warning("lbpair: DNS update to %s, attempt %d of %d failed: %s", node, attempt, dns_config["attempts"], error)
        if attempt < dns_config["attempts"]:
            sleep(delay)
            delay *= 2
    log.error("lbpair: DNS update to %s failed after %d attempts: %s", node, dns_config["attempts"], error)
    return {"ok": False, "attempts": dns_config["attempts"], "error": error}
