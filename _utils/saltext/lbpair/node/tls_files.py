"""
The TLS certificates of the services (:mod:`saltext.lbpair.model.tls`) as the files HAProxy reads.

A certificate from the pillar is written to ``<directory>/<sha256 of its text>.pem`` (mode 0600,
the directory 0700; the directory is ``certs/lbpair`` beside haproxy.cfg) before the candidate
haproxy.cfg is checked, since ``haproxy -c`` reads it. A changed certificate is a new file: the
live one is never overwritten, so a rejected candidate or a failed reload leaves HAProxy's files
as they were. Files no longer named are removed after a successful install and reload, never
before. haproxy.cfg, diffs and messages name only these paths, never the PEM text.

A certificate given by ``path`` stays where it is; its symlinks may only lead into the
directories :func:`saltext.lbpair.model.certificates.readable_path` allows or certbot's archive.
"""

import os
import re
import stat

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import certificates, pillar, schema, tls

FILE_RE = re.compile(r"[0-9a-f]{64}\.pem")
#: a certificate's file or the OCSP response HAProxy staples with it (``<crt>.ocsp``, :mod:`saltext.lbpair.node.ocsp`)
PRUNED_RE = re.compile(r"(?P<certificate>[0-9a-f]{64}\.pem)(?:\.ocsp)?")
#: where the symlinks of a certificate on the node may lead (certbot's live/ links into archive/)
RESOLVED_DIRECTORIES = (*certificates.ALLOWED_DIRECTORIES, "/etc/letsencrypt/archive")


def directory_for(config_file):
    """Where the certificates of the pillar go for the haproxy.cfg at ``config_file``."""
    return os.path.join(os.path.dirname(config_file), "certs", "lbpair")


def file_of(certificate, directory):
    """The file HAProxy reads for a normalised certificate (``{"bundle": ...}`` or ``{"path": ...}``)."""
    return certificate["path"] if "path" in certificate else os.path.join(directory, certificate["bundle"].file_name)


def each_certificate(model):
    """``(service, name, certificate)`` of every certificate of every service, in order."""
    for service_name, service in model["services"].items():
        for name, certificate in (service["tls"] or {"certificates": {}})["certificates"].items():
            yield service_name, name, certificate


def bundles(model):
    """``{file name: PEM text}`` of the certificates from the pillar."""
    return {cert["bundle"].file_name: cert["bundle"].text for _service, _name, cert in each_certificate(model) if "bundle" in cert}


def missing(directory, model):
    """The files of the pillar's certificates that ``directory`` lacks or holds with another size."""
    return _missing(directory, bundles(model))


def _missing(directory, texts):
    """
    The paths of ``texts`` (``{file name: PEM text}``) that ``directory`` lacks. A file is there if
    it is listed as a regular file of its text's size (ASCII: a byte a character): its name is its
    text's SHA-256, and lbpair alone writes this root-only directory, each file whole (renamed into
    place). So a re-apply lists the directory instead of reading 1,000 files; a file cut short,
    emptied or replaced by a symlink is written again.
    """
    try:
        with os.scandir(directory) as entries:
            sizes = {entry.name: entry.stat(follow_symlinks=False).st_size for entry in entries if entry.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        sizes = {}
    return [os.path.join(directory, name) for name, text in texts.items() if sizes.get(name) != len(text)]


def write(directory, model):
    """Write the missing files of the pillar's certificates into ``directory``; return the paths written."""
    texts = bundles(model)
    written = _missing(directory, texts)
    if not written:
        return []
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for path in written:
        store.write_private(path, texts[os.path.basename(path)].encode("ascii"))
    return written


def discard(paths):
    for path in paths:
        store.remove(path)


def prune(directory, model):
    """Remove the certificate files of ``directory`` the model no longer names, and their OCSP responses; return their names."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    keep = bundles(model)
    removed = [name for name in names if (found := PRUNED_RE.fullmatch(name)) and found.group("certificate") not in keep]
    discard(os.path.join(directory, name) for name in removed)
    return removed


def path_key(service, name):
    return pillar.key("services", service, "tls", "certificates", name, "path")


def check_dates(model, now=None):
    """Refuse a certificate from the pillar that is not valid yet or has expired, naming its key."""
    for service, name, certificate in each_certificate(model):
        if "bundle" in certificate:
            key = pillar.key("services", service, "tls", "certificates", name, "pem")
            certificates.check_dates(certificate["bundle"].description, key, now)


def resolved(path, key, managed=tls.MANAGED_DIRECTORY):
    """
    Where the certificate file ``path`` really is: a regular file, its symlinks leading into
    :data:`RESOLVED_DIRECTORIES` and not into lbpair's own folder ``managed`` (HAProxy's ``crt``
    reads a directory as every file in it: every service's keys).
    """
    real = os.path.realpath(path)
    if not any(real.startswith(f"{directory}/") for directory in RESOLVED_DIRECTORIES):
        raise InvalidValue(key, f"{path} leads to {real}, which is not in {', '.join(RESOLVED_DIRECTORIES)}")
    for own in {tls.MANAGED_DIRECTORY, os.path.realpath(managed)}:
        if real == own or real.startswith(f"{own}/"):
            raise InvalidValue(key, f"{path} leads to {real}, in lbpair's own folder {own}: name a file of your own")
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise InvalidValue(key, f"{path} cannot be read on this node: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InvalidValue(key, f"{path} leads to {real}, which is not a regular file (a directory?): name the bundle's file")
    return real


def check_paths(model, managed=tls.MANAGED_DIRECTORY):
    """Refuse a certificate on the node that is not a regular file in the allowed directories, outside ``managed``."""
    for service, name, certificate in each_certificate(model):
        if "path" in certificate:
            resolved(certificate["path"], path_key(service, name), managed)


def read(path, key, now=None):
    """The description (:func:`saltext.lbpair.model.certificates.load`) of the certificate file ``path`` on the node."""
    with open(resolved(path, key), encoding="ascii", errors="replace") as handle:
        text = handle.read(certificates.MAX_PEM_BYTES + 1)
    return certificates.load(text, key, now, need_key=False)


def _expiry(description, name, now, warn_days):
    (row,) = certificates.expiry_report({name: description}, now, warn_days)
    return {
        "names": description["names"],
        "not_after": row["not_after"],
        "days_left": row["days_left"],
        "fingerprint_sha256": description["fingerprint_sha256"],
        "warning": row["warning"],
        "warnings": description["warnings"],
    }


def warnings(model):
    """``["<key>: <warning>", ...]``: what clients may fail on in the pillar's certificates (a leaf's issuer missing)."""
    return [
        f"{pillar.key('services', service, 'tls', 'certificates', name, 'pem')}: {warning}"
        for service, name, certificate in each_certificate(model)
        if "bundle" in certificate
        for warning in certificate["bundle"].description["warnings"]
    ]


def report(model, warn_days, now=None):
    """
    ``{service: {certificate: {"source", "names", "not_after", "days_left", "warning"}}}``: the
    pillar's certificates from the pillar, the node's read from the node (never their keys). A
    certificate on the node that cannot be read or is not valid has ``error`` and ``warning``.
    """
    schema.integer(warn_days, "warn_days", 0, 3650)
    found = {}
    for service, name, certificate in each_certificate(model):
        source = certificate.get("path", "pillar")
        try:
            description = certificate["bundle"].description if "bundle" in certificate else read(source, path_key(service, name), now)
            row = _expiry(description, name, now, warn_days)
        except (InvalidValue, OSError) as exc:
            row = {"error": str(exc), "warning": True}
        found.setdefault(service, {})[name] = {"source": source, **row}
    return found


class CertificateFiles:
    """
    What :mod:`saltext.lbpair.node.deploy` does with the files beside haproxy.cfg: ``render(model,
    directory)`` renders haproxy.cfg naming the certificates in ``directory``, and the live
    ones are in ``directory``.
    """

    def __init__(self, directory, render):
        self.directory = directory
        self.render = render

    def missing(self, model):
        return missing(self.directory, model)

    def write(self, model):
        """Check the certificates (dates, the node's symlinks), write the pillar's missing ones; return the paths written."""
        check_dates(model)
        check_paths(model, self.directory)
        return write(self.directory, model)

    def scratch_lines(self, model, scratch):
        """The lines of haproxy.cfg naming the certificates, written into the scratch directory ``scratch``."""
        check_dates(model)
        check_paths(model, self.directory)
        directory = os.path.join(scratch, "certs")
        write(directory, model)
        return self.render(model, directory)

    def discard(self, paths):
        discard(paths)

    def prune(self, model):
        return prune(self.directory, model)

    def warnings(self, model):
        return warnings(model)
