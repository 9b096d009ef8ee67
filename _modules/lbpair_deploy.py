"""
Safe installation of a daemon's configuration: render, diff, validate, install, reload.

The daemon modules (``lbpair_haproxy``, ``lbpair_keepalived``) provide
``config_path``, ``render``, ``validate`` and ``reload``; this module runs them
in the one order that never leaves a bad configuration live:

1. render the new text and compare it with the live file (nothing to do if equal);
2. in test mode, return the unified diff and stop;
3. write a candidate next to the live file and check it with the real binary;
4. replace the live file atomically (``rename``);
5. reload the daemon; if the reload fails, put the previous file back and
   reload again.

Secrets that may appear in a configuration are masked in diffs.
"""

import difflib
import logging
import os
import re
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "lbpair_deploy"

SECRET_RES = (
    re.compile(r"^(\s*stats\s+auth\s+[^:\s]+:)\S+", re.MULTILINE),
    re.compile(r"^(\s*(?:auth_pass|password|insecure-password)\s+)\S+", re.MULTILINE),
    re.compile(r"^(\s*user\s+\S+\s+(?:password|insecure-password)\s+)\S+", re.MULTILINE),
)


def __virtual__():
    return __virtualname__


# --- pure helpers -------------------------------------------------------------


def redact(text):
    """Mask passwords that a configuration may carry, so diffs can be shown and logged."""
    for pattern in SECRET_RES:
        text = pattern.sub(r"\1******", text)
    return text


def unified_diff(old, new, path):
    """A unified diff from ``old`` to ``new`` text, secrets masked."""
    lines = difflib.unified_diff(
        redact(old).splitlines(keepends=True),
        redact(new).splitlines(keepends=True),
        fromfile=path,
        tofile=path,
    )
    diff = "".join(lines)
    if not diff and old != new:
        return f"{path}: only secret values changed (not shown)\n"
    return diff


def read_text(path):
    """The file's text, or ``""`` if it does not exist yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def write_candidate(path, text):
    """Write ``text`` to a new file beside ``path`` (same filesystem, so rename is atomic)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, candidate = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".lbpair", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    os.chmod(candidate, mode)
    return candidate


def install(candidate, path):
    """Atomically replace ``path`` by ``candidate``."""
    os.replace(candidate, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- Salt functions -----------------------------------------------------------


def check_command(cmd, what):
    """
    Run a configuration check command; return its output, or raise with it.

    ``what`` names the thing checked in the error message.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_deploy.check_command '["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"]' HAProxy
    """
    result = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="debug")
    output = "\n".join(part for part in (result["stdout"], result["stderr"]) if part).strip()
    if result["retcode"] != 0:
        raise CommandExecutionError(
            f"{what} rejected the configuration (exit {result['retcode']}):\n{output}"
        )
    return output


def reload_service(name):
    """
    Reload a service through Salt's ``service`` module, starting it if it is not running.

    Never restarts: a keepalived restart makes the MASTER send priority 0 and
    fail over. Returns ``"reloaded"`` or ``"started"``; raises if the service is
    not running afterwards.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_deploy.reload_service haproxy
    """
    if __salt__["service.status"](name):
        action, done = "reloaded", __salt__["service.reload"](name)
    else:
        action, done = "started", __salt__["service.start"](name)
    if done is False or not __salt__["service.status"](name):
        raise CommandExecutionError(f"service {name} is not running after it was {action}")
    log.info("lbpair: service %s %s", name, action)
    return action


def configure(daemon, test=False):
    """
    Bring the daemon's live configuration in line with the pillar.

    Returns a state-style result: ``result`` (``None`` in test mode when
    something would change), ``comment`` and ``changes`` (``{"diff": ...}``).

    daemon
        ``haproxy`` or ``keepalived``.

    test
        Only report the diff; write nothing.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_deploy.configure haproxy test=True
    """
    if daemon not in ("haproxy", "keepalived"):
        raise CommandExecutionError(f"unknown daemon {daemon!r}: haproxy or keepalived")
    module = f"lbpair_{daemon}"
    path = __salt__[f"{module}.config_path"]()
    new = __salt__[f"{module}.render"]()
    old = read_text(path)
    if old == new:
        return {"result": True, "comment": f"{path} is up to date", "changes": {}}
    changes = {"diff": unified_diff(old, new, path)}
    if test:
        return {"result": None, "comment": f"{path} would be updated and {daemon} reloaded", "changes": changes}

    candidate = write_candidate(path, new)
    try:
        __salt__[f"{module}.validate"](candidate)
        install(candidate, path)
    finally:
        _remove(candidate)
    log.info("lbpair: installed new %s configuration %s", daemon, path)
    try:
        action = __salt__[f"{module}.reload"]()
    except CommandExecutionError as exc:
        _restore(module, path, old)
        raise CommandExecutionError(f"{exc}; the previous {path} was restored") from exc
    return {"result": True, "comment": f"{path} updated and {daemon} {action}", "changes": changes}


def _restore(module, path, old):
    log.error("lbpair: reload failed, restoring the previous %s", path)
    if not old:
        _remove(path)
        return
    candidate = write_candidate(path, old)
    install(candidate, path)
    try:
        __salt__[f"{module}.reload"]()
    except CommandExecutionError as exc:
        log.error("lbpair: reload with the restored %s failed too: %s", path, exc)


def configured_state(name, daemon, test=False):
    """
    The state return of ``lbpair_<daemon>.configured``: :func:`configure` with
    errors turned into ``result: False`` and their message as the comment.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_deploy.configured_state 'HAProxy configuration is managed' haproxy test=True
    """
    ret = {"name": name, "result": False, "comment": "", "changes": {}}
    try:
        ret.update(configure(daemon, test=test))
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["comment"] = str(exc)
    return ret
