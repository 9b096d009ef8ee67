"""
The kinds of argument HAProxy's directives take, as a service entry may give them: each check
returns the value or raises :class:`saltext.lbpair.model.haproxy_fetches.LineProblem` saying what
it is not (:mod:`saltext.lbpair.model.haproxy_allow` and its neighbours check lines with them).
"""

import re

from saltext.lbpair.model.haproxy_fetches import ASK, LineProblem

TIME_RE = re.compile(r"\d{1,9}(us|ms|s|m|h|d)?")
HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def matching(value, pattern, what):
    if not pattern.fullmatch(value):
        raise LineProblem(f"{value!r} is not {what}")
    return value


def integer(value, low, high, what="an integer"):
    if not re.fullmatch(r"\d{1,9}", value) or not low <= int(value) <= high:
        raise LineProblem(f"{value!r} is not {what} from {low} to {high}")
    return value


def time_value(value):
    return matching(value, TIME_RE, "a time (a number and us, ms, s, m, h or d)")


def status(value):
    return integer(value, 100, 599, "an HTTP status")


def choice(value, choices, what):
    if value not in choices:
        raise LineProblem(f"{what} {value!r} is not allowed (allowed: {', '.join(choices)}; {ASK})")
    return value


def header(value):
    return matching(value, HEADER_RE, "a header name (letters, digits, '-', '_')")


def regex(value):
    try:
        re.compile(value)
    except re.error:
        raise LineProblem(f"{value!r} is not a regular expression") from None
    return value


def pairs(words, allowed):
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


def exactly(arguments, *checks):
    if len(arguments) != len(checks):
        raise LineProblem(f"expects {len(checks)} argument(s), got {len(arguments)}")
    for argument, check in zip(arguments, checks, strict=True):
        check(argument)
