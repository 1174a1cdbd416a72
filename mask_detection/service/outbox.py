"""The camera's MQTT outbox: messages written to disk first and deleted once the broker has them.

A camera never waits for its broker: it puts each event (and its snapshot) here and goes on; the publisher sends
them in order while connected and deletes each one on its PUBACK. A broker outage, or the camera process being
killed, loses nothing: what was not acknowledged is sent again from the oldest (consumers de-duplicate by event
id). SQLite (standard library), the event store's durability settings: WAL journal and ``synchronous=FULL``, so a
SIGKILL at any moment leaves whole rows only.
"""

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import OutputError
from ..fileio import display_path

OUTBOX_FILE = "outbox.sqlite3"  # beside the camera's event store

# One queued message: (seq, topic, payload, qos, retain).
Message = tuple[int, str, bytes, int, bool]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
)
"""


class Outbox:
    """A durable first-in first-out queue of MQTT messages in the SQLite file ``path``. Thread-safe.

    One outbox per publisher: two publishers reading one queue would each send the other's messages.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), one per call.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._db.execute("SELECT count(*) FROM outbox").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise OutputError(
                f"{display_path(self.path)}: cannot open the MQTT outbox ({exc}); move the file away to start an "
                "empty one (its unsent messages are then not sent)"
            ) from exc

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue one message; returns its sequence number (grows, never reused)."""
        return self.put_many([(topic, payload, qos, retain)])[0]

    def put_many(self, messages: Iterable[tuple[str, bytes, int, bool]]) -> list[int]:
        """Queue messages in one transaction (an event and its snapshot are written together, with one sync)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = [
                    int(
                        self._db.execute(
                            "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                            (topic, bytes(payload), int(qos), int(bool(retain))),
                        ).lastrowid
                        or 0
                    )
                    for topic, payload, qos, retain in messages
                ]
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutputError(f"{display_path(self.path)}: cannot queue an MQTT message ({exc})") from exc
        return seqs

    def pending(self, limit: int, after: int = 0) -> list[Message]:
        """Up to ``limit`` queued messages, oldest first; ``after``: only those queued after that sequence number."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(seq, topic, bytes(payload), qos, bool(retain)) for seq, topic, payload, qos, retain in rows]

    def done(self, seq: int) -> None:
        """The broker has the message: forget it (a sequence number already gone is ignored)."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
