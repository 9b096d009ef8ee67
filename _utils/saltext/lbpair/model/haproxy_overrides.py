"""
The pair owner's ``global``/``defaults`` overrides (``lbpair:haproxy:global``, ``defaults``): a
deny-list of what adds a socket, a listener or a program, or reads a file, as no override may.
"""

from saltext.lbpair.model.haproxy_syntax import HAPROXY_SECTIONS

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
