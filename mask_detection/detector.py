"""Face detection with OpenCV's YuNet (``cv2.FaceDetectorYN``): an implementation of ``interfaces.FaceDetector``.

``load_detector`` is the factory the pipeline and the loader build their detector with; another detector (a
different network, a tracker's detector) is a class with the same ``detect`` method, chosen there.
"""

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .boxes import clip_box
from .detections import Face
from .errors import ModelError, exception_line
from .images import quiet_opencv_logs, resize_by
from .interfaces import FaceDetector
from .paths import YUNET_PATH

# Photos up to this size (longer side) are enlarged by SMALL_PHOTO_UPSCALE for detection only: YuNet finds faces
# down to about 10 px, so enlarging small photos finds more 16-32 px faces (measured on scenes-dev: recall of
# faces >= 32 px 96.0% -> 96.8%, unmatched detections 0.74 -> 0.63 per photo, about 13 ms more per photo).
# Live video keeps 1.0: the time matters more there.
SMALL_PHOTO_UPSCALE = 1.5
SMALL_PHOTO_MAX_SIDE = 1000


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 HxWx3 view of ``image`` (grayscale and BGRA are converted); ValueError for other shapes."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


class YuNetDetector:
    """YuNet face detector. ``detect(bgr)`` returns faces sorted by score, best first.

    ``max_side``: when set, frames whose longer side exceeds it are shrunk to that size for detection only
    (boxes come back in the original pixels). YuNet's cost grows with the pixel count, so 320 on a 640x480
    frame is about 3-4x faster, at the price of faces under ~20 px (YuNet's ~10 px limit, doubled).
    ``upscale``: photos up to SMALL_PHOTO_MAX_SIDE are enlarged by this factor for detection only.

    All state is the instance's own. YuNet's input size must match each frame's, so it is set per call under a
    lock: threads sharing one detector take turns (give each thread its own pipeline to run in parallel).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = None,
        upscale: float = 1.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else YUNET_PATH
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ModelError(f"face confidence must be between 0 and 1, got {score_threshold}")
        if not self.model_path.is_file():
            raise ModelError(f"face detector model not found: {self.model_path}")
        quiet_opencv_logs()
        try:
            self._yunet = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), float(score_threshold), float(nms_threshold), int(top_k)
            )
        except cv2.error as exc:
            reason = exception_line(exc, last=True) if str(exc).strip() else "unreadable"
            raise ModelError(f"cannot load face detector model {self.model_path}: {reason}") from None
        self.score_threshold = float(score_threshold)
        if max_side is not None and int(max_side) < 32:
            raise ModelError(f"detection size must be at least 32 pixels, got {max_side}")
        self.max_side = int(max_side) if max_side is not None else None
        if not 1.0 <= float(upscale) <= 4.0:
            raise ModelError(f"detection upscale must be between 1 and 4, got {upscale}")
        self.upscale = float(upscale)
        self._input_size: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def detection_scale(self, image_shape: Sequence[int]) -> float:
        """Factor the frame is resized by for detection: down to ``max_side``, or up for small photos."""
        longer = max(image_shape[:2])
        if self.max_side is not None and longer > self.max_side:
            return self.max_side / longer
        if self.upscale > 1.0 and longer <= SMALL_PHOTO_MAX_SIDE:
            return self.upscale
        return 1.0

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 image (grayscale and BGRA are converted), boxes in its own pixels."""
        image = as_bgr(bgr)
        scale = self.detection_scale(image.shape)
        seen = resize_by(image, scale) if scale != 1.0 else image
        rows = self._run_yunet(seen)
        faces = []
        for row in rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            xywh = clip_box(x, y, w, h, image.shape)
            if xywh is not None:
                points = tuple((float(row[i]) / scale, float(row[i + 1]) / scale) for i in range(4, 14, 2))
                faces.append(Face(xywh, float(row[-1]), points))
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces

    def _run_yunet(self, image: np.ndarray) -> np.ndarray:
        """YuNet's raw rows (x, y, w, h, landmarks..., score) for ``image``."""
        size = (image.shape[1], image.shape[0])
        with self._lock:
            # YuNet's anchors depend on the input size: it must match every frame's size.
            if size != self._input_size:
                self._yunet.setInputSize(size)
                self._input_size = size
            _, rows = self._yunet.detect(image)
        return np.empty((0, 15), np.float32) if rows is None else rows


def load_detector(
    model_path: str | Path | None = None,
    score_threshold: float = 0.5,
    max_side: int | None = None,
    upscale: float = 1.0,
) -> FaceDetector:
    """The face detector for a model file (today always YuNet's ONNX); raises ModelError when it cannot load."""
    return YuNetDetector(model_path, score_threshold=score_threshold, max_side=max_side, upscale=upscale)
