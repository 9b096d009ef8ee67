"""
HAProxy's configuration for an lbpair node, rendered from the normalised model.

Each service of the pillar becomes one ``listen`` section bound to its virtual
IP. HAProxy must be allowed to bind an address it does not hold yet (the backup
node): the ``lbpair.haproxy`` SLS sets ``net.ipv4.ip_nonlocal_bind``. The
minion options (``lbpair_haproxy``) are :data:`DEFAULTS`.
"""

import re

from lbpair_lib import pillar, schema
from lbpair_lib.deploy import Daemon, sections_after_header, text_of, written_by_lbpair

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
OPTIONS_KEY = "lbpair_haproxy"
DEFAULTS = {"config_file": "/etc/haproxy/haproxy.cfg", "service": "haproxy", "binary": "haproxy"}
#: how ``haproxy -c`` names a line: ``parsing [/etc/haproxy/haproxy.cfg:12] : ...`` or ``[...:12] : 'server foo/foo1' : ...``
LINE_REF = re.compile(r"\[[^\]\s]+:(\d+)\]")


def daemon(options):
    """HAProxy as :mod:`~lbpair_lib.deploy` manages it, from the minion's ``lbpair_haproxy`` options."""
    local = schema.settings(options, OPTIONS_KEY, DEFAULTS)
    check_command = [local["binary"], "-c", "-f"]
    return Daemon("HAProxy", local["config_file"], local["service"], check_command, render_lines, LINE_REF)


def _section(title, key, lines):
    """A section as ``(line, key)`` pairs: its title (``key`` names it), then ``lines`` indented."""
    return [(title, key), *((f"    {line}", line_key) for line, line_key in lines)]


def _directives(pairs, path):
    """Directive lines; a default is named by the key that would override it."""
    return [(f"{keyword} {value}".rstrip(), f"{path}:{keyword}") for keyword, value in pairs]


def _global_section(haproxy):
    socket_line = f"stats socket {haproxy['stats_socket']} mode 660 level admin expose-fd listeners"
    lines = [*_directives(haproxy["global"], pillar.key("haproxy", "global")), (socket_line, pillar.key("haproxy", "stats_socket"))]
    return _section("global", written_by_lbpair("global"), lines)


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
    path = pillar.key("services", name)
    lines = [
        (f"bind {service['vip']}:{service['port']}", f"{path}:vip"),
        (f"mode {service['mode']}", f"{path}:mode"),
        (f"balance {service['balance']}", f"{path}:balance"),
    ]
    if service["mode"] == "http":
        lines.append(("option forwardfor", f"{path}:mode"))
    if service["cookie"]:
        lines.append((f"cookie {service['cookie']} insert indirect nocache", f"{path}:cookie"))
    lines.extend((line, f"{path}:options:{index}") for index, line in enumerate(service["options"]))
    lines.extend(
        (_server_line(server, spec, service["cookie"]), f"{path}:servers:{server}")
        for server, spec in service["servers"].items()
    )
    return _section(f"listen {name}", path, lines)


def _probe_section(probe):
    """What keepalived's probe asks (:mod:`lbpair_lib.haproxy_watch`): HAProxy answers it itself, on the loopback."""
    path = pillar.key("vrrp", "probe")
    lines = [
        (f"bind 127.0.0.1:{probe['port']}", f"{path}:port"),
        ("mode http", path),
        ("http-request return status 200 content-type text/plain string alive", path),
    ]
    return _section(f"frontend {pillar.PROBE_FRONTEND}", f"{path}:enabled", lines)


def render_lines(model):
    """
    haproxy.cfg for a normalised lbpair model as ``[(line, key), ...]``: each line
    with the pillar key it comes from (``lbpair:services:foo:options:2``).
    """
    sections = [
        _global_section(model["haproxy"]),
        _section("defaults", written_by_lbpair("defaults"), _directives(model["haproxy"]["defaults"], pillar.key("haproxy", "defaults"))),
        *(_listen_section(name, service) for name, service in model["services"].items()),
        *([_probe_section(model["vrrp"]["probe"])] if model["vrrp"]["probe"]["enabled"] else []),
    ]
    return sections_after_header(HEADER.rstrip("\n"), sections)


def render_config(model):
    """The complete haproxy.cfg for a normalised lbpair model, byte for byte deterministic."""
    return text_of(render_lines(model))
