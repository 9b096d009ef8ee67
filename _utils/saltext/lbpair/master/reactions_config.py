"""
The master's ``lbpair_reactions`` configuration block (see ``salt/master.d/lbpair.conf``).

.. code-block:: yaml

    lbpair_reactions:
      nodes:                                  # the pair's minions; events of others are ignored
        lb1: {address: 192.0.2.11}            # the address DNS points at when lb1 is MASTER
        lb2: {address: 192.0.2.12}            # address6: for AAAA records
      history: {path: /var/lib/salt/lbpair/history.jsonl, max_bytes: 10485760}
      damping_window: 60                      # s; at most one message per instance per window
      confirm: {timeout: 10, settle: 5}       # job timeout; wait before an alarm is raised
      certificates: {warn_days: 30}           # lbpair.certificates warns this long before one expires
      webhook: {url: "https://chat.example.net/hooks/...", format: slack}   # slack|mattermost|generic
      smtp: {host: mail.example.net, port: 587, starttls: true, user: lbpair, password: "...",
             from: lbpair@example.net, to: [ops@example.net]}
      dns:
        server: 192.0.2.53
        zone: example.net
        key_name: lbpair-update
        key_algorithm: hmac-sha256
        key_secret: "base64=="
        records: [{name: active, type: A, ttl: 30}, {name: active, type: TXT, ttl: 30}]
        # active/active: give each record the instance it follows, e.g. {name: api, type: A, instance: lbpair_52}
        attempts: 4                           # then the failure is reported (critical)
        backoff: 1                            # s, doubled after each attempt

The secrets (webhook URL, SMTP password, TSIG key) stay in the master's
configuration: :func:`masked` is the only way the block is shown.
"""

import base64
import binascii
import ipaddress
import json
import os
import re
import urllib.parse

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import keepalived_model, pillar, schema

#: keepalived's name of an lbpair VRRP instance (``lbpair_51``, its IPv6 sibling ``lbpair_51_6``)
INSTANCE_RE = re.compile(r"lbpair_[0-9]{1,3}(_6)?")

CONFIG_KEY = "lbpair_reactions"
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
WEBHOOK_FORMATS = ("slack", "mattermost", "generic")
RECORD_TYPES = ("A", "AAAA", "TXT")
MASKED = "**********"
#: a DNS name, relative or absolute: labels of letters, digits and inner hyphens (or ``@``, the zone itself)
DNS_NAME_RE = re.compile(r"@|((?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.?")
RECORD_FAMILY = {"A": 4, "AAAA": 6}


def _nodes(value, path):
    if not isinstance(value, dict) or len(value) < 2:
        raise InvalidValue(path, "expected a mapping of the pair's minion ids, at least two")
    nodes, owners = {}, {}
    for name, node in value.items():
        schema.name(name, f"{path}:{name}")
        node = schema.mapping(node, f"{path}:{name}", ("address", "address6"), ("address",))
        nodes[name] = {}
        for field, version in (("address", None), ("address6", 6)):
            if node.get(field) is None:
                continue
            address = schema.address(node[field], f"{path}:{name}:{field}", version=version, host=True)
            if address in owners:
                raise InvalidValue(f"{path}:{name}:{field}", f"{address} is already the address of {owners[address]}")
            owners[address] = name
            nodes[name][field] = address
    return nodes


def _webhook(value, path):
    value = schema.mapping(value, path, ("url", "format"), ("url",))
    url = schema.string(value["url"], f"{path}:url")
    if not _web_url(url):  # the URL itself is a secret: never in the message
        raise InvalidValue(f"{path}:url", "must be an http:// or https:// URL with a host")
    return {"url": url, "format": schema.choice(value.get("format", "slack"), f"{path}:format", WEBHOOK_FORMATS)}


def _web_url(url):
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:
        return False


def _dns_name(value, path):
    return schema.matching(value, path, DNS_NAME_RE, "a DNS name")


def _mail_address(value, path):
    text = schema.string(value, path)
    if "@" not in text or any(character in text for character in "<>,; "):
        raise InvalidValue(path, f"{text!r} is not a mail address (user@domain)")
    return text


def _smtp(value, path):
    allowed = ("host", "port", "starttls", "user", "password", "from", "to", "ca_file")
    value = schema.mapping(value, path, allowed, ("host", "from", "to"))
    recipients = value["to"] if isinstance(value["to"], list) else [value["to"]]
    smtp = {
        "host": schema.string(value["host"], f"{path}:host"),
        "port": schema.integer(value.get("port", 587), f"{path}:port", 1, 65535),
        "starttls": schema.boolean(value.get("starttls", True), f"{path}:starttls"),
        "from": _mail_address(value["from"], f"{path}:from"),
        "to": [_mail_address(to, f"{path}:to") for to in recipients],
        "ca_file": schema.string(value["ca_file"], f"{path}:ca_file") if "ca_file" in value else None,
        "user": None,
        "password": None,
    }
    if "user" in value:
        smtp["user"] = schema.string(value["user"], f"{path}:user")
        if not isinstance(value.get("password"), str) or not value["password"]:
            raise InvalidValue(f"{path}:password", "is required with user")
        smtp["password"] = value["password"]
    return smtp


def _records(value, path):
    if not isinstance(value, list) or not value:
        raise InvalidValue(path, "expected a non-empty list of records")
    records = []
    for index, record in enumerate(value):
        where = f"{path}:{index}"
        record = schema.mapping(record, where, ("name", "type", "ttl", "instance"), ("name", "type"))
        instance = record.get("instance")
        records.append(
            {
                "name": _dns_name(record["name"], f"{where}:name"),
                "type": schema.choice(record["type"], f"{where}:type", RECORD_TYPES),
                "ttl": schema.integer(record.get("ttl", 30), f"{where}:ttl", 0, 86400),
                "instance": None if instance is None else schema.matching(instance, f"{where}:instance", INSTANCE_RE, "an instance name"),
            }
        )
    return records


def _dns(value, path):
    allowed = ("server", "port", "zone", "key_name", "key_algorithm", "key_secret", "records", "attempts", "backoff", "timeout")
    value = schema.mapping(value, path, allowed, ("server", "zone", "key_name", "key_secret", "records"))
    secret = value["key_secret"]
    try:
        decoded = base64.b64decode(secret, validate=True)
    except (binascii.Error, TypeError, ValueError):
        decoded = b""
    if not decoded:
        raise InvalidValue(f"{path}:key_secret", "must be a non-empty base64 key (as in a BIND key statement)")
    return {
        "server": schema.address(value["server"], f"{path}:server"),
        "port": schema.integer(value.get("port", 53), f"{path}:port", 1, 65535),
        "zone": _dns_name(value["zone"], f"{path}:zone"),
        "key_name": _dns_name(value["key_name"], f"{path}:key_name"),
        "key_algorithm": schema.choice(value.get("key_algorithm", "hmac-sha256"), f"{path}:key_algorithm", TSIG_ALGORITHMS),
        "key_secret": secret,
        "records": _records(value["records"], f"{path}:records"),
        "attempts": schema.integer(value.get("attempts", 4), f"{path}:attempts", 1, 20),
        "backoff": schema.number(value.get("backoff", 1), f"{path}:backoff", 0, 600),
        "timeout": schema.number(value.get("timeout", 5), f"{path}:timeout", 0.1, 60),
    }


def normalise(value, path=CONFIG_KEY):
    """The validated ``lbpair_reactions`` block with its defaults; raises :class:`InvalidValue`."""
    allowed = ("nodes", "history", "damping_window", "confirm", "certificates", "webhook", "smtp", "dns")
    value = schema.mapping(value, path, allowed, ("nodes",))
    history = schema.mapping(value.get("history", {}), f"{path}:history", ("path", "max_bytes"))
    confirm = schema.mapping(value.get("confirm", {}), f"{path}:confirm", ("timeout", "settle"))
    certificates = schema.mapping(value.get("certificates", {}), f"{path}:certificates", ("warn_days",))
    nodes = _nodes(value["nodes"], f"{path}:nodes")
    dns = _dns(value["dns"], f"{path}:dns") if value.get("dns") else None
    if dns:
        _check_record_families(dns["records"], nodes, f"{path}:dns:records")
    return {
        "nodes": nodes,
        "history": {
            "path": _history_path(history.get("path", "/var/lib/salt/lbpair/history.jsonl"), f"{path}:history:path"),
            "max_bytes": schema.integer(history.get("max_bytes", 10 * 1024 * 1024), f"{path}:history:max_bytes", 0, 2**40),
        },
        "damping_window": schema.number(value.get("damping_window", 60), f"{path}:damping_window", 0, 86400),
        "confirm": {
            "timeout": schema.integer(confirm.get("timeout", 10), f"{path}:confirm:timeout", 1, 300),
            "settle": schema.number(confirm.get("settle", 5), f"{path}:confirm:settle", 0, 300),
        },
        "certificates": {"warn_days": schema.integer(certificates.get("warn_days", 30), f"{path}:certificates:warn_days", 0, 3650)},
        "webhook": _webhook(value["webhook"], f"{path}:webhook") if value.get("webhook") else None,
        "smtp": _smtp(value["smtp"], f"{path}:smtp") if value.get("smtp") else None,
        "dns": dns,
    }


def _history_path(value, path):
    text = schema.string(value, path)
    if not os.path.isabs(text) or text.endswith("/") or os.path.isdir(text):
        raise InvalidValue(path, f"{text!r} is not an absolute path to a file")
    return text


def record_address(record_type, addresses):
    """The address an ``A`` or ``AAAA`` record gets from a node's ``{"address": ..., "address6": ...}``."""
    if record_type == "AAAA":
        return addresses.get("address6") or addresses["address"]
    return addresses["address"]


def _check_record_families(records, nodes, path):
    """An A record needs every node's address to be IPv4, an AAAA record an IPv6 address6 (or address)."""
    for index, record in enumerate(records):
        family = RECORD_FAMILY.get(record["type"])
        if family is None:  # TXT: the minion id
            continue
        for name, node in nodes.items():
            address = record_address(record["type"], node)
            if ipaddress.ip_address(address).version != family:
                raise InvalidValue(f"{path}:{index}:type", f"{record['type']} cannot point at {name}'s address {address}")


def records_with_instance(config):
    """``(index, instance)`` of each DNS record that follows an instance (active/active)."""
    records = config["dns"]["records"] if config.get("dns") else []
    return [(index, record["instance"]) for index, record in enumerate(records) if record["instance"] is not None]


def pair_instances(lbpair_pillars, path=CONFIG_KEY):
    """
    The keepalived instance names (``lbpair_51``, ``lbpair_51_6``) of the pair, from the
    ``lbpair`` pillar of each of its nodes (``{minion: pillar or None}``) as the master compiles it.
    """
    instances = set()
    for minion, lbpair in lbpair_pillars.items():
        if lbpair is None:
            raise InvalidValue(f"{path}:nodes:{minion}", "has no lbpair pillar on the master: the DNS records' instances cannot be checked")
        try:
            model = pillar.normalize(lbpair)
        except InvalidValue as exc:
            raise InvalidValue(f"{path}:nodes:{minion}", f"its lbpair pillar is not valid ({exc})") from None
        instances.update(vrrp.name for vrrp in keepalived_model.vrrp_instances(model))
    return instances


def check_record_instances(config, instances, path=CONFIG_KEY):
    """
    Each DNS record's ``instance`` is one the pair's keepalived has (``instances``, e.g. from
    :func:`saltext.lbpair.model.keepalived_model.instance_vips` of each node's model): a record naming another
    is never updated. Raises :class:`InvalidValue` naming the record's ``instance``.
    """
    for index, instance in records_with_instance(config):
        if instance not in instances:
            there = ", ".join(sorted(instances)) or "none"
            raise InvalidValue(
                f"{path}:dns:records:{index}:instance",
                f"{instance} is not an instance of the pair, so the record would never be updated (instances: {there})",
            )


def masked(config):
    """The normalised configuration with every secret replaced by ``**********``."""
    shown = json.loads(json.dumps(config))
    for section, key in (("webhook", "url"), ("smtp", "password"), ("dns", "key_secret")):
        if shown.get(section) and shown[section].get(key):
            shown[section][key] = MASKED
    return shown
