"""Events (JSON Lines) and snapshots: exact shapes, live flushing, atomic pictures, full disks, any file names."""

import io
import json
import os
import re
import stat
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import small_disk
from detect_support import face_photo

from mask_detection.errors import OutputError
from mask_detection.events import EventWriter, SnapshotWriter, event_record, new_run_id
from mask_detection.results import PersonEvent

VERDICT = PersonEvent("verdict", 7, 131, 5.2400001, "without_mask", 0.971234, xywh=(10, 20, 64, 80))
LEAVE = PersonEvent("leave", 7, 210, 8.4, "without_mask", 0.98, first_frame_index=120, frames=90)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the small file system, then free ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as stream:
        with pytest.raises(OSError):
            while True:
                stream.write(b"\0" * 4096)
        stream.truncate(max(0, stream.tell() - leave))


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_verdict_and_leave_records_have_the_issues_shapes():
    with_snapshot = event_record(VERDICT, "snapshots/track-000007.jpg")
    assert json.dumps(with_snapshot) == (
        '{"event": "verdict", "track": 7, "frame": 131, "time": 5.24, "label": "without_mask", '
        '"probability": 0.9712, "box": [10, 20, 64, 80], "snapshot": "snapshots/track-000007.jpg"}'
    )
    assert "snapshot" not in event_record(VERDICT, None)  # snapshots off
    assert event_record(VERDICT, None, snapshots=True)["snapshot"] is None  # on, but this one could not be saved
    assert json.dumps(event_record(LEAVE, None)) == (
        '{"event": "leave", "track": 7, "frame": 210, "time": 8.4, "label": "without_mask", '
        '"probability": 0.98, "first_frame": 120, "frames": 90, "judged": true}'
    )
    # Someone whose face was never big enough to judge: no label, no probability, and the leave event says so.
    unjudged = PersonEvent("leave", 8, 210, 8.4, None, None, first_frame_index=150, frames=60)
    assert json.dumps(event_record(unjudged, None)) == (
        '{"event": "leave", "track": 8, "frame": 210, "time": 8.4, "label": null, '
        '"probability": null, "first_frame": 150, "frames": 60, "judged": false}'
    )
    numpy_fields = PersonEvent(
        "verdict", np.int64(3), np.int64(5), np.float32(0.2), "with_mask", np.float32(0.5), xywh=tuple(np.arange(4))
    )
    json.dumps(event_record(numpy_fields))  # plain Python numbers, whatever the tracker hands over


def test_events_are_on_disk_line_by_line_while_the_writer_is_open(tmp_path):
    path = tmp_path / "out" / "events.jsonl"
    writer = EventWriter(path)
    assert path.read_bytes() == b""  # there from the start, for a follower
    writer.write(event_record(VERDICT))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [event_record(VERDICT)]
    writer.write(event_record(LEAVE))
    assert path.read_text().splitlines()[1] == json.dumps(event_record(LEAVE))
    writer.close()
    assert path.read_text().count("\n") == 2
    assert hidden_files(path.parent) == []


def test_an_old_events_file_is_a_log_appended_to_never_truncated(tmp_path):
    path = tmp_path / "events.jsonl"
    old = '{"event": "leave", "old": true}\n'
    path.write_text(old)
    inode = path.stat().st_ino
    with EventWriter(path) as writer:
        assert path.read_text() == old  # nothing lost when the run stops at once
        writer.write(event_record(LEAVE))
    assert path.read_text() == old + json.dumps(event_record(LEAVE)) + "\n"
    assert path.stat().st_ino == inode  # the same file: a follower (tail -F) keeps following it
    assert hidden_files(tmp_path) == []


def test_a_log_cut_off_mid_line_gets_its_line_ended_before_new_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event": "start"}\n{"event": "verd')  # a run killed mid-line (power cut)
    with EventWriter(path) as writer:
        writer.write(event_record(LEAVE))
    lines = path.read_text().split("\n")
    assert lines[:2] == ['{"event": "start"}', '{"event": "verd'] and lines[-1] == ""
    assert json.loads(lines[2]) == event_record(LEAVE)  # a line of its own, parseable


def test_events_into_a_fifo_are_written_as_a_stream(tmp_path):
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with EventWriter(fifo) as writer:  # opening waits for the reader, as a FIFO does
        writer.write(event_record(VERDICT))
        writer.write(event_record(LEAVE))
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert received == [(json.dumps(event_record(VERDICT)) + "\n" + json.dumps(event_record(LEAVE)) + "\n").encode()]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_dev_null_stays_a_device():
    with EventWriter("/dev/null") as writer:
        writer.write(event_record(VERDICT))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_link_to_a_pipe_is_written_through_not_replaced(tmp_path):
    read_end, write_end = os.pipe()
    link = tmp_path / "events.jsonl"
    link.symlink_to(f"/proc/{os.getpid()}/fd/{write_end}")
    try:
        with EventWriter(link) as writer:
            writer.write(event_record(LEAVE))
        assert os.read(read_end, 4096).decode() == json.dumps(event_record(LEAVE)) + "\n"
        assert link.is_symlink()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_events_to_a_stream_are_flushed_at_each_line():
    read_end, write_end = os.pipe()
    stream = io.TextIOWrapper(os.fdopen(write_end, "wb"), encoding="utf-8")
    writer = EventWriter(stream)
    writer.write(event_record(VERDICT))
    assert os.read(read_end, 4096).decode() == json.dumps(event_record(VERDICT)) + "\n"  # not held in a buffer
    writer.close()
    assert not stream.closed  # the stream belongs to the caller (stdout)
    stream.close()
    os.close(read_end)


def test_a_full_disk_stops_the_events_with_one_error_and_whole_lines_only(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        fill(disk, leave=4096)  # room for a few lines, then a line cut in the middle by the full disk
        writer = EventWriter(disk / "events.jsonl")
        written = 0
        with pytest.raises(OutputError) as error:
            while written < 1000:
                writer.write(event_record(VERDICT))
                written += 1
        assert str(error.value) == f"cannot write {disk / 'events.jsonl'}: No space left on device"
        writer.write(event_record(LEAVE))  # after the error: nothing, no second error
        writer.close()
        lines = (disk / "events.jsonl").read_text().split("\n")
        assert lines[-1] == ""  # ends with a whole line
        assert [json.loads(line) for line in lines[:-1]] == [event_record(VERDICT)] * written
        assert written > 5
        assert hidden_files(disk) == []


def test_an_events_file_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"^cannot write .*file/events.jsonl: (Not a directory|File exists)$"):
        EventWriter(tmp_path / "file" / "events.jsonl")


def test_snapshots_are_atomic_named_by_run_and_track_and_replaced_by_a_better_view(tmp_path):
    face = face_photo()
    folder = tmp_path / "snapshots"
    warnings = []
    snapshots = SnapshotWriter(folder, warnings.append, run="R1")
    assert snapshots.save(7, face) == str(folder / "R1_track-000007.jpg")
    better = cv2.resize(face, None, fx=1.5, fy=1.5)
    assert snapshots.save(7, better) == str(folder / "R1_track-000007.jpg")
    assert snapshots.save(12345678, face) == str(folder / "R1_track-12345678.jpg")
    assert sorted(p.name for p in folder.iterdir()) == ["R1_track-000007.jpg", "R1_track-12345678.jpg"]  # no temp
    saved = cv2.imread(str(folder / "R1_track-000007.jpg"))
    assert saved.shape == better.shape
    assert np.abs(saved.astype(int) - better).mean() < 4  # the JPEG of the better view
    assert warnings == []


def test_a_second_run_into_the_same_folder_never_replaces_the_first_runs_snapshots(tmp_path):
    folder = tmp_path / "snapshots"
    first = SnapshotWriter(folder, print)
    first_path = first.save(7, face_photo())
    before = open(first_path, "rb").read()
    second = SnapshotWriter(folder, print)
    assert second.run != first.run
    second_path = second.save(7, cv2.flip(face_photo(), 1))
    assert second_path != first_path
    assert open(first_path, "rb").read() == before  # the first run's events still point at their own person


def test_a_file_this_run_did_not_write_is_never_replaced(tmp_path):
    folder = tmp_path / "snapshots"
    folder.mkdir()
    (folder / "R_track-000001.jpg").write_bytes(b"someone else's")
    warnings = []
    snapshots = SnapshotWriter(folder, warnings.append, run="R")
    assert snapshots.save(1, face_photo()) is None
    assert (folder / "R_track-000001.jpg").read_bytes() == b"someone else's"
    assert len(warnings) == 1 and "this run did not write it" in warnings[0]


def test_snapshot_paths_are_the_folder_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert SnapshotWriter("snapshots", print, run="R").save(7, face_photo()) == "snapshots/R_track-000007.jpg"
    assert SnapshotWriter("./shots/", print, run="R").save(7, face_photo()) == "shots/R_track-000007.jpg"
    assert (tmp_path / "shots" / "R_track-000007.jpg").is_file()


def test_a_full_disk_gives_one_snapshot_warning_and_the_run_goes_on(tmp_path):
    face = face_photo()
    with small_disk(tmp_path / "disk", "1m") as disk:
        warnings = []
        snapshots = SnapshotWriter(disk / "snapshots", warnings.append, run="R")
        assert snapshots.save(1, face) is not None  # room at first
        fill(disk)
        assert [snapshots.save(track, face) for track in (2, 3, 4, 1)] == [None] * 4
        assert warnings == [
            f"cannot write {disk / 'snapshots' / 'R_track-000002.jpg'}: No space left on device; "
            "no more snapshots are saved in this run"
        ]
        assert sorted(p.name for p in (disk / "snapshots").iterdir()) == ["R_track-000001.jpg"]  # no temp file
        assert cv2.imread(str(disk / "snapshots" / "R_track-000001.jpg")) is not None  # the earlier one intact


def test_an_unwritable_snapshot_folder_is_refused_before_the_run_or_warned_once(tmp_path):
    blocked = tmp_path / "file" / "snapshots"
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is not a folder"):
        SnapshotWriter.check(blocked)
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        SnapshotWriter.check(tmp_path / "file")
    assert SnapshotWriter.check(tmp_path / "new" / "snapshots") == tmp_path / "new" / "snapshots"
    assert not (tmp_path / "new").exists()  # the check creates nothing
    warnings = []
    snapshots = SnapshotWriter(blocked, warnings.append, run="R")  # e.g. the folder became a file mid-run
    assert [snapshots.save(track, face_photo()) for track in (1, 2)] == [None, None]
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot write {blocked / 'R_track-000001.jpg'}: ")


def test_names_that_are_not_utf8_are_written_and_shown_escaped_in_strict_json(tmp_path):
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    snapshots = SnapshotWriter(folder / "snap\xff", print, run="R")
    snapshot = snapshots.save(7, face_photo())
    events_path = folder / "\udce9v\udce9nements.jsonl"
    with EventWriter(events_path) as writer:
        writer.write(event_record(VERDICT, snapshot))
    line = events_path.read_bytes().decode("ascii")  # plain ASCII JSON, whatever bytes the names hold
    assert "\\ud" not in line  # no lone surrogates: strict JSON parsers refuse them
    shown = json.loads(line)["snapshot"]
    assert shown == f"{tmp_path}/caf\\xe9/snap\xff/R_track-000007.jpg"  # escaped as every printed name is
    real = os.fsencode(tmp_path) + b"/caf\xe9/snap\xc3\xbf/R_track-000007.jpg"
    assert cv2.imdecode(np.fromfile(os.fsdecode(real), np.uint8), cv2.IMREAD_COLOR) is not None
    assert sorted(os.listdir(os.fsencode(folder))) == [b"snap\xc3\xbf", b"\xe9v\xe9nements.jsonl"]


def test_run_ids_sort_by_time_and_differ():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) > 1
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", i) for i in ids)
    record = event_record(VERDICT, run="R")
    assert list(record)[:3] == ["event", "run", "track"]
