"""
TLS certificates for the HAProxy frontends that terminate TLS.

An operator gives a certificate either as PEM text in the pillar (the chain and its private
key in one bundle, as HAProxy's ``crt`` reads it) or as the path of such a file on the node.
This module checks both and describes a bundle; it never returns the private key or anything
made from it beyond its type, and its messages quote no part of the PEM text.

.. code-block:: yaml

    pem: |
      -----BEGIN CERTIFICATE-----
      ... the leaf (the site's certificate) ...
      -----END CERTIFICATE-----
      -----BEGIN CERTIFICATE-----
      ... its issuer, then the issuer's issuer, if any ...
      -----END CERTIFICATE-----
      -----BEGIN PRIVATE KEY-----
      ... the leaf's key: RSA, EC or Ed25519, not encrypted (before or after the certificates) ...
      -----END PRIVATE KEY-----
    path: /etc/haproxy/certs/www.example.net.pem

:func:`load` reads a bundle into a description (names, validity, fingerprint, key type),
:func:`names_match` says whether a host name is one of them, :func:`expiry_report` lists
what expires first, :func:`readable_path` checks a path on the node.
"""

import datetime
import ipaddress
import itertools
import posixpath
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from lbpair_lib import schema, times
from lbpair_lib.errors import InvalidValue

#: the directories a certificate path on the node may be in (HAProxy's, lbpair's, certbot's)
ALLOWED_DIRECTORIES = ("/etc/haproxy/certs", "/etc/ssl/lbpair", "/etc/letsencrypt/live")
#: a bundle is a few KiB; a pillar value far larger is a slip (or worse)
MAX_PEM_BYTES = 1 << 20
PEM_BLOCK_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
CERTIFICATE_LABEL = "CERTIFICATE"
KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
#: blocks HAProxy's crt file may also hold, which lbpair leaves alone
IGNORED_LABELS = ("EC PARAMETERS", "DH PARAMETERS")
ENCRYPTED_KEY = "holds an encrypted private key: HAProxy cannot read it unattended; give it without a passphrase"
PATH_RE = re.compile(r"/[A-Za-z0-9_.@+/-]+")
UTC = datetime.timezone.utc


def load(pem_text, path, now=None, need_key=True, check_dates=True):
    """
    Check a PEM bundle (the leaf certificate first, then its issuers, and its private key)
    and describe it::

        {"subject": "www.example.net", "names": ["www.example.net", "203.0.113.10"],
         "not_before": "2026-05-02T00:00:00+00:00", "not_after": "2026-08-30T00:00:00+00:00",
         "days_left": 90, "fingerprint_sha256": "3f1c...", "key_type": "EC secp256r1"}

    ``names`` are the subject alternative names (DNS names, then addresses), or the subject's
    common name if there are none. ``now`` is an aware datetime (default: the current time).
    Raises :class:`InvalidValue` naming ``path`` if the text is not PEM, holds no certificate,
    no private key (with ``need_key``), more than one or an encrypted one, if the key is not
    the leaf's, if the leaf is not yet valid or expired (with ``check_dates``), or if a
    certificate is not followed by its issuer.
    """
    now = _aware(now)
    certificates, keys = _blocks(pem_text, path)
    if not certificates:
        raise InvalidValue(path, "holds no certificate (-----BEGIN CERTIFICATE----- block)")
    chain = [_certificate(block, index, path) for index, block in enumerate(certificates, 1)]
    leaf = chain[0]
    _check_key(keys, leaf, path, need_key)
    if check_dates:
        _check_validity(leaf, now, path)
    _check_order(chain, path)
    return _describe(leaf, now, path)


def names_match(description, host):
    """
    Whether ``host`` is one of the certificate's names: the same name (case and a final dot
    aside), a name one label below a wildcard (``*.example.net`` covers ``www.example.net``,
    neither ``example.net`` nor ``a.b.example.net``), or the same address.
    """
    host = str(host).lower().rstrip(".")
    host_address = _address(host)
    names = [name.lower().rstrip(".") for name in description["names"]]
    if host_address is not None:
        return any(_address(name) == host_address for name in names)
    return any(_covers(name, host) for name in names)


def expiry_report(descriptions, now, warn_days):
    """
    What expires first: ``[{"name", "not_after", "days_left", "warning"}, ...]`` for a mapping
    of certificate name to :func:`load`'s description, soonest first. ``days_left`` is counted
    from ``now``; ``warning`` is true for a certificate that expires within ``warn_days`` days
    (or has expired).
    """
    now = _aware(now)
    report = []
    for name, description in descriptions.items():
        not_after = times.parse(description["not_after"])
        report.append({
            "name": name,
            "not_after": description["not_after"],
            "days_left": _days_left(not_after, now),
            "warning": not_after - now <= datetime.timedelta(days=warn_days),
        })  # fmt: skip
    return sorted(report, key=lambda row: (row["days_left"], str(row["name"])))


def readable_path(path, key_path):
    """
    A certificate path on the node, as given: absolute, normalised (no ``..``, ``.`` or ``//``),
    plain characters only, in one of :data:`ALLOWED_DIRECTORIES`. Raises :class:`InvalidValue`
    naming ``key_path`` otherwise (``/etc/shadow``, ``/root/key.pem``, ``/proc/self/environ``).
    """
    schema.matching(path, key_path, PATH_RE, "an absolute path of letters, digits and '_.@+-/'")
    if posixpath.normpath(path) != path:
        raise InvalidValue(key_path, f"{path!r} is not a normalised path (no '..', '.', '//' or final '/')")
    if not any(path.startswith(f"{directory}/") for directory in ALLOWED_DIRECTORIES):
        raise InvalidValue(key_path, f"{path!r} is not in a directory lbpair reads certificates from ({', '.join(ALLOWED_DIRECTORIES)})")
    return path


# --- reading the bundle -------------------------------------------------------


def _blocks(pem_text, path):
    """The bundle's certificate blocks and private key blocks, as bytes, in order."""
    if not isinstance(pem_text, str):
        raise InvalidValue(path, f"expected PEM text, got {schema.type_name(pem_text)}")
    if len(pem_text.encode(errors="replace")) > MAX_PEM_BYTES:
        raise InvalidValue(path, f"is larger than {MAX_PEM_BYTES} bytes: not a certificate bundle")
    blocks = [(match.group(1), match.group(0).encode(errors="replace")) for match in PEM_BLOCK_RE.finditer(pem_text)]
    if pem_text.count("-----BEGIN ") != len(blocks):
        raise InvalidValue(path, "is not PEM text: a -----BEGIN line has no matching -----END line")
    if not blocks:
        raise InvalidValue(path, "is not PEM text (no -----BEGIN ...----- block)")
    certificates, keys = [], []
    for label, block in blocks:
        if label == CERTIFICATE_LABEL:
            certificates.append(block)
        elif label in KEY_LABELS:
            keys.append(block)
        elif label not in IGNORED_LABELS:
            raise InvalidValue(path, "holds a PEM block that is neither a certificate, a private key nor EC or DH parameters")
    return certificates, keys


def _certificate(block, index, path):
    try:
        return x509.load_pem_x509_certificate(block)
    except ValueError:
        raise InvalidValue(path, f"certificate {index} of the bundle is not a valid PEM certificate") from None


def _check_key(keys, leaf, path, need_key):
    if not keys:
        if need_key:
            raise InvalidValue(path, "holds no private key: the bundle needs the leaf certificate's key")
        return
    if len(keys) > 1:
        raise InvalidValue(path, f"holds {len(keys)} private keys: give exactly one, the leaf certificate's")
    key = _private_key(keys[0], path)
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        raise InvalidValue(path, "the private key does not belong to the first certificate (the leaf): their public keys differ")


def _private_key(block, path):
    if block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block:
        raise InvalidValue(path, ENCRYPTED_KEY)
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except TypeError:  # cryptography's word for a key that needs a password
        raise InvalidValue(path, ENCRYPTED_KEY) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidValue(path, "the private key is not a valid PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise InvalidValue(path, "the private key is neither RSA, EC nor Ed25519")
    return key


def _public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_validity(leaf, now, path):
    _check_period(leaf.not_valid_before_utc, leaf.not_valid_after_utc, now, path)


def check_dates(description, path, now=None):
    """Refuse the certificate a :func:`load` description is of if it is not valid yet or has expired at ``now``."""
    begins, ends = (datetime.datetime.fromisoformat(description[key]) for key in ("not_before", "not_after"))
    _check_period(begins, ends, _aware(now), path)


def _check_period(begins, ends, now, path):
    if begins > now:
        raise InvalidValue(path, f"the certificate is not valid yet: not before {begins.isoformat()}")
    if ends <= now:
        raise InvalidValue(path, f"the certificate expired on {ends.isoformat()}")


def _check_order(chain, path):
    """Each certificate is followed by its issuer (by name: the clients check the signatures)."""
    for index, (certificate, issuer) in enumerate(itertools.pairwise(chain), 1):
        if certificate.issuer != issuer.subject:
            raise InvalidValue(
                path,
                f"certificate {index + 1} of the bundle is not the issuer of certificate {index}: "
                "the leaf comes first, then its issuer, then the issuer's issuer",
            )


# --- describing it ------------------------------------------------------------


def _describe(leaf, now, path):
    return {
        "subject": _common_name(leaf),
        "names": _names(leaf),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "days_left": _days_left(leaf.not_valid_after_utc, now),
        "fingerprint_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        "key_type": _key_type(leaf.public_key(), path),
    }


def _common_name(certificate):
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _names(certificate):
    try:
        alternatives = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common_name = _common_name(certificate)
        return [common_name] if common_name else []
    return alternatives.get_values_for_type(x509.DNSName) + [str(a) for a in alternatives.get_values_for_type(x509.IPAddress)]


def _key_type(public_key, path):
    """The leaf's key type, from the certificate (the private key matches it): ``RSA 2048``, ``EC secp256r1``, ``Ed25519``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    raise InvalidValue(path, "the certificate's key is neither RSA, EC nor Ed25519")


def _days_left(not_after, now):
    """Whole days until ``not_after`` (negative once it has passed)."""
    return (not_after - now).days


def _aware(now):
    """``now`` as an aware datetime (a naive one is taken as UTC); the current time for None."""
    if now is None:
        return datetime.datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _covers(name, host):
    """Whether certificate name ``name`` covers host name ``host`` (both lowercase, no final dot)."""
    label, _, parent = host.partition(".")
    return name == host or (name.startswith("*.") and label != "" and parent == name[2:])


def _address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
