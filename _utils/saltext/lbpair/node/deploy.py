"""
Safe installation of a daemon's configuration: render, diff, check, install, reload.

The one order that never leaves a bad configuration live:

1. render the new text and compare it with the live file (nothing to do if equal);
2. in test mode, check the new text with the real binary in a scratch directory,
   return the unified diff and stop;
3. write a candidate next to the live file and check it with the real binary;
4. replace the live file atomically (``rename``);
5. reload the daemon through the service manager (never restart it); if the
   reload fails, put the previous file back and reload again.

Files the configuration names beside it (HAProxy's certificates from the pillar,
:class:`saltext.lbpair.node.tls_files.CertificateFiles`) are written before step 3 under new
names, never over live ones, and the ones no longer named removed after step 5; the
check of step 2 writes them into its scratch directory.

Rendering gives each line of the configuration with the pillar key it comes
from (``[(line, key), ...]``): when the binary rejects a line, the error names
that key. Secrets that may appear in a configuration are masked in diffs,
returns and errors.
"""

import collections
import difflib
import logging
import os
import re
import tempfile

from saltext.lbpair.core import command, results, store
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import pillar

log = logging.getLogger(__name__)

#: ``label`` names the daemon in messages; ``check_command`` is the check without the file;
#: ``render`` turns a node's model into ``[(line, key), ...]``; ``line_ref`` finds the
#: number of the line a message of the check is about (group 1); ``side_files`` (optional) writes
#: and prunes the files the configuration names (``write``, ``missing``, ``scratch_lines``,
#: ``discard``, ``prune``, ``warnings``: :class:`saltext.lbpair.node.tls_files.CertificateFiles`).
Daemon = collections.namedtuple("Daemon", "label config_file service check_command render line_ref side_files", defaults=(None,))

SECRET_RES = (
    re.compile(r"^(\s*stats\s+auth\s+[^:\s]+:)\S+", re.MULTILINE),
    re.compile(r"^(\s*(?:auth_pass|password|insecure-password)\s+)\S+", re.MULTILINE),
    re.compile(r"^(\s*user\s+\S+\s+(?:password|insecure-password)\s+)\S+", re.MULTILINE),
)
CHECK_TIMEOUT = 120


def redact(text):
    """Mask passwords that a configuration may carry, so it can be shown and logged."""
    for pattern in SECRET_RES:
        text = pattern.sub(r"\1******", text)
    return text


def _secrets(config):
    """The values :func:`redact` masks in the configuration text ``config``."""
    return {match.group(0)[len(match.group(1)) :] for pattern in SECRET_RES for match in pattern.finditer(config)}


def mask_secrets(text, config):
    """``text`` (e.g. a binary's messages about ``config``) with the secrets of ``config`` masked wherever they appear."""
    for secret in sorted(_secrets(config), key=len, reverse=True):
        text = text.replace(secret, "******")
    return redact(text)


def text_of(lines):
    """The configuration text of rendered ``[(line, key), ...]``."""
    return "".join(f"{line}\n" for line, _key in lines)


def written_by_lbpair(section):
    """The key of a line lbpair writes itself, not from the pillar: the section it is in."""
    return f"the {section} section lbpair writes"


def sections_after_header(header, sections):
    """``header`` (a comment line), then each section's ``(line, key)`` pairs after a blank line."""
    lines = [(header, "lbpair's header comment")]
    for section in sections:
        lines.append(("", section[0][1]))
        lines.extend(section)
    return lines


def unified_diff(old, new, path):
    """A unified diff from ``old`` to ``new`` text, secrets masked."""
    lines = difflib.unified_diff(
        redact(old).splitlines(keepends=True), redact(new).splitlines(keepends=True), fromfile=path, tofile=path
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


def in_pillar_terms(output, lines, line_ref):
    """
    The binary's ``output`` with each message about a line of the candidate led by
    the key behind that line and the line itself:
    ``lbpair:services:foo:options:1 (line 12: "bogus x"): <the message>``.
    """
    return "\n".join(_about_line(message, lines, line_ref) for message in output.splitlines())


def _about_line(message, lines, line_ref):
    found = line_ref.search(message)
    number = int(found.group(1)) if found else 0
    if not 1 <= number <= len(lines):
        return message
    line, key = lines[number - 1]
    return f'{key} (line {number}: "{line.strip()}"): {message}'


def check(daemon, path, lines):
    """
    Check the candidate file at ``path``, rendered from ``lines``, with the daemon's
    binary; return its messages, or raise them in pillar terms (:func:`in_pillar_terms`).
    """
    done = command.run([*daemon.check_command, path], timeout=CHECK_TIMEOUT)
    output = "\n".join(part for part in (done.stdout, done.stderr) if part).strip()
    if done.returncode != 0:
        raise LbpairError(rejection(daemon, done.returncode, output, lines))
    return mask_secrets(output, text_of(lines))


def rejection(daemon, exit_code, output, lines):
    """The error for a candidate (rendered from ``lines``) the binary refused: its ``output`` in pillar terms, secrets masked."""
    told = in_pillar_terms(output, lines, daemon.line_ref)
    return mask_secrets(f"{daemon.label} rejected the configuration (exit {exit_code}):\n{told}", text_of(lines))


def check_model(daemon, model):
    """Render ``model`` into a scratch file (its side files beside it) and check it; nothing live is touched."""
    with tempfile.TemporaryDirectory(prefix="lbpair-check-") as directory:
        lines = daemon.render(model) if daemon.side_files is None else daemon.side_files.scratch_lines(model, directory)
        candidate = os.path.join(directory, os.path.basename(daemon.config_file))
        with open(candidate, "w", encoding="utf-8") as handle:
            handle.write(text_of(lines))
        return check(daemon, candidate, lines)


def reload(daemon, services):
    """
    Reload the daemon through Salt's ``service`` functions (``services``: a mapping
    with ``service.status``, ``service.reload``, ``service.start``), starting it if it
    is not running. Never restarts: a keepalived restart makes the MASTER give up
    the VIPs. Returns ``"reloaded"`` or ``"started"``; raises if it is not running after.
    """
    name = daemon.service
    if services["service.status"](name):
        action, done = "reloaded", services["service.reload"](name)
    else:
        action, done = "started", services["service.start"](name)
    if done is False or not services["service.status"](name):
        raise LbpairError(f"service {name} is not running after it was {action}")
    log.info("lbpair: service %s %s", name, action)
    return action


def configure(daemon, model, services, test=False):
    """
    Bring the daemon's live configuration in line with ``model``. Returns
    ``{"result", "comment", "changes"}`` as a state does (``result`` None in test
    mode when something would change and the binary accepts it); raises
    :class:`LbpairError` on failure, in test mode too when the binary would refuse it.
    The comment ends with the side files' warnings (a certificate's issuer missing).
    """
    outcome = _configure(daemon, model, services, test)
    found = [] if daemon.side_files is None else daemon.side_files.warnings(model)
    if found:
        log.warning("lbpair: %s", "; ".join(found))
        outcome["comment"] = "\n".join([outcome["comment"], *(f"WARNING: {warning}" for warning in found)])
    return outcome


def _configure(daemon, model, services, test):
    lines = daemon.render(model)
    path, new = daemon.config_file, text_of(lines)
    old = read_text(path)
    if old == new:
        return _side_files_only(daemon, model, test)
    changes = {"diff": unified_diff(old, new, path)}
    if test:
        check_model(daemon, model)
        comment = f"{path} would be updated and {daemon.service} reloaded ({daemon.label} accepts the new configuration)"
        return {"result": None, "comment": comment, "changes": changes}
    written = _write_side_files(daemon, model)
    try:
        _install(daemon, new, lines)
        action = _reload_or_restore(daemon, services, old)
    except LbpairError:
        if written:  # new names only: the live configuration never named them
            daemon.side_files.discard(written)
        raise
    changes.update(_files_changes(written, _prune_side_files(daemon, model)))
    return {"result": True, "comment": f"{path} updated and {daemon.service} {action}", "changes": changes}


def _install(daemon, new, lines):
    """Write the candidate beside the live file, check it, and rename it over the live file."""
    path = daemon.config_file
    candidate = store.write_beside(path, new)
    try:
        check(daemon, candidate, lines)
        store.install(candidate, path)
    finally:
        store.remove(candidate)
    log.info("lbpair: installed a new %s configuration in %s", daemon.label, path)


def _reload_or_restore(daemon, services, old):
    try:
        return reload(daemon, services)
    except LbpairError as exc:
        _restore(daemon, services, old)
        raise LbpairError(f"{exc}; the previous {daemon.config_file} was restored") from exc


def _write_side_files(daemon, model):
    return [] if daemon.side_files is None else daemon.side_files.write(model)


def _prune_side_files(daemon, model):
    return [] if daemon.side_files is None else daemon.side_files.prune(model)


def _files_changes(written, removed):
    """The side files written and removed, by name (never their content)."""
    files = {"new": [os.path.basename(path) for path in written], "removed": removed}
    return {"files": files} if written or removed else {}


def _side_files_only(daemon, model, test):
    """The live file is up to date: put back missing side files, remove stale ones (no reload: the daemon has them)."""
    comment = f"{daemon.config_file} is up to date"
    if not test:
        changes = _files_changes(_write_side_files(daemon, model), _prune_side_files(daemon, model))
        return {"result": True, "comment": comment, "changes": changes}
    changes = _files_changes([] if daemon.side_files is None else daemon.side_files.missing(model), [])
    if changes:
        return {"result": None, "comment": f"{comment}; missing files it names would be written", "changes": changes}
    return {"result": True, "comment": comment, "changes": {}}


def _restore(daemon, services, old):
    path = daemon.config_file
    log.error("lbpair: reload failed, restoring the previous %s", path)
    if not old:
        store.remove(path)
        return
    store.write_atomic(path, old)
    try:
        reload(daemon, services)
    except LbpairError as exc:
        log.error("lbpair: reload with the restored %s failed too: %s", path, exc)


def configured(name, daemon_module, functions, minion_pillar, opts, context):
    """
    The ``configured`` state of the daemon that ``daemon_module`` (:mod:`saltext.lbpair.node.haproxy`
    or :mod:`saltext.lbpair.node.keepalived_process`) describes, from what Salt gives a state module:
    its functions (``config.get``, ``service.*``), pillar, options and context.
    """

    def apply():
        daemon = daemon_module.daemon(functions["config.get"](daemon_module.OPTIONS_KEY, {}))
        model = pillar.minion_model(minion_pillar, opts, context)
        return configure(daemon, model, functions, test=opts["test"])

    return results.state(name, apply)
