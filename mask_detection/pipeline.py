"""The detection pipeline: faces from a detector -> the one crop rule -> one batched classifier call per frame.

``load_pipeline`` builds it from files (``detector.load_detector`` and ``classifier.load_classifier``);
``MaskPipeline`` takes any ``interfaces.FaceDetector`` and ``interfaces.Classifier``. One pipeline per thread: its
classifier (a LiteRT interpreter) is not thread-safe.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .classes import WITH_MASK
from .classifier import load_classifier
from .crop import FACE_MARGIN, MIN_FACE_SIZE, face_input
from .detections import Detection, Face
from .detector import SMALL_PHOTO_UPSCALE, clip_box, load_detector
from .errors import ModelError
from .interfaces import Classifier, FaceDetector

DEFAULT_FACE_CONFIDENCE = 0.5

Warn = Callable[[str], None]


def decide(probabilities: np.ndarray, class_names: Sequence[str], mask_threshold: float | None = None) -> np.ndarray:
    """Index of the chosen class for each row of ``probabilities``.

    Default: the most probable class. With ``mask_threshold`` (and a ``with_mask`` class) a face is
    "with_mask" when p(with_mask) >= threshold, otherwise the most probable of the other classes; e.g. 0.7
    calls fewer faces masked than plain argmax does (0.5 for two classes).
    """
    probabilities = np.asarray(probabilities)
    chosen = probabilities.argmax(axis=1)
    if mask_threshold is None or WITH_MASK not in class_names or len(probabilities) == 0:
        return chosen
    mask = list(class_names).index(WITH_MASK)
    others = probabilities.copy()
    others[:, mask] = -1.0
    return np.where(probabilities[:, mask] >= mask_threshold, mask, others.argmax(axis=1))


def check_mask_threshold(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ModelError(f"mask threshold must be between 0 and 1, got {value}")
    return value


class MaskPipeline:
    """``process(bgr)`` -> a Detection for every face (skipping tiny ones), best face score first."""

    def __init__(
        self,
        detector: FaceDetector,
        classifier: Classifier,
        margin: float = FACE_MARGIN,
        min_face: int = MIN_FACE_SIZE,
        mask_threshold: float | None = None,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.min_face = min_face
        self.mask_threshold = check_mask_threshold(mask_threshold)
        self.class_names = list(classifier.class_names)

    def process(self, bgr: np.ndarray, timings: dict[str, float] | None = None) -> list[Detection]:
        """Detections for one BGR uint8 frame.

        ``timings``: optional dict; seconds spent in "detect", "crop" (crop + resize rule) and "classify"
        are added to it, for the speed benchmark.
        """
        t0 = time.perf_counter()
        faces = sorted(self.detector.detect(bgr), key=lambda face: face.score, reverse=True)
        t1 = time.perf_counter()
        kept, batch = self._classifier_inputs(bgr, faces)
        t2 = time.perf_counter()
        detections = self._classify(kept, batch)
        t3 = time.perf_counter()
        if timings is not None:
            for key, seconds in (("detect", t1 - t0), ("crop", t2 - t1), ("classify", t3 - t2)):
                timings[key] = timings.get(key, 0.0) + seconds
        return detections

    def _classifier_inputs(self, bgr: np.ndarray, faces: list[Face]) -> tuple[list[Face], np.ndarray | None]:
        """The faces big enough to classify, and their classifier inputs as one RGB batch (None: no face)."""
        kept, inputs = [], []
        for face in faces:
            face_bgr = face_input(bgr, face.xywh, self.classifier.input_size, self.margin, self.min_face)
            if face_bgr is None:
                continue
            kept.append(face)
            # The resize rule is channel-blind, so flip BGR -> RGB on the small result, not the crop.
            inputs.append(face_bgr[:, :, ::-1])
        return kept, (np.stack(inputs) if inputs else None)

    def _classify(self, faces: list[Face], batch: np.ndarray | None) -> list[Detection]:
        if batch is None:
            return []
        probabilities = self.classifier.predict(batch)  # one call for all faces of the frame
        chosen = decide(probabilities, self.class_names, self.mask_threshold)
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


def load_pipeline(
    model_path: str | None = None,
    face_confidence: float = DEFAULT_FACE_CONFIDENCE,
    mask_threshold: float | None = None,
    detector_path: str | None = None,
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
    check_mask_threshold(mask_threshold)
    detector = load_detector(detector_path, score_threshold=face_confidence, max_side=detect_size, upscale=upscale)
    classifier = load_classifier(model_path, threads=threads, warn=warn)
    if mask_threshold is not None and WITH_MASK not in classifier.class_names and warn is not None:
        warn(
            f"the mask threshold {mask_threshold:g} is ignored: the model has no {WITH_MASK} class "
            f"({', '.join(classifier.class_names)}); each face gets its most probable class"
        )
    return MaskPipeline(detector, classifier, mask_threshold=mask_threshold)


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


def detect_photo(pipeline: MaskPipeline, rgb: np.ndarray, full_shape: Sequence[int]) -> PhotoResult:
    """Run the pipeline on a decoded photo (``images.decode_photo``'s RGB array and full size)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    detections = pipeline.process(bgr)
    full = (int(full_shape[0]), int(full_shape[1]))
    return PhotoResult(bgr, detections, full, to_full_size(detections, bgr.shape, full))
