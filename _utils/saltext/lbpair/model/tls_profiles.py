"""
``lbpair:haproxy:tls_profile``: Mozilla's server-side TLS profiles as HAProxy's ``ssl-default-*`` lines.

.. code-block:: yaml

    haproxy:
      tls_profile: intermediate   # the default; modern (TLS 1.3 only) or old (TLS 1.0 and up)

The profile is rendered in haproxy.cfg's ``global`` section for clients (``ssl-default-bind-*``)
and for servers reached with ``ssl`` (``ssl-default-server-*``); the ``global`` overrides may
not set these lines (:func:`check_global_overrides`).

Where the values come from: Mozilla's SSL configuration generator (https://ssl-config.mozilla.org)
for HAProxy 2.6 and OpenSSL 3.0. ``modern`` and ``intermediate`` are guideline 6.0's, less the
``X25519MLKEM768`` group (OpenSSL 3.5 and later; the generator drops it for 3.0). Guideline 6.0 has
no ``old`` profile any more: ``old`` is guideline 5.7's (the last with one, and the one sslyze 6.3.1
checks), with the generator's ``@SECLEVEL=0`` that OpenSSL 3 needs for TLS 1.0 and 1.1 (HAProxy 2.6
has no ``ssl-security-level``). HAProxy 2.6 has no ``ssl-default-server-curves`` (2.9 and later):
towards servers OpenSSL's own groups apply. Debian's OpenSSL 3.0 has no 3DES suite at all: ``old``
keeps Mozilla's ``DES-CBC3-SHA`` but offers it to nobody (IE 8 on Windows XP cannot connect).
"""

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import schema

DEFAULT = "intermediate"
#: the global keywords a profile renders: none may come from ``lbpair:haproxy:global``
RESERVED_PREFIX = "ssl-default-"
DH_KEYWORD = "tune.ssl.default-dh-param"

_CURVES = "X25519:prime256v1:secp384r1"
_TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
_OLD_CIPHERS = (
    "@SECLEVEL=0:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:"
    "AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA"
)

#: per profile: the TLS 1.2 ciphers (None: no TLS 1.2), the lowest version, whether the client's
#: cipher order wins (Mozilla: yes but for old, whose clients may prefer weak ciphers), and the
#: size of the DHE group: HAProxy 2.6 on OpenSSL 3.0 offers no DHE suite unless it is set (then
#: its built-in 2048-bit group; Mozilla's old asks 1024 at least and recommends ffdhe2048)
PROFILES = {
    "modern": {"ciphers": None, "min_version": "TLSv1.3", "client_order": True, "dh_bits": None},
    "intermediate": {"ciphers": _INTERMEDIATE_CIPHERS, "min_version": "TLSv1.2", "client_order": True, "dh_bits": None},
    "old": {"ciphers": _OLD_CIPHERS, "min_version": "TLSv1.0", "client_order": False, "dh_bits": 2048},
}


def normalize(value, path):
    """The profile's name (``path`` is ``lbpair:haproxy:tls_profile``), :data:`DEFAULT` when unset."""
    return schema.choice(DEFAULT if value is None else value, path, tuple(PROFILES))


def check_global_overrides(overrides, path):
    """Refuse a keyword a profile sets (also as ``null``) in ``lbpair:haproxy:global`` (``path``)."""
    if not isinstance(overrides, dict):
        return  # the directive merge names what is wrong with it
    for keyword in overrides:
        first_word = keyword.split(" ", 1)[0] if isinstance(keyword, str) else None
        if first_word and (first_word.startswith(RESERVED_PREFIX) or first_word == DH_KEYWORD):
            message = "is set by lbpair:haproxy:tls_profile: choose modern, intermediate or old there"
            raise InvalidValue(f"{path}:{keyword}", message)


def _options(profile, side):
    words = ["prefer-client-ciphers"] if side == "bind" and profile["client_order"] else []
    return " ".join([*words, "ssl-min-ver", profile["min_version"], "no-tls-tickets"])


def global_directives(name):
    """The profile ``name`` as ``[(keyword, value), ...]`` for haproxy.cfg's ``global`` section."""
    profile = PROFILES[name]
    directives = [("ssl-default-bind-curves", _CURVES)]
    for side in ("bind", "server"):
        if profile["ciphers"]:
            directives.append((f"ssl-default-{side}-ciphers", profile["ciphers"]))
        directives.append((f"ssl-default-{side}-ciphersuites", _TLS13_SUITES))
        directives.append((f"ssl-default-{side}-options", _options(profile, side)))
    if profile["dh_bits"]:
        directives.append((DH_KEYWORD, str(profile["dh_bits"])))
    return directives
