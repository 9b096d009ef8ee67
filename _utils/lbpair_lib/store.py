"""
Durable files: one JSON-lines store (the minion's journal, the master's history)
and atomic replacement of a whole file (daemon configurations, the master's
reaction state).

Every write is fsync'd before it returns: the file, and for a rename its
directory. Readers are tolerant: a line cut short by a crash is skipped, and the
next append starts on a line of its own.
"""

import contextlib
import fcntl
import json
import os
import tempfile


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock tied to ``path`` (``<path>.lock``), across threads and processes."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(f"{path}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_records(path):
    """Every JSON record of the file at ``path``, in file order (``[]`` if there is none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut short by a crash
            record = json.loads(line)
            if isinstance(record, dict):  # every record is an object; anything else is damage
                records.append(record)
    return records


def _lines(records):
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def _line_break_if_cut(handle):
    """A newline if the file ends in a line cut short by a crash, so the next line stands alone."""
    handle.seek(0, os.SEEK_END)
    if handle.tell() == 0:
        return b""
    handle.seek(-1, os.SEEK_END)
    return b"" if handle.read(1) == b"\n" else b"\n"


def append_records(path, records):
    """Append ``records`` as JSON lines and fsync; call it under :func:`locked`."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as handle:
        handle.write(_line_break_if_cut(handle) + _lines(records).encode())
        handle.flush()
        os.fsync(handle.fileno())


def rewrite_records(path, records):
    """Replace the whole file by ``records``, atomically."""
    write_atomic(path, _lines(records))


def read_json(path, default):
    """The JSON document at ``path``; ``default`` if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return default


def write_json(path, document):
    write_atomic(path, json.dumps(document, sort_keys=True))


def write_beside(path, text):
    """
    Write ``text`` to a new file beside ``path`` (same filesystem, so a rename is
    atomic), fsync'd, with the mode of ``path`` (0644 for a new file); return its path.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, candidate = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".lbpair", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.chmod(candidate, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
    return candidate


def install(candidate, path):
    """Atomically replace ``path`` by ``candidate``, and make the rename durable."""
    os.replace(candidate, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomic(path, text):
    """Replace ``path`` by ``text``: readers see the old file or the new one, never a part."""
    install(write_beside(path, text), path)


def remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
