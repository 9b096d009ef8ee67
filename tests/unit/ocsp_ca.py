"""A throwaway CA whose leaves name an OCSP responder, a delegated responder, and responses built by cryptography."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from lab.pki import DAY, Ca, _certificate_pem, _pem

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


class OcspCa(Ca):
    """:class:`lab.pki.Ca` with leaves naming ``url`` as their OCSP responder (the chain after the leaf) and a delegated responder."""

    def __init__(self, url, name="lbpair ocsp test root"):
        super().__init__(name)
        self.url = url
        self.leaves = {}
        self.responder_key = self._key()
        self.responder = self._issue("lbpair ocsp responder", self.responder_key, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])

    def _issue(self, common_name, key, names=(), eku=None, url=None, days=90):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + days * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if url:
            access = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def leaf(self, common_name, url=None, with_issuer=True):
        """A bundle for ``common_name`` naming the responder (``url``, the CA's by default): leaf, issuer, key."""
        key = self._key()
        leaf = self._issue(common_name, key, names=(common_name,), url=url or self.url)
        self.leaves[common_name] = leaf
        return _certificate_pem(leaf) + (self.pem if with_issuer else "") + _pem(key)

    def response(self, leaf, status=ocsp.OCSPCertStatus.GOOD, signer="issuer", this_update=None, next_update=None, issuer=None):
        """A DER OCSP response about ``leaf`` signed by the issuer, the delegated ``responder`` or ``(certificate, key)``."""
        this_update = this_update or NOW - datetime.timedelta(minutes=5)
        next_update = next_update or NOW + DAY
        revoked = (NOW - DAY, None) if status == ocsp.OCSPCertStatus.REVOKED else (None, None)
        builder = ocsp.OCSPResponseBuilder().add_response(
            leaf, issuer or self.certificate, hashes.SHA1(), status, this_update, next_update, *revoked
        )
        if signer == "issuer":
            certificate, key = self.certificate, self.key
        elif signer == "responder":
            certificate, key = self.responder, self.responder_key
            builder = builder.certificates([self.responder])
        else:
            certificate, key = signer
            builder = builder.certificates([certificate])
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, certificate)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def pems(self):
        """``(ca.pem, responder.pem, responder key)`` for ``openssl ocsp``."""
        return self.pem, _certificate_pem(self.responder), self.private_pems[1]
