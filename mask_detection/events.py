"""What a video run tells other systems about each person: JSON Lines events and one snapshot per person.

``EventWriter`` writes one event a line, flushed at once, so another program can follow the file while the run
goes on (``tail -F``). ``event_record`` builds an event's JSON form (a public format). ``SnapshotWriter`` saves
each person's best view of the face as a JPEG named after the track.

The events take their fields by name from any object shaped like ``people.PersonEvent`` (kind, track_id, frame,
time, class_name, probability, xywh, first_frame, frames): this module sits below the application layer.
"""

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from .detections import Box
from .errors import OutputError
from .fileio import check_writable, display_path, signals_held, temporary_path
from .images import write_image


class EventLike(Protocol):
    kind: str  # "verdict" or "leave"
    track_id: int
    frame: int
    time: float
    class_name: str
    probability: float
    xywh: Box | None
    first_frame: int | None
    frames: int | None


def event_record(event: EventLike, snapshot_path: str | None = None, snapshots: bool = False) -> dict[str, Any]:
    """The JSON form of one event (rounded like ``Detection.to_json``).

    Verdict events carry the face box and, when snapshots are on (``snapshots`` or a ``snapshot_path``), a
    ``"snapshot"`` key: the picture's path, or null when it could not be saved. Leave events carry the person's
    first frame and the number of frames they were seen in.
    """
    record: dict[str, Any] = {
        "event": event.kind,
        "track": int(event.track_id),
        "frame": int(event.frame),
        "time": round(float(event.time), 3),
        "label": event.class_name,
        "probability": round(float(event.probability), 4),
    }
    if event.kind == "verdict":
        record["box"] = [int(v) for v in event.xywh]
        if snapshots or snapshot_path is not None:
            record["snapshot"] = snapshot_path
    elif event.kind == "leave":
        record["first_frame"] = int(event.first_frame)
        record["frames"] = int(event.frames)
    else:
        raise ValueError(f"unknown event kind {event.kind!r}")
    return record


class EventWriter:
    """JSON Lines, one event a line, each line flushed as it is written.

    A path: the file is created fresh beside the target and renamed into place at once, before the first event,
    so a follower sees this run's file from the start and never an old file's lines mixed with new ones; then
    each event is appended and flushed. (Not written whole at the end like the other outputs: followers need
    it live.) A stream (``sys.stdout``): lines are written and flushed; it is not closed.

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
            self._file = _open_fresh(Path(target))
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


def _open_fresh(path: Path):
    """An unbuffered binary file at ``path``, new and empty, replacing any file there in one rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        stream = None
        try:
            stream = open(tmp, "ab", buffering=0)  # kept open for the whole run
            os.replace(tmp, path)  # the open file is now the target
        except BaseException:
            if stream is not None:
                stream.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
    return stream


def _write_whole_line(stream, data: bytes) -> None:
    """Append ``data`` in full, or cut the file back to where it was (a half line would break every reader)."""
    start = stream.tell()
    view = memoryview(data)
    with signals_held():  # Ctrl-C or SIGTERM between two parts of a line would leave half of it
        try:
            while view:
                view = view[stream.write(view) :]
        except OSError:
            with contextlib.suppress(OSError):  # truncating frees space, so it works on a full disk
                stream.truncate(start)
                stream.seek(start)
            raise


SNAPSHOT_NAME = "track-{:06d}.jpg"


class SnapshotWriter:
    """One JPEG per person, ``track-000007.jpg`` in ``folder``, written atomically; a later save of the same
    track replaces it (a better view).

    A full disk or an unwritable folder gives ONE warning through ``warn`` and no more snapshots for the rest
    of the run (``save`` returns None): a missing picture must not stop the people count or the events.
    """

    def __init__(self, folder: str | os.PathLike, warn: Callable[[str], None]) -> None:
        self.folder = Path(folder)
        self.warn = warn
        self._failed = False

    @staticmethod
    def check(folder: str | os.PathLike) -> Path:
        """Raise OutputError unless snapshots can be written in ``folder``; call it before the slow part."""
        return check_writable(folder, folder=True)

    def save(self, track_id: int, bgr_crop: np.ndarray) -> str | None:
        """Write the track's snapshot; returns its path as the events show it (the folder as given, joined with
        the name), or None once saving has failed."""
        if self._failed:
            return None
        path = self.folder / SNAPSHOT_NAME.format(int(track_id))
        try:
            write_image(path, bgr_crop)  # encoded in memory, written atomically
        except OutputError as exc:
            self._failed = True
            self.warn(f"{exc}; no more snapshots are saved in this run")
            return None
        return os.fspath(path)
