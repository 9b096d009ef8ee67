"""OCSP stapling: the responder's URL, the request, the response checked before it is written, files and reports."""

import copy
import datetime
import os
import stat

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from lab.pki import Ca
from saltext.lbpair.model import pillar
from saltext.lbpair.node import ocsp, stats, tls_files
from tests.unit.ocsp_ca import DAY, NOW, OcspCa
from tests.unit.test_routing import SHOP

URL = "http://ocsp.example.net:8080/ocsp"


@pytest.fixture(scope="module")
def ca():
    ca = OcspCa(URL)
    ca.shop = ca.leaf("shop.example.net")
    ca.alone = ca.leaf("alone.example.net", with_issuer=False)
    return ca


def parts(ca, name="shop.example.net"):
    return ca.leaves[name], ca.certificate


def test_the_leaf_names_its_responder_and_the_bundle_its_issuer(ca):
    leaf, issuer = ocsp.chain(ca.shop)
    assert ocsp.responder_url(leaf) == URL and issuer.subject == ca.certificate.subject
    assert ocsp.chain(ca.alone)[1] is None


def test_the_request_is_about_the_leaf(ca):
    request = x509_ocsp.load_der_ocsp_request(ocsp.request(*parts(ca)))
    assert request.serial_number == ca.leaves["shop.example.net"].serial_number


@pytest.mark.parametrize(
    "url",
    [
        "https://ocsp.example.net/",  # another scheme
        "file:///etc/shadow",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http://user:pass@ocsp.example.net/",  # credentials
        "http://ocsp.example.net:99999/",  # no such port
        "http://ocsp.example.net/a b",
        "http://ocsp.example.net/\r\nX-Injected: 1",
        "http://ocsp.example.net/?q=1#x",
        "HTTP://[::1]/",
        "",
    ],
)
def test_only_plain_http_urls_to_a_host_are_asked(url):
    with pytest.raises(ocsp.Refused, match="http://host"):
        ocsp.checked_url(url)


@pytest.mark.parametrize(
    ("url", "parts_"),
    [("http://ocsp.example.net", ("ocsp.example.net", 80, "/")), ("http://127.0.0.1:8888/r/1", ("127.0.0.1", 8888, "/r/1"))],
)
def test_a_plain_http_url_gives_host_port_and_path(url, parts_):
    assert ocsp.checked_url(url) == parts_


def test_a_good_response_from_the_issuer_is_accepted(ca):
    checked = ocsp.check(ca.response(ca.leaves["shop.example.net"]), *parts(ca))
    assert checked["next_update"] == (NOW + DAY).isoformat()


def test_a_good_response_from_a_delegated_responder_is_accepted(ca):
    assert ocsp.check(ca.response(ca.leaves["shop.example.net"], signer="responder"), *parts(ca))


def _stranger(ca):
    """A responder certificate with the OCSP signing usage, signed by another CA."""
    other = OcspCa(URL, name="another root")
    return other.responder, other.responder_key


def _undelegated(ca):
    """A certificate the issuer signed, without the OCSP signing usage."""
    key = ec.generate_private_key(ec.SECP256R1())
    return ca._issue("not a responder", key), key


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda ca, leaf: ca.response(leaf, status=x509_ocsp.OCSPCertStatus.REVOKED), "revoked"),
        (lambda ca, leaf: ca.response(leaf, status=x509_ocsp.OCSPCertStatus.UNKNOWN), "unknown"),
        (lambda ca, leaf: ca.response(leaf, signer=_stranger(ca)), "neither by the certificate's issuer"),
        (lambda ca, leaf: ca.response(leaf, signer=_undelegated(ca)), "neither by the certificate's issuer"),
        (lambda ca, leaf: ca.response(ca.leaves["alone.example.net"]), "not about this certificate"),
        (lambda ca, leaf: ca.response(leaf, next_update=NOW - datetime.timedelta(minutes=1)), "not current"),
        (lambda ca, leaf: ca.response(leaf, this_update=NOW + DAY, next_update=NOW + 2 * DAY), "not current"),
        (lambda ca, leaf: _no_next_update(ca, leaf), "no nextUpdate"),
        (lambda ca, leaf: _tampered(ca.response(leaf)), "signature does not verify"),
        (lambda ca, leaf: b"<html>hello</html>", "not a DER OCSP response"),
        (
            lambda ca, leaf: x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
                serialization.Encoding.DER
            ),
            "TRY_LATER",
        ),
    ],
)
def test_a_response_that_does_not_prove_the_certificate_good_now_is_refused(ca, change, words):
    with pytest.raises(ocsp.Refused, match=words):
        ocsp.check(change(ca, ca.leaves["shop.example.net"]), *parts(ca))


def _no_next_update(ca, leaf):
    builder = x509_ocsp.OCSPResponseBuilder().add_response(
        leaf, ca.certificate, hashes.SHA1(), x509_ocsp.OCSPCertStatus.GOOD, NOW - DAY, None, None, None
    )
    builder = builder.responder_id(x509_ocsp.OCSPResponderEncoding.NAME, ca.certificate)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _tampered(der):
    """The response with the last byte of its signature (the last field, no certificates follow) changed."""
    return der[:-1] + bytes([der[-1] ^ 1])


# --- refresh, files and report --------------------------------------------------


def model_with(seed_pillar, certificates):
    lbpair = copy.deepcopy(seed_pillar)
    lbpair["services"]["shop"] = copy.deepcopy(SHOP)
    lbpair["services"]["shop"]["tls"] = {"certificates": certificates}
    return pillar.for_node(pillar.normalize(lbpair), "lb1")


class Responder:
    """An asker that answers what ``answer(leaf)`` makes, recording the URLs asked."""

    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def __call__(self, url, body):
        self.asked.append(url)
        return self.answer(body)


def test_refresh_writes_a_checked_response_0600_beside_the_certificate_and_reports_it(tmp_path, seed_pillar, ca):

    model = model_with(seed_pillar, {"shop": {"pem": ca.shop}, "alone": {"pem": ca.alone}, "plain": {"pem": Ca().bundle("p.example.net")}})
    tls_files.write(str(tmp_path), model)
    good = Responder(lambda body: ca.response(ca.leaves["shop.example.net"]))
    found = ocsp.refresh(model, str(tmp_path), str(tmp_path / "no.sock"), asker=good)["shop"]
    assert good.asked == [URL]
    assert found["shop"]["result"] == "stapled" and found["shop"]["pushed"].startswith("not pushed: cannot talk")
    assert os.stat(found["shop"]["file"]).st_mode & 0o777 == stat.S_IRUSR | stat.S_IWUSR
    assert found["alone"] == {"responder": URL, "result": "none", "reason": ocsp.NO_ISSUER}
    assert found["plain"] == {"result": "none", "reason": "the certificate names no OCSP responder"}
    report = ocsp.report(model, str(tmp_path))["shop"]
    assert report["shop"] == {"responder": URL, "this_update": found["shop"]["this_update"], "next_update": found["shop"]["next_update"],
                              "stale": False}  # fmt: skip
    assert report["alone"]["stale"] is True and report["plain"] == {"none": "the certificate names no OCSP responder"}
    later = ocsp.report(model, str(tmp_path), now=NOW + 2 * DAY)["shop"]["shop"]
    assert later["stale"] is True


def test_a_refused_answer_keeps_the_previous_file(tmp_path, seed_pillar, ca):
    model = model_with(seed_pillar, {"shop": {"pem": ca.shop}})
    tls_files.write(str(tmp_path), model)
    ocsp.refresh(model, str(tmp_path), "/nonexistent", asker=Responder(lambda body: ca.response(ca.leaves["shop.example.net"])))
    (path,) = tmp_path.glob("*.ocsp")
    before = path.read_bytes()
    revoked = Responder(lambda body: ca.response(ca.leaves["shop.example.net"], status=x509_ocsp.OCSPCertStatus.REVOKED))
    row = ocsp.refresh(model, str(tmp_path), "/nonexistent", asker=revoked)["shop"]["shop"]
    assert row["result"] == "refused" and "revoked" in row["reason"] and row["kept"]["stale"] is False
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.name[: -len(".ocsp")]])


def test_without_a_response_file_a_certificate_naming_a_responder_is_stale(tmp_path, seed_pillar, ca):
    model = model_with(seed_pillar, {"shop": {"pem": ca.shop}})
    assert ocsp.report(model, str(tmp_path))["shop"]["shop"] == {"responder": URL, "missing": True, "stale": True}


def test_prune_removes_the_response_of_a_certificate_no_longer_named(tmp_path, seed_pillar, ca):
    old = model_with(seed_pillar, {"shop": {"pem": ca.shop}})
    tls_files.write(str(tmp_path), old)
    ocsp.refresh(old, str(tmp_path), "/nonexistent", asker=Responder(lambda body: ca.response(ca.leaves["shop.example.net"])))
    new = model_with(seed_pillar, {"alone": {"pem": ca.alone}})
    tls_files.write(str(tmp_path), new)
    (tmp_path / "unrelated.ocsp").write_bytes(b"not ours")
    (kept,) = tls_files.bundles(new)
    removed = tls_files.prune(str(tmp_path), new)
    assert len(removed) == 2 and all(name.endswith((".pem", ".pem.ocsp")) for name in removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept, "unrelated.ocsp"])


def test_a_response_is_never_written_through_a_symlinked_directory(tmp_path, seed_pillar, ca):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "certs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="symlink"):
        ocsp.write(str(tmp_path / "certs" / "api.pem"), b"response")
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("payload", ["line\n\nset server shop/web1 state maint", "a\r\nb"])
def test_a_stats_socket_payload_cannot_end_early_and_smuggle_a_command(payload):
    with pytest.raises(ValueError, match="no empty line"):
        stats.command("/nonexistent.sock", "set ssl cert x.pem.ocsp", payload=payload)
