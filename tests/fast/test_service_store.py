"""The service's event store: once per id, seq never reused, paging and filters, snapshots before commits, pruning,
clear errors for a bad file, and whole rows only after a SIGKILL at any moment (real SQLite, real files)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mask_detection.errors import MaskDetectionError, OutputError
from mask_detection.service.store import EventStore

REPO = Path(__file__).resolve().parents[2]
JPEG = b"\xff\xd8\xff\xe0 not really a picture \xff\xd9"


def event(number: int, camera: str = "door", kind: str = "verdict", label: str | None = "without_mask", when=1000.0):
    return {
        "schema": 1,
        "id": f"{camera}-20260101T000000Z-abcd-{number:06d}",
        "type": kind,
        "camera": camera,
        "run": "20260101T000000Z-abcd",
        "time": when,
        "video_time": 1.5,
        "frame": number,
        "track": number,
        "before": None,
        "after": {"label": label, "probability": 0.9, "box": [1, 2, 3, 4], "judged": True, "settled": True},
        "alert": False,
        "has_snapshot": False,
    }


@pytest.fixture
def store(tmp_path):
    with EventStore(tmp_path / "store") as opened:
        yield opened


def test_an_event_is_stored_once_and_a_duplicate_returns_none(store):
    first = store.add(event(1))
    assert first is not None and first["seq"] == 1
    assert first == dict(event(1), seq=1)
    assert store.add(event(1)) is None
    assert store.add(dict(event(1), type="leave")) is None  # the id alone decides
    assert len(store) == 1
    assert store.events() == [first]
    assert store.get(event(1)["id"]) == first
    assert store.get("door-nothing-000001") is None


def test_the_table_itself_refuses_a_second_row_of_an_id(store):
    # What keeps two processes that share a store (both past the look-up) from storing an event twice.
    store.add(event(1))
    with sqlite3.connect(store.path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            db.execute(
                "INSERT INTO events (id, camera, type, label, time, json) VALUES (?, 'door', 'new', NULL, 1, '{}')",
                (event(1)["id"],),
            )
    db.close()
    assert len(store) == 1


def test_seqs_are_never_reused_after_pruning(tmp_path):
    with EventStore(tmp_path) as store:
        for number in range(1, 4):
            store.add(event(number, when=100.0))
        assert store.prune(keep_days=1, now=100.0 + 2 * 86400) == 3
        assert store.events() == []
        assert store.last_seq() == 3
        assert store.add(event(4, when=200.0))["seq"] == 4
    with EventStore(tmp_path) as store:  # also across a restart
        assert store.last_seq() == 4
        assert store.add(event(5, when=200.0))["seq"] == 5


def test_a_new_store_has_no_last_seq(store):
    assert store.last_seq() == 0
    assert store.events() == []


def test_paging_is_newest_first_with_before_after_and_limit(store):
    for number in range(1, 11):
        store.add(event(number))

    def seqs(**query):
        return [stored["seq"] for stored in store.events(**query)]

    assert seqs() == list(range(10, 0, -1))
    assert seqs(limit=3) == [10, 9, 8]
    assert seqs(before=8, limit=3) == [7, 6, 5]
    assert seqs(after=7) == [10, 9, 8]
    assert seqs(after=2, before=6) == [5, 4, 3]
    assert seqs(after=10) == []
    assert seqs(limit=0) == []


def test_events_filter_by_camera_label_and_type(store):
    store.add(event(1, camera="door", kind="new", label=None))
    store.add(event(2, camera="door", kind="verdict", label="with_mask"))
    store.add(event(3, camera="gate", kind="verdict", label="without_mask"))
    store.add(event(4, camera="gate", kind="leave", label="without_mask"))

    def seqs(**query):
        return [stored["seq"] for stored in store.events(**query)]

    assert seqs(camera="door") == [2, 1]
    assert seqs(camera="gate") == [4, 3]
    assert seqs(label="without_mask") == [4, 3]
    assert seqs(label="with_mask") == [2]
    assert seqs(type="verdict") == [3, 2]
    assert seqs(camera="gate", type="verdict", label="without_mask") == [3]
    assert seqs(camera="hall") == []


def test_add_writes_the_snapshot_and_says_so(store):
    stored = store.add(event(1), JPEG)
    assert stored["has_snapshot"] is True
    path = store.snapshot_path(event(1)["id"])
    assert path == store.folder / "snapshots" / f"{event(1)['id']}.jpg"
    assert path.read_bytes() == JPEG
    assert store.get(event(1)["id"])["has_snapshot"] is True
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    plain = store.add(event(2))
    assert plain["has_snapshot"] is False
    assert store.snapshot_path(event(2)["id"]) is None


def test_the_snapshot_is_written_before_the_event_is_committed(store):
    # A snapshot that cannot be written (its folder is now a file) must leave no event pointing at it.
    (store.folder / "snapshots").rmdir()
    (store.folder / "snapshots").write_bytes(b"in the way")
    with pytest.raises(OutputError, match="cannot write the snapshot"):
        store.add(event(1), JPEG)
    assert store.get(event(1)["id"]) is None
    assert store.events() == []


def test_a_snapshot_put_before_its_event_is_found_by_add(store):
    store.put_snapshot(event(1)["id"], JPEG)
    stored = store.add(event(1))
    assert stored["has_snapshot"] is True
    assert store.snapshot_path(event(1)["id"]).read_bytes() == JPEG


def test_snapshot_paths_never_leave_the_folder(store, tmp_path):
    (store.folder / "x.jpg").write_bytes(JPEG)  # what "../x" would reach
    (store.folder / "snapshots" / "a").mkdir()
    (store.folder / "snapshots" / "a" / "b.jpg").write_bytes(JPEG)
    for bad in ("../x", "a/b", "..", "", "a\\b", "/etc/passwd"):
        assert store.snapshot_path(bad) is None
        assert store.get(bad) is None
        with pytest.raises(MaskDetectionError):
            store.put_snapshot(bad, JPEG)
        with pytest.raises(MaskDetectionError):
            store.add(dict(event(1), id=bad))
    assert store.events() == []


def test_malformed_events_are_refused_with_a_clear_error(store):
    with pytest.raises(MaskDetectionError, match="'time' is not a number"):
        store.add(dict(event(1), time="soon"))
    with pytest.raises(MaskDetectionError, match="'camera' is not text"):
        store.add({k: v for k, v in event(2).items() if k != "camera"})
    with pytest.raises(MaskDetectionError, match="not storable as JSON"):
        store.add(dict(event(3), video_time=float("nan")), JPEG)
    assert store.snapshot_path(event(3)["id"]) is None  # refused before its snapshot was written
    assert store.events() == []


def test_prune_removes_old_events_and_their_snapshots(store):
    day = 86400.0
    now = 100 * day
    store.add(event(1, when=now - 10 * day), JPEG)
    store.add(event(2, when=now - 8 * day))
    store.add(event(3, when=now - 1 * day), JPEG)
    store.put_snapshot("door-never-arrived", JPEG)
    orphan = store.snapshot_path("door-never-arrived")
    os.utime(orphan, (now - 20 * day, now - 20 * day))
    store.put_snapshot("door-arrives-soon", JPEG)  # newer than the cutoff: its event may still come

    assert store.prune(keep_days=7, now=now) == 2
    assert [stored["seq"] for stored in store.events()] == [3]
    assert store.snapshot_path(event(1)["id"]) is None
    assert store.snapshot_path(event(3)["id"]).read_bytes() == JPEG
    assert store.snapshot_path("door-never-arrived") is None
    assert store.snapshot_path("door-arrives-soon") is not None
    assert store.prune(keep_days=7, now=now) == 0


def test_prune_refuses_a_negative_age(store):
    with pytest.raises(MaskDetectionError):
        store.prune(keep_days=-1)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    (tmp_path / "events.sqlite3").write_bytes(b"these are not the bytes of a database\n" * 200)
    shown = r"cannot open the event store .*events\.sqlite3: file is not a database \(move the file away"
    with pytest.raises(OutputError, match=shown):
        EventStore(tmp_path)


def test_a_damaged_database_gives_a_clear_error(tmp_path):
    with EventStore(tmp_path) as store:
        for number in range(300):
            store.add(event(number))
    path = tmp_path / "events.sqlite3"
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 4 * page] = b"\x55" * (2 * page)  # two pages of the table scribbled over
    path.write_bytes(bytes(data))
    with pytest.raises(OutputError, match=r"events\.sqlite3.*(malformed|damaged).*move the file away"):
        EventStore(tmp_path)


def test_a_database_of_another_program_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "events.sqlite3") as db:
        db.execute("CREATE TABLE events (name TEXT)")
    db.close()
    with pytest.raises(OutputError, match="not an event store"):
        EventStore(tmp_path)


def test_a_closed_store_says_so(tmp_path):
    store = EventStore(tmp_path)
    store.close()
    store.close()
    with pytest.raises(OutputError, match="closed"):
        store.add(event(1))


def test_threads_add_concurrently_and_each_event_is_stored_once(store):
    def add_all():
        for number in range(50):
            store.add(event(number))

    threads = [threading.Thread(target=add_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(stored["frame"] for stored in store.events(limit=1000)) == list(range(50))
    assert store.last_seq() == 50


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from mask_detection.service.store import EventStore
store = EventStore(sys.argv[2])
number = 0
while True:
    number += 1
    snapshot = b"\\xff\\xd8" + bytes([number % 256]) * 3000 if number % 3 == 0 else None
    event = {"schema": 1, "id": f"door-run-{number:06d}", "type": "verdict", "camera": "door", "run": "run",
             "time": 1000.0 + number, "track": number, "after": {"label": "with_mask"}, "pad": "x" * (number % 700)}
    stored = store.add(event, snapshot)
    print(stored["seq"], number, flush=True)
"""


def test_a_sigkill_at_any_moment_leaves_whole_committed_events(tmp_path):
    folder = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPO), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    committed = {}
    safety_net = threading.Timer(120, child.kill)  # a child that hangs ends the test instead of blocking it
    safety_net.start()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seq, number = map(int, line.split())
            committed[seq] = number
            if len(committed) == 200:
                child.send_signal(signal.SIGKILL)  # while it is adding more
                break
    finally:
        safety_net.cancel()
        child.kill()
        _, errors = child.communicate(timeout=60)
    assert len(committed) == 200, errors

    with sqlite3.connect(folder / "events.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for (text,) in db.execute("SELECT json FROM events"):
            json.loads(text)
    db.close()
    with EventStore(folder) as store:
        rows = store.events(limit=100_000)
        by_seq = {stored["seq"]: stored for stored in rows}
        for seq, number in committed.items():
            assert by_seq[seq]["id"] == f"door-run-{number:06d}"
        for stored in rows:
            number = int(stored["id"].rsplit("-", 1)[1])
            assert stored["pad"] == "x" * (number % 700)
            if stored["has_snapshot"]:
                assert store.snapshot_path(stored["id"]).read_bytes() == b"\xff\xd8" + bytes([number % 256]) * 3000
        assert store.add(event(1))["seq"] > max(by_seq)  # it goes on where it stopped
