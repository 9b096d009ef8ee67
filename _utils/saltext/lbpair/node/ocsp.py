"""
OCSP stapling: HAProxy staples the DER OCSP response it finds in ``<crt>.ocsp`` beside a
certificate file (read at start-up and reload; ``set ssl ocsp-response`` on the stats socket
replaces it live). This module keeps those files fresh on the node.

For each certificate whose leaf names an OCSP responder (Authority Information Access) and whose
bundle holds its issuer (the certificate after the leaf), :func:`refresh` asks the responder
(HTTP POST, a short deadline, no redirect followed), checks the answer (signed by the issuer or by
a responder the issuer delegated to, about this certificate, ``good``, ``thisUpdate <= now <
nextUpdate``) and only then writes ``<crt>.ocsp`` (0600, atomically) and pushes it to the running
HAProxy. Anything else leaves the previous file as it was and says why.

The responder's URL comes from a certificate a service owner may control: only
``http://host[:port]/path`` is accepted, and the answer is untrusted bytes until checked. The
``.ocsp`` file of a certificate given by ``path`` goes beside that path, as given (where HAProxy
reads it); the pillar's go into ``certs/lbpair`` beside their ``<sha256>.pem``
(:func:`saltext.lbpair.node.tls_files.prune` removes them with their certificate).
"""

import base64
import datetime
import errno
import os
import re
import socket
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import certificates
from saltext.lbpair.node import stats, tls_files

SUFFIX = ".ocsp"
TIMEOUT = 5.0  # s for the whole exchange with a responder
MAX_RESPONSE_BYTES = 64 * 1024
#: what a responder URL may be: plain HTTP to a host name or IPv4 address, an optional port, a path of plain characters
URL_RE = re.compile(
    r"http://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~%/+=-]*)?"
)


#: a certificate's PEM block (what lies between the blocks, keys included, is not looked at)
CERTIFICATE_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]{1,65536}?-----END CERTIFICATE-----")


class Refused(LbpairError):
    """No response stapled: the reason, safe to show (no PEM, no bytes of the answer)."""


# --- the certificate ----------------------------------------------------------


def responder_url(leaf):
    """The leaf's OCSP responder URL (its first in the Authority Information Access), or None."""
    try:
        access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    urls = [d.access_location.value for d in access if d.access_method == AuthorityInformationAccessOID.OCSP]
    urls = [url for url in urls if isinstance(url, str)]
    return urls[0] if urls else None


def checked_url(url):
    """``(host, port, path)`` of an acceptable responder URL; :class:`Refused` for anything but ``http://host[:port]/path``."""
    found = URL_RE.fullmatch(url or "")
    port = int(found.group("port") or 80) if found else 0
    if not found or not 1 <= port <= 65535:
        raise Refused("the certificate's OCSP responder is not an http://host[:port]/path URL: not asked")
    return found.group("host"), port, found.group("path") or "/"


def chain(pem_text):
    """``(leaf, issuer or None)`` of a bundle's PEM text (its keys are not read)."""
    blocks = [match.group(0).encode() for match in CERTIFICATE_RE.finditer(pem_text)]
    if not blocks:
        raise Refused("the bundle holds no certificate")
    try:
        found = [x509.load_pem_x509_certificate(block) for block in blocks[:2]]
    except ValueError:
        raise Refused("the bundle's certificates cannot be read") from None
    return found[0], found[1] if len(found) > 1 else None


def request(leaf, issuer):
    """The DER OCSP request for ``leaf`` (SHA-1 certificate ID, as responders expect)."""
    return ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)  # noqa: S303


# --- asking the responder -----------------------------------------------------


def ask(url, body, timeout=TIMEOUT):
    """
    POST the DER request ``body`` to ``url``; the answer's bytes (untrusted). Raises :class:`Refused`.
    HTTP/1.0 with ``Connection: close`` (no chunked answer, the body ends with the connection),
    by hand: the whole exchange, headers included, has ``timeout`` (a responder that drips is cut off).
    """
    host, port, path = checked_url(url)
    deadline = time.monotonic() + timeout
    head = f"POST {path} HTTP/1.0\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n"
    head += f"Accept: application/ocsp-response\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(head.encode() + body)
            answer = _read_until(connection, deadline)
    except OSError as exc:
        raise Refused(f"the responder at {host}:{port} did not answer ({type(exc).__name__})") from None
    return _body(answer)


def _read_until(connection, deadline):
    """Everything the responder sends until it closes, at most :data:`MAX_RESPONSE_BYTES` and a header's worth, before ``deadline``."""
    data, limit = b"", MAX_RESPONSE_BYTES + 8192
    while len(data) <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Refused("the responder took too long")
        connection.settimeout(remaining)
        chunk = connection.recv(limit + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    raise Refused(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")


def _body(answer):
    """The body of an HTTP answer with status 200."""
    head, separator, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not separator or len(status) < 2 or not status[0].startswith(b"HTTP/1."):
        raise Refused("the responder's answer is not HTTP")
    if status[1] != b"200":
        code = status[1].decode("ascii", "replace") if status[1].isdigit() else "?"
        raise Refused(f"the responder answered HTTP {code}")
    return body


# --- checking the answer --------------------------------------------------------


def check(der, leaf, issuer, now=None):
    """
    The checked response ``der`` for ``leaf``: ``{"this_update", "next_update", "produced_at"}``.
    Raises :class:`Refused` unless it is a successful response signed by ``issuer`` or a responder
    it delegated to, about ``leaf``, ``good``, and current at ``now``.
    """
    now = _aware(now)
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise Refused("the response is not a DER OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Refused(f"the responder answered {response.response_status.name}")
    single = _single_for(response, leaf, issuer)
    _check_signature(response, _signer(response, issuer, now))
    if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        raise Refused(f"the certificate is revoked (since {single.revocation_time_utc:%Y-%m-%d})")
    if single.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise Refused("the responder does not know the certificate (status unknown)")
    return _current(single, now) | {"produced_at": response.produced_at_utc.isoformat()}


def _current(single, now):
    if single.next_update_utc is None:
        raise Refused("the response has no nextUpdate: nobody could tell when it goes stale")
    if not single.this_update_utc <= now < single.next_update_utc:
        window = f"thisUpdate {single.this_update_utc:%Y-%m-%dT%H:%M}, nextUpdate {single.next_update_utc:%Y-%m-%dT%H:%M}"
        raise Refused(f"the response is not current ({window})")
    return {"this_update": single.this_update_utc.isoformat(), "next_update": single.next_update_utc.isoformat()}


def _single_for(response, leaf, issuer):
    """The response's single response about ``leaf`` (same serial, issued by ``issuer``)."""
    for single in response.responses:
        if single.serial_number == leaf.serial_number and _same_issuer(single, issuer):
            return single
    raise Refused("the response is not about this certificate")


def _same_issuer(single, issuer):
    return _issuer_hashes(issuer, single.hash_algorithm) == (single.issuer_name_hash, single.issuer_key_hash)


def _issuer_hashes(issuer, algorithm):
    """The issuer's name and key hashes with ``algorithm``, as a certificate ID holds them."""
    probe = ocsp.OCSPRequestBuilder().add_certificate(issuer, issuer, algorithm).build()
    return probe.issuer_name_hash, probe.issuer_key_hash


def _responder_is(response, certificate):
    """Whether the response's responder ID names ``certificate`` (by name or by the SHA-1 of its key)."""
    if response.responder_name is not None:
        return response.responder_name == certificate.subject
    return response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _signer(response, issuer, now):
    """The issuer, or a certificate in the response the issuer signed for OCSP signing, current at ``now``."""
    if _responder_is(response, issuer):
        return issuer
    for delegate in response.certificates:
        if _responder_is(response, delegate) and _delegated(delegate, issuer, now):
            return delegate
    raise Refused("the response is signed neither by the certificate's issuer nor by a responder it delegated")


def _delegated(delegate, issuer, now):
    try:
        delegate.verify_directly_issued_by(issuer)
        usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage and delegate.not_valid_before_utc <= now < delegate.not_valid_after_utc


def _check_signature(response, signer):
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(response.signature, response.tbs_response_bytes)
        else:
            raise Refused("the responder's key is neither RSA, EC nor EdDSA")
    except (InvalidSignature, TypeError, ValueError):
        raise Refused("the response's signature does not verify") from None


# --- the files and HAProxy ------------------------------------------------------


def file_for(crt_file):
    """Where HAProxy reads the OCSP response of the certificate file ``crt_file``."""
    return f"{crt_file}{SUFFIX}"


def write(crt_file, der):
    """
    Write ``<crt_file>.ocsp`` atomically, 0600 from the first byte; the previous one stays until
    the rename. Refused (OSError) in a directory reached through a symlink: it goes beside the
    certificate where HAProxy reads it, never somewhere a link leads.
    """
    path = file_for(crt_file)
    directory = os.path.dirname(path)
    if os.path.realpath(directory) != directory:
        raise OSError(errno.ELOOP, "its directory is reached through a symlink", directory)
    store.write_private(path, der)
    return path


def push(socket_path, crt_file, der):
    """
    Give the running HAProxy the response; its answer, or why not. ``set ssl ocsp-response``
    replaces a response HAProxy already staples; HAProxy 2.6 refuses it for a certificate that
    had none at start-up ("does not match any certificate"), which gets it through a certificate
    transaction instead (``set ssl cert <crt>.ocsp``, ``commit ssl cert <crt>``): no reload either way.
    """
    encoded = base64.b64encode(der).decode()
    try:
        answer = _first_line(stats.command(socket_path, f"set ssl ocsp-response {encoded}"))
        if "does not match" in answer:
            answer = _first_line(stats.command(socket_path, f"set ssl cert {file_for(crt_file)}", payload=encoded))
            if answer.startswith("Transaction"):  # created or updated: HAProxy took the response
                answer = _committed(stats.command(socket_path, f"commit ssl cert {crt_file}"))
    except LbpairError as exc:
        return f"not pushed: {exc}"
    return answer


def _first_line(answer):
    return answer.strip().splitlines()[0] if answer.strip() else "no answer"


def _committed(answer):
    """A commit's answer (dots while it works, then ``Success!``) in a line."""
    return "Success!" if "Success!" in answer else _first_line(answer.replace(".", ""))


def stapled(crt_file, leaf, issuer, now=None):
    """What ``<crt_file>.ocsp`` holds: ``{"this_update", "next_update", "stale"}``, or ``{"missing": True, "stale": True}``."""
    try:
        with open(file_for(crt_file), "rb") as handle:
            der = handle.read(MAX_RESPONSE_BYTES + 1)
        single = _single_for(ocsp.load_der_ocsp_response(der), leaf, issuer)
    except (OSError, ValueError, Refused):
        return {"missing": True, "stale": True}
    next_update = single.next_update_utc
    return {
        "this_update": single.this_update_utc.isoformat(),
        "next_update": next_update.isoformat() if next_update else None,
        "stale": next_update is None or next_update <= _aware(now),
    }


# --- per certificate --------------------------------------------------------------


def _pem_of(certificate, service, name):
    if "bundle" in certificate:
        return certificate["bundle"].text
    path = tls_files.resolved(certificate["path"], tls_files.path_key(service, name))
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read(certificates.MAX_PEM_BYTES + 1)


def _stapling(certificate, service, name):
    """``(leaf, issuer or None, url)`` of a certificate that names a responder; :class:`Refused` with the reason otherwise."""
    try:
        leaf, issuer = chain(_pem_of(certificate, service, name))
    except (OSError, LbpairError) as exc:
        raise Refused(f"the certificate cannot be read: {exc}") from None
    url = responder_url(leaf)
    if url is None:
        raise Refused("the certificate names no OCSP responder")
    return leaf, issuer, url


NO_ISSUER = "the bundle holds no issuer after the leaf: OCSP needs it (add the chain)"


def refresh(model, directory, socket_path, now=None, asker=ask):
    """
    ``{service: {certificate: row}}``: each certificate's response asked, checked, written and pushed.
    A row has ``result``: ``stapled`` (with ``this_update``, ``next_update``, ``file`` and ``pushed``:
    HAProxy's answer), ``refused`` (``reason``; the previous file is kept and ``kept`` says what it
    holds) or ``none`` (``reason``: no responder, no issuer, unreadable).
    """
    found = {}
    for service, name, certificate in tls_files.each_certificate(model):
        try:
            leaf, issuer, url = _stapling(certificate, service, name)
        except Refused as exc:
            row = {"result": "none", "reason": str(exc)}
        else:
            crt_file = tls_files.file_of(certificate, directory)
            row = {"responder": url, "result": "none", "reason": NO_ISSUER}
            if issuer is not None:
                row = {"responder": url, **_refresh(crt_file, leaf, issuer, url, socket_path, now, asker)}
        found.setdefault(service, {})[name] = row
    return found


def _refresh(crt_file, leaf, issuer, url, socket_path, now, asker):
    try:
        der = asker(url, request(leaf, issuer))
        checked = check(der, leaf, issuer, now)
    except Refused as exc:
        return {"result": "refused", "reason": str(exc), "kept": stapled(crt_file, leaf, issuer, now)}
    try:
        write(crt_file, der)
    except OSError as exc:
        return {"result": "refused", "reason": f"cannot write {file_for(crt_file)}: {exc.strerror}"}
    return {"result": "stapled", **checked, "file": file_for(crt_file), "pushed": push(socket_path, crt_file, der)}


def report(model, directory, now=None):
    """
    ``{service: {certificate: ocsp}}`` for ``lbpair_haproxy.certificates``: ``{"responder",
    "this_update", "next_update", "stale"}`` (``missing`` without a response), or ``{"none": why}``
    (with ``responder`` and ``stale`` when the certificate names one but cannot be stapled).
    """
    found = {}
    for service, name, certificate in tls_files.each_certificate(model):
        try:
            leaf, issuer, url = _stapling(certificate, service, name)
        except Refused as exc:
            row = {"none": str(exc)}
        else:
            row = {"responder": url, "none": NO_ISSUER, "stale": True}
            if issuer is not None:
                row = {"responder": url, **stapled(tls_files.file_of(certificate, directory), leaf, issuer, now)}
        found.setdefault(service, {})[name] = row
    return found


def _aware(now):
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=datetime.timezone.utc)
