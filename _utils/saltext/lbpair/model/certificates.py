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
      ... the leaf's key: RSA or EC, not encrypted (before or after the certificates) ...
      -----END PRIVATE KEY-----
    path: /etc/haproxy/certs/www.example.net.pem

:func:`load` reads a bundle into a description (names, validity, fingerprint, key type),
:func:`names_match` says whether a host name is one of them, :func:`expiry_report` lists
what expires first, :func:`readable_path` checks a path on the node.
"""

import binascii
import datetime
import ipaddress
import itertools
import posixpath
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from saltext.lbpair.core import times
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import schema

#: the directories a certificate path on the node may be in (HAProxy's, lbpair's, certbot's)
ALLOWED_DIRECTORIES = ("/etc/haproxy/certs", "/etc/ssl/lbpair", "/etc/letsencrypt/live")
#: a chain and its key are a few KiB (four RSA-4096 certificates and the key: 12 KiB)
MAX_PEM_BYTES = 64 * 1024
#: the leaf and its issuers: real chains have two to four
MAX_BUNDLE_CERTIFICATES = 8
BASE64_LINE_LENGTH = 64
BASE64_LINE_RE = re.compile(r"[A-Za-z0-9+/=]{1,64}")
CERTIFICATE_LABEL = "CERTIFICATE"
KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
#: OpenSSL reads a key block by its label: these hold a key of their type (PKCS#1 or SEC 1, or PKCS#8), PRIVATE KEY only PKCS#8
TYPED_KEY_LABELS = {"RSA PRIVATE KEY": rsa.RSAPrivateKey, "EC PRIVATE KEY": ec.EllipticCurvePrivateKey}
#: blocks HAProxy's crt file may also hold, which lbpair leaves alone
IGNORED_LABELS = ("EC PARAMETERS", "DH PARAMETERS")
KNOWN_LABELS = (CERTIFICATE_LABEL, *KEY_LABELS, *IGNORED_LABELS)
#: labels OpenSSL also reads as a certificate (with trust settings, or the old name)
DISGUISED_CERTIFICATE_LABELS = ("TRUSTED CERTIFICATE", "X509 CERTIFICATE")
#: Mozilla's intermediate profile: RSA of at least 2048 bits, ECDSA on P-256 or P-384, SHA-2 signatures
MIN_RSA_BITS = 2048
#: no client needs more; checking an RSA-8192 key takes 3.7 s (4096: 0.24 s)
MAX_RSA_BITS = 4096
ECDSA_CURVES = ("secp256r1", "secp384r1")
SIGNATURE_HASHES = ("sha256", "sha384", "sha512")
NO_HOST = "the leaf names no host: it needs a subject alternative name (DNS name or IP address); clients ignore a common name alone"
ISSUER_MISSING = "the bundle lacks the leaf's issuer ({issuer}): clients that do not have it cannot verify the leaf; add it after the leaf"
KEY_UNREADABLE = "OpenSSL (HAProxy) cannot read it; label the block as the key's form is (openssl pkey writes PRIVATE KEY)"
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

    ``names`` are the subject alternative names (DNS names, then addresses); ``warnings`` says
    what clients may fail on (the leaf's issuer missing), ``chain_length`` counts the certificates.
    ``now`` is an aware datetime (default: the current time). The text must be PEM blocks only,
    read as OpenSSL reads them (:func:`_pem_blocks`). Raises :class:`InvalidValue` naming
    ``path`` if it is not, holds no certificate, no private key (with ``need_key``), more than one,
    an encrypted one or one whose block's label is not what it holds, if the key is not the leaf's,
    if the leaf is not yet valid or expired (with ``check_dates``), names no host, if a key or signature is weaker than Mozilla's
    intermediate profile, or if a certificate is not followed by its issuer (checked by signature).
    """
    now = _aware(now)
    certificates, keys = _blocks(pem_text, path)
    if not certificates:
        raise InvalidValue(path, "holds no certificate (-----BEGIN CERTIFICATE----- block)")
    chain = [_certificate(der, index, path) for index, der in enumerate(certificates, 1)]
    leaf = chain[0]
    _check_strength(chain, path)
    _check_key(keys, leaf, path, need_key)
    if check_dates:
        _check_validity(leaf, now, path)
    _check_order(chain, path)
    if not _names(leaf):
        raise InvalidValue(path, NO_HOST)
    return _describe(leaf, chain, now, path)


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
#
# The text is read line by line, once (no regular expression over the whole text), by the rules
# of OpenSSL's PEM reader as HAProxy uses it, made strict: only blank lines between blocks, exact
# BEGIN/END lines of the same label, no PEM headers, body lines of base64 as OpenSSL writes them
# (64 characters, the last one shorter). Anything OpenSSL could read otherwise is refused: what
# lbpair checks is then what HAProxy serves.


def _blocks(pem_text, path):
    """The bundle's certificate blocks and private key blocks, as ``(label, DER bytes)``, in order."""
    _check_text(pem_text, path)
    blocks = list(_pem_blocks(pem_text, path))
    if not blocks:
        raise InvalidValue(path, "is not PEM text (no -----BEGIN ...----- block)")
    certificates = [der for label, der in blocks if label == CERTIFICATE_LABEL]
    keys = [(label, der) for label, der in blocks if label in KEY_LABELS]
    if len(certificates) > MAX_BUNDLE_CERTIFICATES:
        raise InvalidValue(path, f"holds {len(certificates)} certificates: a chain needs at most {MAX_BUNDLE_CERTIFICATES}")
    return certificates, keys


def _check_text(pem_text, path):
    if not isinstance(pem_text, str):
        raise InvalidValue(path, f"expected PEM text, got {schema.type_name(pem_text)}")
    if len(pem_text) > MAX_PEM_BYTES:
        raise InvalidValue(path, f"is larger than {MAX_PEM_BYTES} bytes: a certificate bundle is a few KiB")
    if not pem_text.isascii():
        raise InvalidValue(path, "holds characters that are not ASCII: give the PEM text alone")


def _lines(pem_text):
    """The text's lines, each without its end (LF or CRLF)."""
    lines = pem_text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _pem_blocks(pem_text, path):
    """``(label, DER bytes)`` of each block, in order; anything but blocks and blank lines refused."""
    label, body = None, []
    for number, line in enumerate(_lines(pem_text), 1):
        if label is None:
            label = _begin(line, number, path)
        elif line == f"-----END {label}-----":
            yield label, _der(body, label, path)
            label, body = None, []
        else:
            body.append(_body_line(line, number, label, path))
    if label is not None:
        raise InvalidValue(path, f"is not PEM text: the -----BEGIN {label}----- line has no matching -----END line")


def _begin(line, number, path):
    """The label a line outside the blocks opens, or None for a blank line."""
    if not line.strip():
        return None
    if not (line.startswith("-----BEGIN ") and line.endswith("-----")):
        raise InvalidValue(path, f"is not PEM text: line {number} is neither blank nor a -----BEGIN ...----- line (PEM blocks only)")
    label = line[len("-----BEGIN ") : -len("-----")]
    if label in DISGUISED_CERTIFICATE_LABELS:
        raise InvalidValue(path, f"line {number} opens a {label!r} block: OpenSSL reads it as a certificate; give it as CERTIFICATE")
    if label not in KNOWN_LABELS:
        raise InvalidValue(path, f"line {number}: holds a PEM block that is neither a certificate, a private key nor EC or DH parameters")
    return label


def _body_line(line, number, label, path):
    if line.startswith("-----"):
        raise InvalidValue(path, f"is not PEM text: line {number} is inside the {label} block (no matching -----END line before it)")
    if ":" in line:
        raise InvalidValue(path, f"line {number}: PEM headers are not allowed (an encrypted private key? give it unencrypted)")
    if not BASE64_LINE_RE.fullmatch(line):
        raise InvalidValue(path, f"line {number} is not a base64 line of at most 64 characters")
    return line


def _der(body, label, path):
    """The block's bytes; its lines are 64 characters but the last (as OpenSSL writes them)."""
    if not body or any(len(line) != BASE64_LINE_LENGTH for line in body[:-1]):
        raise InvalidValue(path, f"a {label} block is empty or has a short line before its last")
    try:
        return binascii.a2b_base64("".join(body), strict_mode=True)
    except binascii.Error:
        raise InvalidValue(path, f"a {label} block is not valid base64") from None


def _certificate(der, index, path):
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise InvalidValue(path, f"certificate {index} of the bundle is not a valid PEM certificate") from None


def _check_key(keys, leaf, path, need_key):
    if not keys:
        if need_key:
            raise InvalidValue(path, "holds no private key: the bundle needs the leaf certificate's key")
        return
    if len(keys) > 1:
        raise InvalidValue(path, f"holds {len(keys)} private keys: give exactly one, the leaf certificate's")
    # An RSA key's own checks (primality) take seconds for a huge key: compare it with the leaf's
    # public key (of a bounded size) first, then check it.
    key = _private_key(keys[0], path, validate=False)
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        raise InvalidValue(path, "the private key does not belong to the first certificate (the leaf): their public keys differ")
    if isinstance(key, rsa.RSAPrivateKey):
        _private_key(keys[0], path, validate=True)


def _private_key(block, path, validate):
    label, der = block
    if label == "ENCRYPTED PRIVATE KEY":
        raise InvalidValue(path, ENCRYPTED_KEY)
    try:
        key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=not validate)
    except TypeError:  # cryptography's word for a key that needs a password
        raise InvalidValue(path, ENCRYPTED_KEY) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidValue(path, "the private key is not a valid PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise InvalidValue(path, "the private key is neither RSA nor EC (ECDSA)")
    _check_key_label(label, key, der, path)
    return key


def _check_key_label(label, key, der, path):
    """The key is what its label says: OpenSSL (and so HAProxy) cannot read it otherwise."""
    if label in TYPED_KEY_LABELS and not isinstance(key, TYPED_KEY_LABELS[label]):
        raise InvalidValue(path, f"the private key's block says {label} but holds an {_key_type(key.public_key())} key: {KEY_UNREADABLE}")
    if label == "PRIVATE KEY" and not _pkcs8(der):
        raise InvalidValue(path, f"the private key's block says PRIVATE KEY (PKCS#8) but holds a key of the older form: {KEY_UNREADABLE}")


def _pkcs8(der):
    """Whether a key's DER is PKCS#8: its version (a small INTEGER) is followed by an algorithm (a SEQUENCE), not a number or octets."""
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    after_version = header + 2 + der[header + 1]
    return der[after_version : after_version + 1] == b"\x30"


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
    """Each certificate is followed by its issuer: the issuer's key signed it."""
    for index, (certificate, issuer) in enumerate(itertools.pairwise(chain), 1):
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise InvalidValue(
                path,
                f"certificate {index + 1} of the bundle is not the issuer of certificate {index} (by name and signature): "
                "the leaf comes first, then its issuer, then the issuer's issuer",
            ) from None


def _check_strength(chain, path):
    """Keys and signatures at least as strong as Mozilla's intermediate profile asks, for the leaf and its issuers."""
    for index, certificate in enumerate(chain, 1):
        _check_public_key(certificate.public_key(), index, path)
        if index == 1 or not _self_signed(certificate):  # a root's own signature is not checked by clients
            _check_signature(certificate, index, path)


def _check_public_key(public_key, index, path):
    if isinstance(public_key, rsa.RSAPublicKey) and MIN_RSA_BITS <= public_key.key_size <= MAX_RSA_BITS:
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in ECDSA_CURVES:
        return
    wanted = f"RSA of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits or ECDSA on P-256 or P-384"
    raise InvalidValue(path, f"certificate {index} of the bundle has a {_key_type(public_key)} key: give {wanted}")


def _check_signature(certificate, index, path):
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or algorithm.name not in SIGNATURE_HASHES:
        name = algorithm.name.upper() if algorithm else "an unsupported algorithm"
        raise InvalidValue(path, f"certificate {index} of the bundle is signed with {name}: give one signed with SHA-256 or stronger")


def _self_signed(certificate):
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _warnings(chain):
    """What HAProxy serves but some clients cannot verify: a leaf whose issuer the bundle lacks."""
    leaf = chain[0]
    if len(chain) == 1 and not _self_signed(leaf):
        return [ISSUER_MISSING.format(issuer=leaf.issuer.rfc4514_string())]
    return []


# --- describing it ------------------------------------------------------------


def _describe(leaf, chain, now, path):
    return {
        "subject": _common_name(leaf),
        "names": _names(leaf),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "days_left": _days_left(leaf.not_valid_after_utc, now),
        "fingerprint_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        "key_type": _key_type(leaf.public_key()),
        "chain_length": len(chain),
        "warnings": _warnings(chain),
    }


def _common_name(certificate):
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _names(certificate):
    """The leaf's host names: its subject alternative names (DNS names, then addresses); clients read nothing else."""
    try:
        alternatives = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return alternatives.get_values_for_type(x509.DNSName) + [str(a) for a in alternatives.get_values_for_type(x509.IPAddress)]


def _key_type(public_key):
    """A key's type: ``RSA 2048``, ``EC secp256r1``, or its class for anything else (refused by :func:`_check_public_key`)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    return type(public_key).__name__.lstrip("_").replace("PublicKey", "")


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
