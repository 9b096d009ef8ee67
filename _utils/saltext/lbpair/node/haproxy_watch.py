"""
How keepalived learns that HAProxy is gone or hung, without polling for a process.

Two signals, both putting the node in FAULT (a MASTER in FAULT sends a
priority-0 advert: its peer takes over after its skew time, not after the whole
master-down timer):

- **Stopped for good**: a systemd drop-in for ``haproxy.service`` sets the
  ``haproxy`` track file (:mod:`saltext.lbpair.node.track`) to 0 once HAProxy has started
  (``ExecStartPost``), and has ``lbpair-haproxy-down.service`` started whenever
  the unit stops (``OnSuccess``/``OnFailure``). That one sets the file to 1 only
  if the unit has really ended: inactive or failed, no job queued for it (a stop,
  or the restart logic giving up). systemd 252 starts it after a crash it heals
  too (``Restart=always``, 100 ms), with the restart already queued: such a crash
  moves nothing. keepalived reads the file through inotify, at once.
- **Hung**: keepalived's ``vrrp_script lbpair_probe`` runs :data:`PROBE_SCRIPT`
  every second, which asks HAProxy itself over HTTP (the ``lbpair-probe``
  frontend on 127.0.0.1): a hung HAProxy accepts the connection and never
  answers. A refused or reset connection is HAProxy starting again after a
  crash (or killed while it answered): the probe asks again until keepalived's
  timeout for it is nearly over (:func:`probe_attempts`) before it fails.

:func:`watched` installs the scripts and units and creates the track files
(the ``lbpair.keepalived`` SLS runs it before keepalived's configuration).
"""

import os

from saltext.lbpair.core import command, store
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import vrrp
from saltext.lbpair.node import deploy, track

LIB_DIR = "/usr/local/lib/lbpair"
PROBE_SCRIPT = f"{LIB_DIR}/haproxy-alive"
TRACK_SCRIPT = f"{LIB_DIR}/haproxy-track"
UNIT_DIR = "/etc/systemd/system"
DOWN_UNIT = "lbpair-haproxy-down.service"
PROBE_PATH = "/"
PROBE_MAX_TIME = 0.5  # s for HAProxy to answer the probe: it answers in well under a millisecond
RETRY_PAUSE = 0.2  # s between two asks of a HAProxy that is not there
ASK_AGAIN_TIME = 0.25  # s an ask of a HAProxy that is not there takes: the pause and curl's start (~10 ms)
#: curl's exits when no HAProxy is there: refused (7), or killed while it answered: empty reply (52), reset (56)
NOT_THERE = (7, 52, 56)
HEADER = "# Managed by Salt (lbpair): local changes are overwritten."


def probe_url(model):
    """What the probe asks: HAProxy's ``lbpair-probe`` frontend on the loopback."""
    return f"http://127.0.0.1:{model['vrrp']['probe']['port']}{PROBE_PATH}"


def probe_attempts(model):
    """
    How often the probe asks a HAProxy that is not there before it fails: as often as fits in
    keepalived's timeout for the probe, less one ask that finds HAProxy hung. systemd restarts a
    crashed HAProxy within 0.2-0.5 s (lab); the default timeout (3 s) gives it 2.5 s.
    """
    return max(1, int((model["vrrp"]["probe"]["timeout"] - PROBE_MAX_TIME) / ASK_AGAIN_TIME))


def probe_script(model):
    """The probe keepalived runs (exit 0: HAProxy answered)."""
    attempts = probe_attempts(model)
    return f"""#!/bin/sh
{HEADER}
# keepalived's vrrp_script {vrrp.PROBE_FRONTEND}: does HAProxy answer? A hung HAProxy accepts the
# connection and never answers: that fails at once. No HAProxy there (refused, or killed while it
# answered) is HAProxy starting again after a crash: ask again, {attempts} times in all.
attempt=0
while [ $attempt -lt {attempts} ]; do
    attempt=$((attempt + 1))
    /usr/bin/curl --silent --fail --output /dev/null --max-time {PROBE_MAX_TIME} {probe_url(model)} && exit 0
    case $? in
    {"|".join(str(code) for code in NOT_THERE)}) sleep {RETRY_PAUSE} ;;
    *) exit 1 ;;
    esac
done
exit 1
"""


def track_script(service):
    """Sets the ``haproxy`` track file from systemd: ``started`` (0) or ``ended`` (1 if it has, for good)."""
    target = track.path(track.HAPROXY)
    return f"""#!/bin/sh
{HEADER}
# Sets keepalived's haproxy track file, atomically: "started" writes 0; "ended" writes 1 only if
# {service}.service has really ended (inactive or failed, no job queued): systemd also runs it
# after a crash it heals, with the restart already queued.
set -e
case "$1" in
started) value=0 ;;
ended)
    [ -z "$(systemctl list-jobs --no-legend {service}.service)" ] || exit 0
    case "$(systemctl is-active {service}.service)" in
    inactive|failed) value=1 ;;
    *) exit 0 ;;
    esac ;;
*) exit 2 ;;
esac
mkdir -p {track.DIRECTORY}
echo "$value" > {target}.new
mv -f {target}.new {target}
"""


def drop_in():
    """The drop-in for HAProxy's unit."""
    return f"""{HEADER}
# keepalived's haproxy track file follows HAProxy: 0 once it has started, 1 once it has ended
# for good ({TRACK_SCRIPT} tells a crash systemd heals from an end).
[Unit]
OnSuccess={DOWN_UNIT}
OnFailure={DOWN_UNIT}

[Service]
ExecStartPost=-{TRACK_SCRIPT} started
"""


def down_unit(service):
    """The unit that marks HAProxy down."""
    return f"""{HEADER}
[Unit]
Description=lbpair: {service}.service has stopped for good; keepalived's haproxy track file says so

[Service]
Type=oneshot
ExecStart={TRACK_SCRIPT} ended
"""


def files(model, service):
    """``{path: (text, mode)}``: what :func:`watched` installs for HAProxy's unit ``service``."""
    return {
        PROBE_SCRIPT: (probe_script(model), 0o755),
        TRACK_SCRIPT: (track_script(service), 0o755),
        f"{UNIT_DIR}/{service}.service.d/lbpair.conf": (drop_in(), 0o644),
        f"{UNIT_DIR}/{DOWN_UNIT}": (down_unit(service), 0o644),
    }


def _differs(path, text, mode):
    try:
        return os.stat(path).st_mode & 0o777 != mode or deploy.read_text(path) != text
    except FileNotFoundError:
        return True


def _install(path, text, mode):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    candidate = store.write_beside(path, text)
    os.chmod(candidate, mode)  # executable before keepalived can see it
    store.install(candidate, path)


def watched(model, service, test=False, track_directory=track.DIRECTORY):
    """
    Install the probe, the track script and HAProxy's drop-in and down unit
    (``systemctl daemon-reload`` when a unit changed); create the missing track
    files with 0. Returns ``{"result", "comment", "changes"}`` as a state does.
    """
    wanted = files(model, service)
    changed = sorted(path for path, (text, mode) in wanted.items() if _differs(path, text, mode))
    created = track.create_missing(track_directory, test=True)
    changes = {key: value for key, value in (("files", changed), ("track_files", created)) if value}
    if not changes:
        return {"result": True, "comment": "HAProxy is watched for keepalived", "changes": {}}
    if test:
        return {"result": None, "comment": "the files that let keepalived watch HAProxy would be installed", "changes": changes}
    for path in changed:
        _install(path, *wanted[path])
    track.create_missing(track_directory)
    if any(path.startswith(UNIT_DIR) for path in changed):
        done = command.run(["systemctl", "daemon-reload"])
        if done.returncode != 0:
            raise LbpairError(f"systemctl daemon-reload failed: {done.stderr.strip()}")
    return {"result": True, "comment": "the files that let keepalived watch HAProxy are installed", "changes": changes}
