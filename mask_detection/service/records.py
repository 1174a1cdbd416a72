"""The service's public payloads: person events (new / verdict / leave, with before and after) and camera state.

One form everywhere: the SQLite store keeps it, the HTTP API and Server-Sent Events hand it out, MQTT publishes it
and the webhook posts it. Its JSON Schemas are ``docs/schemas/event.schema.json`` and ``state.schema.json``
(``SCHEMA_VERSION``; a change that could break a consumer raises it).

An event's ``id`` is ``<camera>-<run>-<sequence>``: the run id holds the start time and random digits
(``events.new_run_id``), so an id never repeats across runs, restarts or cameras, and consumers that receive an
event twice (MQTT delivers at least once) de-duplicate by it.
"""

import re
import time
from collections.abc import Callable
from typing import Any

from ..detections import Detection
from ..errors import MaskDetectionError
from ..results import FrameResult, PeopleCounts, PersonEvent

SCHEMA_VERSION = 1
EVENT_TYPES = ("new", "verdict", "leave")
# Camera names go into MQTT topics, URLs, Home Assistant ids and file names: lower-case letters, digits, - and _.
_CAMERA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# What a camera is doing: frames arriving ("live"), none for a while ("stalled"), none for long or cannot be
# opened ("offline"), a video file played to its end ("ended"), not yet delivering ("starting").
STATUSES = ("starting", "live", "stalled", "offline", "ended")

Event = dict[str, Any]
State = dict[str, Any]


def check_camera_name(name: str) -> str:
    if not _CAMERA_NAME.fullmatch(name):
        raise MaskDetectionError(
            f"camera name {name!r}: use 1 to 63 lower-case letters, digits, - and _, starting with a letter or digit"
        )
    return name


def _view(
    label: str | None,
    probability: float | None,
    box: Any,
    judged: bool,
    settled: bool,
) -> dict[str, Any]:
    """What is known of a person at one moment: the ``before`` and ``after`` of an event."""
    return {
        "label": label if judged else None,
        "probability": None if probability is None or not judged else round(float(probability), 4),
        "box": None if box is None else [int(v) for v in box],
        "judged": bool(judged),
        "settled": bool(settled),
    }


class EventRecorder:
    """Turns the tracked pipeline's frames into service events for one camera run.

    ``new``: a person appears (their track is confirmed: the frame their face first shows in the results);
    ``verdict``: their verdict is settled or changes (``PersonEvent`` "verdict"); ``leave``: their track ended.
    Each carries ``before`` (what the previous event of that person said; null for ``new``) and ``after``.
    ``clock``: the wall clock for the events' ``time`` (seconds since the epoch).
    """

    def __init__(self, camera: str, run: str, clock: Callable[[], float] = time.time) -> None:
        self.camera = check_camera_name(camera)
        self.run = run
        self.clock = clock
        self._sequence = 0
        self._last: dict[int, dict[str, Any]] = {}  # each person in view: the ``after`` of their latest event

    def frame(self, result: FrameResult) -> list[Event]:
        """The events of one frame, in order: people who appear, then the frame's verdicts and leaves."""
        events = []
        for detection in result.detections:
            track = detection.track_id
            if track is None or track in self._last:
                continue
            after = _view(
                detection.class_name,
                detection.probability,
                detection.xywh,
                detection.judged,
                bool(detection.settled),
            )
            events.append(self._event("new", track, result.frame_index, result.time, None, after))
        events.extend(self.person_events(result.events))
        return events

    def person_events(self, person_events: list[PersonEvent]) -> list[Event]:
        """Service events for the pipeline's own events (also those ``finish`` gives at the end of a run)."""
        events = []
        for item in person_events:
            before = self._last.get(item.track_id)
            if item.kind == "verdict":
                after = _view(item.class_name, item.probability, item.xywh, True, True)
            else:
                box = None if before is None else before["box"]
                after = _view(item.class_name, item.probability, box, item.judged, item.judged)
                after["first_frame"] = item.first_frame_index
                after["frames"] = item.frames
            events.append(self._event(item.kind, item.track_id, item.frame_index, item.time, before, after))
        return events

    def _event(self, kind: str, track: int, frame: int, video_time: float, before: dict | None, after: dict) -> Event:
        self._sequence += 1
        if kind == "leave":
            self._last.pop(track, None)
        else:
            self._last[track] = {k: after[k] for k in ("label", "probability", "box", "judged", "settled")}
        return {
            "schema": SCHEMA_VERSION,
            "id": f"{self.camera}-{self.run}-{self._sequence:06d}",
            "type": kind,
            "camera": self.camera,
            "run": self.run,
            "time": round(self.clock(), 3),
            "video_time": round(float(video_time), 3),
            "frame": int(frame),
            "track": int(track),
            "before": before,
            "after": after,
            "alert": False,
            "has_snapshot": False,
        }


def people_json(people: PeopleCounts | None, class_names: list[str]) -> dict[str, Any]:
    """The people counted so far in a run: total, judged by class, too small to judge."""
    by_class = {name: 0 for name in class_names}
    if people is not None:
        by_class.update(people.by_class)
    unjudged = 0 if people is None else people.unjudged
    return {"total": sum(by_class.values()) + unjudged, "by_class": by_class, "unjudged": unjudged}


def camera_state(
    camera: str,
    status: str,
    class_names: list[str],
    in_view: list[Detection],
    alert: bool,
    people: PeopleCounts | None,
    fps: float,
    frame_age: float | None,
    frames: int = 0,
    problem: str | None = None,
    clock: Callable[[], float] = time.time,
) -> State:
    """A camera's state (MQTT ``<prefix>/<camera>/state``, the API's ``/api/cameras``): who is in view now (by
    current verdict, and not judged yet or too small), the alert, the run's people counts, and its health
    (``problem``: why it is not live)."""
    by_class = {name: 0 for name in class_names}
    unjudged = 0
    for detection in in_view:
        if detection.judged and detection.class_name in by_class:
            by_class[detection.class_name] += 1
        else:
            unjudged += 1
    return {
        "schema": SCHEMA_VERSION,
        "camera": camera,
        "time": round(clock(), 3),
        "status": status,
        "problem": problem,
        "fps": round(float(fps), 1),
        "frame_age": None if frame_age is None else round(float(frame_age), 3),
        "frames": int(frames),
        "in_view": sum(by_class.values()) + unjudged,
        "in_view_by_class": by_class,
        "in_view_unjudged": unjudged,
        "alert": bool(alert),
        "people": people_json(people, class_names),
    }
