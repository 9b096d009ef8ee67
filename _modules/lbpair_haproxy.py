"""
HAProxy for an lbpair node: render the configuration from the ``lbpair`` pillar,
check it with ``haproxy -c``, reload without dropping connections, and query or
change servers through the stats socket.

Minion configuration (all optional):

.. code-block:: yaml

    lbpair_haproxy:
      config_file: /etc/haproxy/haproxy.cfg
      service: haproxy
      binary: haproxy

Each ``services`` entry of the pillar becomes one ``listen`` section bound to
its virtual IP. HAProxy must be allowed to bind an address it does not hold yet
(the backup node): the ``lbpair.haproxy`` SLS sets ``net.ipv4.ip_nonlocal_bind``.
"""

import csv
import io
import re
import socket

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "lbpair_haproxy"

HEADER = "# Managed by Salt (lbpair) from the lbpair pillar: local changes are overwritten.\n"
SERVER_STATES = ("ready", "drain", "maint")
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STATS_FIELDS = ("status", "weight", "scur", "stot", "check_status", "lastchg", "addr")


def __virtual__():
    return __virtualname__


# --- rendering (pure) ---------------------------------------------------------


def _section(title, lines):
    body = "".join(f"    {line}\n" for line in lines)
    return f"{title}\n{body}"


def _directives(pairs):
    return [f"{keyword} {value}".rstrip() for keyword, value in pairs]


def _global_section(haproxy):
    socket_line = f"stats socket {haproxy['stats_socket']} mode 660 level admin expose-fd listeners"
    return _section("global", [*_directives(haproxy["global"]), socket_line])


def _server_line(name, server, cookie):
    address = server["address"]
    host = f"[{address}]" if ":" in address else address
    words = [f"server {name} {host}:{server['port']} check"]
    if cookie:
        words.append(f"cookie {name}")
    if server["options"]:
        words.append(server["options"])
    return " ".join(words)


def _listen_section(name, service):
    lines = [f"bind {service['vip']}:{service['port']}", f"mode {service['mode']}", f"balance {service['balance']}"]
    if service["mode"] == "http":
        lines.append("option forwardfor")
    if service["cookie"]:
        lines.append(f"cookie {service['cookie']} insert indirect nocache")
    lines.extend(service["options"])
    lines.extend(_server_line(server, spec, service["cookie"]) for server, spec in service["servers"].items())
    return _section(f"listen {name}", lines)


def render_config(model):
    """The complete haproxy.cfg for a normalised lbpair model, byte for byte deterministic."""
    sections = [
        _global_section(model["haproxy"]),
        _section("defaults", _directives(model["haproxy"]["defaults"])),
        *(_listen_section(name, service) for name, service in model["services"].items()),
    ]
    return HEADER + "\n" + "\n".join(sections)


# --- stats socket client (pure) -----------------------------------------------


def stats_command(socket_path, command, timeout=5.0):
    """Send one command to HAProxy's stats socket and return its answer."""
    if "\n" in command or "\r" in command:
        raise ValueError("a stats socket command is one line")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(socket_path)
        client.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
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


# --- Salt functions -----------------------------------------------------------


def _option(key, default):
    return __salt__["config.get"](f"lbpair_haproxy:{key}", default)


def config_path():
    """
    The path of the live HAProxy configuration this module manages.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.config_path
    """
    return _option("config_file", "/etc/haproxy/haproxy.cfg")


def render(node=None, pillar=None):
    """
    Render haproxy.cfg for a node from the lbpair pillar.

    node
        Minion id of the node; defaults to this minion.

    pillar
        An ``lbpair`` pillar mapping to render instead of this minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.render
    """
    model = __salt__["lbpair_config.model"](node=node, pillar=pillar)
    return render_config(model)


def validate(path=None):
    """
    Check a configuration file with the real ``haproxy -c``; return its messages.

    Raises ``CommandExecutionError`` with HAProxy's messages if it rejects the file.

    path
        The file to check; defaults to the live configuration.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.validate /tmp/candidate.cfg
    """
    binary = _option("binary", "haproxy")
    return __salt__["lbpair_deploy.check_command"]([binary, "-c", "-f", path or config_path()], "HAProxy")


def reload():
    """
    Reload HAProxy through the service manager (seamless in master-worker mode).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.reload
    """
    return __salt__["lbpair_deploy.reload_service"](_option("service", "haproxy"))


def _stats_socket():
    return __salt__["lbpair_config.model"]()["haproxy"]["stats_socket"]


def _run_stats(command):
    try:
        return stats_command(_stats_socket(), command)
    except OSError as exc:
        raise CommandExecutionError(f"cannot talk to the HAProxy stats socket: {exc}") from exc


def servers(service=None):
    """
    Return the servers of every service (or one) with their runtime state.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.servers
        salt lb1 lbpair_haproxy.servers foo
    """
    stats = parse_stat(_run_stats("show stat"))
    if service is None:
        return stats
    if service not in stats:
        raise CommandExecutionError(f"HAProxy has no service {service!r}")
    return stats[service]


def set_server(service, server, state):
    """
    Set a server's administrative state: ``ready``, ``drain`` or ``maint``.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.set_server foo foo1 drain
    """
    for label, value in (("service", service), ("server", server)):
        if not isinstance(value, str) or not SAFE_NAME_RE.match(value):
            raise SaltInvocationError(f"{label} {value!r} is not a valid name")
    if state not in SERVER_STATES:
        raise SaltInvocationError(f"state must be one of {', '.join(SERVER_STATES)}, got {state!r}")
    answer = _run_stats(f"set server {service}/{server} state {state}").strip()
    if answer:
        raise CommandExecutionError(f"HAProxy refused: {answer}")
    return servers(service)[server]
