"""
``lbpair:services:<name>:tls``: TLS termination on a service's VIP, validated and normalised.

.. code-block:: yaml

    tls:
      port: 443                  # default 443; not the service's plain port
      redirect_http: true        # the plain port only answers 301 to https://<host><path>
      alpn: [h2, http/1.1]       # the default; only these two
      hsts: {max_age: 63072000}  # the default (Mozilla's two years); include_subdomains, preload; false: none
      certificates:              # HAProxy picks by SNI; the first is for clients without SNI
        shop: {pem: "-----BEGIN CERTIFICATE-----..."}    # chain and key, from the pillar
        api: {path: /etc/haproxy/certs/api.pem}          # or a file on the node

A certificate from the pillar becomes a :class:`Bundle`, checked here by
:func:`saltext.lbpair.model.certificates.load` (its dates when HAProxy's configuration is applied:
:func:`saltext.lbpair.node.tls_files.check_dates`); its text goes only into a file named by its
SHA-256 (:mod:`saltext.lbpair.node.tls_files`) and its ``repr`` never shows it. A certificate on the
node is checked by ``haproxy -c`` when a configuration naming it is.
"""

import hashlib

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates, schema

ALPN_PROTOCOLS = ("h2", "http/1.1")
#: Mozilla's HSTS max-age (two years, s); what ``hsts`` gives unless set
HSTS_MAX_AGE = 63072000
#: a longer max-age is a slip (milliseconds?); 0 tells browsers to forget the host (how HSTS is undone)
HSTS_MAX_AGE_LIMIT = 10 * 365 * 86400
#: what the browsers' preload list demands (hstspreload.org): a year at least, and every subdomain
HSTS_PRELOAD_MIN_AGE = 31536000
DEFAULT_PORT = 443
#: where the HAProxy state writes the pillar's certificates (beside the default haproxy.cfg)
MANAGED_DIRECTORY = "/etc/haproxy/certs/lbpair"
#: certificates of one service (HAProxy picks one by SNI): one per name or wildcard it serves
MAX_CERTIFICATES = 100


class Bundle:
    """A certificate bundle from the pillar: its PEM text (a secret), the name of its file, its description."""

    __slots__ = ("text", "file_name", "description")

    def __init__(self, text, description):
        self.text = text if text.endswith("\n") else f"{text}\n"
        self.file_name = f"{hashlib.sha256(self.text.encode()).hexdigest()}.pem"
        self.description = description

    def __repr__(self):
        return f"<certificate bundle {self.file_name}: text not shown>"

    def __eq__(self, other):
        return isinstance(other, Bundle) and other.file_name == self.file_name

    def __hash__(self):
        return hash(self.file_name)


def _bundle(value, path):
    # Not its dates: the pillar stays valid for everything else (keepalived, the beacon) the day a
    # certificate expires; the HAProxy state refuses it (saltext.lbpair.node.tls_files.check_dates).
    description = certificates.load(value, path, check_dates=False)
    if not value.isascii():
        raise InvalidValue(path, "holds characters that are not ASCII: give the PEM text alone")
    return Bundle(value, description)


def _node_path(value, path):
    """A file on the node; never lbpair's own folder (HAProxy's ``crt <directory>`` would load every service's keys)."""
    certificates.readable_path(value, path)
    if value == MANAGED_DIRECTORY or value.startswith(f"{MANAGED_DIRECTORY}/"):
        raise InvalidValue(path, f"{MANAGED_DIRECTORY} is lbpair's own: it holds the certificates given as pem; name a file of your own")
    return value


def _certificate(name, value, path):
    """``{"bundle": Bundle}`` for a certificate from the pillar, ``{"path": ...}`` for one on the node."""
    schema.name(name, path)
    schema.mapping(value, path, allowed=("pem", "path"))
    if len(value) != 1:
        raise InvalidValue(path, "needs either pem (the bundle itself) or path (a file on the node), not both")
    if "path" in value:
        return {"path": _node_path(value["path"], f"{path}:path")}
    return {"bundle": _bundle(value["pem"], f"{path}:pem")}


def _identity(certificate):
    """What makes two certificates the same: the leaf's fingerprint, or the file on the node."""
    if "path" in certificate:
        return ("path", certificate["path"])
    return ("leaf", certificate["bundle"].description["fingerprint_sha256"])


def _certificates(value, path):
    """In the order given: HAProxy serves the first to a client without SNI."""
    schema.named_mapping(value, path)
    if not value:
        raise InvalidValue(path, "needs at least one certificate")
    if len(value) > MAX_CERTIFICATES:
        raise InvalidValue(path, f"has {len(value)} certificates: a service takes at most {MAX_CERTIFICATES}")
    found, seen = {}, {}
    for name, certificate in value.items():
        found[name] = _certificate(name, certificate, f"{path}:{name}")
        identity = _identity(found[name])
        if identity in seen:
            raise InvalidValue(f"{path}:{name}", f"is the same certificate as {path}:{seen[identity]}")
        seen[identity] = name
    return found


def _alpn(value, path):
    if not isinstance(value, list) or not value:
        raise InvalidValue(path, f"expected a list of protocols from {', '.join(ALPN_PROTOCOLS)}")
    for index, protocol in enumerate(value):
        schema.choice(protocol, f"{path}:{index}", ALPN_PROTOCOLS)
    if len(set(value)) != len(value):
        raise InvalidValue(path, "names a protocol twice")
    return list(value)


def _hsts(value, path):
    """HSTS for the service's TLS answers: ``true`` (the default) or a mapping; None for ``false``."""
    if value is False:
        return None
    if value is True or value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidValue(path, f"expected true, false or a mapping (max_age, include_subdomains, preload), got {schema.type_name(value)}")
    schema.mapping(value, path, allowed=("max_age", "include_subdomains", "preload"))
    hsts = {
        "max_age": schema.integer(value.get("max_age", HSTS_MAX_AGE), f"{path}:max_age", 0, HSTS_MAX_AGE_LIMIT),
        "include_subdomains": schema.boolean(value.get("include_subdomains", False), f"{path}:include_subdomains"),
        "preload": schema.boolean(value.get("preload", False), f"{path}:preload"),
    }
    if hsts["preload"] and not (hsts["include_subdomains"] and hsts["max_age"] >= HSTS_PRELOAD_MIN_AGE):
        rule = f"include_subdomains: true and max_age {HSTS_PRELOAD_MIN_AGE} or more"
        raise InvalidValue(f"{path}:preload", f"needs {rule} (the browsers' preload list demands both)")
    return hsts


def normalize(value, path, mode, plain_port):
    """A service's ``tls`` block (``path``), or None without one; ``plain_port`` is the service's ``port``."""
    if value is None:
        return None
    if mode != "http":
        raise InvalidValue(path, "TLS termination needs mode http")
    schema.mapping(value, path, allowed=("port", "redirect_http", "alpn", "hsts", "certificates"), required=("certificates",))
    port = schema.port(value.get("port", DEFAULT_PORT), f"{path}:port")
    if port == plain_port:
        raise InvalidValue(f"{path}:port", f"{port} is the service's plain HTTP port: TLS needs a port of its own")
    return {
        "port": port,
        "redirect_http": schema.boolean(value.get("redirect_http", False), f"{path}:redirect_http"),
        "alpn": _alpn(value.get("alpn", list(ALPN_PROTOCOLS)), f"{path}:alpn"),
        "hsts": _hsts(value.get("hsts"), f"{path}:hsts"),
        "certificates": _certificates(value["certificates"], f"{path}:certificates"),
    }
