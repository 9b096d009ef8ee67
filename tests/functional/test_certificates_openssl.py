"""
Certificates as OpenSSL reads them: lbpair's reading of a PEM bundle against the real OpenSSL and HAProxy.

- Every hostile bundle of ``tests/unit/test_hostile_certificates.py`` is refused by lbpair. Here the real
  HAProxy gets it as ``crt``: ``haproxy -c`` refuses it too, or HAProxy runs it and ``openssl s_client``
  shows the leaf and the number of certificates it serves, as the row's last column says: then lbpair
  refused what HAProxy would have run.
- A good bundle, and an odd one lbpair accepts (CRLF, blank lines, EC parameters), holds the same
  certificates in the same order (SHA-256 fingerprints) for lbpair, for OpenSSL's readers (``storeutl``,
  ``crl2pkcs7 | pkcs7 -print_certs``, ``x509``) and in the chain HAProxy serves.
- The shop, served by HAProxy from the configuration lbpair renders: ``s_client -showcerts`` sees the
  leaf whose fingerprint ``lbpair_haproxy.certificates`` reports (:func:`saltext.lbpair.node.tls_files.report`)
  and the chain lbpair described.

The unit tests' certificates were valid in June 2026 (``NOW``): neither HAProxy nor ``s_client``
without ``-verify_return_error`` minds their dates.
"""

import hashlib
import re
import socket
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lab.util import free_port, run, stop_process, wait_until
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates
from saltext.lbpair.node import haproxy, tls_files
from tests.functional.rigs import node_model, shop_haproxy, shop_pillar
from tests.unit.test_certificates import KEY, NOW, shared_pki
from tests.unit.test_hostile_certificates import HOSTILE, REFUSED_TOO, traditional
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca

PEM_CERTIFICATE_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)
NAMESPACE = "lbpair-certs"
TIMEOUT = 10
#: RFC 7919's ffdhe2048 group (``openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048``): HAProxy reads DH parameters from ``crt``
FFDHE2048 = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


@pytest.fixture
def pki():
    return shared_pki()


def fingerprint(certificate):
    return certificate.fingerprint(hashes.SHA256()).hex()


def printed_fingerprints(output):
    """The SHA-256 fingerprints of the certificates an OpenSSL tool printed as PEM, in order."""
    return [fingerprint(x509.load_pem_x509_certificate(pem.encode())) for pem in PEM_CERTIFICATE_RE.findall(output)]


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=TIMEOUT, check=False)


def read_by_openssl(path):
    """``{reader: fingerprints}``: what each of OpenSSL's command-line readers finds in the file ``path``."""
    pkcs7 = openssl("crl2pkcs7", "-nocrl", "-certfile", str(path)).stdout
    return {
        "storeutl": printed_fingerprints(openssl("storeutl", "-certs", str(path)).stdout.decode()),
        "crl2pkcs7 | pkcs7": printed_fingerprints(openssl("pkcs7", "-print_certs", data=pkcs7).stdout.decode()),
        "x509 (the leaf)": printed_fingerprints(openssl("x509", "-in", str(path)).stdout.decode()),
    }


def read_by_lbpair(text):
    """The fingerprints of the certificates lbpair reads in a bundle, in order."""
    blocks, _keys = certificates._blocks(text, KEY)  # the reader load() checks the chain of
    return [hashlib.sha256(der).hexdigest() for der in blocks]


def crt_config(folder, crt, port=None):
    """A haproxy.cfg serving TLS with the file ``crt`` on 127.0.0.1 (``port``: a free one)."""
    config = folder / "haproxy.cfg"
    timeouts = "".join(f"  timeout {kind} {TIMEOUT}s\n" for kind in ("client", "server", "connect"))
    config.write_text(
        f"defaults\n  mode http\n{timeouts}"
        f"frontend tls\n  bind 127.0.0.1:{port or free_port()} ssl crt {crt}\n  http-request return status 200\n"
    )
    return config


def checked_by_haproxy(folder, crt):
    """``haproxy -c`` of a configuration serving ``crt``: (whether it accepts it, what it said)."""
    done = subprocess.run(["haproxy", "-c", "-f", str(crt_config(folder, crt))], capture_output=True, text=True, timeout=TIMEOUT)
    return done.returncode == 0, done.stdout + done.stderr


def served_chain(connect, servername, namespace=None):
    """The fingerprints of the chain ``openssl s_client -showcerts`` sees at ``connect`` (from ``namespace``: the current one for None)."""
    command = ["openssl", "s_client", "-connect", connect, "-servername", servername, "-showcerts"]
    if namespace:
        command = ["ip", "netns", "exec", namespace, *command]
    return printed_fingerprints(run(command, check=False, timeout=TIMEOUT, input="").stdout)


def served_by_haproxy(folder, crt):
    """The chain a real HAProxy serves from the file ``crt``, as ``s_client -showcerts`` sees it."""
    port = free_port()
    haproxy_process = subprocess.Popen(["haproxy", "-db", "-f", str(crt_config(folder, crt, port))], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until(lambda: _listening(port), TIMEOUT, what="HAProxy listening")
        return served_chain(f"127.0.0.1:{port}", "www.example.net")
    finally:
        stop_process(haproxy_process)


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def bundle_file(folder, text):
    path = folder / "bundle.pem"
    path.write_bytes(text.encode())
    return path


# --- hostile bundles: HAProxy refuses them too, or lbpair refuses what HAProxy would have run ------------


@pytest.mark.parametrize(("what", "bundle", "words", "haproxy_does"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_a_hostile_bundle_is_refused_by_haproxy_too_or_served_as_the_table_says(tmp_path, pki, what, bundle, words, haproxy_does):
    text = bundle(pki)
    with pytest.raises(InvalidValue, match=re.escape(words)):
        certificates.load(text, KEY, NOW)
    crt = bundle_file(tmp_path, text)
    accepted, said = checked_by_haproxy(tmp_path, crt)
    if haproxy_does is REFUSED_TOO:
        assert not accepted, f"{what}: haproxy -c accepts what the table says it refuses"
        return
    assert accepted, f"{what}: haproxy -c refuses what the table says it runs: {said}"
    leaf, count = haproxy_does
    served = served_by_haproxy(tmp_path, crt)
    assert served[:1] == [fingerprint(getattr(pki, leaf))] and len(served) == count, (what, served)


# --- good and odd bundles: lbpair reads what OpenSSL reads, and HAProxy serves it ------------------------


GOOD = [
    # (what, the bundle)
    ("the leaf, its issuer, its key", lambda pki: pki.www_bundle()),
    ("the leaf alone and its key", lambda pki: pki.bundle(pki.www, pki.www_key)),
    ("the key before the certificates", lambda pki: pki.bundle(pki.www_key, pki.www, pki.intermediate)),
    ("the key between the certificates", lambda pki: pki.bundle(pki.www, pki.www_key, pki.intermediate)),
    ("the chain up to the root", lambda pki: pki.bundle(pki.www, pki.intermediate, pki.root, pki.www_key)),
    ("an RSA leaf with its PKCS#1 key", lambda pki: pki.bundle(pki.rsa, pki.intermediate)
     + traditional(pki.rsa_key)),
    ("an EC leaf with its SEC 1 key (EC PRIVATE KEY)", lambda pki: pki.bundle(pki.www, pki.intermediate)
     + traditional(pki.www_key)),
    ("a PKCS#8 EC key labelled EC PRIVATE KEY (OpenSSL reads it)", lambda pki: pki.www_bundle().replace(" PRIVATE KEY-", " EC PRIVATE KEY-")),
    ("CRLF line ends", lambda pki: pki.www_bundle().replace("\n", "\r\n")),
    ("blank lines of spaces, tabs and separators between the blocks",
     lambda pki: "\n \t\n" + pki.bundle(pki.www) + "\x0b\x1c\n\n" + pki.bundle(pki.intermediate) + " " * 300 + "\n" + pki.bundle(pki.www_key)),
    ("EC parameters before the leaf", lambda pki: "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
     + pki.www_bundle()),
    ("DH parameters after the key", lambda pki: pki.www_bundle() + FFDHE2048),
    ("no line end after the last block", lambda pki: pki.bundle(pki.www_key, pki.www, pki.intermediate).rstrip("\n")),
]  # fmt: skip


@pytest.mark.parametrize(("what", "bundle"), GOOD, ids=[row[0] for row in GOOD])
def test_lbpair_reads_the_certificates_openssl_reads_and_haproxy_serves(tmp_path, pki, what, bundle):
    text = bundle(pki)
    description = certificates.load(text, KEY, NOW)
    lbpair_reads = read_by_lbpair(text)
    assert lbpair_reads[0] == description["fingerprint_sha256"] and len(lbpair_reads) == description["chain_length"]
    crt = bundle_file(tmp_path, text)
    read = read_by_openssl(crt)
    assert read == {"storeutl": lbpair_reads, "crl2pkcs7 | pkcs7": lbpair_reads, "x509 (the leaf)": lbpair_reads[:1]}, what
    accepted, said = checked_by_haproxy(tmp_path, crt)
    assert accepted, said
    assert served_by_haproxy(tmp_path, crt) == lbpair_reads, what


# --- the shop as lbpair renders it: s_client sees the leaf lbpair reports and the chain it described -----


def test_s_client_sees_the_leaf_lbpair_reports_and_the_chain_it_described(tmp_path, seed_pillar):
    ca = shared_ca()
    lbpair = shop_pillar(seed_pillar, str(tmp_path / "admin.sock"))
    # the shop's leaf with its issuer (the root) after its key; the api's leaf alone
    bundles = {"shop": {"pem": ca.shop + ca.pem}, "api": {"pem": ca.api}}
    lbpair["services"]["shop"]["tls"] = {"certificates": bundles}
    model = node_model(lbpair, "lb1")
    directory = str(tmp_path / "certs")
    tls_files.write(directory, model)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(model, directory))
    reported = tls_files.report(model, warn_days=30)["shop"]
    described = {name: certificate["bundle"].description for _service, name, certificate in tls_files.each_certificate(model)}
    hosts = {"shop": "shop.example.net", "api": "api.shop.example.net"}

    def seen(host):
        return served_chain(f"{SHOP['vip']}:443", host, NAMESPACE)

    with shop_haproxy(NAMESPACE, config, lambda: seen(hosts["shop"])):
        chains = {name: seen(host) for name, host in hosts.items()}
    root = fingerprint(ca.certificate)
    assert chains["shop"] == [reported["shop"]["fingerprint_sha256"], root] and described["shop"]["chain_length"] == 2
    assert chains["api"] == [reported["api"]["fingerprint_sha256"]] and described["api"]["chain_length"] == 1
    assert reported["api"]["warnings"] and not reported["shop"]["warnings"]  # the issuer it lacks
    assert reported["shop"]["fingerprint_sha256"] != reported["api"]["fingerprint_sha256"]
