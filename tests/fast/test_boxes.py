"""Box maths (boxes.py) and one-to-one matching (matching.py): fast unit tests on hand-made boxes."""

import pytest

from mask_detection.boxes import (
    BUCKET_NAMES,
    box_size,
    clip_box,
    clip_gt_box,
    iou_matrix,
    pixel_bounds,
    size_bucket,
    to_xywh,
    to_xyxy,
)
from mask_detection.crop import crop_region
from mask_detection.matching import match_by_overlap, match_detections

SHAPE = (100, 200, 3)  # height 100, width 200


def test_conversions_go_both_ways():
    assert to_xyxy((10, 20, 30, 40)) == (10, 20, 40, 60)
    assert to_xywh((10, 20, 40, 60)) == (10, 20, 30, 40)


def test_clip_box_rounds_and_clips_at_every_edge():
    assert clip_box(10.4, 20.6, 30.2, 40.0, SHAPE) == (10, 21, 31, 40)  # x1 = round(40.6) = 41, y1 = round(60.6)
    assert clip_box(-5.0, -3.0, 20.0, 10.0, SHAPE) == (0, 0, 15, 7)  # left and top edges
    assert clip_box(190.0, 90.0, 30.0, 30.0, SHAPE) == (190, 90, 10, 10)  # right and bottom edges


def test_clip_box_is_none_outside_the_image():
    assert clip_box(250.0, 10.0, 20.0, 20.0, SHAPE) is None
    assert clip_box(10.0, -30.0, 20.0, 20.0, SHAPE) is None
    assert clip_box(10.0, 10.0, 0.2, 20.0, SHAPE) is None  # rounds to nothing


def test_clip_gt_box_keeps_fractions_and_empties_boxes_outside():
    assert clip_gt_box((-2.5, 10.25, 20.0, 95.0), 200, 100) == (0.0, 10.25, 17.5, 89.75)
    assert clip_gt_box((195.5, 0.0, 10.0, 10.0), 200, 100) == (195.5, 0.0, 4.5, 10.0)
    assert clip_gt_box((210.0, 0.0, 10.0, 10.0), 200, 100) == (210.0, 0.0, 0.0, 10.0)  # wholly outside: width 0


def test_pixel_bounds_may_be_empty():
    assert pixel_bounds(-4.6, 2.5, 250.0, 99.5, SHAPE) == (0, 2, 200, 100)  # round half to even: 2.5 -> 2
    assert pixel_bounds(220.0, 0.0, 240.0, 10.0, SHAPE) == (220, 0, 200, 10)  # outside: x1 < x0


def test_crop_region_is_a_square_clipped_at_the_edges():
    assert crop_region((50, 40, 20, 10), SHAPE, margin=0.0) == (50, 35, 70, 55)  # side max(w, h), centred
    assert crop_region((0, 0, 20, 20), SHAPE, margin=0.5) == (0, 0, 30, 30)  # side 40 around (10, 10), clipped
    assert crop_region((300, 10, 20, 20), SHAPE, margin=0.0) == (300, 10, 300, 30)  # outside: empty, never negative


def test_iou_of_identical_disjoint_touching_and_partial_boxes():
    box = (0, 0, 10, 10)
    assert iou_matrix([box], [box])[0, 0] == 1.0
    assert iou_matrix([box], [(20, 20, 10, 10)])[0, 0] == 0.0
    assert iou_matrix([box, (0, 20, 10, 10)], [(20, 0, 10, 10)]).tolist() == [[0.0], [0.0]]  # beside, diagonal
    assert iou_matrix([box], [(0, 20, 10, 10)])[0, 0] == 0.0  # below
    assert iou_matrix([box], [(10, 0, 10, 10)])[0, 0] == 0.0  # sharing an edge is no overlap
    assert iou_matrix([box], [(5, 0, 10, 10)])[0, 0] == pytest.approx(50 / 150)
    assert iou_matrix([box], [(2, 3, 4, 5)])[0, 0] == pytest.approx(20 / 100)  # one inside the other


def test_iou_matrix_shape_order_and_empty_boxes():
    matrix = iou_matrix([(0, 0, 10, 10), (0, 0, 0, 0)], [(0, 0, 10, 20), (0, 0, 10, 10), (0, 0, 0, 0)])
    assert matrix.shape == (2, 3)
    assert matrix[0].tolist() == pytest.approx([0.5, 1.0, 0.0])  # rows: detections, columns: ground truth
    assert matrix[1].tolist() == [0.0, 0.0, 0.0]  # an empty box overlaps nothing (no division by zero)
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_size_is_the_short_side_and_buckets_are_half_open():
    assert box_size((0, 0, 40, 20)) == 20
    assert [size_bucket((0, 0, 100, h)) for h in (0, 15.9, 16, 32, 64, 10_000)] == [
        "<16",
        "<16",
        "16-32",
        "32-64",
        ">=64",
        ">=64",
    ]
    assert BUCKET_NAMES == ("<16", "16-32", "32-64", ">=64")


def test_match_detections_is_one_to_one_highest_score_first():
    face = [(0, 0, 10, 10)]
    # The better-scored detection takes the face although the other overlaps it more; the other stays unmatched.
    assert match_detections([(1, 0, 10, 10), (3, 0, 10, 10)], [0.6, 0.9], face, 0.3) == [None, 0]


def test_match_detections_threshold_is_inclusive():
    face = [(0, 0, 10, 10)]
    third = 50 / 150  # IoU of (5, 0, 10, 10) with the face
    assert match_detections([(5, 0, 10, 10)], [0.9], face, third) == [0]
    assert match_detections([(5, 0, 10, 10)], [0.9], face, 0.34) == [None]
    assert match_detections([(20, 0, 10, 10)], [0.9], face, 0.0) == [None]  # no overlap never matches


def test_match_by_overlap_takes_the_best_pair_first():
    """Face B fits detection 0 best (0.9); face A, listed first, gets detection 1 rather than taking 0 from B."""
    face_a, face_b = (0, 1, 10, 10), (0, 0, 10, 10)
    detections = [(0, 0, 10, 9), (0, 3, 10, 10)]  # 0: IoU 0.73 with A, 0.9 with B; 1: 0.67 with A, 0.54 with B
    assert match_by_overlap(detections, [face_a, face_b], 0.3) == [1, 0]


def test_match_by_overlap_is_one_to_one_with_an_inclusive_threshold():
    face = [(0, 0, 10, 10)]
    assert match_by_overlap([(0, 0, 10, 10), (0, 0, 10, 10)], face, 0.3) == [0]  # equal IoU: the lower index
    assert match_by_overlap([(0, 0, 10, 10)], face + face, 0.3) == [0, None]  # one detection, one face
    assert match_by_overlap([(5, 0, 10, 10)], face, 50 / 150) == [0]
    assert match_by_overlap([(5, 0, 10, 10)], face, 0.34) == [None]
    assert match_by_overlap([], face, 0.3) == [None]
