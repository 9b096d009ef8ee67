"""
HAProxy's configuration for an lbpair node, rendered from the normalised model.

Each service of the pillar becomes one ``listen`` section bound to its virtual
IP. HAProxy must be allowed to bind an address it does not hold yet (the backup
node): the ``lbpair.haproxy`` SLS sets ``net.ipv4.ip_nonlocal_bind``. The
minion options (``lbpair_haproxy``) are :data:`DEFAULTS`.
"""

from lbpair_lib import schema
from lbpair_lib.deploy import Daemon

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
OPTIONS_KEY = "lbpair_haproxy"
DEFAULTS = {"config_file": "/etc/haproxy/haproxy.cfg", "service": "haproxy", "binary": "haproxy"}


def daemon(options):
    """HAProxy as :mod:`~lbpair_lib.deploy` manages it, from the minion's ``lbpair_haproxy`` options."""
    local = schema.settings(options, OPTIONS_KEY, DEFAULTS)
    return Daemon("HAProxy", local["config_file"], local["service"], [local["binary"], "-c", "-f"], render_config)


def _section(title, lines):
    body = "".join(f"    {line}\n" for line in lines)
    return f"{title}\n{body}"


def _directives(pairs):
    return [f"{keyword} {value}".rstrip() for keyword, value in pairs]


def _global_section(haproxy):
    socket_line = f"stats socket {haproxy['stats_socket']} mode 660 level admin expose-fd listeners"
    return _section("global", [*_directives(haproxy["global"]), socket_line])


def _server_line(name, server, cookie):
    address = server["address"]
    host = f"[{address}]" if ":" in address else address
    words = [f"server {name} {host}:{server['port']} check"]
    if cookie:
        words.append(f"cookie {name}")
    if server["options"]:
        words.append(server["options"])
    return " ".join(words)


def _listen_section(name, service):
    lines = [f"bind {service['vip']}:{service['port']}", f"mode {service['mode']}", f"balance {service['balance']}"]
    if service["mode"] == "http":
        lines.append("option forwardfor")
    if service["cookie"]:
        lines.append(f"cookie {service['cookie']} insert indirect nocache")
    lines.extend(service["options"])
    lines.extend(_server_line(server, spec, service["cookie"]) for server, spec in service["servers"].items())
    return _section(f"listen {name}", lines)


def render_config(model):
    """The complete haproxy.cfg for a normalised lbpair model, byte for byte deterministic."""
    sections = [
        _global_section(model["haproxy"]),
        _section("defaults", _directives(model["haproxy"]["defaults"])),
        *(_listen_section(name, service) for name, service in model["services"].items()),
    ]
    return HEADER + "\n" + "\n".join(sections)
