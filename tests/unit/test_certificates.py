"""TLS certificate bundles: read, described without their keys, refused naming the pillar key and never quoting it."""

import datetime
import functools
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
KEY = "lbpair:tls:certificates:www:pem"
PATH_KEY = "lbpair:tls:certificates:www:path"
WWW_NAMES = ("www.example.net", "*.api.example.net", "203.0.113.10", "2001:db8::10")


def _pem(key, form=serialization.PrivateFormat.PKCS8, encryption=None):
    return key.private_bytes(serialization.Encoding.PEM, form, encryption or serialization.NoEncryption()).decode()


def _san(names):
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class Pki:
    """A small CA (root, intermediate) and leaves it signed; every private key's PEM is kept to look for in outputs."""

    def __init__(self):
        self.private_pems = []
        self.root_key = self.key()
        self.root = self.certificate("lbpair test root", self.root_key, ca=True)
        self.intermediate_key = self.key()
        self.intermediate = self.certificate("lbpair test intermediate", self.intermediate_key, self.root, self.root_key, ca=True)
        self.www_key = self.key()
        self.www = self.certificate("www.example.net", self.www_key, names=WWW_NAMES)
        self.rsa_key = self.key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.rsa = self.certificate("rsa.example.net", self.rsa_key, names=["rsa.example.net"])
        self.common_name_only = self.certificate("cn.example.net", self.www_key)
        self.ed25519_key = self.key(ed25519.Ed25519PrivateKey.generate())
        self.ed25519 = self.certificate("ed.example.net", self.ed25519_key, names=["ed.example.net"])
        self.expired = self.certificate("old.example.net", self.www_key, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
        self.future = self.certificate("new.example.net", self.www_key, not_before=NOW + DAY)
        self.other_key = self.key()
        self.ed448_key = self.key(ed448.Ed448PrivateKey.generate())

    def key(self, key=None):
        key = key or ec.generate_private_key(ec.SECP256R1())
        self.private_pems.append(_pem(key))
        if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):  # the others have no traditional form
            self.private_pems.append(_pem(key, serialization.PrivateFormat.TraditionalOpenSSL))
        return key

    def certificate(self, name, key, issuer=None, issuer_key=None, ca=False, names=(), not_before=None, not_after=None):
        """A certificate for ``key``: self-signed for a CA without an issuer, else signed by the issuer (the intermediate)."""
        if issuer is None and not ca:
            issuer, issuer_key = self.intermediate, self.intermediate_key
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - 30 * DAY)
            .not_valid_after(not_after or NOW + 90 * DAY)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    def bundle(self, *parts):
        """PEM text of certificates and keys, in the order given."""
        return "".join(
            part.public_bytes(serialization.Encoding.PEM).decode() if isinstance(part, x509.Certificate) else _pem(part) for part in parts
        )

    @staticmethod
    def encrypted(key, form=serialization.PrivateFormat.PKCS8):
        """The key's PEM, encrypted with a passphrase."""
        return _pem(key, form, serialization.BestAvailableEncryption(b"passphrase"))

    def www_bundle(self):
        return self.bundle(self.www, self.intermediate, self.www_key)

    def secret_lines(self):
        """Every line of every private key's PEM, but its BEGIN and END lines (and a last line too short to tell)."""
        return {line for pem in self.private_pems for line in pem.splitlines() if len(line) >= 16 and not line.startswith("-----")}

    def shows_a_key(self, text):
        return [line for line in self.secret_lines() if line in text]


@functools.cache
def shared_pki():
    """One PKI for the session: an RSA key takes a while to make."""
    return Pki()


@pytest.fixture
def pki():
    return shared_pki()


def refused(pki, pem_text, **options):
    with pytest.raises(InvalidValue) as error:
        certificates.load(pem_text, KEY, NOW, **options)
    assert error.value.path == KEY
    assert not pki.shows_a_key(str(error.value)) and not pki.shows_a_key(repr(error.value))
    # no exception of cryptography's chained to it: a traceback in a log shows nothing of the bundle
    assert error.value.__cause__ is None and (error.value.__context__ is None or error.value.__suppress_context__)
    return str(error.value)


# --- what a good bundle gives -------------------------------------------------


def test_a_bundle_is_described_without_its_key(pki):
    description = certificates.load(pki.www_bundle(), KEY, NOW)
    assert description == {
        "subject": "www.example.net",
        "names": ["www.example.net", "*.api.example.net", "203.0.113.10", "2001:db8::10"],
        "not_before": (NOW - 30 * DAY).isoformat(),
        "not_after": (NOW + 90 * DAY).isoformat(),
        "days_left": 90,
        "fingerprint_sha256": pki.www.fingerprint(hashes.SHA256()).hex(),
        "key_type": "EC secp256r1",
        "chain_length": 2,
        "warnings": [],
    }
    assert pki.shows_a_key(pki.www_bundle()) and not pki.shows_a_key(repr(description))
    private_value = f"{pki.www_key.private_numbers().private_value:x}"
    assert private_value not in repr(description)


def test_the_key_may_come_before_the_certificates(pki):
    bundle = pki.bundle(pki.www_key, pki.www, pki.intermediate)
    assert certificates.load(bundle, KEY, NOW) == certificates.load(pki.www_bundle(), KEY, NOW)


def test_the_whole_chain_up_to_the_root_is_accepted(pki):
    assert certificates.load(pki.bundle(pki.www, pki.intermediate, pki.root, pki.www_key), KEY, NOW)["subject"] == "www.example.net"


def test_a_leaf_alone_is_accepted_with_a_warning_naming_its_missing_issuer(pki):
    description = certificates.load(pki.bundle(pki.www, pki.www_key), KEY, NOW)
    assert description["days_left"] == 90
    assert description["warnings"] == [f"{certificates.ISSUER_MISSING.format(issuer='CN=lbpair test intermediate')}"]


def test_a_self_signed_leaf_alone_has_no_warning(pki):
    leaf = pki.certificate("self.example.net", pki.www_key, ca=True, names=["self.example.net"])  # no issuer: self-signed
    assert certificates.load(pki.bundle(leaf, pki.www_key), KEY, NOW)["warnings"] == []


def test_an_rsa_leaf_is_described(pki):
    description = certificates.load(pki.bundle(pki.rsa, pki.rsa_key), KEY, NOW)
    assert description["names"] == ["rsa.example.net"] and description["key_type"] == "RSA 2048"


def test_traditional_openssl_keys_and_ec_parameters_are_read(pki):
    ec_key = _pem(pki.www_key, serialization.PrivateFormat.TraditionalOpenSSL)
    rsa_key = _pem(pki.rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)
    parameters = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert ec_key.startswith("-----BEGIN EC PRIVATE KEY-----") and rsa_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert certificates.load(pki.bundle(pki.www) + parameters + ec_key, KEY, NOW)["key_type"] == "EC secp256r1"
    assert certificates.load(pki.bundle(pki.rsa) + rsa_key, KEY, NOW)["key_type"] == "RSA 2048"


def test_blank_lines_between_the_blocks_and_crlf_line_ends_are_read(pki):
    bundle = "\n" + pki.bundle(pki.www) + "  \n\n" + pki.bundle(pki.intermediate, pki.www_key)
    assert certificates.load(bundle, KEY, NOW) == certificates.load(pki.www_bundle(), KEY, NOW)
    assert certificates.load(pki.www_bundle().replace("\n", "\r\n"), KEY, NOW) == certificates.load(pki.www_bundle(), KEY, NOW)


def test_a_certificate_without_its_key_is_accepted_when_no_key_is_needed(pki):
    description = certificates.load(pki.bundle(pki.www, pki.intermediate), KEY, NOW, need_key=False)
    assert description["key_type"] == "EC secp256r1"


def test_a_key_given_when_none_is_needed_must_still_be_the_leafs(pki):
    assert "does not belong" in refused(pki, pki.bundle(pki.www, pki.other_key), need_key=False)


def test_validity_starts_at_not_before_and_ends_at_not_after(pki):
    bundle = pki.www_bundle()
    assert certificates.load(bundle, KEY, NOW - 30 * DAY)["days_left"] == 120
    assert certificates.load(bundle, KEY, NOW + 90 * DAY - datetime.timedelta(seconds=1))["days_left"] == 0
    with pytest.raises(InvalidValue, match="expired on"):
        certificates.load(bundle, KEY, NOW + 90 * DAY)
    with pytest.raises(InvalidValue, match="not valid yet"):
        certificates.load(bundle, KEY, NOW - 30 * DAY - datetime.timedelta(seconds=1))


def test_a_naive_now_is_taken_as_utc(pki):
    assert certificates.load(pki.www_bundle(), KEY, NOW.replace(tzinfo=None))["days_left"] == 90


def test_now_defaults_to_the_current_time(pki):
    today = datetime.datetime.now(datetime.timezone.utc)
    current = pki.certificate("now.example.net", pki.www_key, names=["now.example.net"], not_before=today - DAY, not_after=today + 10 * DAY)
    assert certificates.load(pki.bundle(current, pki.www_key), KEY)["days_left"] == 9


# --- what is refused ----------------------------------------------------------


REFUSALS = [
    # (what, the bundle, words of the message)
    ("text that is not PEM", lambda pki: "hello, I am a certificate", "is not PEM text"),
    ("a BEGIN line without its END", lambda pki: pki.www_bundle().rsplit("-----END", 1)[0], "no matching -----END"),
    ("a block closed by another kind's END", lambda pki: pki.bundle(pki.www).replace("END CERTIFICATE", "END PRIVATE KEY"), "no matching"),
    ("a certificate block of garbage", lambda pki: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + pki.bundle(pki.www_key),
     "certificate 1 of the bundle is not a valid PEM certificate"),
    ("a block of an unknown kind", lambda pki: pki.www_bundle() + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "neither a certificate"),
    ("a key alone", lambda pki: pki.bundle(pki.www_key), "holds no certificate"),
    ("no key", lambda pki: pki.bundle(pki.www, pki.intermediate), "holds no private key"),
    ("two keys", lambda pki: pki.bundle(pki.www, pki.www_key, pki.other_key), "holds 2 private keys"),
    ("the same key twice", lambda pki: pki.bundle(pki.www, pki.www_key, pki.www_key), "holds 2 private keys"),
    ("an encrypted PKCS#8 key", lambda pki: pki.bundle(pki.www) + pki.encrypted(pki.www_key), "encrypted private key"),
    ("an encrypted traditional key", lambda pki: pki.bundle(pki.www) + pki.encrypted(pki.www_key, serialization.PrivateFormat.TraditionalOpenSSL),
     "encrypted private key"),
    ("a key block of garbage", lambda pki: pki.bundle(pki.www) + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "not a valid PEM private key"),
    ("an Ed448 key", lambda pki: pki.bundle(pki.www, pki.ed448_key), "neither RSA nor EC"),
    ("an Ed25519 leaf (not in Mozilla's intermediate profile)", lambda pki: pki.bundle(pki.ed25519, pki.ed25519_key), "Ed25519 key"),
    ("a leaf naming its host in its common name only", lambda pki: pki.bundle(pki.common_name_only, pki.intermediate, pki.www_key),
     "names no host"),
    ("text around the blocks", lambda pki: "subject=CN = www.example.net\n" + pki.www_bundle(), "line 1 is neither blank"),
    ("another certificate's key", lambda pki: pki.bundle(pki.www, pki.intermediate, pki.other_key), "does not belong to the first certificate"),
    ("the intermediate's key", lambda pki: pki.bundle(pki.www, pki.intermediate, pki.intermediate_key), "does not belong"),
    ("the intermediate first", lambda pki: pki.bundle(pki.intermediate, pki.www, pki.www_key), "does not belong"),
    ("the root before the intermediate", lambda pki: pki.bundle(pki.www, pki.root, pki.intermediate, pki.www_key),
     "certificate 2 of the bundle is not the issuer of certificate 1"),
    ("a stranger in the chain", lambda pki: pki.bundle(pki.www, pki.rsa, pki.www_key), "not the issuer"),
    ("an expired certificate", lambda pki: pki.bundle(pki.expired, pki.intermediate, pki.www_key), "expired on 2026-05-31T12:00:00+00:00"),
    ("a certificate not valid yet", lambda pki: pki.bundle(pki.future, pki.intermediate, pki.www_key), "not valid yet: not before 2026-06-02"),
    ("a number", lambda pki: 42, "expected PEM text, got integer"),
    ("a huge text", lambda pki: pki.www_bundle() + "x" * certificates.MAX_PEM_BYTES, "larger than"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "bundle", "words"), REFUSALS, ids=[row[0] for row in REFUSALS])
def test_a_bad_bundle_is_refused_naming_the_key_and_never_quoting_a_private_key(pki, what, bundle, words):
    message = refused(pki, bundle(pki))
    assert words in message, (what, message)
    assert message.startswith(f"{KEY}: ")


# --- names --------------------------------------------------------------------


NAME_ROWS = [
    ("www.example.net", True), ("WWW.Example.NET", True), ("www.example.net.", True),
    ("v1.api.example.net", True), ("api.example.net", False), ("a.v1.api.example.net", False), (".api.example.net", False),
    ("example.net", False), ("mail.example.net", False), ("www.example.net.evil", False),
    ("203.0.113.10", True), ("203.0.113.11", False), ("2001:db8:0::10", True), ("2001:DB8::10", True),
]  # fmt: skip


@pytest.mark.parametrize(("host", "covered"), NAME_ROWS, ids=[row[0] for row in NAME_ROWS])
def test_a_host_is_covered_by_a_name_or_a_one_label_wildcard(pki, host, covered):
    assert certificates.names_match(certificates.load(pki.www_bundle(), KEY, NOW), host) is covered


def test_a_wildcard_is_a_whole_label_and_never_covers_an_address():
    assert not certificates.names_match({"names": ["w*.example.net"]}, "web.example.net")
    assert not certificates.names_match({"names": ["*.0.113.10"]}, "203.0.113.10")


def test_the_names_are_the_alternative_names_only(pki):
    description = certificates.load(pki.bundle(pki.rsa, pki.rsa_key), KEY, NOW)
    assert certificates.names_match(description, "rsa.example.net") and not certificates.names_match(description, "www.example.net")


# --- expiry -------------------------------------------------------------------


def test_the_expiry_report_lists_the_soonest_first_and_warns_within_the_days(pki):
    descriptions = {
        "www": certificates.load(pki.www_bundle(), KEY, NOW),
        "old": {"not_after": (NOW - DAY).isoformat()},
        "soon": {"not_after": (NOW + 10 * DAY).isoformat()},
        "edge": {"not_after": (NOW + 30 * DAY).isoformat()},
    }
    report = certificates.expiry_report(descriptions, NOW, warn_days=30)
    assert [(row["name"], row["days_left"], row["warning"]) for row in report] == [
        ("old", -1, True), ("soon", 10, True), ("edge", 30, True), ("www", 90, False),
    ]  # fmt: skip
    assert report[-1]["not_after"] == (NOW + 90 * DAY).isoformat()


def test_the_expiry_report_counts_from_its_own_now(pki):
    description = certificates.load(pki.www_bundle(), KEY, NOW)
    [row] = certificates.expiry_report({"www": description}, NOW + 80 * DAY, warn_days=14)
    assert row["days_left"] == 10 and row["warning"] is True


# --- paths on the node --------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/etc/haproxy/certs/www.example.net.pem", "/etc/ssl/lbpair/www.pem", "/etc/letsencrypt/live/www.example.net/fullchain.pem"]
)
def test_a_certificate_path_in_an_allowed_directory_is_accepted(path):
    assert certificates.readable_path(path, PATH_KEY) == path


PATH_ROWS = [
    ("/etc/shadow", "not in a directory lbpair reads"),
    ("/root/.ssh/id_rsa", "not in a directory"),
    ("/proc/self/environ", "not in a directory"),
    ("/etc/haproxy/certs/../../shadow", "not a normalised path"),
    ("/etc/haproxy/certs/./www.pem", "not a normalised path"),
    ("/etc/haproxy/certs//www.pem", "not a normalised path"),
    ("/etc/haproxy/certs", "not in a directory"),
    ("/etc/haproxy/certs/", "not a normalised path"),
    ("/etc/haproxy/certsevil/www.pem", "not in a directory"),
    ("etc/haproxy/certs/www.pem", "absolute path"),
    ("/etc/haproxy/certs/www.pem\n/etc/shadow", "single line"),
    ("/etc/haproxy/certs/www pem", "absolute path"),
    (" /etc/haproxy/certs/www.pem", "absolute path"),
    ("", "empty"),
    (["/etc/haproxy/certs/www.pem"], "expected a string"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "words"), PATH_ROWS, ids=[repr(row[0]) for row in PATH_ROWS])
def test_a_certificate_path_the_node_should_not_read_is_refused_naming_the_key(path, words):
    with pytest.raises(InvalidValue, match=words) as error:
        certificates.readable_path(path, PATH_KEY)
    assert error.value.path == PATH_KEY
