"""The service's event store: every event once, in the order stored, with its snapshot; kept for a number of days.

SQLite (the standard library's) at ``<folder>/events.sqlite3``, the snapshots as ``<folder>/snapshots/<event
id>.jpg``. Each event is committed on its own with a write-ahead log and full sync, so a power cut or a SIGKILL at
any moment leaves a store that opens cleanly, holding whole events only. ``seq`` numbers events in the order they
were stored and is never given twice, even after old events are pruned: it is the id of Server-Sent Events and the
API's paging cursor. An event's ``id`` is stored once: a second ``add`` of it (MQTT delivers at least once) is a
duplicate and returns None.
"""

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MaskDetectionError, OutputError
from ..fileio import atomic_path, display_path
from .records import Event

STORE_FILE = "events.sqlite3"
SNAPSHOTS = "snapshots"
STORE_VERSION = 1  # the table's layout (SQLite's user_version): a store made by a newer layout is refused
# Event ids name snapshot files and travel in URLs and MQTT topics: plain names only, never a path.
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_COLUMNS = {"seq", "id", "camera", "type", "label", "time", "json"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    camera TEXT NOT NULL,
    type TEXT NOT NULL,
    label TEXT,
    time REAL NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, seq);
CREATE INDEX IF NOT EXISTS events_label ON events (label, seq);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""


def plain_id(event_id: object) -> bool:
    """Whether ``event_id`` is a plain name that can name a snapshot file (no path, no ``..``)."""
    return isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id) is not None


class EventStore:
    """Events and their snapshots in ``folder`` (made if missing). Thread-safe: one connection behind a lock.

    Raises OutputError with the file's name when the folder cannot be written or the database is not a
    readable event store (a corrupt or foreign file), and MaskDetectionError for an event it cannot store.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        self.snapshots = self.folder / SNAPSHOTS
        self._lock = threading.Lock()
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot make the event store in {display_path(self.folder)}: {exc.strerror or exc}"
            ) from None
        try:
            # Autocommit (isolation_level None): each statement is its own transaction, committed at once.
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from None
        try:
            self._setup()
        except BaseException:
            self._db.close()
            self._db = None
            raise

    def _setup(self) -> None:
        with self._sql("cannot open") as db:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before add() returns, so an event a camera published is never lost.
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > STORE_VERSION:
                raise OutputError(
                    f"{display_path(self.path)} was made by a newer version of mask_detection (store layout "
                    f"{version}, this one reads {STORE_VERSION}): upgrade, or use another folder"
                )
            # A damaged file can open and fail only when a damaged page is read: find out now, with a clear message.
            problems = [row[0] for row in db.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                found = "; ".join(" ".join(problem.split()) for problem in problems)  # one line, for a message
                raise OutputError(
                    f"{display_path(self.path)} is damaged ({found[:200]}): move the file away to start a new "
                    f"event store"
                )
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            if columns and not _COLUMNS <= columns:
                raise OutputError(
                    f"{display_path(self.path)} is not an event store of mask_detection (its events table has "
                    f"other columns): use another folder"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={STORE_VERSION}")

    def _error(self, what: str, exc: BaseException) -> OutputError:
        hint = ""
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            hint = " (move the file away to start a new event store)"
        return OutputError(f"{what} the event store {display_path(self.path)}: {exc}{hint}")

    @contextlib.contextmanager
    def _sql(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite's errors become OutputError naming the file."""
        with self._lock:
            if self._db is None:
                raise OutputError(f"the event store {display_path(self.path)} is closed")
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self._error(what, exc) from None

    def add(self, event: Event, snapshot: bytes | None = None) -> Event | None:
        """Store ``event`` once, with its ``snapshot`` JPEG if given; returns the stored event (a copy with
        ``seq``, and ``has_snapshot`` true when its snapshot file exists), or None when its id is already stored.

        The snapshot is in place before the event is committed, so whoever is told of the event finds its picture.
        """
        event_id = self._check(event)
        after = event.get("after")
        label = after.get("label") if isinstance(after, dict) else None
        stored = dict(event)
        stored.pop("seq", None)  # the store numbers events itself
        _json(stored)  # a malformed event fails here, before its snapshot is written
        with self._sql("cannot write to") as db:
            # Looked up first: a duplicate would still use up a seq (AUTOINCREMENT counts the refused insert).
            if db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone():
                return None
            if snapshot is not None:
                self._write_snapshot(event_id, snapshot)
            stored["has_snapshot"] = self._snapshot_file(event_id).is_file()
            rows = db.execute(
                "INSERT INTO events (id, camera, type, label, time, json) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING RETURNING seq",  # another process may have stored it just now
                (
                    event_id,
                    stored["camera"],
                    stored["type"],
                    label if isinstance(label, str) else None,
                    float(stored["time"]),
                    _json(stored),
                ),
            ).fetchall()  # all rows: the statement is finished, so its transaction is committed now
        row = rows[0] if rows else None
        if row is None:
            return None
        stored["seq"] = row[0]
        return stored

    @staticmethod
    def _check(event: Event) -> str:
        """The event's id; MaskDetectionError for an event that cannot be stored (a malformed MQTT payload)."""
        if not isinstance(event, dict):
            raise MaskDetectionError(f"an event is a JSON object, not {type(event).__name__}")
        event_id = event.get("id")
        if not plain_id(event_id):
            raise MaskDetectionError(f"event id {event_id!r}: use 1 to 200 letters, digits, - and _")
        assert isinstance(event_id, str)
        for key in ("camera", "type"):
            if not isinstance(event.get(key), str):
                raise MaskDetectionError(f"event {event_id}: {key!r} is not text")
        event_time = event.get("time")
        if isinstance(event_time, bool) or not isinstance(event_time, int | float):
            raise MaskDetectionError(f"event {event_id}: 'time' is not a number")
        return event_id

    def put_snapshot(self, event_id: str, jpeg: bytes) -> None:
        """Save an event's snapshot before the event itself arrives (the dashboard receives them apart); the
        ``add`` that follows finds it."""
        if not plain_id(event_id):
            raise MaskDetectionError(f"snapshot for event id {event_id!r}: not a plain name")
        with self._lock:
            self._write_snapshot(event_id, jpeg)

    def _snapshot_file(self, event_id: str) -> Path:
        return self.snapshots / f"{event_id}.jpg"

    def _write_snapshot(self, event_id: str, jpeg: bytes) -> None:
        path = self._snapshot_file(event_id)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as stream:
                    stream.write(jpeg)
                    stream.flush()
                    os.fsync(stream.fileno())  # on disk before the event that points to it is committed
            # The rename itself is on disk only once the folder is synced.
            folder = os.open(self.snapshots, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise OutputError(f"cannot write the snapshot {display_path(path)}: {exc.strerror or exc}") from None

    def events(
        self,
        camera: str | None = None,
        label: str | None = None,
        type: str | None = None,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Event]:
        """Stored events, newest first (descending ``seq``), at most ``limit``: of one ``camera``, ``label``
        (the ``after`` view's) or ``type`` when given; ``after``/``before``: only ``seq`` above / below it."""
        where = []
        values: list[Any] = []
        for column, value in (("camera", camera), ("label", label), ("type", type)):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(value)
        if after is not None:
            where.append("seq > ?")
            values.append(int(after))
        if before is not None:
            where.append("seq < ?")
            values.append(int(before))
        query = "SELECT seq, json FROM events"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq DESC LIMIT ?"
        values.append(max(0, int(limit)))
        with self._sql("cannot read") as db:
            rows = db.execute(query, values).fetchall()
        return [_event(seq, text) for seq, text in rows]

    def get(self, event_id: str) -> Event | None:
        if not plain_id(event_id):
            return None
        with self._sql("cannot read") as db:
            row = db.execute("SELECT seq, json FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _event(*row)

    def snapshot_path(self, event_id: str) -> Path | None:
        """The event's snapshot file, or None when there is none (also for an id that is not a plain name: such
        an id never names a file, so ``../x`` cannot reach outside the folder)."""
        if not plain_id(event_id):
            return None
        path = self._snapshot_file(event_id)
        return path if path.is_file() else None

    def prune(self, keep_days: float, now: float | None = None) -> int:
        """Delete the events whose ``time`` is more than ``keep_days`` days before ``now``, and their snapshots;
        returns how many events went. Snapshot files of no event (an event that never arrived, a write cut
        short) older than that go too."""
        if keep_days < 0:
            raise MaskDetectionError(f"keep_days {keep_days}: must be 0 or more")
        cutoff = (time.time() if now is None else now) - keep_days * 86400.0
        with self._sql("cannot prune") as db:
            # Rows first: a crash before the files are gone leaves unused files (removed next time), never an
            # event whose picture is missing.
            ids = [row[0] for row in db.execute("DELETE FROM events WHERE time < ? RETURNING id", (cutoff,))]
            for event_id in ids:
                with contextlib.suppress(FileNotFoundError):
                    self._snapshot_file(event_id).unlink()
            self._remove_orphans(db, cutoff)
        return len(ids)

    def _remove_orphans(self, db: sqlite3.Connection, cutoff: float) -> None:
        try:
            entries = list(os.scandir(self.snapshots))
        except OSError:
            return
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime >= cutoff:
                    continue
                event_id = entry.name.removesuffix(".jpg")
                if entry.name.endswith(".jpg") and plain_id(event_id):
                    if db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone():
                        continue
                os.unlink(entry.path)
            except OSError:  # gone already, or not ours to remove: the next prune tries again
                continue

    def last_seq(self) -> int:
        """The highest ``seq`` ever given (also when those events were pruned since); 0 for a new store."""
        with self._sql("cannot read") as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])

    def __len__(self) -> int:
        with self._sql("cannot read") as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _json(event: Event) -> str:
    try:
        return json.dumps(event, separators=(",", ":"), allow_nan=False)  # strict JSON: browsers parse it
    except (TypeError, ValueError) as exc:
        raise MaskDetectionError(f"event {event.get('id')}: not storable as JSON: {exc}") from None


def _event(seq: int, text: str) -> Event:
    event = json.loads(text)
    event["seq"] = seq
    return event
