"""
``lbpair:services``: what HAProxy serves on each virtual IP, validated and normalised.

A service is either

- **plain** (``servers``): one HAProxy ``listen`` section, as the seed's services; or
- **routed** (``backends``): a ``frontend`` on the VIP whose ``routes`` pick a
  backend by Host and path prefix (first match wins, else ``default_backend``),
  and one ``backend`` section per backend, named ``<service>.<backend>``.

Either may terminate TLS on its VIP too (``tls``, :mod:`saltext.lbpair.model.tls`).

A plain service and each backend are a *pool*: ``balance``, ``cookie``,
``health`` (a modelled health check), ``stick`` (a stick table both nodes share,
so a client keeps its server across a failover), ``options`` (raw lines) and
``servers``.

.. code-block:: yaml

    shop:
      vip: 203.0.113.50
      vip6: 2001:db8::50          # optional: the same frontend on an IPv6 VIP too (dual stack)
      port: 80
      redirects: {www.shop.example.net: shop.example.net}   # Host -> Host, 301, path kept
      backends:
        web: {servers: {web1: {address: 198.51.100.51, port: 80}}}
        api:
          health: {path: /health, status: 200, inter: 2, fall: 3, rise: 2}
          servers: {api1: {address: 198.51.100.61, port: 8080}}
      routes:
        - {path: /api/, backend: api}
        - {host: api.shop.example.net, backend: api}
      default_backend: web
"""

import re

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import haproxy_allow, haproxy_balance, haproxy_servers, haproxy_syntax, schema, tls

COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: a DNS host name, lower case, without a trailing dot or a port
HOST_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
#: a URL path prefix: RFC 3986 path characters (no space, no brace, no query or fragment), less those
#: HAProxy's tokenizer reads specially (``'`` quotes, ``$`` expands): ``/api/'x'/`` would match ``/api/x/``
PATH_RE = re.compile(r"/[A-Za-z0-9._~!&()*+,;=:@%/-]{0,1023}")
POOL_KEYS = ("balance", "cookie", "health", "stick", "options", "servers")
ROUTED_KEYS = ("backends", "routes", "default_backend")
HEALTH_DEFAULTS = {"path": "/", "status": 200, "inter": 2, "fall": 3, "rise": 2}
#: a stick table keyed by the client's address, replicated to the peer node (``peers``)
STICK_DEFAULTS = {"on": "src", "size": 100000, "expire": 1800}
#: the VRRP instance of a service that names none: the one of ``lbpair:vrrp:virtual_router_id``
DEFAULT_INSTANCE = "default"
#: size caps: far above any real pair, low enough that the largest service validates in well under a second
MAX_SERVICES = 10_000
MAX_BACKENDS = 50
MAX_SERVERS = 1_000
MAX_ROUTES = 1_000
MAX_REDIRECTS = 1_000


def _option_lines(value, path, pool=None, servers=()):
    """
    The escape hatch: an ordered list of HAProxy directive lines, each on the allow-list of what a
    service may set (:mod:`saltext.lbpair.model.haproxy_allow`), returned as the canonical lines HAProxy
    reads back word for word. ``pool``: the pool's keys as given (a line never sets what a key does).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidValue(path, f"expected a list of directive lines, got {schema.type_name(value)}")
    if len(value) > haproxy_allow.MAX_LINES:
        raise InvalidValue(path, f"at most {haproxy_allow.MAX_LINES} lines")
    lines_words = [_option_words(line, f"{path}:{index}") for index, line in enumerate(value)]
    acls = haproxy_allow.acl_names(lines_words)
    for index, words in enumerate(lines_words):
        _check_option(words, f"{path}:{index}", path.rsplit(":", 1)[0], pool or {}, acls, servers)
    return [haproxy_syntax.line(words) for words in lines_words]


def _option_words(line, key):
    return haproxy_syntax.words(schema.string(line, key), key)


def _check_option(words, key, owner, pool, acls, servers):
    """An options line (its words) of ``owner`` (``lbpair:services:foo``): allowed, and setting nothing a key sets."""
    modelled = haproxy_allow.modelled_key(words)
    if modelled:
        raise InvalidValue(key, f"{words[0]!r} is modelled: set it with {owner}:{modelled}, not with an options line")
    if pool.get("health") is not None and (words[:2] == ["option", "httpchk"] or words[0] == "http-check"):
        raise InvalidValue(key, f"sets the health check that {owner}:health sets: use one or the other")
    problem = haproxy_allow.directive_problem(words, acls, servers)
    if problem:
        raise InvalidValue(key, problem)


def _server(name, value, path):
    schema.name(name, path)
    schema.mapping(value, path, allowed=("address", "port", "options"), required=("address", "port"))
    options = value.get("options")
    return {
        # host: never loopback (the node's own services), link-local (a cloud's metadata service), ...
        "address": schema.address(value["address"], f"{path}:address", host=True),
        "port": schema.port(value["port"], f"{path}:port"),
        "options": None if options is None else _server_options(options, f"{path}:options"),
    }


def _server_options(value, key):
    """A server's options (``inter 2s fall 3``): server keywords of the allow-list, rendered canonically."""
    words = _option_words(value, key)
    return haproxy_syntax.line(haproxy_servers.server_options(words, key))


def _balance(value, path):
    """The balance algorithm and its arguments, read and rendered as HAProxy reads them."""
    words = _option_words(value, path)
    problem = haproxy_balance.balance_problem(words)
    if problem:
        raise InvalidValue(path, problem)
    return haproxy_syntax.line(words)


def _url_path(value, path):
    return schema.matching(value, path, PATH_RE, "a URL path starting with / (no space, quote, $, brace, query or fragment)")


def host_name(value, path):
    """A DNS host name as HTTP clients send it in Host (lower case, no port, no trailing dot)."""
    return schema.matching(value, path, HOST_RE, "a host name (lower case letters, digits, '-' and '.')")


def _health(value, path, mode):
    """A modelled health check: HTTP (path, expected status) in mode http, a TCP connect in mode tcp."""
    if value is None:
        return None
    schema.mapping(value, path, allowed=tuple(HEALTH_DEFAULTS))
    if mode == "tcp" and ("path" in value or "status" in value):
        raise InvalidValue(path, "path and status are for HTTP checks: they need mode http")
    health = {**HEALTH_DEFAULTS, **value}
    return {
        "path": None if mode == "tcp" else _url_path(health["path"], f"{path}:path"),
        "status": None if mode == "tcp" else schema.integer(health["status"], f"{path}:status", 100, 599),
        "inter": schema.number(health["inter"], f"{path}:inter", 0.1, 3600),
        "fall": schema.integer(health["fall"], f"{path}:fall", 1, 100),
        "rise": schema.integer(health["rise"], f"{path}:rise", 1, 100),
    }


def _stick(value, path):
    """Keep each client on the server it first got, across both nodes: a stick table the peers share."""
    if value is None:
        return None
    schema.mapping(value, path, allowed=tuple(STICK_DEFAULTS))
    stick = {**STICK_DEFAULTS, **value}
    return {
        "on": schema.choice(stick["on"], f"{path}:on", ("src",)),
        "size": schema.integer(stick["size"], f"{path}:size", 1, 100_000_000),
        "expire": schema.integer(stick["expire"], f"{path}:expire", 1, 24 * 24 * 3600),
    }


def _pool(value, path, mode):
    """balance, cookie, health, options and servers: a plain service's, or one backend's."""
    cookie = value.get("cookie")
    if cookie is not None:
        cookie = schema.matching(cookie, f"{path}:cookie", COOKIE_RE, "a cookie name")
        if mode != "http":
            raise InvalidValue(f"{path}:cookie", "cookie persistence needs mode http")
    if "servers" not in value:
        raise InvalidValue(f"{path}:servers", "is required")
    servers = _named_entries(value["servers"], f"{path}:servers", "server", (MAX_SERVERS, "servers in one pool"))
    return {
        "balance": _balance(value.get("balance", "roundrobin"), f"{path}:balance"),
        "cookie": cookie,
        "health": _health(value.get("health"), f"{path}:health", mode),
        "stick": _stick(value.get("stick"), f"{path}:stick"),
        "options": _option_lines(value.get("options"), f"{path}:options", value, tuple(map(str, servers))),
        "servers": {server: _server(server, servers[server], f"{path}:servers:{server}") for server in sorted(servers, key=str)},
    }


def _route(value, path, backends):
    schema.mapping(value, path, allowed=("host", "path", "backend"), required=("backend",))
    if "host" not in value and "path" not in value:
        raise InvalidValue(path, "needs a host, a path prefix or both")
    backend = schema.name(value["backend"], f"{path}:backend")
    if backend not in backends:
        raise InvalidValue(f"{path}:backend", f"there is no backend {backend!r} (backends: {', '.join(backends)})")
    return {
        "host": host_name(value["host"], f"{path}:host") if "host" in value else None,
        "path": _url_path(value["path"], f"{path}:path") if "path" in value else None,
        "backend": backend,
    }


def _named_entries(value, path, entry, limit):
    """A mapping of at least one named ``entry`` and at most ``limit`` (a count and what it counts)."""
    schema.named_mapping(value, path)
    if not value:
        raise InvalidValue(path, f"needs at least one {entry}")
    _at_most(value, *limit, path)
    return value


def _at_most(items, limit, what, path):
    """Refuse more than ``limit`` ``items`` (a list or mapping) before looking at any of them."""
    if len(items) > limit:
        raise InvalidValue(path, f"has {len(items)} entries: at most {limit} {what}")


def _covering_keys(route, lengths):
    """
    The ``(host, path)`` a route that matches first all ``route`` matches may have: no host or
    the same host, and no path or a prefix of its path (one of ``lengths``, those earlier
    routes' paths have; a path route never covers one without).
    """
    hosts = (None,) if route["host"] is None else (None, route["host"])
    paths = [None]
    if route["path"] is not None:
        paths += [route["path"][:length] for length in lengths if length <= len(route["path"])]
    return ((host, prefix) for host in hosts for prefix in paths)


def _routes(value, path, backends):
    """
    The routes, none shadowed by an earlier one. Each earlier route is indexed by its host and
    path; a route looks up the keys that could cover it (:func:`_covering_keys`) instead of
    testing every earlier route (that took 22 s for 10,000 routes).
    """
    if not isinstance(value, list):
        raise InvalidValue(path, f"expected a list of routes, got {schema.type_name(value)}")
    _at_most(value, MAX_ROUTES, "routes in one service", path)
    routes = [_route(route, f"{path}:{index}", backends) for index, route in enumerate(value)]
    first, lengths = {}, set()  # (host, path) -> index of the route that has them (a second one is shadowed)
    for index, route in enumerate(routes):
        covering = [first[key] for key in _covering_keys(route, lengths) if key in first]
        if covering:
            raise InvalidValue(f"{path}:{index}", f"is shadowed by {path}:{min(covering)}, which matches first all it matches")
        first[route["host"], route["path"]] = index
        if route["path"] is not None:
            lengths.add(len(route["path"]))
    return routes


def _default_backend(value, path, backends):
    if value is None:
        if len(backends) == 1:
            return next(iter(backends))
        raise InvalidValue(path, "is required with more than one backend")
    name = schema.name(value, path)
    if name not in backends:
        raise InvalidValue(path, f"there is no backend {name!r} (backends: {', '.join(backends)})")
    return name


def _routed(value, path, mode):
    extra = next((key for key in POOL_KEYS if key in value and key != "options"), None)
    if extra is not None:
        raise InvalidValue(f"{path}:{extra}", "belongs in a backend: a service has either servers or backends")
    if mode != "http":
        raise InvalidValue(f"{path}:backends", "routes by Host and path need mode http")
    backends = _named_entries(value["backends"], f"{path}:backends", "backend", (MAX_BACKENDS, "backends in one service"))
    pools = {}
    for name in sorted(backends, key=str):
        backend_path = f"{path}:backends:{name}"
        schema.name(name, backend_path)
        schema.mapping(backends[name], backend_path, allowed=POOL_KEYS, required=("servers",))
        pools[name] = _pool(backends[name], backend_path, mode)
    return {
        "backends": pools,
        "routes": _routes(value.get("routes", []), f"{path}:routes", pools),
        "default_backend": _default_backend(value.get("default_backend"), f"{path}:default_backend", pools),
    }


def _redirects(value, path, mode):
    """``{from host: to host}``: requests for the first get a 301 to the second, path and query kept."""
    if value is None:
        return {}
    if mode != "http":
        raise InvalidValue(path, "redirects need mode http")
    schema.named_mapping(value, path)
    _at_most(value, MAX_REDIRECTS, "redirects in one service", path)
    redirects = {host_name(source, f"{path}:{source}"): host_name(target, f"{path}:{source}") for source, target in value.items()}
    for source, target in redirects.items():
        if target in redirects:
            raise InvalidValue(f"{path}:{source}", f"redirects to {target}, which is redirected itself")
    return dict(sorted(redirects.items()))


def _service(name, value, path, reserved):
    schema.name(name, path)
    if name in reserved:
        raise InvalidValue(path, f"{name} is the name of lbpair's {reserved[name]}")
    allowed = ("vip", "vip6", "port", "instance", "mode", "tls", "redirects", "options", *POOL_KEYS, *ROUTED_KEYS)
    schema.mapping(value, path, allowed=allowed, required=("vip", "port"))
    mode = value.get("mode", "http")
    if mode not in ("http", "tcp"):
        raise InvalidValue(f"{path}:mode", f"must be http or tcp, got {mode!r}")
    service = {
        "vip": schema.address(value["vip"], f"{path}:vip", host=True),
        "vip6": _vip6(value, path),
        "port": schema.port(value["port"], f"{path}:port"),
        # the VRRP instance that carries the VIP (lbpair:vrrp:instances); the pillar checks that it exists
        "instance": schema.name(value.get("instance", DEFAULT_INSTANCE), f"{path}:instance"),
        "mode": mode,
        "redirects": _redirects(value.get("redirects"), f"{path}:redirects", mode),
    }
    service["tls"] = tls.normalize(value.get("tls"), f"{path}:tls", mode, service["port"])
    if "backends" in value:
        return {**service, "options": _option_lines(value.get("options"), f"{path}:options"), **_routed(value, path, mode)}
    stray = next((key for key in ROUTED_KEYS if key in value), None)
    if stray:
        raise InvalidValue(f"{path}:{stray}", "is only for a service with backends")
    return {**service, **_pool(value, path, mode)}


def _vip6(value, path):
    """The IPv6 VIP a dual-stack service binds beside its IPv4 ``vip`` (None without one)."""
    if value.get("vip6") is None:
        return None
    if schema.address_family(value["vip"]) != 4:
        raise InvalidValue(f"{path}:vip6", "needs an IPv4 vip beside it (an IPv6 vip is enough alone)")
    return schema.address(value["vip6"], f"{path}:vip6", version=6, host=True)


def addresses(service):
    """``(vip, key)`` of each virtual IP a service binds: its ``vip``, and its ``vip6`` if it has one."""
    yield service["vip"], "vip"
    if service["vip6"]:
        yield service["vip6"], "vip6"


def service_vips(services):
    """``(service name, service, vip, key)`` of every VIP of every service (``key``: ``vip`` or ``vip6``)."""
    for name, service in services.items():
        for vip, key in addresses(service):
            yield name, service, vip, key


def pools(services):
    """``(service, backend or None, pool)`` of every pool: the plain services and the routed ones' backends."""
    for name, service in services.items():
        if "backends" in service:
            for backend, pool in service["backends"].items():
                yield name, backend, pool
        else:
            yield name, None, service


def backend_proxy(service, backend):
    """HAProxy's name of a routed service's backend (``shop.api``): what the stats socket calls it."""
    return f"{service}.{backend}"


def _check_unique_proxy_names(services, path):
    """
    Every HAProxy proxy name is one service's: a backend's (``shop`` + ``api``) is neither a service's
    (``shop.api``) nor another service's backend (``a`` + ``b.c`` and ``a.b`` + ``c`` are both ``a.b.c``).
    """
    owners = dict.fromkeys(services)
    for name, service in services.items():
        for backend in service.get("backends", {}):
            proxy = backend_proxy(name, backend)
            if proxy in owners:
                other = f"service {proxy}" if owners[proxy] is None else f"a backend of service {owners[proxy]}"
                raise InvalidValue(f"{path}:{name}:backends:{backend}", f"its HAProxy name {proxy} is the name of {other}")
            owners[proxy] = name


def _listeners(name, service, path):
    """``(vip, port, key)`` of each address and port a service binds: its plain port, and its TLS one if it has one."""
    for vip, key in addresses(service):
        yield vip, service["port"], f"{path}:{name}:{key}"
        if service["tls"]:
            yield vip, service["tls"]["port"], f"{path}:{name}:tls:port"


def _check_unique_listeners(services, path):
    listeners = {}
    for name, service in services.items():
        for vip, port, key in _listeners(name, service, path):
            if (vip, port) in listeners:
                raise InvalidValue(key, f"{vip} port {port} is already used by service {listeners[vip, port]}")
            listeners[vip, port] = name


def normalize(value, path, reserved=None):
    """The services of ``lbpair:services`` (``path``), by name; ``reserved``: ``{name: what}`` lbpair uses itself."""
    value = {} if value is None else value
    schema.named_mapping(value, path)
    _at_most(value, MAX_SERVICES, "services", path)
    services = {name: _service(name, value[name], f"{path}:{name}", reserved or {}) for name in sorted(value, key=str)}
    _check_unique_listeners(services, path)
    _check_unique_proxy_names(services, path)
    return services
