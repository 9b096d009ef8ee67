"""
What a service entry may ask of HAProxy: the allow-list of ``options`` lines and server options.

A service's entry must never do more than serve that service. Each ``options`` line is read as
HAProxy reads it (:mod:`saltext.lbpair.model.haproxy_syntax`), then its directive must be on the list
below (the table "What a service entry may set" in docs/security.md) and each argument of the right kind.
What lbpair models (``balance``, ``cookie``, ``health``, ``stick``, ``mode``, servers, binds,
routes) is set with its key, never by a line. Anything else is refused naming the key, with the
way to ask for it. Sample expressions (conditions, ``%[...]``) are checked by
:mod:`saltext.lbpair.model.haproxy_fetches`. The ``global``/``defaults`` overrides (the pair owner's)
get a deny-list of sockets, listeners, programs and files instead (:func:`override_problem`).
"""

import re

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model.haproxy_fetches import ASK, LineProblem, log_format, sample_expression
from saltext.lbpair.model.haproxy_syntax import HAPROXY_SECTIONS

MAX_LINES = 64
TIME_RE = re.compile(r"\d{1,9}(us|ms|s|m|h|d)?")
HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MIME_RE = re.compile(r"[a-z0-9.+-]+/[a-z0-9.+*-]+(;[a-z0-9=_.-]+)?")
URI_RE = re.compile(r"/[A-Za-z0-9._~!&'()*+,;=:@%/?-]{0,1023}")
URL_RE = re.compile(r"(https?://[A-Za-z0-9.:\[\]-]+)?/?[A-Za-z0-9._~!&'()*+,;=:@%/?-]{0,1023}")
NETWORK_RE = re.compile(r"[0-9a-fA-F.:]+(/\d{1,3})?")
#: predefined ACLs a condition may name
PREDEFINED_ACLS = {
    "FALSE", "HTTP", "HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_CONTENT", "HTTP_URL_ABS", "HTTP_URL_SLASH", "HTTP_URL_STAR",
    "LOCALHOST", "METH_CONNECT", "METH_DELETE", "METH_GET", "METH_HEAD", "METH_OPTIONS", "METH_POST", "METH_PUT", "METH_TRACE",
    "REQ_CONTENT", "TRUE", "WAIT_END",
}  # fmt: skip
#: HTTP methods a health check may send
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH")
TIMEOUTS = (
    "client", "server", "connect", "queue", "tunnel", "http-request", "http-keep-alive", "check", "tarpit", "client-fin", "server-fin",
)  # fmt: skip
OPTIONS = (
    "httplog", "tcplog", "dontlognull", "dontlog-normal", "log-separate-errors", "log-health-checks", "http-server-close",
    "http-keep-alive", "httpclose", "http-pretend-keepalive", "http-no-delay", "http-buffer-request", "http-ignore-probes",
    "forwardfor", "redispatch", "abortonclose", "allbackups", "persist", "prefer-last-server", "httpchk", "tcpka",
    "clitcpka", "srvtcpka", "splice-auto", "splice-request", "splice-response", "tcp-smart-accept", "tcp-smart-connect",
    "independent-streams", "nolinger", "checkcache",
)  # fmt: skip
RETRY_ON = (
    "none", "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected", "all-retryable-errors",
    "401", "403", "404", "408", "425", "500", "501", "502", "503", "504",
)  # fmt: skip
#: directives lbpair renders from a key: set that key instead
MODELLED = {
    "balance": "balance", "cookie": "cookie", "stick-table": "stick", "stick": "stick", "mode": "mode",
    "server": "servers", "default-server": "health (or a server's options)", "bind": "vip, vip6, port and tls",
    "use_backend": "routes", "default_backend": "default_backend", "redirect": "redirects (or http-request redirect)",
}  # fmt: skip
#: server keywords a server's ``options`` may carry, each with the kind of its argument (None: a flag)
SERVER_KEYWORDS = {
    "inter": "time", "fastinter": "time", "downinter": "time", "slowstart": "time", "fall": "count", "rise": "count",
    "weight": "weight", "maxconn": "count", "maxqueue": "count", "minconn": "count", "error-limit": "count",
    "observe": ("layer4", "layer7"), "on-error": ("fastinter", "fail-check", "sudden-death", "mark-down"),
    "on-marked-down": ("shutdown-sessions",), "on-marked-up": ("shutdown-backup-sessions",),
    "backup": None, "non-stick": None, "disabled": None, "enabled": None, "check": None, "no-check": None,
    "send-proxy": None, "send-proxy-v2": None, "check-send-proxy": None, "ssl": None, "no-ssl": None, "check-ssl": None,
    "verify": ("none",), "tfo": None, "pool-max-conn": "count", "pool-purge-delay": "time", "port": "port",
    "alpn": "alpn", "check-alpn": "alpn", "agent-check": None, "agent-port": "port", "agent-inter": "time",
}  # fmt: skip
#: global/defaults keywords (first or first two words) that add a socket, a listener, a program or read a file
OVERRIDE_DENIED = {
    "stats socket": "set the stats socket with lbpair:haproxy:stats_socket",
    "stats bind-process": "binds lbpair's admin socket elsewhere", "lua-load": "loads a program",
    "lua-load-per-thread": "loads a program", "lua-prepend-path": "loads a program", "external-check": "runs programs",
    "insecure-fork-wanted": "lets HAProxy run programs", "insecure-setuid-wanted": "lets HAProxy run programs",
    "setenv": "changes the environment", "presetenv": "changes the environment", "resetenv": "changes the environment",
    "unsetenv": "changes the environment", "pidfile": "writes a file as root", "localpeer": "lbpair sets it",
    "server-state-file": "reads a file", "server-state-base": "reads files", "set-dumpable": "dumps memory to files",
    "unix-bind": "changes lbpair's sockets", "expose-experimental-directives": "unlocks unchecked directives",
    "h1-case-adjust-file": "reads a file", "ssl-dh-param-file": "reads a file", "ssl-engine": "loads a program",
    "issuers-chain-path": "reads files", "51degrees-data-file": "reads a file", "wurfl-data-file": "reads a file",
    "deviceatlas-json-file": "reads a file", "bind": "adds a listener", "server": "adds a server", "errorfile": "reads a file",
    "errorfiles": "reads files", "http-error": "reads files", "filter": "adds a filter", "use_backend": "routes traffic",
    "default_backend": "routes traffic", "http-request": "adds rules to every service", "http-response": "adds rules to every service",
    "tcp-request": "adds rules to every service", "tcp-response": "adds rules to every service", "http-after-response": "adds rules",
    "use-server": "routes traffic", "dispatch": "routes traffic", "source": "binds addresses", "usesrc": "binds addresses",
    "ssl-provider": "loads a program (an OpenSSL provider)", "ssl-provider-path": "loads programs (OpenSSL providers)",
    "httpclient.ssl.ca-file": "reads a file", "option external-check": "runs programs",
}  # fmt: skip
OVERRIDE_STATS_ALLOWED = {"global": ("timeout", "maxconn")}


# --- argument kinds -------------------------------------------------------------


def _matching(value, pattern, what):
    if not pattern.fullmatch(value):
        raise LineProblem(f"{value!r} is not {what}")
    return value


def _integer(value, low, high, what="an integer"):
    if not re.fullmatch(r"\d{1,9}", value) or not low <= int(value) <= high:
        raise LineProblem(f"{value!r} is not {what} from {low} to {high}")
    return value


def _time(value):
    return _matching(value, TIME_RE, "a time (a number and us, ms, s, m, h or d)")


def _status(value):
    return _integer(value, 100, 599, "an HTTP status")


def _choice(value, choices, what):
    if value not in choices:
        raise LineProblem(f"{what} {value!r} is not allowed (allowed: {', '.join(choices)}; {ASK})")
    return value


def _header(value):
    return _matching(value, HEADER_RE, "a header name (letters, digits, '-', '_')")


def _regex(value):
    try:
        re.compile(value)
    except re.error:
        raise LineProblem(f"{value!r} is not a regular expression") from None
    return value


# --- conditions -----------------------------------------------------------------


def _acl_body(words):
    """A criterion and its patterns (an ``acl`` line's or ``{ ... }``): no file (-f), no map (-M)."""
    if not words:
        raise LineProblem("an empty condition")
    sample_expression(words[0])
    for flag in words[1:]:
        if flag in ("-f", "-M"):
            raise LineProblem(f"{flag} reads patterns from a file: write them in the line")
    return words


def _condition(words, acls):
    """``if|unless`` then named ACLs (of this section's ``acl`` lines, or predefined) and ``{ ... }`` ones."""
    if not words:
        return
    if words[0] not in ("if", "unless") or len(words) == 1:
        raise LineProblem("expected 'if' or 'unless' and a condition after the action's arguments")
    index, rest = 0, words[1:]
    while index < len(rest):
        term = rest[index]
        if term == "{":
            end = rest.index("}", index) if "}" in rest[index:] else -1
            if end < 0:
                raise LineProblem("an anonymous ACL '{' without '}'")
            _acl_body(rest[index + 1 : end])
            index = end + 1
            continue
        name = term[1:] if term.startswith("!") else term
        if term not in ("or", "||", "!") and name not in acls and name not in PREDEFINED_ACLS:
            raise LineProblem(f"the ACL {name!r} is not defined by an acl line of this section")
        index += 1


def _split_condition(words):
    """``(arguments, condition)``: the words before ``if``/``unless`` and the condition itself."""
    for index, each in enumerate(words):
        if each in ("if", "unless"):
            return words[:index], words[index:]
    return words, []


# --- http-request / http-response -----------------------------------------------


def _pairs(words, allowed):
    """``keyword value`` pairs; ``allowed``: ``{keyword: check(value)}``, None for a flag."""
    index = 0
    while index < len(words):
        keyword = words[index]
        if keyword not in allowed:
            raise LineProblem(f"the argument {keyword!r} is not allowed (allowed: {', '.join(allowed)}; {ASK})")
        if allowed[keyword] is None:
            index += 1
            continue
        if index + 1 >= len(words):
            raise LineProblem(f"{keyword!r} needs a value")
        allowed[keyword](words[index + 1])
        index += 2


def _exactly(arguments, *checks):
    if len(arguments) != len(checks):
        raise LineProblem(f"expects {len(checks)} argument(s), got {len(arguments)}")
    for argument, check in zip(arguments, checks, strict=True):
        check(argument)


def _deny(arguments):
    _pairs(arguments, {"deny_status": _status, "status": _status})


def _redirect(arguments):
    if len(arguments) < 2:
        raise LineProblem("redirect needs location, prefix or scheme and its value")
    _choice(arguments[0], ("location", "prefix", "scheme"), "redirect")
    (log_format if arguments[0] == "location" else lambda value: _matching(value, URL_RE, "a URL"))(arguments[1])
    code = lambda value: _choice(value, ("301", "302", "303", "307", "308"), "code")  # noqa: E731
    _pairs(arguments[2:], {"code": code, "drop-query": None, "append-slash": None})


def _return_checked(arguments):
    """``return [status] [content-type] [string|lf-string] [hdr <name> <fmt>]...``"""
    rest, index = [], 0
    while index < len(arguments):
        if arguments[index] == "hdr":
            if index + 2 >= len(arguments):
                raise LineProblem("'hdr' needs a name and a value")
            _header(arguments[index + 1])
            log_format(arguments[index + 2])
            index += 3
            continue
        rest.append(arguments[index])
        index += 1
    _pairs(rest, {"status": _status, "content-type": _mime, "string": str, "lf-string": log_format})


def _mime(value):
    return _matching(value, MIME_RE, "a content type")


def _one_then_option(arguments, usage, check_one, option, check_option):
    """``<one>``, optionally followed by ``<option> <value>``."""
    if len(arguments) not in (1, 3):
        raise LineProblem(usage)
    check_one(arguments[0])
    if len(arguments) == 3:
        _choice(arguments[1], (option,), "option")
        check_option(arguments[2])


def _del_header(arguments):
    _one_then_option(
        arguments, "del-header takes a name, and optionally -m str|beg|end|sub|reg", _header,
        "-m", lambda match: _choice(match, ("str", "beg", "end", "sub", "reg"), "match"),
    )  # fmt: skip


def _set_status(arguments):
    _one_then_option(arguments, "set-status takes a status, and optionally reason <text>", _status, "reason", str)


HTTP_ACTIONS = {
    "set-header": lambda a: _exactly(a, _header, log_format), "add-header": lambda a: _exactly(a, _header, log_format),
    "del-header": _del_header, "replace-header": lambda a: _exactly(a, _header, _regex, log_format),
    "replace-value": lambda a: _exactly(a, _header, _regex, log_format), "set-path": lambda a: _exactly(a, log_format),
    "set-query": lambda a: _exactly(a, log_format), "set-status": _set_status, "redirect": _redirect, "deny": _deny,
    "tarpit": _deny, "allow": lambda a: _exactly(a), "return": _return_checked,
}  # fmt: skip
#: the actions HAProxy 2.6 has on one side only
ONE_SIDED_ACTIONS = {"http-request": ("set-status",), "http-response": ("set-path", "set-query", "tarpit")}


def _http_rule(words, acls, servers):
    arguments, condition = _split_condition(words[1:])
    if not arguments:
        raise LineProblem(f"{words[0]} needs an action")
    actions = [action for action in HTTP_ACTIONS if action not in ONE_SIDED_ACTIONS[words[0]]]
    action = _choice(arguments[0], tuple(actions), f"the {words[0]} action")
    HTTP_ACTIONS[action](arguments[1:])
    _condition(condition, acls)


# --- directives -----------------------------------------------------------------


def _option(words, acls, servers):
    negated = words[0] == "no"
    rest = words[2:] if negated else words[1:]
    if not rest:
        raise LineProblem("option needs a name")
    name = _choice(rest[0], OPTIONS, "option")
    arguments = rest[1:]
    if negated and arguments:
        raise LineProblem("'no option' takes no arguments")
    if name == "httplog":
        _pairs(arguments, {"clf": None})
    elif name == "forwardfor":
        _pairs(arguments, {"except": lambda value: _matching(value, NETWORK_RE, "a network"), "header": _header, "if-none": None})
    elif name == "httpchk":
        _httpchk(arguments)
    elif arguments:
        raise LineProblem(f"option {name} takes no arguments here")


def _httpchk(arguments):
    if len(arguments) > 3:
        raise LineProblem("option httpchk takes [<method>] [<uri>] [<version>]")
    if arguments:
        if len(arguments) == 1:
            _matching(arguments[0], URI_RE, "a URI")
            return
        _choice(arguments[0], METHODS, "method")
        _matching(arguments[1], URI_RE, "a URI")
    if len(arguments) == 3:
        _choice(arguments[2], ("HTTP/1.0", "HTTP/1.1"), "version")


def _http_check(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("http-check needs a keyword")
    kind = _choice(words[1], ("expect", "send", "disable-on-404", "send-state"), "http-check")
    arguments = words[2:]
    if kind == "expect":
        if arguments[:1] == ["!"]:
            arguments = arguments[1:]
        if len(arguments) != 2:
            raise LineProblem("http-check expect takes status|rstatus|string|rstring and a pattern")
        what = _choice(arguments[0], ("status", "rstatus", "string", "rstring"), "http-check expect")
        {"status": _status_list, "rstatus": _regex, "string": str, "rstring": _regex}[what](arguments[1])
    elif kind == "send":
        _pairs(arguments, {
            "meth": lambda value: _choice(value, METHODS, "method"), "uri": lambda value: _matching(value, URI_RE, "a URI"),
            "ver": lambda value: _choice(value, ("HTTP/1.0", "HTTP/1.1"), "version"), "body": str,
        })  # fmt: skip
    elif arguments:
        raise LineProblem(f"http-check {kind} takes no arguments")


def _status_list(value):
    for part in re.split(r"[,-]", value):
        _status(part)


def _compression(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("compression needs algo, type or offload")
    kind = _choice(words[1], ("algo", "type", "offload"), "compression")
    if kind == "offload":
        _exactly(words[2:])
        return
    if len(words) < 3:
        raise LineProblem(f"compression {kind} needs values")
    for value in words[2:]:
        if kind == "algo":
            _choice(value, ("identity", "gzip", "deflate", "raw-deflate"), "algorithm")
        else:
            _mime(value)


def _capture_checked(words, acls, servers):
    if len(words) != 6 or words[2] != "header" or words[4] != "len":
        raise LineProblem("expected capture request|response header <name> len <n>")
    _choice(words[1], ("request", "response"), "capture")
    _header(words[3])
    _integer(words[5], 1, 1024, "a length")


def _timeout(words, acls, servers):
    if len(words) != 3:
        raise LineProblem("expected timeout <kind> <time>")
    _choice(words[1], TIMEOUTS, "timeout")
    _time(words[2])


def _retry_on(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("retry-on needs at least one event")
    for value in words[1:]:
        _choice(value, RETRY_ON, "retry-on event")


def _hash_type(words, acls, servers):
    if not 2 <= len(words) <= 4:
        raise LineProblem("expected hash-type map-based|consistent [sdbm|djb2|wt6|crc32] [avalanche]")
    _choice(words[1], ("map-based", "consistent"), "hash-type")
    if len(words) > 2:
        _choice(words[2], ("sdbm", "djb2", "wt6", "crc32"), "hash function")
    if len(words) > 3:
        _choice(words[3], ("avalanche",), "modifier")


def _use_server(words, acls, servers):
    arguments, condition = _split_condition(words[1:])
    if len(arguments) != 1 or arguments[0] not in servers:
        raise LineProblem(f"use-server must name a server of this pool ({', '.join(servers) or 'none here'})")
    _condition(condition, acls)


def _acl(words, acls, servers):
    if len(words) < 3:
        raise LineProblem("expected acl <name> <criterion> [flags] [patterns]")
    _matching(words[1], NAME_RE, "an ACL name")
    _acl_body(words[2:])


def _number(name, low, high):
    def check(words, acls, servers):
        if len(words) != 2:
            raise LineProblem(f"expected {name} <{low}-{high}>")
        _integer(words[1], low, high)

    return check


DIRECTIVES = {
    "timeout": _timeout, "option": _option, "no": _option, "retries": _number("retries", 0, 100), "retry-on": _retry_on,
    "compression": _compression, "http-request": _http_rule, "http-response": _http_rule, "http-check": _http_check,
    "maxconn": _number("maxconn", 1, 10_000_000), "fullconn": _number("fullconn", 1, 10_000_000), "hash-type": _hash_type,
    "http-reuse": lambda w, a, s: _exactly(w[1:], lambda v: _choice(v, ("never", "safe", "aggressive", "always"), "http-reuse")),
    "capture": _capture_checked, "acl": _acl, "use-server": _use_server,
}  # fmt: skip


def directive_problem(words, acls=(), servers=()):
    """Why the words of an ``options`` line are refused (None: allowed). ``acls``: the section's ACL names."""
    keyword = words[0]
    if keyword in HAPROXY_SECTIONS:
        return f"must not start with {keyword!r}: it would open a section of its own"
    if keyword == "no" and words[1:2] != ["option"]:
        return f"'no {' '.join(words[1:2])}' is not allowed ({ASK})"
    if keyword not in DIRECTIVES:
        return f"the directive {keyword!r} is not on the allow-list of what a service may set ({ASK})"
    try:
        DIRECTIVES[keyword](words, acls, servers)
    except LineProblem as problem:
        return str(problem)
    return None


def _no_arguments(arguments):
    _exactly(arguments)


def _uri(arguments):
    _pairs(arguments, {"whole": None, "path-only": None, "len": lambda v: _integer(v, 1, 65535), "depth": lambda v: _integer(v, 1, 255)})


def _url_param(arguments):
    if len(arguments) not in (1, 2):
        raise LineProblem("url_param takes a parameter name and optionally check_post")
    _matching(arguments[0], HEADER_RE, "a parameter name")
    if len(arguments) == 2:
        _choice(arguments[1], ("check_post",), "argument")


def _hdr(name, arguments):
    _header(name)
    _pairs(arguments, {"use_domain_only": None})


#: ``balance`` algorithms (HAProxy 2.6, 4.2 "balance"): ``check(arguments)``, and for those
#: written ``algorithm(argument)``, ``check(argument, arguments)``
BALANCE = {
    "roundrobin": _no_arguments, "static-rr": _no_arguments, "leastconn": _no_arguments, "first": _no_arguments,
    "source": _no_arguments, "uri": _uri, "url_param": _url_param, "hash": lambda a: _exactly(a, sample_expression),
}  # fmt: skip
BALANCE_CALLS = {
    "random": lambda draws, a: (_integer(draws, 1, 100, "a number of draws"), _no_arguments(a)),
    "rdp-cookie": lambda name, a: (_matching(name, HEADER_RE, "a cookie name"), _no_arguments(a)),
    "hdr": _hdr,
}
BALANCE_CALL_RE = re.compile(r"([a-z-]+)\((.*)\)")


def balance_problem(words):
    """Why the words of a ``balance`` value (``["hdr(host)", "use_domain_only"]``) are refused (None: not)."""
    algorithm, arguments = words[0], words[1:]
    call = BALANCE_CALL_RE.fullmatch(algorithm)
    try:
        if call and call[1] in BALANCE_CALLS:
            BALANCE_CALLS[call[1]](call[2], arguments)
        elif algorithm in ("random", "rdp-cookie"):
            _no_arguments(arguments)
        elif algorithm in BALANCE:
            BALANCE[algorithm](arguments)
        else:
            return f"{algorithm!r} is not a balance algorithm (allowed: {', '.join([*BALANCE, *BALANCE_CALLS])})"
    except LineProblem as problem:
        return str(problem)
    return None


def modelled_key(words):
    """The key lbpair models the line's setting with, if it does (``balance`` -> ``balance``), else None."""
    return MODELLED.get(words[0])


def acl_names(lines_words):
    """The names the ``acl`` lines among ``lines_words`` define."""
    return {words[1] for words in lines_words if words[0] == "acl" and len(words) > 1}


def server_options(words, key):
    """A server's ``options`` words checked against :data:`SERVER_KEYWORDS`; returns them."""
    index = 0
    while index < len(words):
        keyword = words[index]
        if keyword not in SERVER_KEYWORDS:
            if keyword == "cookie":
                raise InvalidValue(key, "set the cookie with the pool's cookie key")
            raise InvalidValue(key, f"the server keyword {keyword!r} is not on the allow-list ({ASK})")
        kind = SERVER_KEYWORDS[keyword]
        if kind is None:
            index += 1
            continue
        if index + 1 >= len(words):
            raise InvalidValue(key, f"{keyword!r} needs a value")
        try:
            _server_value(kind, words[index + 1], keyword)
        except LineProblem as problem:
            raise InvalidValue(key, str(problem)) from None
        index += 2
    return words


def _server_value(kind, value, keyword):
    if isinstance(kind, tuple):
        _choice(value, kind, keyword)
    elif kind == "time":
        _time(value)
    elif kind == "count":
        _integer(value, 0, 10_000_000)
    elif kind == "weight":
        _integer(value, 0, 256, "a weight")
    elif kind == "port":
        _integer(value, 1, 65535, "a port")
    else:  # alpn
        for protocol in value.split(","):
            _choice(protocol, ("h2", "http/1.1", "http/1.0"), "ALPN protocol")


def override_problem(words, section):
    """Why a ``global``/``defaults`` override line (its words) is refused (None: it is not)."""
    first, pair = words[0], " ".join(words[:2])
    if first in HAPROXY_SECTIONS:
        return f"must not start with {first!r}: it would open a section of its own"
    for keyword in (pair, first):
        if keyword in OVERRIDE_DENIED:
            reason = OVERRIDE_DENIED[keyword]
            return reason if keyword == "stats socket" else f"{keyword!r} is not allowed in lbpair:haproxy:{section}: it {reason}"
    if first == "stats" and words[1:2] and words[1] not in OVERRIDE_STATS_ALLOWED.get(section, ()):
        return f"'{pair}' is not allowed in lbpair:haproxy:{section}: a stats page or socket lbpair does not manage"
    if first == "stats" and len(words) == 1:
        return "'stats' needs a keyword"
    for each in words:
        if each.startswith("lua.") or each in ("use-service", "lf-file", "file"):
            return f"{each!r} runs a program or reads a file: not allowed in lbpair:haproxy:{section}"
    return None
