"""Boxes: the (x, y, w, h) types and their maths (conversions, clipping to an image, IoU, face-size buckets).

It imports nothing of the package, so it sits in the lowest layer: the result types (``detections``), the detector,
the face crops, the annotation readers and the evaluation all share these definitions.
"""

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

# (x, y, width, height) in whole pixels: detector boxes, face crops, drawn rectangles.
Box = tuple[int, int, int, int]
# (x, y, width, height) that may hold fractions of a pixel: annotated boxes. Every Box is also an XYWH.
XYWH = tuple[float, float, float, float]

# Face size = the short side of the annotated box, in pixels of the original photo.
SIZE_BUCKETS = (("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), (">=64", 64, math.inf))
BUCKET_NAMES = tuple(name for name, _, _ in SIZE_BUCKETS)

N = TypeVar("N", int, float)  # whole-pixel boxes stay whole through the conversions


def to_xyxy(xywh: tuple[N, N, N, N]) -> tuple[N, N, N, N]:
    """(x0, y0, x1, y1) of an (x, y, w, h) box (x1, y1 exclusive)."""
    x, y, w, h = xywh
    return (x, y, x + w, y + h)


def to_xywh(xyxy: tuple[N, N, N, N]) -> tuple[N, N, N, N]:
    """(x, y, w, h) of an (x0, y0, x1, y1) box."""
    x0, y0, x1, y1 = xyxy
    return (x0, y0, x1 - x0, y1 - y0)


def box_size(xywh: Sequence[float]) -> float:
    """The short side of an (x, y, w, h) box."""
    return min(xywh[2], xywh[3])


def size_bucket(xywh: Sequence[float]) -> str:
    short = box_size(xywh)
    for name, low, high in SIZE_BUCKETS:
        if low <= short < high:
            return name
    return SIZE_BUCKETS[-1][0]


def pixel_bounds(x0: float, y0: float, x1: float, y1: float, image_shape: Sequence[int]) -> Box:
    """(x0, y0, x1, y1) rounded to whole pixels and held inside an image of ``image_shape``; may be empty
    (x1 <= x0 or y1 <= y0) when the box lies outside the image."""
    height, width = image_shape[:2]
    return (max(0, int(round(x0))), max(0, int(round(y0))), min(width, int(round(x1))), min(height, int(round(y1))))


def clip_box(x: float, y: float, w: float, h: float, image_shape: Sequence[int]) -> Box | None:
    """Round a float (x, y, w, h) box to ints inside an image of ``image_shape``; None when empty."""
    x0, y0, x1, y1 = pixel_bounds(x, y, x + w, y + h, image_shape)
    if x1 <= x0 or y1 <= y0:
        return None
    return to_xywh((x0, y0, x1, y1))


def clip_gt_box(xywh: XYWH, width: int, height: int) -> XYWH:
    """Clip (x, y, w, h) to a width x height image (some annotations reach a pixel past the edge)."""
    x0, y0, x1, y1 = to_xyxy(xywh)
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(width), x1), min(float(height), y1)
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def iou_matrix(det_boxes: Sequence[Sequence[float]], gt_boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """(n_det, n_gt) intersection over union of (x, y, w, h) boxes; 0 where a box is empty."""
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(det) == 0 or len(gt) == 0:
        return np.zeros((len(det), len(gt)))
    x0 = np.maximum(det[:, None, 0], gt[None, :, 0])
    y0 = np.maximum(det[:, None, 1], gt[None, :, 1])
    x1 = np.minimum(det[:, None, 0] + det[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    y1 = np.minimum(det[:, None, 1] + det[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (det[:, 2] * det[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
