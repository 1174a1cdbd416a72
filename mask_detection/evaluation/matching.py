"""Boxes matched to annotated faces: the IoU matrix, one-to-one greedy matching, and the records every figure is
computed from (one per annotated face, one per detection)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..detections import Detection
from .scenes import SceneResult
from .voc import XYWH, GroundTruth

# Face size = the short side of the annotated box, in pixels of the original photo.
SIZE_BUCKETS = (("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), (">=64", 64, math.inf))
BUCKET_NAMES = tuple(name for name, _, _ in SIZE_BUCKETS)


def box_size(xywh: Sequence[float]) -> float:
    """The short side of an (x, y, w, h) box."""
    return min(xywh[2], xywh[3])


def size_bucket(xywh: Sequence[float]) -> str:
    short = box_size(xywh)
    for name, low, high in SIZE_BUCKETS:
        if low <= short < high:
            return name
    return SIZE_BUCKETS[-1][0]


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


def match_detections(
    det_boxes: Sequence[Sequence[float]],
    det_scores: Sequence[float],
    gt_boxes: Sequence[Sequence[float]],
    iou_threshold: float,
) -> list[int | None]:
    """One-to-one greedy matching: the matched ground-truth index (or None) of each detection.

    Detections are taken highest score first (equal scores: in the given order); each takes the still free
    ground-truth box it overlaps most (equal IoU: the lower index), if that IoU is at least ``iou_threshold``.
    A second detection of an already matched face stays unmatched, as in PASCAL VOC and COCO.
    """
    n_det = len(det_boxes)
    matched: list[int | None] = [None] * n_det
    if n_det == 0 or len(gt_boxes) == 0:
        return matched
    overlaps = iou_matrix(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    order = sorted(range(n_det), key=lambda i: -float(det_scores[i]))  # sorted() is stable: ties keep order
    for d in order:
        candidates = np.where(taken, -1.0, overlaps[d])
        g = int(np.argmax(candidates))  # first maximum: the lower index on ties
        if candidates[g] >= iou_threshold and candidates[g] > 0:
            matched[d] = g
            taken[g] = True
    return matched


@dataclass(frozen=True)
class FaceRecord:
    """One annotated face at one IoU threshold, and the detection that matched it (if any)."""

    image: int  # index into the scene results
    truth: GroundTruth
    detection: Detection | None  # None: missed
    iou: float | None  # with the matched detection

    @property
    def label(self) -> str:
        return self.truth.label

    @property
    def size(self) -> float:
        return box_size(self.truth.xywh)

    @property
    def bucket(self) -> str:
        return size_bucket(self.truth.xywh)

    @property
    def found(self) -> bool:
        return self.detection is not None

    @property
    def predicted(self) -> str | None:
        return None if self.detection is None else self.detection.class_name


@dataclass(frozen=True)
class DetectionRecord:
    """One detection at one IoU threshold."""

    image: int  # index into the scene results
    detection: Detection
    face: int | None  # index of the matched face in its photo; None: unmatched
    on_ignored: bool  # unmatched but on a face of a class that is not evaluated: neither hit nor false alarm

    @property
    def counted(self) -> bool:
        """Counted in precision (not on a face of an unevaluated class)."""
        return not self.on_ignored

    @property
    def false_alarm(self) -> bool:
        return self.face is None and not self.on_ignored

    @property
    def bucket(self) -> str:
        return size_bucket(self.detection.xywh)


@dataclass(frozen=True)
class MatchedScenes:
    faces: list[FaceRecord]
    detections: list[DetectionRecord]


def match_scenes(results: Sequence[SceneResult], iou_threshold: float) -> MatchedScenes:
    """The face and detection records of every scene at one IoU threshold."""
    faces: list[FaceRecord] = []
    detections: list[DetectionRecord] = []
    for image_index, result in enumerate(results):
        photo_faces, photo_detections = _match_one_scene(image_index, result, iou_threshold)
        faces.extend(photo_faces)
        detections.extend(photo_detections)
    return MatchedScenes(faces, detections)


def _match_one_scene(
    image_index: int, result: SceneResult, iou_threshold: float
) -> tuple[list[FaceRecord], list[DetectionRecord]]:
    det_boxes = [d.xywh for d in result.detections]
    gt_boxes = [g.xywh for g in result.faces]
    matched = match_detections(det_boxes, [d.score for d in result.detections], gt_boxes, iou_threshold)
    overlaps = iou_matrix(det_boxes, gt_boxes)
    by_face = {g: d for d, g in enumerate(matched) if g is not None}
    faces = []
    for g, truth in enumerate(result.faces):
        d = by_face.get(g)
        if d is None:
            faces.append(FaceRecord(image_index, truth, None, None))
        else:
            faces.append(FaceRecord(image_index, truth, result.detections[d], float(overlaps[d, g])))
    on_ignored = _on_ignored_faces(det_boxes, [g.xywh for g in result.ignored], iou_threshold)
    detections = [
        DetectionRecord(image_index, detection, matched[d], matched[d] is None and on_ignored[d])
        for d, detection in enumerate(result.detections)
    ]
    return faces, detections


def _on_ignored_faces(det_boxes: list[XYWH], ignored_boxes: list[XYWH], iou_threshold: float) -> list[bool]:
    """For each detection: does it overlap a face of an unevaluated class at least ``iou_threshold``?"""
    overlap = iou_matrix(det_boxes, ignored_boxes)
    if overlap.shape[1] == 0:
        return [False] * len(det_boxes)
    return [bool(row.max() >= iou_threshold) for row in overlap]
