"""A throwaway CA for the lab, the benchmarks and the tests: certificates valid now (the real clock, as HAProxy and curl see it)."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
    key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
)  # fmt: skip


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _certificate_pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class Ca:
    """A root that signs leaves directly; every private key's PEM is kept, to look for in outputs."""

    def __init__(self, name="lbpair tls test root"):
        self.private_pems = []
        self.key = self._key()
        self.certificate = self._sign(name, self.key, ca=True)

    @property
    def pem(self):
        """The root certificate, for ``curl --cacert``."""
        return _certificate_pem(self.certificate)

    def bundle(self, common_name, names=(), days=90):
        """A leaf for ``names`` (its common name if none), valid from yesterday for ``days``: its PEM then its key's."""
        key = self._key()
        leaf = self._sign(common_name, key, names=names or (common_name,), days=days)
        return _certificate_pem(leaf) + _pem(key)

    def secret_lines(self):
        """Every line of every private key's PEM but the BEGIN and END lines."""
        return {line for pem in self.private_pems for line in pem.splitlines() if not line.startswith("-----")}

    def shows_a_key(self, text):
        return [line for line in self.secret_lines() if line in text]

    def _key(self):
        key = ec.generate_private_key(ec.SECP256R1())
        self.private_pems.append(_pem(key))
        return key

    def _sign(self, common_name, key, ca=False, names=(), days=3650):
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if ca else self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + days * DAY)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            # what a public CA writes and a Web PKI verifier (sslyze's, through cryptography) demands
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if ca:
            builder = builder.add_extension(_CA_KEY_USAGE, critical=True)
        else:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        return builder.sign(key if ca else self.key, hashes.SHA256())
