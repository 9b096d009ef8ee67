"""
A SQLite database that threads and processes share one transaction at a time (the master's
reaction state).

A change is a function ``change(db, *args)`` of a connection: :meth:`Database.write` runs it in
one transaction, committed whole or (on any exception) not at all. The database is in WAL mode:
readers never wait; writers start with ``BEGIN IMMEDIATE`` and so take turns, each waiting up to
:data:`BUSY_TIMEOUT` for the one before, instead of failing halfway. Every commit is fsync'd
(``synchronous=FULL``): a step noted is not lost to a power cut.

When the database cannot be written (a full disk, a read-only or missing folder), the process
goes on: it takes a copy in memory of what is on disk, works on it, and at each change tries to
write it back whole; once that works it is back on disk. Meanwhile other processes see the copy
on disk, and the copy written back replaces what they changed on it.

Example::

    db = Database("/var/lib/app/state.sqlite", 1, create=lambda db: db.execute("CREATE TABLE t (k, v)"))
    db.write(lambda db, k, v: db.execute("INSERT INTO t VALUES (?, ?)", (k, v)), "a", 1)
    db.read(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0])
"""

import contextlib
import logging
import os
import sqlite3
import threading
import urllib.parse

from saltext.lbpair.core import store

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 60  # s: a writer waits this long for the transaction before it (each lasts a few ms)
# SQLite's messages (its codes are in exceptions from Python 3.11 only) for a file that cannot be written
UNWRITABLE = ("database or disk is full", "disk I/O error", "readonly database", "unable to open database file")

_COPIES = {}  # database path -> the copy in memory this process goes on with while the file cannot be written
_COPIES_LOCK = threading.Lock()
_INHERITED = []  # a parent's connections, never used nor closed in a child (SQLite: a connection never crosses fork)


def _inode(path):
    """The inode of the file at ``path`` (``None``: there is none)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def unwritable(exc):
    """Whether ``exc`` (raised by SQLite or the OS) says that the database cannot be written."""
    return isinstance(exc, OSError) or any(message in str(exc) for message in UNWRITABLE)


def in_transaction(db, begin, change, args):
    """``change(db, *args)`` between ``begin`` and ``COMMIT``; rolled back on any exception."""
    db.execute(begin)
    try:
        result = change(db, *args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled it back itself (a full disk)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return result


class _Copy:
    """A database's copy in memory, shared by the threads of this process."""

    def __init__(self, db):
        self.db = db
        self.lock = threading.Lock()


class Database:
    """
    The SQLite database at ``path``; ``create(db)`` makes its schema (version ``version``), in the
    transaction that makes the database or a copy of it in memory.
    """

    def __init__(self, path, version, create):
        self.path = path
        self.version = version
        self.create = create
        self._local = threading.local()  # this thread's connection

    def read(self, query, *args):
        """``query(db, *args)`` in one read transaction (a consistent view); its result."""
        return self._run(query, args, "BEGIN")

    def write(self, change, *args):
        """``change(db, *args)`` in one write transaction; its result."""
        return self._run(change, args, "BEGIN IMMEDIATE")

    @property
    def in_memory(self):
        """Whether this process works on a copy in memory (the file could not be written)."""
        return self.path in _COPIES

    def write_back(self):
        """Write this process's copy in memory back to the file if it can now (a disk with room again); whether it works on the file."""
        copy = _COPIES.get(self.path)
        if copy is not None:
            with copy.lock:
                if _COPIES.get(self.path) is copy:
                    self._write_back(copy)
        return not self.in_memory

    def _run(self, change, args, begin):
        copy = _COPIES.get(self.path)
        if copy is None:
            try:
                return in_transaction(self._connection(), begin, change, args)
            except (sqlite3.OperationalError, OSError) as exc:
                if not unwritable(exc):
                    raise
                copy = self._copy_in_memory(exc)
        with copy.lock:
            if _COPIES.get(self.path) is not copy:  # another thread wrote it back meanwhile
                return self._run(change, args, begin)
            changes = copy.db.total_changes
            result = in_transaction(copy.db, begin, change, args)
            if copy.db.total_changes != changes:
                self._write_back(copy)
            return result

    def _connection(self):
        """
        This thread's connection, opened on first use in this process, and again when the file was
        removed or replaced meanwhile (a long-lived worker must not go on with a file nobody else sees).
        """
        pid, db, files = getattr(self._local, "held", (None, None, None))
        if pid != os.getpid() or files != self._files():
            if db is not None and pid != os.getpid():
                _INHERITED.append(db)
            elif db is not None:
                db.close()
            db = self._open()
            self._local.held = (os.getpid(), db, self._files())
        return db

    def _files(self):
        """
        The inodes of the database file and of its WAL: SQLite never removes the WAL while a
        connection is open, so a new one means the files were removed or replaced by someone else.
        """
        return _inode(self.path), _inode(f"{self.path}-wal")

    def _open(self, again=True):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal" or not self._ready(db):
                with store.locked(self.path):  # its first user makes it; the others wait, then find it made
                    db.execute("PRAGMA journal_mode=WAL")
                    self._prepare(db)
        except BaseException as exc:
            db.close()
            if not again or type(exc) is not sqlite3.DatabaseError:  # its subclasses say full, locked, ..., not damaged
                raise
            self._set_aside()
            return self._open(again=False)
        return db

    def _set_aside(self):
        """Rename a damaged file (another program's, a hand edit) ``<path>.damaged``, unless another process did."""
        with store.locked(self.path):
            try:
                with contextlib.closing(sqlite3.connect(self.path)) as db:
                    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return
            except sqlite3.DatabaseError as exc:
                log.error("lbpair: %s is damaged (%s): set aside as %s.damaged, starting anew", self.path, exc, self.path)
            os.replace(self.path, f"{self.path}.damaged")
            for name in (f"{self.path}-wal", f"{self.path}-shm"):
                store.remove(name)

    def _ready(self, db):
        return db.execute("PRAGMA user_version").fetchone()[0] == self.version

    def _prepare(self, db):
        if not self._ready(db):
            in_transaction(db, "BEGIN IMMEDIATE", self._create, ())

    def _create(self, db):
        self.create(db)
        db.execute(f"PRAGMA user_version={int(self.version)}")

    def _copy_in_memory(self, exc):
        with _COPIES_LOCK:
            if self.path not in _COPIES:
                log.error("lbpair: %s cannot be written (%s): this process goes on with a copy in memory", self.path, exc)
                _COPIES[self.path] = _Copy(self._read_into_memory())
            return _COPIES[self.path]

    def _read_into_memory(self):
        """A copy in memory of what the file holds (empty if it cannot be read either)."""
        memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            self._connection().backup(memory)
        except (sqlite3.Error, OSError):
            self._read_file_alone(memory)
        self._prepare(memory)
        return memory

    def _read_file_alone(self, memory):
        """
        Copy the file into ``memory`` without its WAL: opening it as usual creates SQLite's shared
        memory beside it, which a full disk refuses. The last connection to close left nothing in the WAL.
        """
        try:
            with contextlib.closing(sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?immutable=1", uri=True)) as db:
                db.backup(memory)
        except sqlite3.Error as exc:
            log.error("lbpair: %s cannot be read either (%s): the copy in memory starts empty", self.path, exc)

    def _write_back(self, copy):
        """Write ``copy`` over the file, which then serves again; it stays in memory if the file still cannot be written."""
        try:
            copy.db.backup(self._connection())
        except (sqlite3.OperationalError, OSError) as exc:
            if not unwritable(exc):
                raise
            return
        with _COPIES_LOCK:
            del _COPIES[self.path]
        log.warning("lbpair: %s written again: this process works on the file again", self.path)
