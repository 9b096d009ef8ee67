"""
The ``lbpair_vrrp`` beacon's configuration: Salt's list of mappings, lbpair's own keys
(``bus``, ``meta``, ``metrics``) and Salt's, checked the way :func:`check_config` reports to Salt's
``validate``; ``meta`` is copied into every event, so a key that names a secret is refused.
"""

import re

import salt.utils.beacons

SALT_KEYS = ("interval", "disable_during_state_run", "enabled", "run_once", "beacon_module", "_beacon_name")
OWN_KEYS = ("bus", "meta", "metrics")
#: the metrics file: an absolute, normalised path of plain characters, a ``.prom`` file as node_exporter reads them
METRICS_PATH_RE = re.compile(r"/(?:[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*/)*[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*\.prom")
#: words that name a secret; a key that has one as a whole word (``smtp_password``, ``apiKey``) is refused
SECRET_WORDS = frozenset(
    ("password", "passwd", "pass", "pwd", "secret", "token", "key", "auth", "credential", "private", "webhook")
)


def config_mapping(config):
    """Salt's list-of-mappings beacon configuration as one mapping (as Salt's own beacons read it)."""
    return dict(config) if isinstance(config, dict) else salt.utils.beacons.list_to_dict(config)


def _valid_bus(bus):
    return isinstance(bus, str) and (bus in ("system", "none") or ":" in bus and "=" in bus)


def _words(key):
    """The words of a key: ``smtp_password`` -> smtp, password; ``apiKeys`` -> api, key."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return {word[:-1] if word.endswith("s") and word[:-1] in SECRET_WORDS else word for word in re.split(r"[^a-z0-9]+", spaced.lower())}


def valid_metrics(metrics):
    """Whether ``metrics`` is a good ``metrics`` option: absent, ``none`` or a ``.prom`` file's absolute path (:data:`METRICS_PATH_RE`)."""
    return metrics is None or metrics == "none" or isinstance(metrics, str) and bool(METRICS_PATH_RE.fullmatch(metrics))


def own_metrics(settings, own_config):
    """
    The ``metrics`` option to follow, and a warning or None: the option only as the minion's own
    configuration (``own_config``, its ``beacons:lbpair_vrrp``) gives it, since the file is written
    as root; a different one in ``settings`` (what Salt merged, a pillar's ``beacons`` included) is not followed,
    but for ``none``, which only turns the file off.
    """
    own = config_mapping(own_config or []).get("metrics")
    given = settings.get("metrics")
    if given == "none":
        return "none", None
    if not valid_metrics(own):
        return "none", f"lbpair_vrrp: metrics {own!r} in the minion's configuration is not the absolute path of a .prom file: no metrics"
    if given is not None and given != own:
        return own, f"lbpair_vrrp: metrics is read from the minion's configuration only: {given!r} from the pillar is not followed"
    return own, None


def secret_keys(meta, prefix=""):
    """The keys of ``meta`` (nested mappings too, as ``outer:inner``) that name a secret."""
    found = []
    for key, value in meta.items():
        if _words(str(key)) & SECRET_WORDS:
            found.append(f"{prefix}{key}")
        if isinstance(value, dict):
            found.extend(secret_keys(value, f"{prefix}{key}:"))
    return found


def check_config(config, dbus_built=True):
    """``(True, "")`` for a good configuration, ``(False, "why")`` otherwise."""
    if not isinstance(config, (list, dict)) or (
        isinstance(config, list) and not all(isinstance(item, dict) for item in config)
    ):
        return False, "lbpair_vrrp: the configuration is a list of mappings, e.g. [{bus: system}]"
    settings = config_mapping(config)
    unknown = sorted(set(settings) - set(OWN_KEYS) - set(SALT_KEYS))
    if unknown:
        return False, f"lbpair_vrrp: unknown key(s) {', '.join(unknown)}; known: {', '.join(OWN_KEYS)}"
    bus = settings.get("bus", "system")
    if not _valid_bus(bus):
        return False, f"lbpair_vrrp: bus must be system, none or a D-Bus address like unix:path=/run/x.sock, not {bus!r}"
    if not valid_metrics(settings.get("metrics")):
        return False, (
            "lbpair_vrrp: metrics must be none or the absolute path of a .prom file in node_exporter's textfile "
            f"directory, like /var/lib/prometheus/node-exporter/lbpair.prom, not {settings['metrics']!r}"
        )
    meta = settings.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(key, str) for key in meta):
        return False, "lbpair_vrrp: meta must be a mapping with string keys"
    secret = secret_keys(meta)
    if secret:
        return False, f"lbpair_vrrp: meta is copied into every event; keep secrets out of it ({', '.join(secret)})"
    if bus != "none" and not dbus_built:
        return False, (
            "lbpair_vrrp: this keepalived was built without D-Bus (no --enable-dbus in keepalived --version); "
            "set bus: none to follow its JSON dump at every beacon interval instead"
        )
    return True, ""
