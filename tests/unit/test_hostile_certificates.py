"""Hostile certificate bundles and paths: each refused naming the pillar key, with words saying why."""

import pytest
from cryptography.hazmat.primitives import serialization

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates, tls
from saltext.lbpair.node import tls_files
from tests.unit.test_certificates import KEY, NOW, PATH_KEY, shared_pki

BEGIN, END = "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n"


def _hide_in_text(pki):
    """An expired leaf hidden from a regex reader: text on the BEGIN line's row."""
    return "x" + pki.bundle(pki.expired, pki.intermediate, pki.www_key)


def traditional(key):
    """The key's PEM in its older form (PKCS#1 for RSA, SEC 1 for EC), as ``openssl genrsa`` and ``ecparam -genkey`` write it."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def _relabelled(pem, label):
    """A key's PEM under another block label (its body unchanged)."""
    old = pem.splitlines()[0][len("-----BEGIN ") : -len("-----")]
    return pem.replace(f" {old}-----", f" {label}-----")


def _lines_of(pki, length):
    """The www bundle with the leaf's base64 in lines of ``length`` characters (OpenSSL writes 64)."""
    body = "".join(pki.bundle(pki.www).splitlines()[1:-1])
    lines = [body[start : start + length] for start in range(0, len(body), length)]
    return BEGIN + "\n".join(lines) + "\n" + END + pki.bundle(pki.intermediate, pki.www_key)


def _second_line(pki, change):
    """The www bundle with the leaf's first base64 line (line 2) changed by ``change``."""
    lines = pki.www_bundle().split("\n")
    lines[1] = change(lines[1])
    return "\n".join(lines)


#: What the real HAProxy does with a row's bundle (tests/functional/test_certificates_openssl.py runs it):
#: None when it refuses it too; else the certificate it serves as the leaf (the Pki's name for it) and how
#: many it serves in all: lbpair refuses what HAProxy would have run.
REFUSED_TOO = None

HOSTILE = [
    # (what it tries, the bundle, words of the message, what HAProxy does with it)
    ("text before a block (OpenSSL skips it, a regex may not)", _hide_in_text, "line 1 is neither blank", REFUSED_TOO),
    ("a nested BEGIN line", lambda pki: BEGIN + pki.bundle(pki.www, pki.www_key), "inside the CERTIFICATE block", REFUSED_TOO),
    ("a TRUSTED CERTIFICATE leaf", lambda pki: pki.bundle(pki.www, pki.www_key).replace(" CERTIFICATE-", " TRUSTED CERTIFICATE-"),
     "OpenSSL reads it as a certificate", ("www", 1)),
    ("an X509 CERTIFICATE leaf", lambda pki: pki.bundle(pki.www, pki.www_key).replace(" CERTIFICATE-", " X509 CERTIFICATE-"),
     "OpenSSL reads it as a certificate", ("www", 1)),
    ("a PEM header", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN + "Comment: x\n", 1), "PEM headers", REFUSED_TOO),
    ("a trailing space on BEGIN", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN[:-1] + " \n", 1), "neither blank",
     ("www", 1)),
    ("a non-base64 body", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN + "!!!!\n", 1), "not a base64 line", REFUSED_TOO),
    ("a short line inside the body", lambda pki: BEGIN + "AAAA\n" + "A" * 64 + "\n" + END, "short line", REFUSED_TOO),
    ("an issuer by name only (another key)", lambda pki: pki.bundle(pki.www, pki.certificate("lbpair test intermediate", pki.other_key,
     pki.root, pki.root_key, ca=True), pki.www_key), "not the issuer of certificate 1", ("www", 2)),
    ("a leaf with a common name only", lambda pki: pki.bundle(pki.common_name_only, pki.intermediate, pki.www_key), "names no host",
     ("common_name_only", 2)),
    ("nine certificates", lambda pki: pki.bundle(pki.www, *[pki.intermediate] * 8, pki.www_key), "holds 9 certificates", ("www", 9)),
    ("1 MiB of BEGIN lines (the old regex's 210 s)", lambda pki: BEGIN * 40000, "larger than", REFUSED_TOO),
    # OpenSSL reads lines in pieces of 254 characters: a BEGIN after 254 others on a line opens a block for it
    ("an expired leaf behind 254 characters on a line", lambda pki: " " * 254 + pki.bundle(pki.expired) + pki.www_bundle(),
     "line 1 is neither blank", ("expired", 3)),
    ("a UTF-8 byte order mark before an expired leaf", lambda pki: "\ufeff" + pki.bundle(pki.expired) + pki.www_bundle(), "not ASCII",
     ("expired", 3)),
    ("an expired TRUSTED CERTIFICATE leaf before the leaf",
     lambda pki: pki.bundle(pki.expired).replace(" CERTIFICATE-", " TRUSTED CERTIFICATE-") + pki.www_bundle(),
     "OpenSSL reads it as a certificate", ("expired", 3)),
    ("a TRUSTED CERTIFICATE issuer (left out of the chain HAProxy serves)",
     lambda pki: pki.bundle(pki.www) + pki.bundle(pki.intermediate).replace(" CERTIFICATE-", " TRUSTED CERTIFICATE-") + pki.bundle(pki.www_key),
     "OpenSSL reads it as a certificate", ("www", 1)),
    ("a NUL byte ending the BEGIN line (OpenSSL reads up to it)", lambda pki: pki.www_bundle().replace(BEGIN, BEGIN[:-1] + "\0\n", 1),
     "neither blank", ("www", 2)),
    ("a NUL byte on a line of its own", lambda pki: "\0\n" + pki.www_bundle(), "neither blank", REFUSED_TOO),
    ("openssl's subject= line before the blocks", lambda pki: "subject=CN = www.example.net\n" + pki.www_bundle(), "neither blank",
     ("www", 2)),
    ("an empty line after BEGIN", lambda pki: pki.www_bundle().replace(BEGIN, BEGIN + "\n", 1), "not a base64 line", ("www", 2)),
    ("an empty line inside the base64", lambda pki: _second_line(pki, lambda line: line + "\n"), "not a base64 line", REFUSED_TOO),
    ("a space inside a base64 line", lambda pki: _second_line(pki, lambda line: line[:10] + " " + line[10:]), "not a base64 line", ("www", 2)),
    ("a BEGIN line inside the leaf's base64", lambda pki: _second_line(pki, lambda line: f"{BEGIN}{line}"), "inside the CERTIFICATE block",
     REFUSED_TOO),
    ("base64 lines of 76 characters", lambda pki: _lines_of(pki, 76), "not a base64 line", ("www", 2)),
    ("a trailing space on END", lambda pki: pki.www_bundle().replace(END, END[:-1] + " \n", 1), "inside the CERTIFICATE block", ("www", 2)),
    ("CR line ends alone", lambda pki: pki.www_bundle().replace("\n", "\r"), "neither a certificate", REFUSED_TOO),
    ("an EC key labelled RSA PRIVATE KEY", lambda pki: pki.bundle(pki.www, pki.intermediate) + _relabelled(pki.bundle(pki.www_key), "RSA PRIVATE KEY"),
     "says RSA PRIVATE KEY but holds an EC secp256r1 key", REFUSED_TOO),
    ("an RSA key labelled EC PRIVATE KEY", lambda pki: pki.bundle(pki.rsa, pki.intermediate) + _relabelled(pki.bundle(pki.rsa_key), "EC PRIVATE KEY"),
     "says EC PRIVATE KEY but holds an RSA 2048 key", REFUSED_TOO),
    ("a PKCS#1 RSA key labelled PRIVATE KEY", lambda pki: pki.bundle(pki.rsa, pki.intermediate)
     + _relabelled(traditional(pki.rsa_key), "PRIVATE KEY"), "older form", REFUSED_TOO),
    ("an SEC 1 EC key labelled PRIVATE KEY", lambda pki: pki.bundle(pki.www, pki.intermediate)
     + _relabelled(traditional(pki.www_key), "PRIVATE KEY"), "older form", REFUSED_TOO),
    ("an encrypted key (HAProxy would ask for its passphrase)", lambda pki: pki.bundle(pki.www, pki.intermediate) + pki.encrypted(pki.www_key),
     "encrypted private key", REFUSED_TOO),
]  # fmt: skip


@pytest.mark.parametrize(("what", "bundle", "words", "haproxy"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_a_hostile_bundle_is_refused_naming_the_key(what, bundle, words, haproxy):
    with pytest.raises(InvalidValue) as error:
        certificates.load(bundle(shared_pki()), KEY, NOW)
    assert error.value.path == KEY and words in str(error.value), (what, str(error.value))


@pytest.mark.parametrize("path", [tls.MANAGED_DIRECTORY, f"{tls.MANAGED_DIRECTORY}/x.pem"])
def test_lbpair_s_own_folder_is_refused_as_a_path(path):
    with pytest.raises(InvalidValue, match="lbpair's own"):
        tls._node_path(path, PATH_KEY)


def test_a_path_that_is_a_directory_is_refused_on_the_node(monkeypatch, tmp_path):
    monkeypatch.setattr(tls_files, "RESOLVED_DIRECTORIES", (str(tmp_path),))
    (tmp_path / "dir").mkdir()
    (tmp_path / "link.pem").symlink_to(tmp_path / "dir")
    with pytest.raises(InvalidValue, match="not a regular file") as error:
        tls_files.resolved(str(tmp_path / "link.pem"), PATH_KEY)
    assert error.value.path == PATH_KEY
