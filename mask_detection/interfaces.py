"""The two seams of the pipeline: what a face detector and a classifier must offer (structural, no base class).

Implementations: ``detector.YuNetDetector``; ``classifier.KerasClassifier`` and ``litert.LiteRTClassifier``,
chosen by ``classifier.load_classifier``. One instance of each is meant for one thread: detectors keep per-frame
state (YuNet's input size), LiteRT interpreters are not thread-safe. Give each thread its own pipeline.
"""

from pathlib import Path
from typing import Protocol

import numpy as np

from .detections import Face


class FaceDetector(Protocol):
    model_path: Path
    upscale: float  # factor small photos are enlarged by for detection (1: never)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 image, best score first."""
        ...


class Classifier(Protocol):
    class_names: list[str]
    input_size: int
    path: Path | None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, S, S, 3) -> float32 class probabilities (N, len(class_names))."""
        ...
