"""
keepalived on this node: the minion's options (``lbpair_keepalived``, :data:`DEFAULTS`), the daemon
as :mod:`saltext.lbpair.node.deploy` manages it, and its runtime state read locally (JSON dump, D-Bus
through :mod:`saltext.lbpair.node.vrrp_dbus`). keepalived writes its JSON dump to
``$TMPDIR/keepalived.json``, and ``bus`` is ``system`` or a D-Bus address
(``unix:path=/run/lb1/bus.sock``). Its configuration: :mod:`saltext.lbpair.node.keepalived_config`.
"""

import functools
import json
import logging
import os
import time

from saltext.lbpair.core import command
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import keepalived_model, schema
from saltext.lbpair.node.deploy import Daemon
from saltext.lbpair.node.keepalived_config import LINE_REF, below_full_priority, installed_vips, render_lines

log = logging.getLogger(__name__)

OPTIONS_KEY = "lbpair_keepalived"
DEFAULTS = {
    "config_file": "/etc/keepalived/keepalived.conf",
    "service": "keepalived",
    "binary": "keepalived",
    "pid_file": "/run/keepalived.pid",
    "json_file": "/tmp/keepalived.json",
    "bus": "system",
}
JSON_TIMEOUT = 5.0
FULL_PRIORITY_POLL = 0.25  # s between two JSON dumps while a check rises


def settings(options):
    """The minion's ``lbpair_keepalived`` options with their defaults."""
    return schema.settings(options, OPTIONS_KEY, DEFAULTS)


def daemon(options):
    """keepalived as :mod:`~saltext.lbpair.node.deploy` manages it."""
    local = settings(options)
    check_command = [local["binary"], "--config-test", "--log-console", "--use-file"]
    return Daemon("keepalived", local["config_file"], local["service"], check_command, render_lines, LINE_REF)


def parse_json_dump(text):
    """Reduce keepalived's JSON dump to ``{instance: {"state": NAME, ...}}``."""
    instances = {}
    for entry in json.loads(text):
        data = entry.get("data", {})
        state = data.get("state")
        instances[data.get("iname")] = {
            "state": keepalived_model.state_name(state),
            "interface": data.get("ifp_ifname"),
            "vrid": data.get("vrid"),
            "priority": data.get("effective_priority", data.get("base_priority")),
            "vips": [vip.split()[0] for vip in data.get("vips", []) + data.get("evips", []) if vip.strip()],
        }
    return instances


def parse_version(text):
    """What a keepalived build supports, from ``keepalived --version``: ``{"dbus": bool, "json": bool}``."""
    return {"dbus": "--enable-dbus" in text, "json": "--enable-json" in text}


@functools.lru_cache(maxsize=8)
def features(binary):
    """What the keepalived ``binary`` was built with: ``{"dbus": True, "json": True}``."""
    done = command.run([binary, "--version"])
    return parse_version(done.stdout + done.stderr)


@functools.lru_cache(maxsize=8)
def _json_signal(binary):
    done = command.run([binary, "--signum=JSON"])
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise LbpairError("this keepalived was built without JSON support")
    return int(done.stdout.strip())


class Local:
    """keepalived on this node, as its minion options (``lbpair_keepalived``) describe it."""

    def __init__(self, options):
        self.settings = settings(options)
        self._installed = (None, {})  # (the config file's mtime, its VIPs)

    def installed_vips(self):
        """:func:`installed_vips` of the configuration file, read again only when it changed ({} without one)."""
        path = self.settings["config_file"]
        mtime = _mtime(path)
        if mtime != self._installed[0]:
            try:
                with open(path, encoding="utf-8") as handle:
                    self._installed = (mtime, installed_vips(handle.read()))
            except OSError:
                self._installed = (mtime, {})
        return self._installed[1]

    def features(self):
        """What this keepalived was built with: ``{"dbus": True, "json": True}``."""
        return features(self.settings["binary"])

    def main_pid(self):
        """keepalived's main pid, from its pid file; raises if it is not running."""
        pid_file = self.settings["pid_file"]
        try:
            with open(pid_file, encoding="utf-8") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError) as exc:
            raise LbpairError(f"keepalived is not running (no pid in {pid_file}): {exc}") from exc

    def running(self):
        """Whether keepalived's main process is alive."""
        try:
            os.kill(self.main_pid(), 0)
        except (LbpairError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def request_json(self):
        """
        Ask keepalived to write its JSON dump and return at once: a token for
        :meth:`read_json` (the file's modification time before the request).
        """
        before = _mtime(self.settings["json_file"])
        try:
            os.kill(self.main_pid(), _json_signal(self.settings["binary"]))
        except OSError as exc:
            raise LbpairError(f"cannot signal keepalived: {exc}") from exc
        return before

    def read_json(self, token):
        """The instances of the dump if keepalived wrote it after :meth:`request_json` gave ``token``, else None."""
        json_file = self.settings["json_file"]
        if _mtime(json_file) in (0, token):
            return None
        try:
            with open(json_file, encoding="utf-8") as handle:
                return parse_json_dump(handle.read())
        except (OSError, ValueError):  # not there, or still being written
            return None

    def json_status(self, timeout=JSON_TIMEOUT):
        """Every instance's state from keepalived's JSON dump, waiting for keepalived to write it."""
        token = self.request_json()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            instances = self.read_json(token)
            if instances is not None:
                return instances
        raise LbpairError(f"keepalived wrote no {self.settings['json_file']} within {timeout} s")

    def wait_for_full_priority(self, model, names, timeout):
        """
        Wait up to *timeout* s until keepalived's JSON dump has this node at its full priority
        in each of *names* (:func:`full_priorities`); returns those still below it.
        """
        deadline = time.monotonic() + timeout
        while True:
            below = below_full_priority(model, names, self.json_status())
            if not below or time.monotonic() >= deadline:
                return below
            time.sleep(FULL_PRIORITY_POLL)

    def status(self):
        """
        The VRRP state of every instance: ``{name: {"state", "interface", "vrid", ..., "source"}}``,
        over D-Bus when keepalived is on the configured bus (``source: dbus``), else from
        its JSON dump (``source: json``).
        """
        bus = self.settings["bus"]
        try:
            from saltext.lbpair.node import vrrp_dbus  # dbus-next is optional

            instances, source = vrrp_dbus.read_states(bus), "dbus"
        except Exception as exc:  # any D-Bus failure: fall back
            log.debug("lbpair: no keepalived state over D-Bus (%s): %s; reading the JSON dump", bus, exc)
            instances = {}
        if not instances:
            instances, source = self.json_status(), "json"
        return {name: {**instance, "source": source} for name, instance in instances.items()}


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0
