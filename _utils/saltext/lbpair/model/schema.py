"""
Typed validators shared by every input lbpair reads (the ``lbpair`` pillar, the
master's ``lbpair_reactions`` block, the beacon's configuration).

Each takes the value and its full path (``lbpair:services:foo:port``), returns
the value normalised, or raises :class:`~saltext.lbpair.core.errors.InvalidValue` naming
the path. One set of checks, one set of messages.
"""

import ipaddress
import re
import unicodedata

from saltext.lbpair.core.errors import InvalidValue

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
#: control and format characters, line and paragraph separators (U+0085, U+2028, U+2029, ...)
LINE_BREAKING = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")
_KINDS = ((dict, "mapping"), (list, "list"), (str, "string"), (bool, "boolean"), (int, "integer"), (float, "number"))


def type_name(value):
    """The YAML word for a value's type (``mapping``, ``list``, ``string``, ...)."""
    for kind, name in _KINDS:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def named_mapping(value, path):
    """A mapping whose keys are names chosen by the user (nodes, services, servers)."""
    if not isinstance(value, dict):
        raise InvalidValue(path, f"expected a mapping, got {type_name(value)}")
    return value


def mapping(value, path, allowed, required=()):
    """A mapping with known keys only, the ``required`` ones present."""
    named_mapping(value, path)
    for key in value:
        if key not in allowed:
            raise InvalidValue(f"{path}:{key}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            raise InvalidValue(f"{path}:{key}", "is required")
    return value


def unique(items, field, path):
    """No two of ``items`` (``{name: item}``, at ``path``) share a value of ``field``; ``None`` (not given) is no value."""
    seen = {}
    for name, item in items.items():
        if item[field] is None:
            continue
        if item[field] in seen:
            raise InvalidValue(f"{path}:{name}:{field}", f"{item[field]} is already used by {seen[item[field]]}")
        seen[item[field]] = name


def integer(value, path, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(path, f"expected an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidValue(path, f"must be from {low} to {high}, got {value}")
    return value


def number(value, path, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(path, f"expected a number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidValue(path, f"must be from {low} to {high}, got {value}")
    return value


def boolean(value, path):
    if not isinstance(value, bool):
        raise InvalidValue(path, f"expected true or false, got {value!r}")
    return value


def single_line(text):
    """Whether ``text`` has no control or format character and no line or paragraph separator."""
    # each distinct character once: a long value repeats few characters, and the lookup is the slow part
    return not any(unicodedata.category(character) in LINE_BREAKING for character in set(text))


def string(value, path, max_bytes=None):
    """A non-empty single line, stripped; at most ``max_bytes`` bytes of UTF-8 if given."""
    if not isinstance(value, str):
        raise InvalidValue(path, f"expected a string, got {type_name(value)}")
    if not single_line(value):
        raise InvalidValue(path, "must be a single line without control characters")
    if not value.strip():
        raise InvalidValue(path, "must not be empty")
    if max_bytes is not None and len(value.strip().encode()) > max_bytes:
        raise InvalidValue(path, f"must be at most {max_bytes} bytes long")
    return value.strip()


def matching(value, path, pattern, what):
    """A string that ``pattern`` matches whole, as given (no whitespace stripped: it is used as given)."""
    string(value, path)
    if not pattern.fullmatch(value):
        raise InvalidValue(path, f"{value!r} is not {what}")
    return value


def name(value, path):
    """A safe identifier: a minion id, a service, server or interface name."""
    return matching(value, path, NAME_RE, "a safe name (letters, digits, '.', '_', '-')")


def choice(value, path, choices):
    if value not in choices:
        raise InvalidValue(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def address(value, path, version=None, host=False):
    """
    An IP address in its canonical text form; of IP ``version`` (4 or 6) if given. With ``host``,
    one a host can hold and be reached at: not unspecified, loopback, multicast, link-local,
    reserved or broadcast.
    """
    text = string(value, path)
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidValue(path, f"{text!r} is not an IP address") from None
    if getattr(parsed, "scope_id", None) is not None:  # ``2001:db8::1%<any text>`` parses too
        raise InvalidValue(path, f"{text!r} is not an IP address without a zone (%...)")
    if version and parsed.version != version:
        raise InvalidValue(path, f"{text} is not an IPv{version} address")
    if host and _special(parsed):
        raise InvalidValue(path, f"{text} is a special-purpose address ({_special(parsed)}), not one a host can hold")
    return str(parsed)


def address_family(address_text):
    """4 or 6: the IP version of a valid address's text."""
    return ipaddress.ip_address(address_text).version


def address_order(address_text):
    """A sort key that puts addresses in numeric order, IPv4 first."""
    parsed = ipaddress.ip_address(address_text)
    return parsed.version, int(parsed)


def _special(parsed):
    # ::ffff:127.0.0.1 is 127.0.0.1 to a dual-stack socket; Python 3.11 does not call it loopback
    mapped = getattr(parsed, "ipv4_mapped", None)
    if mapped is not None:
        return _special(mapped)
    kinds = (
        ("unspecified", parsed.is_unspecified),
        ("loopback", parsed.is_loopback),
        ("multicast", parsed.is_multicast),
        ("link-local", parsed.is_link_local),
        ("broadcast", parsed == ipaddress.ip_address("255.255.255.255")),
        ("reserved", parsed.is_reserved),
    )
    return next((kind for kind, special in kinds if special), None)


def port(value, path):
    return integer(value, path, 1, 65535)


def settings(value, path, defaults):
    """Local options (minion configuration): known keys only, string values, defaults filled in."""
    value = mapping({} if value is None else value, path, allowed=tuple(defaults))
    return {key: string(value.get(key, default), f"{path}:{key}") for key, default in defaults.items()}
