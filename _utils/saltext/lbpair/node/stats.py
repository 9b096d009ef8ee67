"""HAProxy's stats socket: read the servers' runtime state and change their administrative state."""

import csv
import io
import socket

from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.model import schema

SERVER_STATES = ("ready", "drain", "maint")
STATS_FIELDS = ("status", "weight", "scur", "stot", "check_status", "lastchg", "addr")


def command(socket_path, line, timeout=5.0, payload=None):
    """Send one command line to HAProxy's stats socket (with ``payload``: lines after ``<<``, no empty one) and return its answer."""
    if "\n" in line or "\r" in line:
        raise ValueError("a stats socket command is one line")
    if payload is not None:
        if "\n\n" in payload or "\r" in payload:
            raise ValueError("a stats socket payload has no empty line")
        line = f"{line} <<\n{payload}\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(socket_path)
            client.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise LbpairError(f"cannot talk to the HAProxy stats socket {socket_path}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def parse_stat(csv_text):
    """Parse ``show stat`` CSV into ``{proxy: {server: {field: value}}}`` (servers only)."""
    reader = csv.DictReader(io.StringIO(csv_text.lstrip("# ")))
    servers = {}
    for row in reader:
        if row.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        fields = {field: row.get(field, "") for field in STATS_FIELDS}
        servers.setdefault(row["pxname"], {})[row["svname"]] = fields
    return servers


def servers(socket_path, service=None):
    """The servers of every service (or of ``service``) with their runtime state."""
    found = parse_stat(command(socket_path, "show stat"))
    if service is None:
        return found
    if service not in found:
        raise LbpairError(f"HAProxy has no service {service!r}")
    return found[service]


def set_server(socket_path, service, server, state):
    """Set a server's administrative state (``ready``, ``drain``, ``maint``); returns its new runtime state."""
    service = schema.name(service, "service")
    server = schema.name(server, "server")
    if state not in SERVER_STATES:
        raise InvalidValue("state", f"must be one of {', '.join(SERVER_STATES)}, got {state!r}")
    answer = command(socket_path, f"set server {service}/{server} state {state}").strip()
    if answer:
        raise LbpairError(f"HAProxy refused: {answer}")
    return servers(socket_path, service)[server]
