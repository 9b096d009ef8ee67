"""Hostile certificate bundles and paths: each refused naming the pillar key, with words saying why."""

import pytest

from lbpair_lib import certificates, tls, tls_files
from lbpair_lib.errors import InvalidValue
from tests.unit.test_certificates import KEY, NOW, PATH_KEY, shared_pki

BEGIN, END = "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n"


def _hide_in_text(pki):
    """An expired leaf hidden from a regex reader: text on the BEGIN line's row."""
    return "x" + pki.bundle(pki.expired, pki.intermediate, pki.www_key)


HOSTILE = [
    # (what it tries, the bundle, words of the message)
    ("text before a block (OpenSSL skips it, a regex may not)", _hide_in_text, "line 1 is neither blank"),
    ("a nested BEGIN line", lambda pki: BEGIN + pki.bundle(pki.www, pki.www_key), "inside the CERTIFICATE block"),
    ("a TRUSTED CERTIFICATE leaf", lambda pki: pki.bundle(pki.www, pki.www_key).replace(" CERTIFICATE-", " TRUSTED CERTIFICATE-"),
     "OpenSSL reads it as a certificate"),
    ("an X509 CERTIFICATE leaf", lambda pki: pki.bundle(pki.www, pki.www_key).replace(" CERTIFICATE-", " X509 CERTIFICATE-"),
     "OpenSSL reads it as a certificate"),
    ("a PEM header", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN + "Comment: x\n", 1), "PEM headers"),
    ("a trailing space on BEGIN", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN[:-1] + " \n", 1), "neither blank"),
    ("a non-base64 body", lambda pki: pki.bundle(pki.www, pki.www_key).replace(BEGIN, BEGIN + "!!!!\n", 1), "not a base64 line"),
    ("a short line inside the body", lambda pki: BEGIN + "AAAA\n" + "A" * 64 + "\n" + END, "short line"),
    ("an issuer by name only (another key)", lambda pki: pki.bundle(pki.www, pki.certificate("lbpair test intermediate", pki.other_key,
     pki.root, pki.root_key, ca=True), pki.www_key), "not the issuer of certificate 1"),
    ("a leaf with a common name only", lambda pki: pki.bundle(pki.common_name_only, pki.intermediate, pki.www_key), "names no host"),
    ("nine certificates", lambda pki: pki.bundle(pki.www, *[pki.intermediate] * 8, pki.www_key), "holds 9 certificates"),
    ("1 MiB of BEGIN lines (the old regex's 210 s)", lambda pki: BEGIN * 40000, "larger than"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "bundle", "words"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_a_hostile_bundle_is_refused_naming_the_key(what, bundle, words):
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
