"""The library's small public API (re-exported by ``mask_detection``): load the pipeline, detect on one image,
follow a video. The commands are thin command lines over the same parts."""

import os
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from .detections import Detection
from .images import decode_photo
from .people import PeoplePipeline, TrackingConfig
from .pipeline import MaskPipeline, PerFrameProcessor, detect_photo, load_pipeline
from .results import FrameResult, PersonEvent
from .stream import process_stream
from .video_io import open_source


def detect_image(image: str | os.PathLike | np.ndarray, pipeline: MaskPipeline | None = None) -> list[Detection]:
    """Every face of one picture, classified, best face score first: a path (any size: huge photos are decoded
    bounded, boxes reported in the original's pixels) or a BGR uint8 array. ``pipeline``: by default the shipped
    (or your ``models/``) detector and classifier, loaded for this call: load it once for many pictures."""
    pipeline = pipeline if pipeline is not None else load_pipeline()
    if isinstance(image, np.ndarray):
        return pipeline.process(image)
    rgb, full_shape = decode_photo(os.fspath(image))
    return detect_photo(pipeline, rgb, full_shape).reported


def follow_video(
    source: str | os.PathLike | int,
    pipeline: MaskPipeline | None = None,
    per_frame: bool = False,
    max_frames: int | None = None,
    tracking: TrackingConfig | None = None,
    on_events: Callable[[list[PersonEvent]], None] | None = None,
) -> Iterator[FrameResult]:
    """Every frame of a video file, stream URL or camera (an int) through the tracked pipeline (one verdict per
    person, events) or, with ``per_frame``, each frame on its own.

    Each frame is handed out once the next one has been read, so the last frame also carries the events of the
    people still in view at the end (their leave events). ``on_events`` hears every event as it happens. Closing
    the iterator early (``break``) closes the source. ``pipeline``: by default the shipped one, for video (no
    enlarging of small frames)."""
    pipeline = pipeline if pipeline is not None else load_pipeline(upscale=1.0)
    if isinstance(source, int):
        video = open_source(camera=source)
    else:
        video = open_source(video=os.fspath(source))
    try:
        processor = PerFrameProcessor(pipeline) if per_frame else PeoplePipeline(pipeline, tracking, fps=video.fps)
        since_last: list[PersonEvent] = []  # the events heard since the last frame came out

        def hear(events: list[PersonEvent]) -> None:
            since_last.extend(events)
            if on_events is not None:
                on_events(events)

        held = None
        for result in process_stream(video, processor, max_frames=max_frames, on_events=hear):
            if held is not None:
                yield held
            since_last.clear()  # this frame's own events, already in result.events
            held = result
        if held is not None:
            yield replace(held, events=held.events + since_last) if since_last else held
    finally:
        video.close()
