"""The video loop, as a generator: frames from a source through the pipeline, drawn and written as they go.

Two modes: per frame (``MaskPipeline``: every face of every frame classified on its own) and tracked
(``people.PeoplePipeline``: faces followed across frames, one verdict per person, events). Printing, windows and
exit codes are the caller's (``commands.detect_webcam``); an HTTP service can consume the same ``FrameResult``
stream. In tracked mode the caller ends the run with ``PeoplePipeline.finish`` on every way out, so every person
still in view gets a leave event.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .detections import Detection
from .errors import MaskDetectionError
from .interrupts import StopFlag
from .overlay import annotate, annotate_people, count_labels
from .people import PeoplePipeline, PersonEvent
from .pipeline import MaskPipeline
from .video_io import FileSource, FpsMeter, LiveSource, VideoOutput


@dataclass(frozen=True)
class FrameResult:
    """One processed frame."""

    index: int  # among the frames processed (the output video's frames), from 0
    time: float  # seconds: the position in a video file; since the start for a camera or stream
    detections: list[Detection]  # tracked mode: the people's current verdicts, with track ids
    frame: np.ndarray  # BGR; carries the overlay when it was drawn
    events: list[PersonEvent] = field(default_factory=list)  # tracked mode: what happened to people at this frame
    alert: bool = False  # tracked mode: a person with a settled without_mask verdict is in view


@dataclass
class StreamTally:
    """Running totals over the frames of a stream."""

    frames: int = 0
    faces: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # faces per class name

    def add(self, detections: Sequence[Detection]) -> None:
        self.frames += 1
        self.faces += len(detections)
        for name, n in count_labels(detections).items():
            self.counts[name] = self.counts.get(name, 0) + n


def process_stream(
    source: FileSource | LiveSource,
    pipeline: MaskPipeline,
    writer: VideoOutput | None = None,
    stop: StopFlag | None = None,
    max_frames: int | None = None,
    draw: bool = False,
    people: PeoplePipeline | None = None,
) -> Iterator[FrameResult]:
    """Read, detect, draw (when ``writer`` is given or ``draw``) and write each frame, then yield its result.

    ``people``: tracked mode (built on ``pipeline``); None: per frame. Ends at the end of the source
    (``source.failure`` then says whether it broke off), after ``max_frames`` frames, or before the next frame
    once ``stop.set`` is true (a signal arrived). The frame is written before it is yielded, so the output video
    always holds every frame handed out.
    """
    if max_frames is not None and max_frames < 1:
        raise MaskDetectionError(f"the frame limit must be at least 1, got {max_frames}")
    meter = FpsMeter()
    index = 0
    while (max_frames is None or index < max_frames) and not (stop is not None and stop.set):
        item = source.read()
        if item is None:
            return
        frame, timestamp = item
        if people is None:
            result = FrameResult(index, timestamp, pipeline.process(frame), frame)
        else:
            found = people.process(frame, index, timestamp)
            result = FrameResult(index, timestamp, found.detections, frame, found.events, found.alert)
        fps = meter.tick()
        if writer is not None or draw:
            if people is None:
                annotate(frame, result.detections, pipeline.class_names, fps=fps)
            else:
                annotate_people(frame, result.detections, people.people_counts, result.alert, pipeline.class_names, fps)
        if writer is not None:
            writer.write(frame)
        yield result
        index += 1
