"""The one face-crop rule, shared by the loader's face crops and by detection.

The classifier must see faces framed the same way in training and in use: a square around the face with
``FACE_MARGIN`` on each side, clipped at the picture's edges, then ``images.to_model_input`` (padding by edge
replication, never stretching). ``face_input`` is that whole rule in one call.
"""

from collections.abc import Sequence

import numpy as np

from . import INPUT_SIZE
from .boxes import XYWH, Box, pixel_bounds
from .detections import Face
from .images import to_model_input

# Fraction of the face size added on each side of the crop. YuNet boxes hug the face (brow to chin);
# the training photos are mostly face crops with some context (hair, chin, mask straps), so a little
# margin makes detected crops look like the training images. One constant, tuned by the evaluation.
FACE_MARGIN = 0.15

# Faces whose box is narrower or shorter than this many pixels are skipped: upscaled to 224 px they
# carry no usable evidence, and YuNet itself rarely finds smaller ones.
MIN_FACE_SIZE = 8


def crop_region(xywh: XYWH, shape: Sequence[int], margin: float = FACE_MARGIN) -> Box:
    """(x0, y0, x1, y1): a square centred on the face, side = max(w, h) * (1 + 2 * margin), clipped."""
    x, y, w, h = xywh
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx = x + w / 2.0
    cy = y + h / 2.0
    x0, y0, x1, y1 = pixel_bounds(cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0, shape)
    return (x0, y0, max(x0, x1), max(y0, y1))


def crop_face(
    image: np.ndarray, xywh: Box, margin: float = FACE_MARGIN, min_size: int = MIN_FACE_SIZE
) -> np.ndarray | None:
    """The face crop of ``image`` (same channel order), or None when the face is tiny or the crop empty.

    Near an edge the crop is clipped, not padded; ``images.to_model_input`` squares it afterwards.
    """
    _, _, w, h = xywh
    if w < min_size or h < min_size:
        return None
    x0, y0, x1, y1 = crop_region(xywh, image.shape, margin)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return image[y0:y1, x0:x1]


def face_input(
    image: np.ndarray,
    xywh: Box,
    size: int = INPUT_SIZE,
    margin: float = FACE_MARGIN,
    min_size: int = MIN_FACE_SIZE,
) -> np.ndarray | None:
    """The classifier's input for one face: its crop, padded to a square and resized to ``size`` (same channel
    order as ``image``); None when the face is skipped (see ``crop_face``)."""
    crop = crop_face(image, xywh, margin, min_size)
    return None if crop is None else to_model_input(crop, size)


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box area (ties: the higher score), or None for no faces."""
    if not faces:
        return None
    return max(faces, key=lambda face: (face.xywh[2] * face.xywh[3], face.score))
