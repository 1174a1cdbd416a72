"""The result types every stage takes and returns: a detector's ``Face`` and the pipeline's ``Detection``.

Box fields say their format in their names: ``xywh`` is (x, y, width, height) in pixels of the original image,
``xyxy`` (used by crops) is (x0, y0, x1, y1) with x1, y1 exclusive.
"""

from dataclasses import dataclass, replace
from typing import Any

from .boxes import Box


@dataclass(frozen=True, slots=True)
class Face:
    """One face found by a detector."""

    xywh: Box  # clipped to the image
    score: float  # the detector's confidence, 0..1


@dataclass(frozen=True, slots=True)
class Detection:
    """One classified face."""

    xywh: Box  # in pixels of the original image
    score: float  # the face detector's confidence, 0..1
    class_index: int  # into the classifier's class names
    class_name: str
    probability: float  # the classifier's probability for ``class_name``
    probabilities: tuple[float, ...]  # every class's, in the classifier's class order
    track_id: int | None = None  # set by a tracker (video); None for single images and per-frame video
    # With a track: whether class_name/probability are the person's settled verdict (False: the best estimate so
    # far, from too little evidence).
    settled: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``--json`` output (read back by the evaluation); its keys are a public format.

        Tracked faces add ``track`` (an int, unique within the run) and ``settled``."""
        record: dict[str, Any] = {
            "box": [int(v) for v in self.xywh],
            "score": round(float(self.score), 4),
            "label": self.class_name,
            "probability": round(float(self.probability), 4),
        }
        if self.track_id is not None:
            record["track"] = int(self.track_id)
            record["settled"] = bool(self.settled)
        return record

    def scaled_to(self, xywh: Box) -> "Detection":
        """The same detection with another box (e.g. mapped back to a full-size photo)."""
        return replace(self, xywh=xywh)
