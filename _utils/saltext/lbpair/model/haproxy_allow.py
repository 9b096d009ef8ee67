"""
What a service entry may ask of HAProxy: the allow-list of ``options`` lines and server options.

A service's entry must never do more than serve that service. Each ``options`` line is read as
HAProxy reads it (:mod:`saltext.lbpair.model.haproxy_syntax`), then its directive must be on the list
below (the table "What a service entry may set" in docs/security.md) and each argument of the right kind.
What lbpair models (``balance``, ``cookie``, ``health``, ``stick``, ``mode``, servers, binds,
routes) is set with its key, never by a line. Anything else is refused naming the key, with the
way to ask for it. Sample expressions (conditions, ``%[...]``) are checked by
:mod:`saltext.lbpair.model.haproxy_fetches`. The ``global``/``defaults`` overrides (the pair owner's)
get a deny-list of sockets, listeners, programs and files instead
(:func:`saltext.lbpair.model.haproxy_overrides.override_problem`); ``balance`` and server options have
modules of their own (:mod:`saltext.lbpair.model.haproxy_balance`, :mod:`saltext.lbpair.model.haproxy_servers`).
"""

import re

from saltext.lbpair.model import haproxy_arguments as arg
from saltext.lbpair.model.haproxy_fetches import ASK, LineProblem, log_format, sample_expression
from saltext.lbpair.model.haproxy_syntax import HAPROXY_SECTIONS

MAX_LINES = 64
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


def _deny(arguments):
    arg.pairs(arguments, {"deny_status": arg.status, "status": arg.status})


def _redirect(arguments):
    if len(arguments) < 2:
        raise LineProblem("redirect needs location, prefix or scheme and its value")
    arg.choice(arguments[0], ("location", "prefix", "scheme"), "redirect")
    (log_format if arguments[0] == "location" else lambda value: arg.matching(value, URL_RE, "a URL"))(arguments[1])
    code = lambda value: arg.choice(value, ("301", "302", "303", "307", "308"), "code")  # noqa: E731
    arg.pairs(arguments[2:], {"code": code, "drop-query": None, "append-slash": None})


def _return_checked(arguments):
    """``return [status] [content-type] [string|lf-string] [hdr <name> <fmt>]...``"""
    rest, index = [], 0
    while index < len(arguments):
        if arguments[index] == "hdr":
            if index + 2 >= len(arguments):
                raise LineProblem("'hdr' needs a name and a value")
            arg.header(arguments[index + 1])
            log_format(arguments[index + 2])
            index += 3
            continue
        rest.append(arguments[index])
        index += 1
    arg.pairs(rest, {"status": arg.status, "content-type": _mime, "string": str, "lf-string": log_format})


def _mime(value):
    return arg.matching(value, MIME_RE, "a content type")


def _one_then_option(arguments, usage, check_one, option, check_option):
    """``<one>``, optionally followed by ``<option> <value>``."""
    if len(arguments) not in (1, 3):
        raise LineProblem(usage)
    check_one(arguments[0])
    if len(arguments) == 3:
        arg.choice(arguments[1], (option,), "option")
        check_option(arguments[2])


def _del_header(arguments):
    _one_then_option(
        arguments, "del-header takes a name, and optionally -m str|beg|end|sub|reg", arg.header,
        "-m", lambda match: arg.choice(match, ("str", "beg", "end", "sub", "reg"), "match"),
    )  # fmt: skip


def _set_status(arguments):
    _one_then_option(arguments, "set-status takes a status, and optionally reason <text>", arg.status, "reason", str)


HTTP_ACTIONS = {
    "set-header": lambda a: arg.exactly(a, arg.header, log_format), "add-header": lambda a: arg.exactly(a, arg.header, log_format),
    "del-header": _del_header, "replace-header": lambda a: arg.exactly(a, arg.header, arg.regex, log_format),
    "replace-value": lambda a: arg.exactly(a, arg.header, arg.regex, log_format), "set-path": lambda a: arg.exactly(a, log_format),
    "set-query": lambda a: arg.exactly(a, log_format), "set-status": _set_status, "redirect": _redirect, "deny": _deny,
    "tarpit": _deny, "allow": lambda a: arg.exactly(a), "return": _return_checked,
}  # fmt: skip
#: the actions HAProxy 2.6 has on one side only
ONE_SIDED_ACTIONS = {"http-request": ("set-status",), "http-response": ("set-path", "set-query", "tarpit")}


def _http_rule(words, acls, servers):
    arguments, condition = _split_condition(words[1:])
    if not arguments:
        raise LineProblem(f"{words[0]} needs an action")
    actions = [action for action in HTTP_ACTIONS if action not in ONE_SIDED_ACTIONS[words[0]]]
    action = arg.choice(arguments[0], tuple(actions), f"the {words[0]} action")
    HTTP_ACTIONS[action](arguments[1:])
    _condition(condition, acls)


# --- directives -----------------------------------------------------------------


def _option(words, acls, servers):
    negated = words[0] == "no"
    rest = words[2:] if negated else words[1:]
    if not rest:
        raise LineProblem("option needs a name")
    name = arg.choice(rest[0], OPTIONS, "option")
    arguments = rest[1:]
    if negated and arguments:
        raise LineProblem("'no option' takes no arguments")
    if name == "httplog":
        arg.pairs(arguments, {"clf": None})
    elif name == "forwardfor":
        arg.pairs(arguments, {"except": lambda value: arg.matching(value, NETWORK_RE, "a network"), "header": arg.header, "if-none": None})
    elif name == "httpchk":
        _httpchk(arguments)
    elif arguments:
        raise LineProblem(f"option {name} takes no arguments here")


def _httpchk(arguments):
    if len(arguments) > 3:
        raise LineProblem("option httpchk takes [<method>] [<uri>] [<version>]")
    if arguments:
        if len(arguments) == 1:
            arg.matching(arguments[0], URI_RE, "a URI")
            return
        arg.choice(arguments[0], METHODS, "method")
        arg.matching(arguments[1], URI_RE, "a URI")
    if len(arguments) == 3:
        arg.choice(arguments[2], ("HTTP/1.0", "HTTP/1.1"), "version")


def _http_check(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("http-check needs a keyword")
    kind = arg.choice(words[1], ("expect", "send", "disable-on-404", "send-state"), "http-check")
    arguments = words[2:]
    if kind == "expect":
        if arguments[:1] == ["!"]:
            arguments = arguments[1:]
        if len(arguments) != 2:
            raise LineProblem("http-check expect takes status|rstatus|string|rstring and a pattern")
        what = arg.choice(arguments[0], ("status", "rstatus", "string", "rstring"), "http-check expect")
        {"status": _status_list, "rstatus": arg.regex, "string": str, "rstring": arg.regex}[what](arguments[1])
    elif kind == "send":
        arg.pairs(arguments, {
            "meth": lambda value: arg.choice(value, METHODS, "method"), "uri": lambda value: arg.matching(value, URI_RE, "a URI"),
            "ver": lambda value: arg.choice(value, ("HTTP/1.0", "HTTP/1.1"), "version"), "body": str,
        })  # fmt: skip
    elif arguments:
        raise LineProblem(f"http-check {kind} takes no arguments")


def _status_list(value):
    for part in re.split(r"[,-]", value):
        arg.status(part)


def _compression(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("compression needs algo, type or offload")
    kind = arg.choice(words[1], ("algo", "type", "offload"), "compression")
    if kind == "offload":
        arg.exactly(words[2:])
        return
    if len(words) < 3:
        raise LineProblem(f"compression {kind} needs values")
    for value in words[2:]:
        if kind == "algo":
            arg.choice(value, ("identity", "gzip", "deflate", "raw-deflate"), "algorithm")
        else:
            _mime(value)


def _capture_checked(words, acls, servers):
    if len(words) != 6 or words[2] != "header" or words[4] != "len":
        raise LineProblem("expected capture request|response header <name> len <n>")
    arg.choice(words[1], ("request", "response"), "capture")
    arg.header(words[3])
    arg.integer(words[5], 1, 1024, "a length")


def _timeout(words, acls, servers):
    if len(words) != 3:
        raise LineProblem("expected timeout <kind> <time>")
    arg.choice(words[1], TIMEOUTS, "timeout")
    arg.time_value(words[2])


def _retry_on(words, acls, servers):
    if len(words) < 2:
        raise LineProblem("retry-on needs at least one event")
    for value in words[1:]:
        arg.choice(value, RETRY_ON, "retry-on event")


def _hash_type(words, acls, servers):
    if not 2 <= len(words) <= 4:
        raise LineProblem("expected hash-type map-based|consistent [sdbm|djb2|wt6|crc32] [avalanche]")
    arg.choice(words[1], ("map-based", "consistent"), "hash-type")
    if len(words) > 2:
        arg.choice(words[2], ("sdbm", "djb2", "wt6", "crc32"), "hash function")
    if len(words) > 3:
        arg.choice(words[3], ("avalanche",), "modifier")


def _use_server(words, acls, servers):
    arguments, condition = _split_condition(words[1:])
    if len(arguments) != 1 or arguments[0] not in servers:
        raise LineProblem(f"use-server must name a server of this pool ({', '.join(servers) or 'none here'})")
    _condition(condition, acls)


def _acl(words, acls, servers):
    if len(words) < 3:
        raise LineProblem("expected acl <name> <criterion> [flags] [patterns]")
    arg.matching(words[1], NAME_RE, "an ACL name")
    _acl_body(words[2:])


def _number(name, low, high):
    def check(words, acls, servers):
        if len(words) != 2:
            raise LineProblem(f"expected {name} <{low}-{high}>")
        arg.integer(words[1], low, high)

    return check


DIRECTIVES = {
    "timeout": _timeout, "option": _option, "no": _option, "retries": _number("retries", 0, 100), "retry-on": _retry_on,
    "compression": _compression, "http-request": _http_rule, "http-response": _http_rule, "http-check": _http_check,
    "maxconn": _number("maxconn", 1, 10_000_000), "fullconn": _number("fullconn", 1, 10_000_000), "hash-type": _hash_type,
    "http-reuse": lambda w, a, s: arg.exactly(w[1:], lambda v: arg.choice(v, ("never", "safe", "aggressive", "always"), "http-reuse")),
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


def modelled_key(words):
    """The key lbpair models the line's setting with, if it does (``balance`` -> ``balance``), else None."""
    return MODELLED.get(words[0])


def acl_names(lines_words):
    """The names the ``acl`` lines among ``lines_words`` define."""
    return {words[1] for words in lines_words if words[0] == "acl" and len(words) > 1}


