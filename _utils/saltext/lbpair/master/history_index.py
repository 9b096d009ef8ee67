"""
The history's index: what deduplication needs, kept beside the history so that an
append reads neither the history nor its rotated files, and what the master's metrics
count (:mod:`saltext.lbpair.master.history_tally`).

A SQLite database, ``<history>.index``: the ``(minion, seq)`` of every transition
and whether one of them was confirmed; for each file of the history, its inode, how
far it has been read, its last bytes read and the damaged lines counted in it; the
failovers and the MASTER of each instance.

The JSON-lines files stay the truth. Each use starts by catching up with them:
lines appended since (by this version or another) are read from where the index
stopped, a file renamed by rotation is recognised by its inode, and when a file no
longer holds what was read (truncated, replaced, deleted) or the database is damaged
the index is rebuilt from the files. If it cannot be used at all (a full disk, a
read-only folder), the answers come from reading every file, as before the index.
It is written without fsync and built again after a reboot (a power cut may have cut
it anywhere). Use it under the history's lock.
"""

import contextlib
import logging
import os
import sqlite3

from saltext.lbpair.core import store
from saltext.lbpair.master import history_tally
from saltext.lbpair.master.records import RecordKind

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the tallies of history_tally
SCHEMA = history_tally.SCHEMA + """
DROP TABLE IF EXISTS transitions;
DROP TABLE IF EXISTS files;
DROP TABLE IF EXISTS meta;
CREATE TABLE transitions (minion TEXT NOT NULL, seq INTEGER NOT NULL, confirmed INTEGER NOT NULL,
                          PRIMARY KEY (minion, seq)) WITHOUT ROWID;
CREATE INDEX confirmed_seqs ON transitions (minion, confirmed, seq);
CREATE TABLE files (inode INTEGER PRIMARY KEY, name TEXT NOT NULL, offset INTEGER NOT NULL,
                    tail BLOB NOT NULL, bad INTEGER NOT NULL);
CREATE TABLE meta (boot TEXT NOT NULL);
"""
BOOT_ID = "/proc/sys/kernel/random/boot_id"
TAIL_BYTES = 64  # the last bytes read from a file: if they changed, the file was rewritten
MAX_SEQ = 2**63  # SQLite's integers; a larger seq takes no slot (the reactions refuse it anyway)


def slot(record):
    """The ``(minion, seq)`` a transition record holds, or ``None``: other kinds, or a malformed key."""
    minion, seq = record.get("minion"), record.get("seq")
    if record.get("kind") != RecordKind.TRANSITION or not isinstance(minion, str) or not minion.isprintable():
        return None
    if type(seq) is not int or not 0 <= seq < MAX_SEQ:  # not bool, not float, not text
        return None
    return minion, seq


def confirmed(record):
    """A transition counts as confirmed unless it says ``confirmed: false`` (records of old versions do not say)."""
    return record.get("confirmed") is not False


def _tally(parsed):
    """
    ``([(minion, seq, confirmed)], damaged lines, [transition rows])`` from ``(record or None, line)``
    pairs (the rows: :func:`saltext.lbpair.master.history_tally.transition_row`).
    """
    keys, bad, rows = [], 0, []
    for record, _ in parsed:
        if record is None:
            bad += 1
        elif key := slot(record):
            keys.append((*key, int(confirmed(record))))
            if row := history_tally.transition_row(record, key):
                rows.append(row)
    return keys, bad, rows


@contextlib.contextmanager
def opened(path, files, create=True):
    """
    The index at ``path`` of the history whose files ``files()`` names, caught up with
    them; a :class:`Scan` of the files if the database cannot be used, or if there is none and
    not ``create``: a reader (the metrics) leaves making it to the history's appends.
    """
    index = _caught_up(path, files) if create or os.path.exists(path) else Scan(files())
    try:
        yield index
    finally:
        index.close()


def _caught_up(path, files):
    try:
        return _synced(path, files)
    except sqlite3.Error as exc:  # damaged, or another program's file: the files have it all
        log.info("lbpair: history index %s: %s; rebuilding it from the history", path, exc)
    remove(path)
    try:
        return _synced(path, files)
    except sqlite3.Error as exc:
        log.warning("lbpair: history index %s unusable (%s): reading the whole history instead", path, exc)
    return Scan(files())


def _synced(path, files):
    index = Index(sqlite3.connect(path, timeout=30, isolation_level=None))
    try:
        index.prepare()
        index.catch_up(files())
    except BaseException:
        index.close()
        raise
    return index


def remove(path):
    """Remove the index and SQLite's files beside it."""
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(OSError):
            os.unlink(name)


class Index:
    """The index in the SQLite database ``db`` (a connection in autocommit mode)."""

    def __init__(self, db):
        self.db = db

    def prepare(self):
        boot = _boot_id()
        # Exclusive: the history's lock already serialises its users, and SQLite then keeps
        # the WAL's index in memory instead of a shared -shm mapping (SIGBUS on a full tmpfs).
        self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self.db.execute("PRAGMA journal_mode=WAL")
        # No fsync: the files are the truth and the index is rebuilt from them. A process killed
        # mid-write leaves the WAL's last commit (the page cache outlives it); a power cut may
        # leave anything, so an index written before this boot is built again.
        self.db.execute(f"PRAGMA synchronous={'OFF' if boot else 'NORMAL'}")
        if self._made_for() != (SCHEMA_VERSION, boot):
            self.db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            self.db.execute("INSERT INTO meta VALUES (?)", (boot,))

    def _made_for(self):
        """``(schema version, boot id)`` the database was made for."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            return version, None
        row = self.db.execute("SELECT boot FROM meta").fetchone()
        return version, row and row[0]

    def close(self):
        self.db.close()

    def state(self, key):
        """``None`` if no transition holds ``key``; 1 if a confirmed one does; 0 if only unconfirmed ones."""
        row = self.db.execute("SELECT confirmed FROM transitions WHERE minion = ? AND seq = ?", key).fetchone()
        return row and row[0]

    def last_seq(self, minion):
        row = self.db.execute("SELECT max(seq) FROM transitions WHERE minion = ? AND confirmed = 1", (minion,)).fetchone()
        return row[0] or 0

    def bad_lines(self):
        return self.db.execute("SELECT coalesce(sum(bad), 0) FROM files").fetchone()[0]

    def tallies(self):
        """``(failovers, masters)``: :func:`saltext.lbpair.master.history_tally.failovers` and ``masters``."""
        return history_tally.failovers(self.db), history_tally.masters(self.db)

    def catch_up(self, names):
        """Read what the files ``names`` gained since the last use; rebuild if one no longer holds what was read."""
        observed = _observed(names)
        self.db.execute("BEGIN IMMEDIATE")
        with self.db:  # commits, or rolls back on an error
            read = {inode: (offset, tail) for inode, offset, tail in self.db.execute("SELECT inode, offset, tail FROM files")}
            if any(not _still_holds(observed.get(inode), offset, tail) for inode, (offset, tail) in read.items()):
                for statement in ("DELETE FROM transitions", "DELETE FROM files", *history_tally.CLEAR):
                    self.db.execute(statement)
                read = {}
            for inode, (name, size) in observed.items():
                if inode not in read or size > read[inode][0]:
                    self._read(inode, name, read.get(inode, (0,))[0])

    def _read(self, inode, name, offset):
        with open(name, "rb") as handle:
            handle.seek(offset)
            keys, bad, rows = _tally(store.parsed_lines(handle))
            end = handle.tell()
            tail = os.pread(handle.fileno(), min(TAIL_BYTES, end), max(0, end - TAIL_BYTES))
        self.db.executemany(
            "INSERT INTO transitions VALUES (?, ?, ?)"
            " ON CONFLICT (minion, seq) DO UPDATE SET confirmed = max(confirmed, excluded.confirmed)",
            keys,
        )
        history_tally.add(self.db, rows)
        before = self.db.execute("SELECT bad FROM files WHERE inode = ?", (inode,)).fetchone()
        self.db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", (inode, name, end, tail, bad + (before[0] if before else 0))
        )


def _boot_id():
    """This boot's id; ``""`` where the kernel does not tell it."""
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return ""


def _observed(names):
    """``{inode: (name, size)}`` of the files among ``names`` that exist."""
    found = {}
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            status = os.stat(name)
            found[status.st_ino] = (name, status.st_size)
    return found


def _still_holds(observed, offset, tail):
    """Whether a file, ``(name, size)`` or ``None`` if gone, still holds what was read of it."""
    if observed is None or observed[1] < offset:
        return False
    try:
        with open(observed[0], "rb") as handle:
            return os.pread(handle.fileno(), len(tail), offset - len(tail)) == tail
    except FileNotFoundError:
        return False


class Scan:
    """The index's answers from reading every file: the fall-back when the database cannot be used."""

    def __init__(self, names):
        self.names = names
        self.states, self.bad = {}, 0
        for name in names:
            keys, bad, _ = _tally(store.scan_lines(name))
            self.bad += bad
            for minion, seq, is_confirmed in keys:
                self.states[minion, seq] = max(is_confirmed, self.states.get((minion, seq), 0))

    def close(self):
        pass

    def state(self, key):
        return self.states.get(key)

    def last_seq(self, minion):
        return max((seq for (who, seq), state in self.states.items() if who == minion and state), default=0)

    def bad_lines(self):
        return self.bad

    def tallies(self):
        """:meth:`Index.tallies` of an index in memory, made from the files."""
        index = Index(sqlite3.connect(":memory:", isolation_level=None))
        try:
            index.prepare()
            index.catch_up(self.names)
            return index.tallies()
        finally:
            index.close()
