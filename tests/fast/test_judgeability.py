"""How judgeable a view of a face is (``people.view_quality``): its size, its sharpness (a blurred copy weighs
less) and how frontal it is from the detector's landmarks (a turned face weighs less); and that the fused verdict
listens to the more judgeable view."""

import cv2
import numpy as np
import pytest

from mask_detection.classes import WITH_MASK, WITHOUT_MASK
from mask_detection.detections import Face
from mask_detection.people import QUALITY_FLOOR, frontal_factor, sharpness_factor, size_factor, view_quality

# Landmarks of a frontal face in a 96 px box at (0, 0): eyes, nose tip, mouth corners (the image's left first).
FRONTAL = ((30.0, 40.0), (66.0, 40.0), (48.0, 60.0), (34.0, 76.0), (62.0, 76.0))
TURNED = ((30.0, 40.0), (66.0, 40.0), (64.0, 60.0), (40.0, 76.0), (64.0, 76.0))  # nose 0.44 eye distances aside
LOOKING_DOWN = ((30.0, 40.0), (66.0, 40.0), (48.0, 72.0), (34.0, 76.0), (62.0, 76.0))  # nose almost at the mouth


def textured_face(seed=0, side=96):
    """A BGR frame with a face-sized patch of detail (noise smoothed to blobs a few pixels across, like the eyes,
    brows and nostrils of a face this size)."""
    rng = np.random.default_rng(seed)
    frame = np.full((240, 320, 3), 90, np.uint8)
    patch = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3)).astype(np.uint8), (0, 0), 3.0)
    frame[60 : 60 + side, 100 : 100 + side] = patch
    return frame, (100, 60, side, side)


def test_size_counts_up_to_full_weight_side():
    assert size_factor((0, 0, 48, 48), 96) == pytest.approx(0.5)
    assert size_factor((0, 0, 96, 96), 96) == 1.0 and size_factor((0, 0, 300, 200), 96) == 1.0


def test_a_blurred_copy_of_a_face_is_less_sharp_and_contrast_does_not_matter():
    frame, box = textured_face()
    sharp = sharpness_factor(frame, box)
    blurred = sharpness_factor(cv2.GaussianBlur(frame, (0, 0), 4.0), box)  # a 4 px blur (motion, focus)
    dim = sharpness_factor((frame.astype(np.float32) * 0.5 + 40).astype(np.uint8), box)  # half the contrast
    more_blurred = sharpness_factor(cv2.GaussianBlur(frame, (0, 0), 8.0), box)
    assert sharp == 1.0 and blurred < 0.7 and more_blurred < blurred
    assert dim == pytest.approx(sharp, abs=0.05)
    flat = np.full_like(frame, 120)
    assert sharpness_factor(flat, box) == QUALITY_FLOOR  # nothing to judge by, and never a weight of 0


def test_a_turned_face_or_one_looking_down_is_less_frontal():
    assert frontal_factor(FRONTAL) == 1.0
    assert frontal_factor(None) == 1.0  # no landmarks: no opinion
    assert QUALITY_FLOOR < frontal_factor(TURNED) < 0.7
    assert QUALITY_FLOOR < frontal_factor(LOOKING_DOWN) < 0.7
    rolled = [(48 + (x - 48) * 0.8 - (y - 58) * 0.6, 58 + (x - 48) * 0.6 + (y - 58) * 0.8) for x, y in FRONTAL]
    assert frontal_factor(tuple(rolled)) == pytest.approx(1.0)  # a tilted head (roll) is still frontal


def test_judgeability_is_the_product_of_the_three():
    frame, box = textured_face()
    shifted = tuple((x + box[0], y + box[1]) for x, y in TURNED)
    quality = view_quality(frame, Face(box, 0.9, shifted), 96)
    assert quality.judgeability == pytest.approx(quality.size * quality.sharpness * quality.frontal)
    assert quality.frontal == pytest.approx(frontal_factor(TURNED))
    blurred = view_quality(cv2.GaussianBlur(frame, (0, 0), 4.0), Face(box, 0.9, shifted), 96)
    assert blurred.judgeability < 0.7 * quality.judgeability
    far = view_quality(frame, Face((100, 60, 48, 48), 0.9), 96)
    assert far.size == pytest.approx(0.5) and far.frontal == 1.0


def test_the_frontal_view_outweighs_the_turned_one(make_stage):
    """The same face, same size and score, once frontal saying with_mask and once turned saying without_mask as
    surely, without memory and before any cap (nothing settled): the fused verdict follows the frontal view."""
    stage = make_stage(min_frames=1, unsettled_every=1, reclassify_every=1, settle_classifications=100, memory=1.0)
    at = (272, 192)
    frontal = tuple((x + at[0], y + at[1]) for x, y in FRONTAL)
    turned = tuple((x + at[0], y + at[1]) for x, y in TURNED)
    stage.show(stage.face((0.9, 0.1), landmarks=frontal))
    stage.show(stage.face((0.9, 0.1), landmarks=frontal))
    result = stage.show(stage.face((0.1, 0.9), landmarks=turned))
    detection = result.detections[0]
    assert detection.class_name == WITH_MASK
    share = frontal_factor(TURNED) / (1 + frontal_factor(TURNED))  # the turned view's share of the evidence
    expected = 1 / (1 + np.exp(-(1 - 2 * share) * np.log(9)))
    assert detection.probability == pytest.approx(expected, rel=1e-6)
    assert WITHOUT_MASK in stage.people.class_names
