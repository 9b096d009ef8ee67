"""
Durable files: one JSON-lines store (the minion's journal, the master's history)
and atomic replacement of a whole file (daemon configurations, the master's
reaction state).

Every write is fsync'd before it returns: the file, and for a rename its
directory. Readers are tolerant: a damaged line (cut short by a crash, not UTF-8,
not a JSON object) is skipped and counted, never fatal, and the next append starts
on a line of its own. An append that fails (a full disk) leaves the file as it was.
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


@contextlib.contextmanager
def try_locked(lock_file):
    """Yield whether this process now holds the exclusive lock ``lock_file`` (never waits for it)."""
    os.makedirs(os.path.dirname(lock_file) or ".", exist_ok=True)
    with open(lock_file, "a", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def parse_line(line):
    """
    The record on one line (bytes), ``None`` if the line is damaged: cut short by a
    crash, not UTF-8, not JSON, nested beyond reason, or not an object.
    """
    try:
        record = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return record if isinstance(record, dict) else None  # every record is an object


def parsed_lines(lines):
    """``(record or None, line)`` for each of ``lines`` (bytes) that is not blank: ``None`` marks a damaged line."""
    for line in lines:
        if line.strip():
            yield parse_line(line), line


def scan(path, offset=0):
    """
    ``(records, bad)``: the records of the file at ``path`` from byte ``offset`` on, in
    file order, and how many damaged lines were skipped (``([], 0)`` if there is no file).
    The file is read as bytes and decoded line by line: one bad line spoils nothing else.
    """
    records, bad = [], 0
    for record, _ in scan_lines(path, offset):
        if record is None:
            bad += 1
        else:
            records.append(record)
    return records, bad


def scan_lines(path, offset=0):
    """``(record or None, line)`` for each line from byte ``offset`` on; nothing if there is no file."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        yield from parsed_lines(handle)


def read_records(path):
    """Every record of the file at ``path``, in file order (``[]`` if there is none); damaged lines are skipped."""
    return scan(path)[0]


def records_backward(path, block=1 << 16):
    """The records of the file at ``path``, newest first, read from its end ``block`` bytes at a time."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        end = handle.seek(0, os.SEEK_END)
        head = b""  # the start of a line that begins before the block read last
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            lines = (handle.read(end - start) + head).split(b"\n")
            head = lines.pop(0) if start > 0 else b""
            if not lines:
                block *= 2  # inside a long line: read further back at once, not in quadratic steps
            for record, _ in parsed_lines(reversed(lines)):
                if record is not None:
                    yield record
            end = start


def _lines(records):
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def _line_break_if_cut(fd, size):
    """A newline if the file ends in a line cut short by a crash, so the next line stands alone."""
    return b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def append_records(path, records):
    """
    Append ``records`` as JSON lines and fsync; call it under :func:`locked`. If the
    write fails (``ENOSPC``, ``EIO``: an ``OSError`` is raised) the file is cut back to
    where it was, so no part of a line stays to be merged with the next append.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, _line_break_if_cut(fd, size) + _lines(records).encode())
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # if even this fails, the next reader skips the cut line
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def rewrite_records(path, records):
    """Replace the whole file by ``records``, atomically."""
    write_atomic(path, _lines(records))


def load_json(path):
    """
    The JSON document at ``path``. Raises ``FileNotFoundError`` if there is none, and
    ``ValueError`` if it is damaged: cut short, not UTF-8, not JSON, nested beyond reason.
    """
    with open(path, "rb") as handle:
        text = handle.read()
    try:
        return json.loads(text.decode("utf-8"))
    except RecursionError as error:
        raise ValueError(f"{path}: nested too deeply") from error


def read_json(path, default):
    """
    The JSON document at ``path``; ``default`` if it is missing, unreadable, or not of
    the type of ``default`` (a state file holding ``[]`` where an object belongs).
    """
    try:
        document = load_json(path)
    except (FileNotFoundError, ValueError):
        return default
    return document if isinstance(document, type(default)) else default


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
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(candidate, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
    except BaseException:  # a full disk: no half-written candidate left behind at each attempt
        remove(candidate)
        raise
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


def write_private(path, data):
    """Replace ``path`` by the bytes ``data`` atomically, readable by root only from the first byte (mkstemp makes 0600)."""
    handle, candidate = tempfile.mkstemp(prefix=".", suffix=".lbpair", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        install(candidate, path)
    finally:
        remove(candidate)


def remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
