"""
The master's ``lbpair_reactions`` configuration block (see ``salt/master.d/lbpair.conf``).

.. code-block:: yaml

    lbpair_reactions:
      # The pairs come from their nodes' pillar (lbpair:pair, lbpair:nodes): see saltext.lbpair.master.fleet.
      # Or, for one pair, list its nodes here (the pair is then named after them: lb1+lb2):
      # nodes:
      #   lb1: {address: 192.0.2.11}          # the address DNS points at when lb1 is MASTER
      #   lb2: {address: 192.0.2.12}          # address6: for AAAA records
      pairs:                                  # a pair's own settings (damping_window, webhook, smtp, dns) over the ones below
        shop: {webhook: {url: "https://chat.example.net/hooks/team-shop"}, dns: {...}}
      history: {path: /var/lib/salt/lbpair/history.jsonl, max_bytes: 10485760}
      report_dir: /var/cache/salt/master/lbpair/reports   # where lbpair.report writes its pages (default: <cachedir>/lbpair/reports)
      metrics_file: /var/lib/prometheus/node-exporter/lbpair_master.prom   # the default if that folder exists; none: off
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
#: what a pair's entry under ``lbpair_reactions:pairs`` may set for it; the block's own apply to every other pair
PAIR_SETTINGS = ("damping_window", "webhook", "smtp", "dns")
#: a DNS name, relative or absolute: labels of letters, digits and inner hyphens (or ``@``, the zone itself)
DNS_NAME_RE = re.compile(r"@|((?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.?")
RECORD_FAMILY = {"A": 4, "AAAA": 6}
#: the master's metrics file when the block names none and node_exporter's textfile folder (Debian's) exists
DEFAULT_METRICS_FILE = "/var/lib/prometheus/node-exporter/lbpair_master.prom"


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


def _settings(value, path):
    """The :data:`PAIR_SETTINGS` that ``value`` (a mapping) sets, validated; a channel or ``dns`` set empty is none."""
    settings = {}
    if "damping_window" in value:
        settings["damping_window"] = schema.number(value["damping_window"], f"{path}:damping_window", 0, 86400)
    for key, parse in (("webhook", _webhook), ("smtp", _smtp), ("dns", _dns)):
        if key in value:
            settings[key] = parse(value[key], f"{path}:{key}") if value[key] else None
    return settings


def _pair_name(value, path):
    """A pair's name as a pillar gives it (``lbpair:pair``): a name, or node ids joined by ``+``."""
    for part in str(value).split("+"):
        schema.name(part, path)
    return value


def _pairs(value, path):
    if not isinstance(value, dict):
        raise InvalidValue(path, "expected a mapping of pair names (lbpair:pair) to their own settings")
    return {
        _pair_name(name, f"{path}:{name}"): _settings(schema.mapping(entry or {}, f"{path}:{name}", PAIR_SETTINGS), f"{path}:{name}")
        for name, entry in value.items()
    }


def normalise(value, path=CONFIG_KEY):
    """The validated ``lbpair_reactions`` block with its defaults; raises :class:`InvalidValue`."""
    allowed = ("nodes", "pairs", "history", "confirm", "certificates", "report_dir", "metrics_file", *PAIR_SETTINGS)
    value = schema.mapping(value, path, allowed)
    history = schema.mapping(value.get("history", {}), f"{path}:history", ("path", "max_bytes"))
    confirm = schema.mapping(value.get("confirm", {}), f"{path}:confirm", ("timeout", "settle"))
    certificates = schema.mapping(value.get("certificates", {}), f"{path}:certificates", ("warn_days",))
    nodes = _nodes(value["nodes"], f"{path}:nodes") if "nodes" in value else None
    settings = {"damping_window": 60, "webhook": None, "smtp": None, "dns": None, **_settings(value, path)}
    if settings["dns"] and nodes:
        _check_record_families(settings["dns"]["records"], nodes, f"{path}:dns:records")
    return {
        "nodes": nodes,
        "pairs": _pairs(value.get("pairs", {}), f"{path}:pairs"),
        **settings,
        "history": {
            "path": _history_path(history.get("path", "/var/lib/salt/lbpair/history.jsonl"), f"{path}:history:path"),
            "max_bytes": schema.integer(history.get("max_bytes", 10 * 1024 * 1024), f"{path}:history:max_bytes", 0, 2**40),
        },
        "confirm": {
            "timeout": schema.integer(confirm.get("timeout", 10), f"{path}:confirm:timeout", 1, 300),
            "settle": schema.number(confirm.get("settle", 5), f"{path}:confirm:settle", 0, 300),
        },
        "certificates": {"warn_days": schema.integer(certificates.get("warn_days", 30), f"{path}:certificates:warn_days", 0, 3650)},
        "report_dir": _directory(value["report_dir"], f"{path}:report_dir") if value.get("report_dir") is not None else None,
        "metrics_file": _metrics_file(value["metrics_file"], f"{path}:metrics_file") if "metrics_file" in value else default_metrics_file(),
    }


def report_dir(config, cachedir):
    """The folder ``lbpair.report`` writes its pages in: ``report_dir``, else ``<cachedir>/lbpair/reports``."""
    return config["report_dir"] or os.path.join(cachedir, "lbpair", "reports")


def configured_pair(config):
    """``(name, nodes)`` of the one pair ``lbpair_reactions:nodes`` lists (named like its pillar's default), or ``None``."""
    if not config["nodes"]:
        return None
    return "+".join(sorted(config["nodes"])), config["nodes"]


def pair_settings(config, pair, nodes):
    """
    The settings of the pair named ``pair`` whose nodes are ``nodes`` (``{minion: {"address": ...,
    "address6": ...}}``): the block's own, then the pair's entry under ``pairs`` over them, with
    ``pair`` and ``nodes``. They are not checked against the pair's pillar (:func:`check_pair`
    does, for ``lbpair.check_config``): a pair whose pillar changed keeps its reactions, and a
    DNS record that cannot follow it fails its step, which is alarmed.
    """
    return {**config, **config["pairs"].get(pair, {}), "pair": pair, "nodes": nodes}


def _history_path(value, path):
    text = schema.string(value, path)
    if not os.path.isabs(text) or text.endswith("/") or os.path.isdir(text):
        raise InvalidValue(path, f"{text!r} is not an absolute path to a file")
    return text


def _directory(value, path):
    text = schema.string(value, path)
    if not os.path.isabs(text) or os.path.normpath(text) != text.rstrip("/") or os.path.isfile(text):
        raise InvalidValue(path, f"{text!r} is not an absolute path to a folder")
    return text


def default_metrics_file():
    """:data:`DEFAULT_METRICS_FILE` if its folder exists (node_exporter is installed), else ``None``: off."""
    return DEFAULT_METRICS_FILE if os.path.isdir(os.path.dirname(DEFAULT_METRICS_FILE)) else None


def _metrics_file(value, path):
    """The master's metrics file (:mod:`saltext.lbpair.master.metrics`), or ``None``: off (``none``); it must end with ``.prom``."""
    if value is None or value is False or str(value).lower() == "none":
        return None
    text = _history_path(value, path)
    if not text.endswith(".prom"):
        raise InvalidValue(path, f"{text!r} must end with .prom (node_exporter's textfile collector reads only those)")
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


def check_pair(config, pair):
    """
    Whether ``config`` can serve ``pair`` (a :class:`~saltext.lbpair.master.fleet.Pair`): each DNS
    record can point at its nodes and names an instance it has. Raises :class:`InvalidValue`
    naming the record, under the pair's own entry when its ``dns`` is its own.
    """
    settings = pair_settings(config, pair.name, pair.nodes)
    where = f"{CONFIG_KEY}:pairs:{pair.name}" if "dns" in config["pairs"].get(pair.name, {}) else CONFIG_KEY
    if settings["dns"]:
        _check_record_families(settings["dns"]["records"], pair.nodes, f"{where}:dns:records")
    check_record_instances(settings, pair.instances, where)


def masked(config):
    """The normalised configuration with every secret replaced by ``**********``."""
    shown = json.loads(json.dumps(config))
    for settings in (shown, *shown.get("pairs", {}).values()):
        for section, key in (("webhook", "url"), ("smtp", "password"), ("dns", "key_secret")):
            if settings.get(section) and settings[section].get(key):
                settings[section][key] = MASKED
    return shown
