"""Detections matched to annotated faces (``mask_detection.matching.match_detections``: one-to-one, by score), and
the records every figure is computed from (one per annotated face, one per detection)."""

from collections.abc import Sequence
from dataclasses import dataclass

from ..annotations.voc import GroundTruth
from ..boxes import XYWH, box_size, iou_matrix, size_bucket
from ..detections import Detection
from ..matching import match_detections
from .scenes import SceneResult


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

    @property
    def found_detection(self) -> Detection:
        """``detection`` of a face that was found: asked only of found faces."""
        assert self.detection is not None
        return self.detection

    @property
    def found_label(self) -> str:
        """``predicted`` of a face that was found: asked only of found faces."""
        return self.found_detection.class_name


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


def _on_ignored_faces(det_boxes: Sequence[XYWH], ignored_boxes: Sequence[XYWH], iou_threshold: float) -> list[bool]:
    """For each detection: does it overlap a face of an unevaluated class at least ``iou_threshold``?"""
    overlap = iou_matrix(det_boxes, ignored_boxes)
    if overlap.shape[1] == 0:
        return [False] * len(det_boxes)
    return [bool(row.max() >= iou_threshold) for row in overlap]
