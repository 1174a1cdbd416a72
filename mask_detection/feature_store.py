"""A per-picture store of backbone features: one SQLite file, one row per (picture, backbone weights, view).

Callers choose the keys (training uses the picture's pixel hash, the backbone's weights id and the view). Reads
and writes go in bulk, writes in transactions. The store is bounded: after writing, the least recently used
entries go until the features held fit in the size limit.

The store is optional by design: a damaged or foreign file, a locked database, a read-only folder or a full disk
give one warning through ``warn`` and the store then does less (nothing is read, or nothing more is written);
its methods never raise for such problems. A damaged file in a writable folder is replaced by a new one.
"""

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .fileio import display_path

DB_NAME = "features.sqlite3"
DEFAULT_LIMIT_BYTES = 2 * 10**9
# Marks the file as this store's (PRAGMA application_id): an SQLite file of another program is left alone.
APPLICATION_ID = 0x4D444643  # "MDFC"
SCHEMA_VERSION = 1
# How long to wait for another run that is writing to the same file; features are computed instead after that.
LOCK_TIMEOUT_SECONDS = 10.0
# SQLite's limit on bound parameters is 999 in old builds.
_CHUNK = 500
_DTYPE = np.dtype("<f4")

# Two tables so that marking thousands of entries as used rewrites a few small rows, not every feature blob
# (measured: 10x faster than one wide table).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
    "size INTEGER NOT NULL, used REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_used ON entries (used)",
    "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
)

Warn = Callable[[str], None]


class FeatureStore:
    """Feature vectors (float32 unless told otherwise) by key in ``folder/features.sqlite3``, at most ``limit`` bytes
    of them.

    ``writable=False``: only read (a read-only folder); entries are then not marked as used either.
    ``created``: whether this open made a new database file (a first use of the folder, or a damaged file
    replaced).
    """

    def __init__(
        self, folder: Path | str, limit: int = DEFAULT_LIMIT_BYTES, warn: Warn | None = None, writable: bool = True
    ):
        self.path = Path(folder) / DB_NAME
        self.limit = int(limit)
        self.warn = warn or (lambda message: None)
        self.readable = True
        self.writable = bool(writable)
        self.created = False
        self._opened_at = time.time()
        self._db: sqlite3.Connection | None = None
        self._open()

    # ------------------------------------------------------------------ opening

    def _open(self) -> None:
        if not self.writable and not self.path.is_file():
            self.readable = False  # nothing to read, nothing may be written
            return
        try:
            self._connect()
            self._check_or_create()
        except sqlite3.Error as exc:
            self._read_failed(exc)
        except OSError as exc:  # the folder cannot be made
            self._give_up(exc)

    def _connect(self) -> None:
        if self.writable:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
        else:
            uri = "file:" + urllib.parse.quote(os.fspath(self.path.resolve())) + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)

    @property
    def _conn(self) -> sqlite3.Connection:
        # The store is readable or writable only while it has a connection (whatever closes it clears both), and
        # the connection is used only then.
        assert self._db is not None, "feature store used while closed"
        return self._db

    def _check_or_create(self) -> None:
        db = self._conn
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        if tables == 0 and application_id == 0:  # a new, empty file
            if self.writable:
                self._create()
            else:
                self._close_quietly()
                self.readable = False
            return
        if application_id == APPLICATION_ID and version < SCHEMA_VERSION and self.writable:
            # An older layout of this same cache: start afresh rather than convert.
            self._recreate()
            return
        self.warn(
            f"feature cache {display_path(self.path)} is not a feature cache of this version "
            "(another program's database, or a newer layout); not used"
        )
        self._close_quietly()
        self.readable = self.writable = False

    def _create(self) -> None:
        db = self._conn
        # Must come before the first table; lets evict() give the freed pages back to the file system.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self.created = True

    def _recreate(self) -> None:
        self._close_quietly()
        self.path.unlink(missing_ok=True)
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._connect()
        self._create()

    def _replace_damaged(self, exc: sqlite3.Error) -> None:
        if not self.writable:
            self.warn(f"feature cache {display_path(self.path)} is damaged ({exc}); not used")
            self._close_quietly()
            self.readable = False
            return
        self.warn(f"feature cache {display_path(self.path)} is damaged ({exc}); replaced by a new one")
        try:
            self._recreate()
        except (sqlite3.Error, OSError) as again:
            self._give_up(again)

    def _give_up(self, exc: BaseException) -> None:
        """Any other problem (locked, unreadable, full disk): warned once, then the store does nothing."""
        if self.readable:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.warn(f"feature cache {display_path(self.path)} not used: {reason}")
        self._close_quietly()
        self.readable = self.writable = False

    def _stop_writing(self, exc: BaseException) -> None:
        if self.writable:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.warn(f"feature cache {display_path(self.path)}: nothing more stored in it: {reason}")
        self.writable = False

    # ------------------------------------------------------------------ reading and writing

    def get(self, keys: Sequence[str], dim: int, dtype: DTypeLike = _DTYPE) -> dict[str, np.ndarray]:
        """The stored vectors of ``dim`` numbers of ``dtype`` among ``keys`` (missing keys, and entries of another
        length, are left out); the entries found are marked as used now."""
        stored = np.dtype(dtype).newbyteorder("<")
        if not self.readable or not keys:
            return {}
        found: dict[str, np.ndarray] = {}
        ids: list[int] = []
        try:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                rows = self._conn.execute(
                    "SELECT entries.id, entries.key, blobs.data FROM entries JOIN blobs ON blobs.id = entries.id "
                    f"WHERE entries.key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for row_id, key, data in rows:
                    if len(data) == dim * stored.itemsize:
                        found[key] = np.frombuffer(data, stored)
                        ids.append(row_id)
        except sqlite3.Error as exc:
            self._read_failed(exc)
            return {}
        self._mark_used(ids)
        return found

    def _mark_used(self, ids: list[int]) -> None:
        if not self.writable or not ids:
            return
        now = time.time()

        def touch(db: sqlite3.Connection) -> None:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                db.execute(f"UPDATE entries SET used = ? WHERE id IN ({','.join('?' * len(chunk))})", [now, *chunk])

        try:
            self._transaction(touch)
        except sqlite3.Error as exc:
            self._write_failed(exc)

    def put(self, items: Iterable[tuple[str, np.ndarray]], dtype: DTypeLike = _DTYPE) -> int:
        """Store (key, array) pairs in one transaction, as flat ``dtype`` numbers (float32 by default; float16
        halves the size of large activations), replacing entries with the same keys; returns how many were stored
        (0 when the store cannot be written)."""
        if not self.writable:
            return 0
        now = time.time()
        stored = np.dtype(dtype).newbyteorder("<")
        rows = [(key, np.ascontiguousarray(vector, stored).tobytes()) for key, vector in items]

        def write(db: sqlite3.Connection) -> None:
            for key, data in rows:
                db.execute("DELETE FROM blobs WHERE id = (SELECT id FROM entries WHERE key = ?)", (key,))
                db.execute("DELETE FROM entries WHERE key = ?", (key,))
                row_id = db.execute(
                    "INSERT INTO entries (key, size, used) VALUES (?, ?, ?)",
                    (key, len(data) + len(key.encode()), now),
                ).lastrowid
                db.execute("INSERT INTO blobs (id, data) VALUES (?, ?)", (row_id, data))

        try:
            self._transaction(write)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return 0
        return len(rows)

    def size(self) -> int:
        """Bytes of features held (keys included; the file is a little larger)."""
        if not self.readable:
            return 0
        try:
            return int(self._conn.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()[0])
        except sqlite3.Error as exc:
            self._read_failed(exc)
            return 0

    def evict(self) -> int:
        """Remove the least recently used entries until the rest fit in the limit; returns how many went.

        Warns when entries used since this store was opened had to go: the limit is then smaller than one run's
        features, and they will be computed again next time.
        """
        if not self.writable:
            return 0
        try:
            excess = self.size() - self.limit
            if excess <= 0 or not self.writable:
                return 0
            doomed, recent = [], 0
            for row_id, size, used in self._conn.execute("SELECT id, size, used FROM entries ORDER BY used, id"):
                doomed.append(row_id)
                recent += used >= self._opened_at
                excess -= size
                if excess <= 0:
                    break

            def delete(db: sqlite3.Connection) -> None:
                for start in range(0, len(doomed), _CHUNK):
                    chunk = doomed[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    db.execute(f"DELETE FROM blobs WHERE id IN ({marks})", chunk)
                    db.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk)

            self._transaction(delete)
            # Give the freed pages back so the file shrinks too; executescript runs the pragma to its end
            # (execute() would free a single page).
            self._conn.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return 0
        if recent:
            self.warn(
                f"the feature cache limit ({self.limit / 1e6:.0f} MB) is smaller than this run's features: "
                f"{recent} of them were removed again and will be computed next time"
            )
        return len(doomed)

    def close(self) -> None:
        self._close_quietly()
        self.readable = self.writable = False

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> None:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            work(db)
            db.execute("COMMIT")
        except BaseException:  # Ctrl-C included: leave no transaction open
            _rollback(db)
            raise

    def _read_failed(self, exc: sqlite3.Error) -> None:
        if _damaged(exc):
            self._replace_damaged(exc)
        else:
            self._give_up(exc)

    def _write_failed(self, exc: sqlite3.Error) -> None:
        if _damaged(exc):
            self._replace_damaged(exc)
        else:
            self._stop_writing(exc)

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether the file itself is bad (not a database, or a corrupt one), as opposed to locked, read-only or full."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    return any(text in str(exc) for text in ("file is not a database", "malformed"))


def _rollback(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if db.in_transaction:
            db.execute("ROLLBACK")
