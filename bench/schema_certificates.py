"""
Benchmark: how long the schema takes over a service's TLS certificates, at the caps.

Each row puts one input into the seed pillar (``salt/pillar.example``; service ``foo`` gets a
``tls`` block) and times :func:`saltext.lbpair.model.pillar.normalize` on it (median of a few runs): the
largest valid bundle lbpair accepts, and the worst crafted inputs found (refused or not). Prints
a table; asserts nothing. No root needed.

    .venv/bin/python -m bench.schema_certificates
"""

import copy
import datetime
import pathlib
import statistics
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates, pillar, tls

REPO = pathlib.Path(__file__).resolve().parent.parent
RUNS = 5
DAY = datetime.timedelta(days=1)
NOW = datetime.datetime.now(datetime.timezone.utc)
BEGIN, END = "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n"


def seed_pillar():
    with open(REPO / "salt" / "pillar.example", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["lbpair"]


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def sign(subject, key, issuer, issuer_key, ca=False, names=()):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 90 * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*parts):
    text = ""
    for part in parts:
        if isinstance(part, x509.Certificate):
            text += part.public_bytes(serialization.Encoding.PEM).decode()
        else:
            text += part.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return text


def largest_valid_bundle():
    """The most lbpair accepts: a chain of the most certificates (RSA-4096 issuers), a leaf whose SANs fill the rest, its key."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=certificates.MAX_RSA_BITS) for _ in range(2)]
    leaf_key = keys[1]
    issuers = certificates.MAX_BUNDLE_CERTIFICATES - 1
    chain = [sign(f"ca {issuers - 1}", keys[0], f"ca {issuers - 1}", keys[0], ca=True)]
    for level in range(issuers - 2, -1, -1):  # each CA signed by the one above it (two keys, alternating)
        chain.insert(0, sign(f"ca {level}", keys[level % 2], f"ca {level + 1}", keys[(level + 1) % 2], ca=True))
    names, text = ["www.example.net"], ""
    while True:
        leaf = sign("www.example.net", leaf_key, "ca 0", keys[0], names=names)
        candidate = pem(leaf, *chain, leaf_key)
        if len(candidate) > certificates.MAX_PEM_BYTES:
            return text, len(names) - 100
        text = candidate
        names += [f"host{len(names) + index}.example.net" for index in range(100)]


def crafted(valid):
    """The worst inputs found: ``[(what, text)]``, each at most the cap."""
    cap = certificates.MAX_PEM_BYTES
    base64_line = "A" * 64 + "\n"
    return [
        ("BEGIN lines only (the old regex's worst case)", BEGIN * (cap // len(BEGIN))),
        ("BEGIN, base64 up to the cap, no END", BEGIN + base64_line * ((cap - len(BEGIN)) // len(base64_line))),
        ("one CERTIFICATE block of garbage DER", BEGIN + base64_line * ((cap - 100) // len(base64_line)) + END),
        ("blank lines then the valid bundle", "\n" * (cap - len(valid)) + valid),
        ("EC PARAMETERS blocks up to the cap, then a leaf", _parameters((cap - len(valid)) // 70) + valid),
        ("a self-signed ECDSA leaf whose SANs fill the cap, and its key", _san_filled_leaf(cap)),
    ]


def _san_filled_leaf(cap):
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"h{index}.example.net" for index in range(cap // 20)]
    while True:
        text = pem(sign("self.example.net", key, "self.example.net", key, names=names), key)
        if len(text) <= cap:
            return text
        names = names[: len(names) * 95 // 100]


def _parameters(count):
    return "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" * count


def with_certificates(lbpair, certificates_block):
    lbpair = copy.deepcopy(lbpair)
    lbpair["services"]["foo"]["tls"] = {"port": 443, "certificates": certificates_block}
    return lbpair


def timed(lbpair):
    """Median seconds of ``pillar.normalize`` and its outcome (``ok`` or the start of its refusal)."""
    durations, outcome = [], "ok"
    for _ in range(RUNS):
        start = time.perf_counter()
        try:
            pillar.normalize(lbpair)
        except InvalidValue as exc:
            outcome = f"refused: {exc.message[:60]}"
        durations.append(time.perf_counter() - start)
    return statistics.median(durations), outcome


def rows():
    seed = seed_pillar()
    valid, names = largest_valid_bundle()
    baseline = with_certificates(seed, {"x": {"pem": valid}})
    yield "seed pillar alone", 0, *timed(seed)
    yield f"largest valid bundle ({certificates.MAX_BUNDLE_CERTIFICATES} RSA-4096 certificates, {names} SANs)", len(valid), *timed(baseline)
    for what, text in crafted(valid):
        yield what, len(text), *timed(with_certificates(seed, {"x": {"pem": text}}))
    distinct = _distinct_bundles(tls.MAX_CERTIFICATES)
    block = {f"c{index}": {"pem": text} for index, text in enumerate(distinct)}
    what = f"{tls.MAX_CERTIFICATES} certificates in one service (leaf + issuer + key each)"
    yield what, sum(map(len, distinct)), *timed(with_certificates(seed, block))


def _distinct_bundles(count):
    """``count`` ordinary bundles (an ECDSA leaf, its issuer, its key) of distinct leaves."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = sign("bench ca", ca_key, "bench ca", ca_key, ca=True)
    bundles = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        bundles.append(pem(sign(f"s{index}.example.net", key, "bench ca", ca_key, names=[f"s{index}.example.net"]), ca, key))
    return bundles


def main():
    print(f"{'input':<78} {'bytes':>8} {'median s':>9}  outcome")
    for what, size, seconds, outcome in rows():
        print(f"{what:<78} {size:>8} {seconds:>9.4f}  {outcome}")


if __name__ == "__main__":
    main()
