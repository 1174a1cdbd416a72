"""One-to-one matching of detected boxes to annotated ones by overlap (IoU).

Two rules: ``match_detections`` takes detections by score, as PASCAL VOC and COCO score a detector (the
evaluation); ``match_by_overlap`` takes the best-overlapping pair first, so each annotated face gets the detection
that fits it best (the scene crops for training).
"""

from collections.abc import Sequence

import numpy as np

from .boxes import iou_matrix

# IoU 0.3 by default: on real scene sets annotators' boxes sit lower than detector boxes (chin included, brow
# left out), so at 0.5 many faces a good detector found count as misses. The evaluation reports 0.5 too.
DEFAULT_IOU = 0.3


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


def match_by_overlap(
    det_boxes: Sequence[Sequence[float]], gt_boxes: Sequence[Sequence[float]], iou_threshold: float
) -> list[int | None]:
    """One-to-one, best overlap first: the matched detection index (or None) of each ground-truth box.

    Pairs are taken by IoU over every (detection, ground truth) pair, highest first (equal IoU: the lower
    detection index, then the lower ground-truth index), down to ``iou_threshold``; a pair whose detection or
    ground truth is already taken is passed over.
    """
    overlaps = iou_matrix(det_boxes, gt_boxes)
    matched: list[int | None] = [None] * len(gt_boxes)
    taken: set[int] = set()
    # Over every pair, not detection by detection: a face takes the detection that fits it best even when that
    # detection also overlaps a neighbour.
    for flat in np.argsort(-overlaps, axis=None, kind="stable"):
        d, g = divmod(int(flat), len(gt_boxes))
        if overlaps[d, g] < iou_threshold:
            break
        if d not in taken and matched[g] is None:
            matched[g] = d
            taken.add(d)
    return matched
