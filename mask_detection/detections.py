"""The result types every stage takes and returns: a detector's ``Face`` and the pipeline's ``Detection``.

Box fields say their format in their names: ``xywh`` is (x, y, width, height) in pixels of the original image,
``xyxy`` (used by crops) is (x0, y0, x1, y1) with x1, y1 exclusive.
"""

from dataclasses import dataclass, replace
from typing import Any

from .boxes import Box

# Five facial points (x, y) in pixels of the image, in the image's left-to-right order: the eye on the image's
# left, the other eye, the nose tip, the mouth corner on the image's left, the other mouth corner (YuNet's order).
Landmarks = tuple[tuple[float, float], ...]

# The class name a tracked face carries while its person has not been judged: every view so far was smaller than
# the judging size (``people.TrackingConfig.judge_size``). Never a class of a model.
NOT_JUDGED = "not_judged"


@dataclass(frozen=True, slots=True)
class Face:
    """One face found by a detector."""

    xywh: Box  # clipped to the image
    score: float  # the detector's confidence, 0..1
    landmarks: Landmarks | None = None  # None when the detector gives none (the crop rule then uses the box)


@dataclass(frozen=True, slots=True)
class Detection:
    """One classified face (or, tracked, a face whose person is not judged yet: ``judged`` False)."""

    xywh: Box  # in pixels of the original image
    score: float  # the face detector's confidence, 0..1
    class_index: int | None  # into the classifier's class names; None when not judged
    class_name: str  # NOT_JUDGED when not judged
    probability: float  # the probability of ``class_name`` (tracked: the person's fused one); NaN when not judged
    probabilities: tuple[float, ...]  # every class's, in the classifier's class order; empty when not judged
    track_id: int | None = None  # set by a tracker (video); None for single images and per-frame video
    # With a track: whether class_name/probability are the person's settled verdict (False: the best estimate so
    # far, from too little evidence, or not judged).
    settled: bool | None = None
    # False: a tracked face whose person was never seen big enough to judge (no label, no probability).
    judged: bool = True

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``--json`` output (read back by the evaluation); its keys are a public format.

        Tracked faces add ``track`` (an int, unique within the run), ``settled`` and ``judged``; a face not
        judged has ``label`` and ``probability`` null."""
        record: dict[str, Any] = {
            "box": [int(v) for v in self.xywh],
            "score": round(float(self.score), 4),
            "label": self.class_name if self.judged else None,
            "probability": round(float(self.probability), 4) if self.judged else None,
        }
        if self.track_id is not None:
            record["track"] = int(self.track_id)
            record["settled"] = bool(self.settled)
            record["judged"] = bool(self.judged)
        return record

    def scaled_to(self, xywh: Box) -> "Detection":
        """The same detection with another box (e.g. mapped back to a full-size photo)."""
        return replace(self, xywh=xywh)
