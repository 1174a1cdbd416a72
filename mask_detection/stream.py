"""The video loop, as a generator: frames from a source through a frame processor, drawn and written as they go.

One seam for every frame: a processor (``interfaces.FrameProcessor``) turns a frame into a ``FrameResult``, and
``finish`` ends the run for it. Two processors exist: ``pipeline.PerFrameProcessor`` (every face of every frame
classified on its own) and ``people.PeoplePipeline`` (faces followed across frames, one verdict per person,
events). ``process_stream`` calls ``finish`` itself, on every way out, so every person still in view gets a leave
event whoever runs the loop (the command, the evaluation, the benchmark, a service). Printing, windows and exit
codes are the caller's.
"""

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from .detections import Detection
from .errors import MaskDetectionError
from .interfaces import FrameProcessor, VideoSource
from .interrupts import StopFlag
from .overlay import count_labels, draw_result
from .results import FrameResult, PersonEvent, Timings
from .video_io import FpsMeter, VideoOutput

EventSink = Callable[[list[PersonEvent]], None]


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
    source: VideoSource,
    processor: FrameProcessor,
    writer: VideoOutput | None = None,
    stop: StopFlag | None = None,
    max_frames: int | None = None,
    draw: bool = False,
    on_events: EventSink | None = None,
    timings: Timings | None = None,
) -> Generator[FrameResult, None, None]:
    """Read, process, draw (when ``writer`` is given or ``draw``) and write each frame, then yield its result.

    Ends at the end of the source (``source.failure`` then says whether it broke off), after ``max_frames``
    frames, or before the next frame once ``stop.set`` is true (a signal arrived). The frame is written before it
    is yielded, so the output video always holds every frame handed out.

    ``on_events`` hears every person event of the run, in order: each frame's (also in its ``FrameResult``) and
    those ``processor.finish`` gives on the way out, at the last frame processed. The way out includes the caller
    leaving the loop early: close the generator then (``contextlib.closing``), so the people still in view get
    their leave events at once. ``timings``: seconds spent reading ("read"), drawing ("draw") and writing
    ("write") frames are added to it (the processor keeps its own stages).
    """
    if max_frames is not None and max_frames < 1:
        raise MaskDetectionError(f"the frame limit must be at least 1, got {max_frames}")
    meter = FpsMeter()
    timings = timings if timings is not None else Timings()
    last: FrameResult | None = None
    try:
        while (max_frames is None or last is None or last.frame_index + 1 < max_frames) and not (
            stop is not None and stop.set
        ):
            with timings.stage("read"):
                item = source.read()
            if item is None:
                return
            frame, timestamp = item
            result = processor.process(frame, 0 if last is None else last.frame_index + 1, timestamp)
            last = result
            fps = meter.tick()
            if writer is not None or draw:
                with timings.stage("draw"):
                    draw_result(result, processor.class_names, fps)
            if writer is not None:
                with timings.stage("write"):
                    writer.write(result.image)
            if on_events is not None and result.events:
                on_events(result.events)
            yield result
    finally:
        if last is not None:
            closing = processor.finish(last.frame_index, last.time)
            if on_events is not None and closing:
                on_events(closing)
