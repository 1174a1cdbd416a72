"""The one face-crop rule, shared by the loader's face crops and by detection.

The classifier must see faces framed the same way in training and in use. Two styles, recorded in the arrays
file and the model's metadata, so a model always gets the crops it was trained on:

- ``square``: a square around the face box with ``FACE_MARGIN`` on each side, clipped at the picture's edges, then
  ``images.to_model_input`` (padding by edge replication, never stretching).
- ``aligned``: the five landmarks moved by a similarity transform (rotation, scale, shift) onto
  ``ALIGN_TEMPLATE``, the standard alignment of face analysis: a tilted or turned head is cut upright and at the
  same scale, eyes and mouth at the same places. Faces without landmarks get the square crop (small faces are
  aligned too: cutting those under 32 px square instead, in training and detection alike, made 16-32 px faces
  worse, see docs/results.md).

``face_input`` is the whole rule in one call.
"""

from collections.abc import Sequence

import cv2
import numpy as np

from . import INPUT_SIZE
from .boxes import XYWH, Box, pixel_bounds
from .detections import Face, Landmarks
from .errors import ModelError
from .images import to_model_input

SQUARE = "square"
ALIGNED = "aligned"
CROP_STYLES = (SQUARE, ALIGNED)

# Fraction of the face size added on each side of the crop. YuNet boxes hug the face (brow to chin);
# the training photos are mostly face crops with some context (hair, chin, mask straps), so a little
# margin makes detected crops look like the training images. One constant, tuned by the evaluation.
FACE_MARGIN = 0.15

# Faces whose box is narrower or shorter than this many pixels are skipped: upscaled to 224 px they
# carry no usable evidence, and YuNet itself rarely finds smaller ones.
MIN_FACE_SIZE = 8


# Where the five points land in an aligned crop, as shares of its side (image-left eye, other eye, nose tip, mouth
# corners): the median places of YuNet's points in the square crop over 1,129 detected reference faces, made
# left-right symmetric. So an upright frontal face is framed as the square crop frames it (brow to chin, with
# the margin that shows a mask's edges, the chin and the nose bridge), and every other face is brought to that.
ALIGN_TEMPLATE = ((0.3274, 0.382), (0.6726, 0.382), (0.5, 0.5695), (0.348, 0.697), (0.652, 0.697))
# The template's framing is FACE_MARGIN's; another margin scales it about the centre.
_TEMPLATE_MARGIN = 0.15
# Five points of a face turned to the side crowd together, and a least-squares fit would then zoom in on them:
# the scale stays within these factors of the box's (side faces are cut about as the square rule would).
_SCALE_LIMITS = (0.8, 1.25)


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
    landmarks: Landmarks | None = None,
) -> np.ndarray | None:
    """The classifier's input for one face, ``size`` x ``size`` in ``image``'s channel order; None when the face is
    skipped (see ``crop_face``). With ``landmarks`` (the aligned style): the aligned crop; without: the square
    crop, padded to a square and resized."""
    _, _, w, h = xywh
    if landmarks is not None and w >= min_size and h >= min_size:
        return aligned_input(image, xywh, landmarks, size, margin)
    crop = crop_face(image, xywh, margin, min_size)
    return None if crop is None else to_model_input(crop, size)


def metadata_crop(metadata: dict) -> str:
    """The crop style a model's metadata names (models made before aligned crops say none: square)."""
    style = metadata.get("crop", SQUARE)
    if style not in CROP_STYLES:
        raise ModelError(
            f"model metadata has an unknown crop style {style!r}; this version knows {', '.join(CROP_STYLES)}"
        )
    return str(style)


def style_landmarks(face: Face, style: str) -> Landmarks | None:
    """The landmarks ``face_input`` should get for a crop ``style``: the face's for aligned crops, else None."""
    return face.landmarks if style == ALIGNED else None


def alignment(landmarks: Landmarks, xywh: Box, size: int, margin: float = FACE_MARGIN) -> np.ndarray:
    """The 2x3 similarity transform from the image's pixels to a ``size`` x ``size`` aligned crop.

    Least squares over the five points; in 2-D that is a closed form (the points as complex numbers: target =
    z * source + shift), which can rotate and scale but never mirror. The scale is kept within
    ``_SCALE_LIMITS`` of the square crop's, with the points' centre still landing on the template's.
    """
    stretch = (1.0 + 2.0 * _TEMPLATE_MARGIN) / (1.0 + 2.0 * margin)
    target = [complex(0.5 + (x - 0.5) * stretch, 0.5 + (y - 0.5) * stretch) * size for x, y in ALIGN_TEMPLATE]
    source = [complex(x, y) for x, y in landmarks]
    source_mean, target_mean = sum(source) / len(source), sum(target) / len(target)
    source_centred = [p - source_mean for p in source]
    spread = sum(abs(p) ** 2 for p in source_centred)
    box_scale = size / (max(xywh[2], xywh[3]) * (1.0 + 2.0 * margin))
    if spread > 0:
        z = sum((t - target_mean) * p.conjugate() for t, p in zip(target, source_centred, strict=True)) / spread
    else:
        z = complex(box_scale, 0.0)  # all five points on one pixel: no rotation to read, the box's scale
    scale = float(np.clip(abs(z), _SCALE_LIMITS[0] * box_scale, _SCALE_LIMITS[1] * box_scale))
    z = z / abs(z) * scale if abs(z) > 0 else complex(scale, 0.0)
    shift = target_mean - z * source_mean
    return np.array([[z.real, -z.imag, shift.real], [z.imag, z.real, shift.imag]])


def aligned_input(
    image: np.ndarray, xywh: Box, landmarks: Landmarks, size: int = INPUT_SIZE, margin: float = FACE_MARGIN
) -> np.ndarray:
    """The aligned crop of one face (see ``alignment``), edges replicated where it reaches past the picture."""
    matrix = alignment(landmarks, xywh, size, margin)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        # warpAffine's bilinear sampling averages at most 2x2 pixels: shrink the face's neighbourhood first
        # (INTER_AREA, as the square rule does), so a large face is not aliased, and warp the rest (about 1:2).
        x0, y0, x1, y1 = _preimage_bounds(matrix, size, image.shape)
        region = image[y0:y1, x0:x1]
        factor = min(1.0, 2.0 * scale)
        small = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        fy, fx = small.shape[0] / region.shape[0], small.shape[1] / region.shape[1]
        to_region = np.array([[1.0 / fx, 0.0, x0], [0.0, 1.0 / fy, y0], [0.0, 0.0, 1.0]])
        matrix = matrix @ to_region
        image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _preimage_bounds(matrix: np.ndarray, size: int, shape: Sequence[int]) -> tuple[int, int, int, int]:
    """The pixel bounds (x0, y0, x1, y1) of the picture area an aligned crop shows, clipped, never empty."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
    height, width = int(shape[0]), int(shape[1])
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()), x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()), y0 + 1, height))
    return x0, y0, x1, y1


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box area (ties: the higher score), or None for no faces."""
    if not faces:
        return None
    return max(faces, key=lambda face: (face.xywh[2] * face.xywh[3], face.score))
