"""
lbpair's keepalived track files: one small file per reason, in :data:`DIRECTORY`.

keepalived follows each with inotify (``track_file`` blocks in keepalived.conf,
listed in the pair's ``vrrp_instance``): a change counts at once, no polling.
A file holds an integer; what a non-zero value does depends on the file's weight:

- weight 0: the node goes to FAULT (it sends a priority-0 advert, so its peer
  takes over after its skew time, well under one advert interval);
- a non-zero weight: the value times the weight is added to the node's priority.

The files, by name (:data:`NAMES`):

``haproxy``
    1 once HAProxy has stopped for good (stopped, or crash-looping until systemd
    gave up), 0 once it has started; written by systemd (:mod:`saltext.lbpair.node.haproxy_watch`).
``maintenance``
    1 keeps the node out (FAULT) until released.
``handover``
    1 for a moment during a planned switchover (FAULT: the peer takes over at once).
``defer``
    1 lowers the node's priority below its peer's (weight :func:`defer_weight`).

The directory is under ``/var/lib`` (it survives reboots); the state creates a
missing file with 0 and never overwrites one. A missing file counts as 0.
"""

import os

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue

# the names are the rules of the model (track_rules); the node names them through this module
from saltext.lbpair.model.track_rules import (  # noqa: F401
    BLOCK_PREFIX,
    DEFER,
    DIRECTORY,
    FAULT_NAMES,
    FILE_NAME_RE,
    HANDOVER,
    HAPROXY,
    MAINTENANCE,
    NAMES,
)


def path(name, directory=DIRECTORY):
    """The file of track file ``name`` (``/var/lib/lbpair/track/haproxy``)."""
    if not FILE_NAME_RE.fullmatch(name):
        raise InvalidValue("name", f"{name!r} is not a track file name")
    return os.path.join(directory, name)


def block_name(name):
    """keepalived's name for track file ``name`` (``lbpair_haproxy``)."""
    return f"{BLOCK_PREFIX}{name}"


def defer_weight(model):
    """The ``defer`` file's weight: one more than the gap between the nodes' priorities, negative."""
    priorities = [node["priority"] for node in model["nodes"].values()]
    return -(max(priorities) - min(priorities) + 1)


def weight(model, name):
    """The keepalived weight of lbpair's track file ``name``."""
    return 0 if name in FAULT_NAMES else defer_weight(model)


def write(name, value, directory=DIRECTORY):
    """
    Set track file ``name`` to the integer ``value``, atomically (a rename: keepalived
    reads the old value or the new one, never a part). Returns the file's path.
    """
    target = path(name, directory)
    store.write_atomic(target, f"{int(value)}\n")
    return target


def read(name, directory=DIRECTORY):
    """The value of track file ``name`` (0 if it is missing or not a number, as keepalived reads it)."""
    try:
        with open(path(name, directory), encoding="utf-8") as handle:
            return int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def create_missing(directory=DIRECTORY, test=False):
    """
    Create the directory and each of lbpair's missing track files with 0; never
    overwrite one. Returns the paths created (that would be, with ``test``).
    """
    missing = [path(name, directory) for name in NAMES if not os.path.exists(path(name, directory))]
    if test:
        return missing
    os.makedirs(directory, mode=0o755, exist_ok=True)
    return [target for target in missing if _create(target, "0\n")]


def _create(target, text):
    """Create ``target`` with ``text`` unless it exists (a writer may have been first): whether it did."""
    try:
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    return True
