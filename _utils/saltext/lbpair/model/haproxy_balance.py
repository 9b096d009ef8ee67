"""
The ``balance`` a service entry may ask for: HAProxy 2.6's algorithms (4.2 "balance"), each
with the arguments it takes, checked as HAProxy reads them.
"""

import re

from saltext.lbpair.model import haproxy_arguments as arg
from saltext.lbpair.model.haproxy_fetches import LineProblem, sample_expression


def _no_arguments(arguments):
    arg.exactly(arguments)


def _uri(arguments):
    arg.pairs(
        arguments, {"whole": None, "path-only": None, "len": lambda v: arg.integer(v, 1, 65535), "depth": lambda v: arg.integer(v, 1, 255)}
    )


def _url_param(arguments):
    if len(arguments) not in (1, 2):
        raise LineProblem("url_param takes a parameter name and optionally check_post")
    arg.matching(arguments[0], arg.HEADER_RE, "a parameter name")
    if len(arguments) == 2:
        arg.choice(arguments[1], ("check_post",), "argument")


def _hdr(name, arguments):
    arg.header(name)
    arg.pairs(arguments, {"use_domain_only": None})


#: ``balance`` algorithms (HAProxy 2.6, 4.2 "balance"): ``check(arguments)``, and for those
#: written ``algorithm(argument)``, ``check(argument, arguments)``
BALANCE = {
    "roundrobin": _no_arguments, "static-rr": _no_arguments, "leastconn": _no_arguments, "first": _no_arguments,
    "source": _no_arguments, "uri": _uri, "url_param": _url_param, "hash": lambda a: arg.exactly(a, sample_expression),
}  # fmt: skip
BALANCE_CALLS = {
    "random": lambda draws, a: (arg.integer(draws, 1, 100, "a number of draws"), _no_arguments(a)),
    "rdp-cookie": lambda name, a: (arg.matching(name, arg.HEADER_RE, "a cookie name"), _no_arguments(a)),
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
