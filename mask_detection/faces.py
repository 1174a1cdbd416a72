"""Face detection with OpenCV's YuNet (``cv2.FaceDetectorYN``) and the one face-crop rule.

The crop rule (``crop_region`` / ``crop_face``) is shared by the loader's ``--face-crop`` and by
detection, so the classifier sees faces framed the same way in training and in use.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ModelError

DEFAULT_DETECTOR_PATH = Path(__file__).resolve().parents[1] / "models" / "face_detection_yunet_2023mar.onnx"

# Fraction of the face size added on each side of the crop. YuNet boxes hug the face (brow to chin);
# the training photos are mostly face crops with some context (hair, chin, mask straps), so a little
# margin makes detected crops look like the training images. One constant, tuned by the evaluation.
FACE_MARGIN = 0.15

# Photos up to this size (longer side) are enlarged by SMALL_PHOTO_UPSCALE for detection only: YuNet finds faces
# down to about 10 px, so enlarging small photos finds more 16-32 px faces (measured on scenes-dev: recall of
# faces >= 32 px 96.0% -> 96.8%, unmatched detections 0.74 -> 0.63 per photo, about 13 ms more per photo).
# Live video keeps 1.0: the time matters more there.
SMALL_PHOTO_UPSCALE = 1.5
SMALL_PHOTO_MAX_SIDE = 1000

# Faces whose box is narrower or shorter than this many pixels are skipped: upscaled to 224 px they
# carry no usable evidence, and YuNet itself rarely finds smaller ones.
MIN_FACE_SIZE = 8


class Face(NamedTuple):
    box: tuple  # (x, y, w, h) ints, clipped to the image
    score: float  # detector confidence 0..1


def _quiet_opencv_logs():
    import cv2

    # OpenCV 5's DNN prints "Targets are not supported by the new graph engine" and similar lines.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def clip_box(x, y, w, h, image_shape):
    """Round a float (x, y, w, h) box to ints inside an image of ``image_shape``; None when empty."""
    height, width = image_shape[:2]
    x0 = max(0, int(round(x)))
    y0 = max(0, int(round(y)))
    x1 = min(width, int(round(x + w)))
    y1 = min(height, int(round(y + h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class FaceDetector:
    """YuNet face detector. ``detect(bgr)`` returns faces sorted by score, best first.

    ``max_side``: when set, frames whose longer side exceeds it are shrunk to that size for detection only
    (boxes come back in the original pixels). YuNet's cost grows with the pixel count, so 320 on a 640x480
    frame is about 3-4x faster, at the price of faces under ~20 px (YuNet's ~10 px limit, doubled).
    """

    def __init__(self, model_path=None, score_threshold=0.5, nms_threshold=0.3, top_k=5000, max_side=None,
                 upscale=1.0):
        import cv2

        self.model_path = Path(model_path) if model_path is not None else DEFAULT_DETECTOR_PATH
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ModelError(f"face confidence must be between 0 and 1, got {score_threshold}")
        if not self.model_path.is_file():
            raise ModelError(f"face detector model not found: {self.model_path}")
        _quiet_opencv_logs()
        try:
            self._detector = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), float(score_threshold), float(nms_threshold), int(top_k)
            )
        except cv2.error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            raise ModelError(f"cannot load face detector model {self.model_path}: {reason}") from None
        self.score_threshold = float(score_threshold)
        if max_side is not None and int(max_side) < 32:
            raise ModelError(f"detection size must be at least 32 pixels, got {max_side}")
        self.max_side = int(max_side) if max_side is not None else None
        if not 1.0 <= float(upscale) <= 4.0:
            raise ModelError(f"detection upscale must be between 1 and 4, got {upscale}")
        self.upscale = float(upscale)
        self._input_size = None

    def detection_scale(self, image_shape):
        """Factor the frame is resized by for detection: down to ``max_side``, or up for small photos."""
        longer = max(image_shape[:2])
        if self.max_side is not None and longer > self.max_side:
            return self.max_side / longer
        if self.upscale > 1.0 and longer <= SMALL_PHOTO_MAX_SIDE:
            return self.upscale
        return 1.0

    def detect(self, bgr):
        """Faces in a BGR uint8 image (grayscale and BGRA are converted)."""
        import cv2

        image = np.asarray(bgr)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        seen = image
        scale = self.detection_scale(image.shape)
        if scale != 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            seen = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        size = (seen.shape[1], seen.shape[0])
        # YuNet's anchors depend on the input size: it must match every frame's size.
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, rows = self._detector.detect(seen)
        if rows is None:
            return []
        faces = []
        for row in rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            box = clip_box(x, y, w, h, image.shape)
            if box is not None:
                faces.append(Face(box, float(row[-1])))
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces


def crop_region(box, image_shape, margin=FACE_MARGIN):
    """(x0, y0, x1, y1): a square centred on the face, side = max(w, h) * (1 + 2 * margin), clipped."""
    x, y, w, h = box
    height, width = image_shape[:2]
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx = x + w / 2.0
    cy = y + h / 2.0
    x0 = max(0, int(round(cx - side / 2.0)))
    y0 = max(0, int(round(cy - side / 2.0)))
    x1 = min(width, int(round(cx + side / 2.0)))
    y1 = min(height, int(round(cy + side / 2.0)))
    return (x0, y0, max(x0, x1), max(y0, y1))


def crop_face(image, box, margin=FACE_MARGIN, min_size=MIN_FACE_SIZE):
    """The face crop of ``image`` (same channel order), or None when the face is tiny or the crop empty.

    Near an edge the crop is clipped, not padded; ``images.to_model_input`` squares it afterwards.
    """
    _, _, w, h = box
    if w < min_size or h < min_size:
        return None
    x0, y0, x1, y1 = crop_region(box, image.shape, margin)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return image[y0:y1, x0:x1]


def largest_face(faces):
    """The face with the largest box area (ties: the higher score), or None for no faces."""
    if not faces:
        return None
    return max(faces, key=lambda face: (face.box[2] * face.box[3], face.score))
