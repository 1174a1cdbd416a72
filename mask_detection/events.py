"""What a video run tells other systems about each person: JSON Lines events and one snapshot per person.

``EventWriter`` writes one event a line, flushed at once, so another program can follow the file while the run
goes on (``tail -F``). ``event_record`` builds an event's JSON form (a public format). ``SnapshotWriter`` saves
each person's best view of the face as a JPEG named after the track.

The events are ``results.PersonEvent``s, the type every frame processor hands out.
"""

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .errors import OutputError
from .fileio import check_writable, display_path, is_stream_target, safe_text, signals_held
from .images import write_image
from .results import PersonEvent


def new_run_id() -> str:
    """A run's id: its start time (UTC, to the second) and four random hex digits, e.g. ``20261203T131500Z-3fa9``.

    Sorts by time; two runs started in the same second differ by their random part. It marks every event line
    of a run and names its snapshots, so runs that share an events file or a snapshot folder never mix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def event_record(
    event: PersonEvent, snapshot_path: str | os.PathLike | None = None, snapshots: bool = False, run: str | None = None
) -> dict[str, Any]:
    """The JSON form of one event (rounded like ``Detection.to_json``).

    ``run``: the run's id, as a ``"run"`` key after ``"event"``. Verdict events carry the face box and, when
    snapshots are on (``snapshots`` or a ``snapshot_path``), a ``"snapshot"`` key: the picture's path (bytes that
    are not UTF-8 shown as ``\\xNN`` escapes, so the line is strict JSON), or null when it could not be saved.
    Leave events carry the person's first frame, the number of frames they were seen in and ``"judged"``: false
    (with ``"label"`` and ``"probability"`` null) for a person whose face was never big enough to judge, who has
    no verdict event (verdict events are always of a judged person).
    """
    record: dict[str, Any] = {"event": event.kind}
    if run is not None:
        record["run"] = run
    record.update(
        {
            "track": int(event.track_id),
            "frame": int(event.frame_index),
            "time": round(float(event.time), 3),
            "label": event.class_name,
            "probability": None if event.probability is None else round(float(event.probability), 4),
        }
    )
    if event.kind == "verdict":
        assert event.xywh is not None  # verdict events carry the face box (leave events do not)
        record["box"] = [int(v) for v in event.xywh]
        if snapshots or snapshot_path is not None:
            record["snapshot"] = None if snapshot_path is None else display_path(snapshot_path)
    elif event.kind == "leave":
        assert event.first_frame_index is not None and event.frames is not None  # leave events carry both
        record["first_frame"] = int(event.first_frame_index)
        record["frames"] = int(event.frames)
        record["judged"] = event.judged
    else:
        raise ValueError(f"unknown event kind {event.kind!r}")
    return record


def start_record(run: str, source: str) -> dict[str, Any]:
    """The first line a run writes: its id, when it started (UTC, ISO 8601) and what it reads."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"event": "start", "run": run, "started": started, "source": safe_text(source)}


def end_record(run: str, frames: int) -> dict[str, Any]:
    """The last line of a run that ended in order (any way but a crash): the frames it processed."""
    return {"event": "end", "run": run, "frames": int(frames)}


class EventWriter:
    """JSON Lines, one event a line, each line flushed as it is written.

    A path is a log: its lines are appended to, never truncated or replaced, so an earlier run's events stay
    (each run's lines carry its ``"run"`` id, after its ``start`` line). A FIFO or a device (``/dev/null``, a
    terminal, ``/proc/self/fd/1``) is written into as the stream it is. A stream object (``sys.stdout``): lines
    are written and flushed; it is not closed.

    A failed write (a full disk) raises OutputError once, after cutting the file back to its last complete line,
    so every line in it is a whole event; later writes do nothing. The run should stop there rather than go on
    without its record: a consumer following the file would silently miss every later event (people who leave
    would never get their leave event), while stopping tells the operator at once and the other outputs are
    finalised as on any error.
    """

    def __init__(self, target: str | os.PathLike | TextIO) -> None:
        self._failed = False
        if isinstance(target, str | os.PathLike):
            self.name = display_path(target)
            self._file = _open_log(Path(target))
            self._owned = True
        else:
            self.name = getattr(target, "name", "the output stream")
            self._file = target
            self._owned = False

    def write(self, record: dict[str, Any]) -> None:
        if self._failed:
            return
        line = json.dumps(record) + "\n"
        try:
            if self._owned:
                _write_whole_line(self._file, line.encode("utf-8"))
            else:
                self._file.write(line)
                self._file.flush()
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the command's usual quiet end
        except OSError as exc:
            self._failed = True
            raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._owned and not self._file.closed:
            self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_log(path: Path):
    """An unbuffered binary file at ``path`` to append to (created when missing), positioned after the last whole
    line: an earlier run cut off mid-line (a crash) gets its line ended first, so ours start on lines of their own.
    """
    try:
        if not is_stream_target(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "ab", buffering=0)  # kept open for the whole run
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
    try:
        if stream.seekable() and stream.tell() > 0:
            with open(path, "rb") as old:
                old.seek(-1, os.SEEK_END)
                if old.read(1) != b"\n":
                    stream.write(b"\n")
    except OSError as exc:
        stream.close()
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
    return stream


def _write_whole_line(stream, data: bytes) -> None:
    """Append ``data`` in full, or cut the file back to where it was (a half line would break every reader)."""
    start = stream.tell() if stream.seekable() else None
    view = memoryview(data)
    with signals_held():  # Ctrl-C or SIGTERM between two parts of a line would leave half of it
        try:
            while view:
                view = view[stream.write(view) :]
        except OSError:
            if start is not None:
                with contextlib.suppress(OSError):  # truncating frees space, so it works on a full disk
                    stream.truncate(start)
                    stream.seek(start)
            raise


SNAPSHOT_NAME = "{run}_track-{track:06d}.jpg"


class SnapshotWriter:
    """One JPEG per person, ``<run>_track-000007.jpg`` in ``folder``, written atomically; a later save of the
    same track replaces it (a better view). The run id in the name keeps runs that share a folder apart: a second
    run never replaces the first run's pictures, so every event keeps pointing at its own person. A file of that
    name that this writer did not write is never replaced.

    A full disk or an unwritable folder gives ONE warning through ``warn`` and no more snapshots for the rest
    of the run (``save`` returns None): a missing picture must not stop the people count or the events.
    """

    def __init__(self, folder: str | os.PathLike, warn: Callable[[str], None], run: str | None = None) -> None:
        self.folder = Path(folder)
        self.warn = warn
        self.run = run if run is not None else new_run_id()
        self._failed = False
        self._written: set[Path] = set()

    @staticmethod
    def check(folder: str | os.PathLike) -> Path:
        """Raise OutputError unless snapshots can be written in ``folder``; call it before the slow part."""
        return check_writable(folder, folder=True)

    def path_for(self, track_id: int) -> Path:
        return self.folder / SNAPSHOT_NAME.format(run=self.run, track=int(track_id))

    def save(self, track_id: int, bgr_crop: np.ndarray) -> str | None:
        """Write the track's snapshot; returns its path as the events show it (the folder as given, joined with
        the name), or None once saving has failed."""
        if self._failed:
            return None
        path = self.path_for(track_id)
        try:
            if path not in self._written and os.path.lexists(path):
                raise OutputError(f"refusing to replace {display_path(path)}: this run did not write it")
            write_image(path, bgr_crop)  # encoded in memory, written atomically
        except OutputError as exc:
            self._failed = True
            self.warn(f"{exc}; no more snapshots are saved in this run")
            return None
        self._written.add(path)
        return os.fspath(path)
