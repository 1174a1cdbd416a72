"""The detection pipeline: faces from a detector -> the one crop rule -> one batched classifier call per frame.

``load_pipeline`` builds it from files (``detector.load_detector`` and ``classifier.load_classifier``);
``MaskPipeline`` takes any ``interfaces.FaceDetector`` and ``interfaces.Classifier``. One pipeline per thread: its
classifier (a LiteRT interpreter) is not thread-safe.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .boxes import clip_box
from .classifier import load_classifier
from .crop import FACE_MARGIN, MIN_FACE_SIZE, face_input, style_landmarks
from .decision import DecisionRule
from .detections import Detection, Face
from .detector import SMALL_PHOTO_UPSCALE, load_detector
from .errors import ModelError
from .interfaces import Classifier, FaceDetector
from .results import FrameResult, PersonEvent, Timings

DEFAULT_FACE_CONFIDENCE = 0.5

Warn = Callable[[str], None]


class MaskPipeline:
    """A face detector and a classifier with the one crop rule and a decision rule: ``process(bgr)`` -> a
    Detection for every face (skipping tiny ones), best face score first.

    Its two steps are public for the tracked pipeline: ``detect`` (the faces big enough to classify) and
    ``classify`` (crop, resize rule, one batched classifier call).
    """

    def __init__(
        self,
        detector: FaceDetector,
        classifier: Classifier,
        margin: float = FACE_MARGIN,
        min_face: int = MIN_FACE_SIZE,
        mask_threshold: float | None = None,
        rule: DecisionRule | None = None,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.min_face = min_face
        self.class_names = list(classifier.class_names)
        self.rule = rule if rule is not None else DecisionRule(tuple(self.class_names), mask_threshold)

    def process(self, bgr: np.ndarray, timings: Timings | None = None) -> list[Detection]:
        """Detections for one BGR uint8 frame. ``timings``: seconds spent in "detect", "crop" (crop + resize rule)
        and "classify" are added to it, for the speed benchmark."""
        timings = timings if timings is not None else Timings()
        with timings.stage("detect"):
            faces = sorted(self.detector.detect(bgr), key=lambda face: face.score, reverse=True)
        kept, probabilities = self.classify(bgr, faces, timings)
        faces = [faces[i] for i in kept]
        chosen = self.rule.decide(probabilities)
        return [
            Detection(
                face.xywh,
                face.score,
                int(index),
                self.class_names[index],
                float(probs[index]),
                tuple(map(float, probs)),
            )
            for face, probs, index in zip(faces, probabilities, chosen, strict=True)
        ]

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """The detector's faces that are big enough to classify, in the detector's order."""
        return [face for face in self.detector.detect(bgr) if min(face.xywh[2:]) >= self.min_face]

    def classify(
        self, bgr: np.ndarray, faces: Sequence[Face], timings: Timings | None = None
    ) -> tuple[list[int], np.ndarray]:
        """(indexes of the faces classified, their class probabilities (N, classes)): each face cut by the crop
        rule in the classifier's crop style, all in one classifier call. A face too small to crop is left out.
        ``timings``: "crop" and "classify" seconds are added to it."""
        timings = timings if timings is not None else Timings()
        size, style = self.classifier.input_size, self.classifier.crop
        with timings.stage("crop"):
            kept, inputs = [], []
            for i, face in enumerate(faces):
                landmarks = style_landmarks(face, style)
                face_bgr = face_input(bgr, face.xywh, size, self.margin, self.min_face, landmarks)
                if face_bgr is None:
                    continue
                kept.append(i)
                # The resize rule is channel-blind, so flip BGR -> RGB on the small result, not the crop.
                inputs.append(face_bgr[:, :, ::-1])
        if not inputs:
            return [], np.zeros((0, len(self.class_names)), np.float32)
        with timings.stage("classify"):
            probabilities = self.classifier.predict(np.stack(inputs))  # one call for all faces of the frame
        return kept, probabilities


class PerFrameProcessor:
    """The frame processor of per-frame video: every face of every frame classified on its own (no tracks, no
    people, no events)."""

    def __init__(self, pipeline: MaskPipeline) -> None:
        self.pipeline = pipeline
        self.class_names = pipeline.class_names
        self.timings = Timings()
        self.people = None  # no people are counted frame by frame

    def process(self, bgr: np.ndarray, frame_index: int, time: float) -> FrameResult:
        return FrameResult(frame_index, time, self.pipeline.process(bgr, self.timings), bgr)

    def finish(self, frame_index: int, time: float) -> list[PersonEvent]:
        return []


def load_pipeline(
    model_path: Path | str | None = None,
    face_confidence: float = DEFAULT_FACE_CONFIDENCE,
    mask_threshold: float | None = None,
    detector_path: Path | str | None = None,
    detect_size: int | None = None,
    threads: int | None = None,
    upscale: float = SMALL_PHOTO_UPSCALE,
    warn: Warn | None = None,
) -> MaskPipeline:
    """The face detector (checked first: fast) and the classifier, as one pipeline.

    ``upscale``: small photos are enlarged by this factor for face detection (1 = never); video passes 1.
    ``warn``: hears of settings that have no effect (a mask threshold for a model without a with_mask class) and
    of problems loading works around.
    """
    if not 0.0 <= face_confidence <= 1.0:
        raise ModelError(f"face confidence must be between 0 and 1, got {face_confidence}")
    detector = load_detector(detector_path, score_threshold=face_confidence, max_side=detect_size, upscale=upscale)
    classifier = load_classifier(model_path, threads=threads, warn=warn)
    rule = DecisionRule(tuple(classifier.class_names), mask_threshold)
    if rule.ignored_threshold and warn is not None:
        warn(rule.ignored_message())
    return MaskPipeline(detector, classifier, rule=rule)


def to_full_size(detections: list[Detection], shape: Sequence[int], full_shape: Sequence[int]) -> list[Detection]:
    """Detections found on a photo decoded at reduced size (``shape``), in the full photo's pixels."""
    if tuple(shape[:2]) == tuple(full_shape[:2]):
        return detections
    fy, fx = full_shape[0] / shape[0], full_shape[1] / shape[1]
    scaled = []
    for d in detections:
        x, y, w, h = d.xywh
        scaled.append(d.scaled_to(clip_box(x * fx, y * fy, w * fx, h * fy, full_shape) or d.xywh))
    return scaled


@dataclass
class PhotoResult:
    """One photo through the pipeline."""

    bgr: np.ndarray  # the photo as detection saw it (reduced when it was huge): draw ``detections`` on it
    detections: list[Detection]  # in ``bgr``'s pixels
    full_shape: tuple[int, int]  # (height, width) of the photo as stored
    reported: list[Detection]  # in the full photo's pixels: what to report

    def to_json(self, name: str) -> dict:
        """The photo's JSON form (``detect_image.py --json``, the service's ``POST /api/classify``): a public
        format."""
        height, width = self.full_shape
        return {"image": name, "width": width, "height": height, "faces": [d.to_json() for d in self.reported]}


def detect_photo(pipeline: MaskPipeline, rgb: np.ndarray, full_shape: Sequence[int]) -> PhotoResult:
    """Run the pipeline on a decoded photo (``images.decode_photo``'s RGB array and full size)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    detections = pipeline.process(bgr)
    full = (int(full_shape[0]), int(full_shape[1]))
    return PhotoResult(bgr, detections, full, to_full_size(detections, bgr.shape, full))
