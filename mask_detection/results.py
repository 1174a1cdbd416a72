"""What the frame seam hands out: one processed video frame (``FrameResult``), what happened to a person
(``PersonEvent``), the people counted so far (``PeopleCounts``) and where the time went (``Timings``).

Every frame processor (per frame or tracked), the video loop, the commands, the evaluation, the benchmark and the
service speak these types; the lower layers (events, overlay) take them as they are.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .detections import Box, Detection, Face


@dataclass(frozen=True)
class PersonEvent:
    """Something that happened to one person (one track) at one frame."""

    kind: str  # "verdict" (first settled, or changed) or "leave" (the track ended)
    track_id: int
    frame_index: int  # the frame it happened at, among the frames processed
    time: float  # seconds: the position in a video file; since the start for a camera or stream
    class_name: str | None  # the verdict; None (leave events only) for a person never judged: every view too small
    probability: float | None  # the fused probability of ``class_name``; None with it
    xywh: Box | None = None  # verdict events: the face box in this frame
    first_frame_index: int | None = None  # leave events: the frame the person was first seen at
    frames: int | None = None  # leave events: how many frames the person was seen in
    snapshot: np.ndarray | None = None  # verdict events: the best view of the face so far (BGR crop, with margin)

    @property
    def judged(self) -> bool:
        """Whether the person has a verdict (always, for verdict events)."""
        return self.class_name is not None


@dataclass(frozen=True)
class PeopleCounts:
    """People counted so far in a run (tracks that became persons, gone or still in view): those judged by current
    verdict (every class of the model is a key), and those seen but never judged (every view of the face smaller
    than the judging size)."""

    by_class: dict[str, int]
    unjudged: int = 0

    @property
    def judged(self) -> int:
        return sum(self.by_class.values())

    @property
    def total(self) -> int:
        return self.judged + self.unjudged


@dataclass(frozen=True)
class FrameResult:
    """One processed frame."""

    frame_index: int  # among the frames processed (the output video's frames), from 0
    time: float  # seconds: the position in a video file; since the start for a camera or stream
    detections: list[Detection]  # tracked: the people's current verdicts, with track ids; per frame: each face's
    image: np.ndarray  # the BGR frame; carries the overlay once it is drawn
    events: list[PersonEvent] = field(default_factory=list)  # tracked: what happened to people at this frame
    alert: bool = False  # tracked: a person with a settled without_mask verdict is in view (never from the unjudged)
    people: PeopleCounts | None = None  # tracked: the people counted so far; None per frame
    # Tracked: every face the detector found in this frame, also those not (yet) a person's (what privacy blurs).
    faces: list[Face] = field(default_factory=list)


class Timings(dict[str, float]):
    """Seconds spent per stage ("detect", "crop", "track", "classify", ...), added up over the frames."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started
