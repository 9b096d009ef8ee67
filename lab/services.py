"""The outside world a failover reaches, as real servers: BIND9, an SMTP server, a webhook receiver.

Each listens on one address of the lab (127.0.0.1 for the reactor tests, the mgmt host in the
demo) and records what it received, so tests and the demo can show it.
"""

import base64
import contextlib
import email
import email.policy
import json
import logging
import os
import ssl
import subprocess
import time

import dns.message
import dns.query
import dns.rdatatype

from lab.util import free_port, stop_process, wait_until

NAMED_CONF = """options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
}};
key "{key}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{zone}" {{ type primary; file "{dir}/{zone}.zone"; allow-update {{ key "{key}"; }}; }};
"""

ZONE_FILE = """$TTL 60
@       IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60
@       IN NS  ns.{zone}.
ns      IN A   {address}
active  IN A   192.0.2.11
"""


#: the record the seed's DNS reaction keeps pointed at the MASTER (and its minion id as TXT)
ACTIVE_RECORDS = ({"name": "active", "type": "A", "ttl": 30}, {"name": "active", "type": "TXT", "ttl": 30})


class Named:
    """A real ``named`` serving *zone* on *address*, accepting updates signed with its TSIG key."""

    def __init__(self, directory, zone, key_name, address="127.0.0.1"):
        self.dir, self.zone, self.key_name, self.address = directory, zone, key_name, address
        self.dir.mkdir(parents=True)
        self.port = free_port(address)
        self.secret = base64.b64encode(os.urandom(32)).decode()
        (self.dir / "named.conf").write_text(
            NAMED_CONF.format(dir=self.dir, port=self.port, address=address, key=key_name, secret=self.secret, zone=zone)
        )
        (self.dir / f"{zone}.zone").write_text(ZONE_FILE.format(zone=zone, address=address))
        self.process = None

    def start(self):
        with open(self.dir / "named.log", "a") as log:
            self.process = subprocess.Popen(
                ["named", "-g", "-n", "1", "-c", str(self.dir / "named.conf")], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: self._answers() is not None, 15, what="named answering")

    def stop(self):
        if self.process:
            stop_process(self.process)
            self.process = None

    def _answers(self):
        with contextlib.suppress(Exception):
            query = dns.message.make_query(f"ns.{self.zone}", "A")
            return dns.query.udp(query, self.address, port=self.port, timeout=0.5)
        return None

    def query(self, name, rdtype):
        """The values of *name* (relative to the zone) of type *rdtype*, sorted."""
        query = dns.message.make_query(f"{name}.{self.zone}", rdtype)
        response = dns.query.udp(query, self.address, port=self.port, timeout=2)
        values = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                values.extend(rdata.to_text() for rdata in rrset)
        return sorted(values)


def self_signed_certificate(directory, address="127.0.0.1"):
    """A certificate and key for *address*, made with openssl: ``(cert path, key path)``."""
    cert, key = directory / "smtp.crt", directory / "smtp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={address}",
         "-addext", f"subjectAltName=IP:{address}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def message_text(content):
    """The plain text of a mail as its reader sees it (its subject's header unfolded, its body decoded)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    return f"{message['subject']}\n\n{message.get_body(('plain',)).get_content()}"


class Mailbox:
    """aiosmtpd handler keeping every message received (``at``: when, epoch)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's hook name)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "tls": session.ssl is not None,
                "login": session.authenticated,
                "body": envelope.content.decode("utf-8", "replace"),
                "text": message_text(envelope.content),
                "at": time.time(),
            }
        )
        return "250 OK"


class SmtpServer:
    """An SMTP server (aiosmtpd) on *address* requiring STARTTLS and a login; ``.mailbox`` holds the mail."""

    def __init__(self, certificate, user, password, address="127.0.0.1"):
        from aiosmtpd.controller import Controller  # noqa: PLC0415  (a test-side dependency)
        from aiosmtpd.smtp import AuthResult  # noqa: PLC0415

        # aiosmtpd logs this about its own use of login_data on every login
        logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())

        def authenticate(server, session, envelope, mechanism, auth_data):
            login_ok = getattr(auth_data, "login", None) == user.encode()
            return AuthResult(success=login_ok and auth_data.password == password.encode())

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        self.mailbox = Mailbox()
        self.address, self.port = address, free_port(address)
        self.controller = Controller(
            self.mailbox, hostname=address, port=self.port, tls_context=context, require_starttls=True,
            authenticator=authenticate, auth_require_tls=True,
        )  # fmt: skip

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()


class WebhookReceiver:
    """
    An HTTP server (pytest-httpserver's) on *address* keeping every JSON body POSTed to *path* (and when: ``at``);
    ``.url`` is the hook's address once started. While ``failing`` is set it answers 503 and keeps
    nothing (a chat service that is down).
    """

    def __init__(self, path="/hooks/lbpair", address="127.0.0.1"):
        from pytest_httpserver import HTTPServer  # noqa: PLC0415  (a test-side dependency)

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.posts = []
        self.failing = False
        self.path = path
        self.server = HTTPServer(host=address, port=0, threaded=True)
        self.server.expect_request(path, method="POST").respond_with_handler(self._receive)

    def _receive(self, request):
        from werkzeug import Response  # noqa: PLC0415  (pytest-httpserver's)

        if self.failing:
            return Response("down", status=503)
        self.posts.append({"path": request.path, "json": json.loads(request.get_data()), "at": time.time()})
        return Response("ok")

    @property
    def url(self):
        return self.server.url_for(self.path)

    def texts(self):
        return [post["json"]["text"] for post in self.posts]

    def start(self):
        self.server.start()

    def stop(self):
        self.server.stop()


class ReactionServices:
    """
    named, an SMTP server and a webhook receiver (at *webhook_path*) on *address*, and the
    master's ``lbpair_reactions`` block for them. The secrets (TSIG key, SMTP password) are new
    each time: ``.named.secret``, ``.password``.
    """

    ZONE, KEY, USER = "pair.example", "lbpair-update", "lbpair"

    def __init__(self, workdir, address="127.0.0.1", webhook_path="/hooks/lbpair"):
        self.password = base64.b64encode(os.urandom(12)).decode()
        self.named = Named(workdir / "named", self.ZONE, self.KEY, address)
        self.certificate = self_signed_certificate(workdir, address)
        self.smtp = SmtpServer(self.certificate, self.USER, self.password, address)
        self.webhook = WebhookReceiver(webhook_path, address)

    def __enter__(self):
        with contextlib.ExitStack() as stack:
            for server in (self.named, self.smtp, self.webhook):
                server.start()
                stack.callback(server.stop)
            self._stop = stack.pop_all()
        return self

    def __exit__(self, *exc):
        self._stop.close()

    def reactions_block(self, nodes, history_path, damping_window=60, addresses6=None, records=ACTIVE_RECORDS):
        """
        The ``lbpair_reactions`` master configuration pointing at these servers: *nodes*
        ``{node: address}``, their IPv6 *addresses6* (for AAAA records) and the DNS *records*.
        With *nodes* ``None``, the master learns the pairs from the nodes' pillars.
        """
        addresses6 = addresses6 or {}
        listed = {} if nodes is None else {
            "nodes": {name: {"address": address, **({"address6": addresses6[name]} if name in addresses6 else {})}
                      for name, address in nodes.items()},
        }  # fmt: skip
        return {
            **listed,
            "history": {"path": str(history_path)},
            "damping_window": damping_window,
            "webhook": {"url": self.webhook.url, "format": "slack"},
            "smtp": {
                "host": self.smtp.address, "port": self.smtp.port, "starttls": True, "user": self.USER,
                "password": self.password, "from": f"lbpair@{self.ZONE}", "to": [f"ops@{self.ZONE}"],
                "ca_file": str(self.certificate[0]),
            },  # fmt: skip
            "dns": {
                "server": self.named.address, "port": self.named.port, "zone": self.ZONE, "key_name": self.KEY,
                "key_algorithm": "hmac-sha256", "key_secret": self.named.secret,
                "records": list(records),
            },  # fmt: skip
        }
