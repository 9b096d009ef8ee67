"""
The options a service entry may give a server (``servers:<name>:options``): keywords on an
allow-list, each with the kind of its value.
"""

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import haproxy_arguments as arg
from saltext.lbpair.model.haproxy_fetches import ASK, LineProblem

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
        arg.choice(value, kind, keyword)
    elif kind == "time":
        arg.time_value(value)
    elif kind == "count":
        arg.integer(value, 0, 10_000_000)
    elif kind == "weight":
        arg.integer(value, 0, 256, "a weight")
    elif kind == "port":
        arg.integer(value, 1, 65535, "a port")
    else:  # alpn
        for protocol in value.split(","):
            arg.choice(protocol, ("h2", "http/1.1", "http/1.0"), "ALPN protocol")
