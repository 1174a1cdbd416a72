"""The seams of the pipeline: what a face detector, a classifier and a frame processor must offer (structural, no
base class).

Implementations: ``detector.YuNetDetector``; ``classifier.KerasClassifier`` and ``litert.LiteRTClassifier``,
chosen by ``classifier.load_classifier``. One instance of each is meant for one thread: detectors keep per-frame
state (YuNet's input size), LiteRT interpreters are not thread-safe. Give each thread its own pipeline.
"""

from pathlib import Path
from typing import Protocol

import numpy as np

from .detections import Face
from .results import FrameResult, PeopleCounts, PersonEvent, Timings


class FaceDetector(Protocol):
    model_path: Path
    upscale: float  # factor small photos are enlarged by for detection (1: never)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 image, best score first."""
        ...


class Classifier(Protocol):
    class_names: list[str]
    input_size: int
    crop: str  # the crop style it was trained on: crop.SQUARE or crop.ALIGNED (see crop.py)

    @property
    def path(self) -> Path | None:
        """The model file; None for a model held in memory only."""
        ...

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, S, S, 3) -> float32 class probabilities (N, len(class_names))."""
        ...


class FrameProcessor(Protocol):
    """The one seam for video frames: ``pipeline.PerFrameProcessor`` and ``people.PeoplePipeline`` implement it,
    and ``stream.process_stream`` drives it (and calls ``finish`` on every way out)."""

    class_names: list[str]
    timings: Timings  # seconds per stage, added up over the frames

    @property
    def people(self) -> PeopleCounts | None:
        """The people counted so far (tracked); None when none are counted."""
        ...

    def process(self, bgr: np.ndarray, frame_index: int, time: float) -> FrameResult:
        """One BGR uint8 frame (frames in order) -> its result; the frame itself becomes ``result.image``."""
        ...

    def finish(self, frame_index: int, time: float) -> list[PersonEvent]:
        """End the run at the last frame processed: the events of people still in view (none per frame)."""
        ...


class VideoSource(Protocol):
    """Frames in order: ``video_io.FileSource`` (every frame of a file), ``video_io.LiveSource`` (a camera or
    stream, the newest frame), or any other (a benchmark's frames in memory)."""

    name: str
    fps: float
    live: bool  # frames are dropped when processing is slower than the source
    failure: str | None  # set when the source broke off or lost frames

    def read(self) -> tuple[np.ndarray, float] | None:
        """(BGR frame, seconds) of the next frame, or None at the end."""
        ...

    def close(self) -> None: ...
