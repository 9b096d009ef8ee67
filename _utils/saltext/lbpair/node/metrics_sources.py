"""
The facts of the node's metrics (:mod:`saltext.lbpair.node.metrics`) that are read from the node:
keepalived's effective priorities, whether HAProxy answers, lbpair's track files, and when the
certificates HAProxy serves expire.

The beacon reads them on the minion's own loop, once a second: none of them may wait. The
priorities come from keepalived's JSON dump asked for at one tick and read at a later one (as
the beacon's JSON fallback does); HAProxy's stats socket is asked without blocking and its
answer read at a later tick; a certificate file is read again only when it changed (its
modification time, size or inode), and only its first certificate block is kept and parsed:
the private key in the same bundle is never decoded.
"""

import logging
import os
import socket
import time

from cryptography import x509

from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.model import certificates, schema
from saltext.lbpair.node import haproxy, tls_files, track

log = logging.getLogger(__name__)

#: s between two JSON dumps asked for the priorities when nothing happened (keepalived logs a line per dump)
PRIORITY_INTERVAL = 30.0
PRIORITY_SOONEST = 1.0  # s at least between two dumps asked for after changes (a flapping instance)
JSON_TIMEOUT = 5.0  # ask again if keepalived wrote no dump for that long
PROBE_INTERVAL = 5.0  # s between two questions to HAProxy's stats socket
PROBE_TIMEOUT = 3.0  # HAProxy that has not answered by then is down (hung, or gone)
PROBE_COMMAND = b"show info\n"
PROBE_ANSWER = b"Name: HAProxy"
BEGIN_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
END_CERTIFICATE = "-----END CERTIFICATE-----"


def track_files(directory=track.DIRECTORY):
    """``{name: set}`` of lbpair's track files (a missing one is not set, as keepalived reads it)."""
    return {name: track.read(name, directory) != 0 for name in track.NAMES}


class Priorities:
    """
    Each instance's effective priority from keepalived's JSON dump (``local``, a
    :class:`~saltext.lbpair.node.keepalived_process.Local`): :meth:`read` asks for a dump every
    :data:`PRIORITY_INTERVAL` seconds, or at once when told something changed (a transition, a
    track file), and returns the last one keepalived wrote, never waiting. keepalived logs a line
    ("Printing VRRP as json") for each dump: hence not at every tick.
    """

    def __init__(self, local, interval=PRIORITY_INTERVAL, clock=time.monotonic):
        self.local = local
        self.interval = interval
        self.clock = clock
        self.token = None
        self.asked = None
        self.due = False  # something changed since the last dump was asked for: ask soon
        self.found = {}

    def read(self, changed=False):
        """``{instance: priority}`` (``{}`` while keepalived does not run or has not answered); ``changed``: ask for a dump soon."""
        now = self.clock()
        if self.token is not None:
            instances = self.local.read_json(self.token)
            if instances is not None:
                self.found = {
                    name: entry["priority"] for name, entry in instances.items()
                    if isinstance(name, str) and isinstance(entry.get("priority"), int)
                }  # fmt: skip
                self.token = None
            elif now - self.asked > JSON_TIMEOUT:
                self.token, self.found = None, {}
        self.due = self.due or changed
        if self.token is None and (self.asked is None or now - self.asked >= (PRIORITY_SOONEST if self.due else self.interval)):
            self.due = False
            self.asked = now
            try:
                self.token = self.local.request_json()
            except (LbpairError, OSError) as exc:  # keepalived does not run
                log.debug("lbpair_vrrp: no JSON dump for the priorities: %s", exc)
                self.found = {}
        return dict(self.found)


class HaproxyProbe:
    """
    Whether HAProxy answers ``show info`` on its stats socket (``socket_path``). :meth:`up` sends
    the question without blocking and reads the answer at a later call: a hung HAProxy (stopped,
    its socket still accepting) is down after :data:`PROBE_TIMEOUT` seconds, without the minion's
    loop ever waiting for it.
    """

    def __init__(self, socket_path, interval=PROBE_INTERVAL, clock=time.monotonic):
        self.socket_path = socket_path
        self.interval = interval
        self.clock = clock
        self.pending = None  # (socket, asked at, bytes received)
        self.asked = None
        self.answer = None

    def up(self):
        """True or False once known, None before the first answer."""
        now = self.clock()
        if self.pending is not None:
            self._receive(now)
        if self.pending is None and (self.asked is None or now - self.asked >= self.interval):
            self._ask(now)
        return self.answer

    def _ask(self, now):
        self.asked = now
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(self.socket_path)
            client.send(PROBE_COMMAND)
        except OSError as exc:  # no socket, nobody listening, backlog full
            log.debug("lbpair_vrrp: HAProxy's stats socket %s: %s", self.socket_path, exc)
            client.close()
            self.answer = False
            return
        self.pending = (client, now, bytearray())

    def _receive(self, now):
        client, asked, received = self.pending
        try:
            while chunk := client.recv(65536):
                received.extend(chunk)
        except BlockingIOError:  # more to come
            if now - asked <= PROBE_TIMEOUT:
                return
            self.answer = False
        except OSError:
            self.answer = False
        else:  # HAProxy closed the connection: the whole answer is there
            self.answer = PROBE_ANSWER in received
        client.close()
        self.pending = None

    def close(self):
        if self.pending is not None:
            self.pending[0].close()
            self.pending = None


# --- certificates ----------------------------------------------------------------


def certificate_directory(options):
    """Where HAProxy's certificates from the pillar are, from the minion's ``lbpair_haproxy`` options."""
    return tls_files.directory_for(schema.settings(options, haproxy.OPTIONS_KEY, haproxy.DEFAULTS)["config_file"])


def certificate_files(model, directory):
    """
    ``[(label, file, key), ...]``: each certificate of each service (``label`` is
    ``<service>/<certificate>``), the file HAProxy reads it from, and its pillar key when it is a
    path on the node (whose symlinks :func:`leaf_file` follows only where lbpair allows), else None.
    """
    found = []
    for service, name, certificate in tls_files.each_certificate(model or {"services": {}}):
        key = tls_files.path_key(service, name) if "path" in certificate else None
        found.append((f"{service}/{name}", tls_files.file_of(certificate, directory), key))
    return found


def leaf_file(path, key):
    """The file to read: a pillar certificate's own (no symlink followed), a path's where its symlinks lead, if allowed."""
    return path if key is None else tls_files.resolved(path, key)


def first_certificate(lines):
    """The first certificate block among ``lines`` (PEM text); the lines of other blocks (the key) are skipped unkept."""
    block, size = None, 0
    for line in lines:
        size += len(line)
        if size > certificates.MAX_PEM_BYTES:
            break
        line = line.strip()
        if block is None:
            block = [line] if line == BEGIN_CERTIFICATE else None
            continue
        block.append(line)
        if line == END_CERTIFICATE:
            return "\n".join(block) + "\n"
    raise ValueError("holds no certificate block")


def leaf_not_after(path):
    """When the first certificate of the PEM file ``path`` expires, epoch seconds; a symlink at ``path`` is refused."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(handle, encoding="ascii", errors="replace") as stream:
        block = first_certificate(stream)
    return x509.load_pem_x509_certificate(block.encode("ascii")).not_valid_after_utc.timestamp()


class CertificateExpiry:
    """
    When each certificate of :func:`certificate_files` expires: :meth:`read` looks at each file's
    status and reads a file again only when it changed. A file that is missing or holds no
    certificate is left out (and logged once per change).
    """

    def __init__(self, files):
        self.files = files
        self.cache = {}  # file -> (its status, notAfter or None)

    def read(self):
        """``{label: notAfter epoch seconds}``."""
        found = {}
        for label, path, key in self.files:
            expiry = self._expiry(path, key)
            if expiry is not None:
                found[label] = expiry
        return found

    def _expiry(self, path, key):
        try:
            real = leaf_file(path, key)
            status = os.stat(real, follow_symlinks=False)
        except (InvalidValue, OSError) as exc:
            self.cache.pop(path, None)
            log.debug("lbpair_vrrp: certificate %s: %s", path, exc)
            return None
        seen = (real, status.st_mtime_ns, status.st_size, status.st_ino)
        cached = self.cache.get(path)
        if cached is not None and cached[0] == seen:
            return cached[1]
        try:
            expiry = leaf_not_after(real)
        except (OSError, ValueError) as exc:
            log.warning("lbpair_vrrp: cannot read when certificate %s expires: %s", path, exc)
            expiry = None
        self.cache[path] = (seen, expiry)
        return expiry
