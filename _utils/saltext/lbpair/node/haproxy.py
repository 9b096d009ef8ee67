"""
HAProxy's configuration for an lbpair node, rendered from the normalised model.

Each plain service of the pillar becomes one ``listen`` section bound to its
virtual IP; a routed one a ``frontend`` there and a ``backend`` per backend
(:mod:`saltext.lbpair.model.services`); a service with ``tls`` binds its TLS port there too, naming its
certificates' files (:mod:`saltext.lbpair.node.tls_files`), never their text. HAProxy must be allowed
to bind an address it does not hold yet (the backup node): the ``lbpair.haproxy`` SLS sets
``net.ipv4.ip_nonlocal_bind`` and ``net.ipv6.ip_nonlocal_bind``. The minion options (``lbpair_haproxy``) are :data:`DEFAULTS`.
"""

import functools
import re

from saltext.lbpair.model import haproxy_exporter, pillar, schema, services, tls, tls_profiles, vrrp
from saltext.lbpair.node import tls_files
from saltext.lbpair.node.deploy import Daemon, sections_after_header, text_of, written_by_lbpair

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
OPTIONS_KEY = "lbpair_haproxy"
DEFAULTS = {"config_file": "/etc/haproxy/haproxy.cfg", "service": "haproxy", "binary": "haproxy"}
#: how ``haproxy -c`` names a line: ``parsing [/etc/haproxy/haproxy.cfg:12] : ...`` or ``[...:12] : 'server foo/foo1' : ...``
PEERS = "lbpair"  # the peers section both nodes share their stick tables through
LINE_REF = re.compile(r"\[[^\]\s]+:(\d+)\]")


def daemon(options):
    """HAProxy as :mod:`~saltext.lbpair.node.deploy` manages it, from the minion's ``lbpair_haproxy`` options."""
    local = schema.settings(options, OPTIONS_KEY, DEFAULTS)
    check_command = [local["binary"], "-c", "-f"]
    certificate_dir = tls_files.directory_for(local["config_file"])
    render = functools.partial(render_lines, certificate_dir=certificate_dir)
    files = tls_files.CertificateFiles(certificate_dir, render_lines)
    return Daemon("HAProxy", local["config_file"], local["service"], check_command, render, LINE_REF, files)


def _section(title, key, lines):
    """A section as ``(line, key)`` pairs: its title (``key`` names it), then ``lines`` indented."""
    return [(title, key), *((f"    {line}", line_key) for line, line_key in lines)]


def _directives(pairs, path):
    """Directive lines; a default is named by the key that would override it."""
    return [(f"{keyword} {value}".rstrip(), f"{path}:{keyword}") for keyword, value in pairs]


def _global_section(model):
    haproxy = model["haproxy"]
    socket_line = f"stats socket {haproxy['stats_socket']} mode 660 level admin expose-fd listeners"
    profile_key = pillar.key("haproxy", "tls_profile")  # the profile's lines are not overridden one by one
    lines = [
        *_directives(haproxy["global"], pillar.key("haproxy", "global")),
        *((f"{keyword} {value}", profile_key) for keyword, value in tls_profiles.global_directives(haproxy["tls_profile"])),
        (socket_line, pillar.key("haproxy", "stats_socket")),
    ]
    if _uses_peers(model):  # this node's name in the peers section
        lines.append((f"localpeer {model['node']['name']}", pillar.key("nodes", model["node"]["name"])))
    return _section("global", written_by_lbpair("global"), lines)


def _uses_peers(model):
    return any(pool["stick"] for _service, _backend, pool in services.pools(model["services"]))


def _peers_section(model):
    """Both nodes share the stick tables: a client keeps its server when the VIPs move."""
    port = model["haproxy"]["peers_port"]
    lines = [(f"peer {name} {node['address']}:{port}", pillar.key("nodes", name)) for name, node in sorted(model["nodes"].items())]
    return _section(f"peers {PEERS}", pillar.key("haproxy", "peers_port"), lines)


def _stick_lines(stick, path):
    if stick is None:
        return []
    table = f"stick-table type ip size {stick['size']} expire {stick['expire']}s peers {PEERS}"
    return [(table, path), (f"stick on {stick['on']}", f"{path}:on")]


def _endpoint(address, port):
    """``address:port`` as HAProxy reads it, an IPv6 address in brackets: ``[2001:db8::10]:80``."""
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


def _server_line(name, server, cookie):
    words = [f"server {name} {_endpoint(server['address'], server['port'])} check"]
    if cookie:
        words.append(f"cookie {name}")
    if server["options"]:
        words.append(server["options"])
    return " ".join(words)


def _health_lines(health, path):
    if health is None:
        return []
    lines = []
    if health["path"] is not None:
        lines += [
            (f"option httpchk GET {health['path']}", f"{path}:path"),
            (f"http-check expect status {health['status']}", f"{path}:status"),
        ]
    inter = f"{round(health['inter'] * 1000)}ms"
    return [*lines, (f"default-server inter {inter} fall {health['fall']} rise {health['rise']}", path)]


def _cookie_line(cookie, tls_spec):
    """The persistence cookie; on a service with TLS only sent back over TLS, and never to scripts."""
    flags = " secure httponly" if tls_spec else ""
    return f"cookie {cookie} insert indirect nocache{flags}"


def _pool_lines(pool, path, mode, tls_spec):
    """A plain service's or a backend's lines after its mode: balance, cookie, health check, options, servers."""
    lines = [(f"balance {pool['balance']}", f"{path}:balance")]
    if mode == "http":
        lines.append(("option forwardfor", f"{path}:mode"))
    if pool["cookie"]:
        lines.append((_cookie_line(pool["cookie"], tls_spec), f"{path}:cookie"))
    lines.extend(_health_lines(pool["health"], f"{path}:health"))
    lines.extend(_stick_lines(pool["stick"], f"{path}:stick"))
    lines.extend((line, f"{path}:options:{index}") for index, line in enumerate(pool["options"]))
    lines.extend((_server_line(server, spec, pool["cookie"]), f"{path}:servers:{server}") for server, spec in pool["servers"].items())
    return lines


def _tls_binds(service, path, certificate_dir):
    """The TLS bind on each VIP: the first certificate for clients without SNI, HAProxy picks among all by SNI."""
    tls_spec = service["tls"]
    files = " ".join(f"crt {tls_files.file_of(certificate, certificate_dir)}" for certificate in tls_spec["certificates"].values())
    for vip, _key in services.addresses(service):
        yield f"bind {_endpoint(vip, tls_spec['port'])} ssl {files} alpn {','.join(tls_spec['alpn'])}", f"{path}:tls:certificates"


def _port_suffix(port, default):
    return "" if port == default else f":{port}"


def _host_redirects(service, path):
    """Host redirects (301, path kept): to https with TLS, and to http too where plain HTTP is served."""
    tls_spec = service["tls"]
    http = f"http://{{}}{_port_suffix(service['port'], 80)}"
    if tls_spec is None:
        prefixes = [(http, "")]
    else:
        https = f"https://{{}}{_port_suffix(tls_spec['port'], tls.DEFAULT_PORT)}"
        prefixes = [(https, "")] if tls_spec["redirect_http"] else [(http, " !{ ssl_fc }"), (https, " { ssl_fc }")]
    for source, target in service["redirects"].items():
        for prefix, condition in prefixes:
            redirect = f"http-request redirect prefix {prefix.format(target)} code 301 if {_host_is(source)}{condition}"
            yield redirect, f"{path}:redirects:{source}"


def _https_redirect(tls_spec, path):
    """Plain HTTP answered with a 301 to the same host and path over https."""
    if tls_spec["port"] == tls.DEFAULT_PORT:
        line = "http-request redirect scheme https code 301 unless { ssl_fc }"
    else:
        # the Host without its port; an IPv6 literal ("[2001:db8::50]:80") keeps its colons
        location = f"https://%[req.hdr(host),regsub(:[0-9]+$,)]:{tls_spec['port']}%[pathq]"
        line = f"http-request redirect location {location} code 301 unless {{ ssl_fc }}"
    return line, f"{path}:tls:redirect_http"


def _front_lines(service, path, certificate_dir):
    """How a service meets its clients: the binds on its VIP, its mode, its redirects."""
    lines = [(f"bind {_endpoint(vip, service['port'])}", f"{path}:{key}") for vip, key in services.addresses(service)]
    if service["tls"]:
        lines.extend(_tls_binds(service, path, certificate_dir))
    lines.append((f"mode {service['mode']}", f"{path}:mode"))
    lines.extend(_host_redirects(service, path))
    if service["tls"] and service["tls"]["redirect_http"]:
        lines.append(_https_redirect(service["tls"], path))
    if service["tls"]:  # the backends learn that the client spoke TLS (a client's own header is replaced)
        lines.append(("http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]", f"{path}:tls"))
    if service["tls"] and service["tls"]["hsts"]:
        lines.append(_hsts_line(service["tls"]["hsts"], path))
    return lines


def _hsts_line(hsts, path):
    """
    HSTS on every answer over TLS, never over plain HTTP (RFC 6797 8.1: ignored there). After-response:
    HAProxy's own answers (the redirects of a foreign host over https) carry it too; a backend's is replaced.
    """
    directives = [f"max-age={hsts['max_age']}"]
    if hsts["include_subdomains"]:
        directives.append("includeSubDomains")
    if hsts["preload"]:
        directives.append("preload")
    line = f'http-after-response set-header Strict-Transport-Security "{"; ".join(directives)}" if {{ ssl_fc }}'
    return line, f"{path}:tls:hsts"


def _listen_section(name, service, certificate_dir):
    path = pillar.key("services", name)
    lines = [*_front_lines(service, path, certificate_dir), *_pool_lines(service, path, service["mode"], service["tls"])]
    return _section(f"listen {name}", path, lines)


def _host_is(host):
    return f"{{ req.hdr(host),field(1,:) -i {host} }}"


def _route_line(service_name, route):
    conditions = [_host_is(route["host"])] if route["host"] else []
    if route["path"]:
        conditions.append(f"{{ path_beg {route['path']} }}")
    return f"use_backend {services.backend_proxy(service_name, route['backend'])} if {' '.join(conditions)}"


def _frontend_section(name, service, certificate_dir):
    """A routed service: its redirects, then the routes in order, then the default backend."""
    path = pillar.key("services", name)
    lines = _front_lines(service, path, certificate_dir)
    lines.extend((line, f"{path}:options:{index}") for index, line in enumerate(service["options"]))
    lines.extend((_route_line(name, route), f"{path}:routes:{index}") for index, route in enumerate(service["routes"]))
    lines.append((f"default_backend {services.backend_proxy(name, service['default_backend'])}", f"{path}:default_backend"))
    return _section(f"frontend {name}", path, lines)


def _backend_sections(name, service):
    for backend, pool in service["backends"].items():
        path = pillar.key("services", name, "backends", backend)
        lines = [("mode http", path), *_pool_lines(pool, path, "http", service["tls"])]
        yield _section(f"backend {services.backend_proxy(name, backend)}", path, lines)


def _service_sections(name, service, certificate_dir):
    """A plain service is one ``listen`` section; a routed one a ``frontend`` and its ``backend`` sections."""
    if "backends" not in service:
        return [_listen_section(name, service, certificate_dir)]
    return [_frontend_section(name, service, certificate_dir), *_backend_sections(name, service)]


def _probe_section(probe):
    """What keepalived's probe asks (:mod:`saltext.lbpair.node.haproxy_watch`): HAProxy answers it itself, on the loopback."""
    path = pillar.key("vrrp", "probe")
    lines = [
        (f"bind 127.0.0.1:{probe['port']}", f"{path}:port"),
        ("mode http", path),
        ("http-request return status 200 content-type text/plain string alive", path),
    ]
    return _section(f"frontend {vrrp.PROBE_FRONTEND}", f"{path}:enabled", lines)


def _exporter_section(model):
    """
    HAProxy's own Prometheus exporter (:mod:`saltext.lbpair.model.haproxy_exporter`) on this node's exporter
    address: ``/metrics`` answered, every other path denied, nothing logged (a scrape every few seconds).
    An IPv6 wildcard is IPv6 only: the firewall rules of the IPv6 family are the ones that guard it.
    """
    prometheus, node = model["haproxy"]["prometheus"], model["node"]["name"]
    path = pillar.key("haproxy", "prometheus")
    address = prometheus["addresses"][node]
    v6only = " v6only" if haproxy_exporter.is_wildcard(address) and ":" in address else ""
    bind = f"bind {_endpoint(address, prometheus['port'])}{v6only}"
    lines = [
        (bind, prometheus["keys"][node]),
        ("mode http", path),
        ("no log", path),
        (f"http-request use-service prometheus-exporter if {{ path {haproxy_exporter.METRICS_PATH} }}", path),
        ("http-request deny", path),
    ]
    return _section(f"frontend {haproxy_exporter.FRONTEND}", path, lines)


def render_lines(model, certificate_dir=tls.MANAGED_DIRECTORY):
    """
    haproxy.cfg for a normalised lbpair model as ``[(line, key), ...]``: each line
    with the pillar key it comes from (``lbpair:services:foo:options:2``); the
    certificates from the pillar are files in ``certificate_dir``.
    """
    sections = [
        _global_section(model),
        _section("defaults", written_by_lbpair("defaults"), _directives(model["haproxy"]["defaults"], pillar.key("haproxy", "defaults"))),
        *([_peers_section(model)] if _uses_peers(model) else []),
        *(section for name, service in model["services"].items() for section in _service_sections(name, service, certificate_dir)),
        *([_probe_section(model["vrrp"]["probe"])] if model["vrrp"]["probe"]["enabled"] else []),
        *([_exporter_section(model)] if model["haproxy"]["prometheus"] else []),
    ]
    return sections_after_header(HEADER.rstrip("\n"), sections)


def render_config(model, certificate_dir=tls.MANAGED_DIRECTORY):
    """The complete haproxy.cfg for a normalised lbpair model, byte for byte deterministic."""
    return text_of(render_lines(model, certificate_dir))
