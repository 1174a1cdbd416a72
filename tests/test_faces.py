"""YuNet face detection and the shared crop rule, on real photos (scikit-image's astronaut and cameraman)."""

import hashlib

import cv2
import numpy as np
import pytest
from skimage import data

from mask_detection.errors import ModelError
from mask_detection.faces import (
    DEFAULT_DETECTOR_PATH,
    FACE_MARGIN,
    MIN_FACE_SIZE,
    Face,
    FaceDetector,
    crop_face,
    crop_region,
    largest_face,
)

YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
# The astronaut's face (brow to chin, ear to ear) in the 512x512 photo, by eye: x 180..265, y 70..175.
ASTRONAUT_FACE_CENTRE = (222, 120)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def test_shipped_detector_model_is_the_published_yunet():
    assert hashlib.sha256(DEFAULT_DETECTOR_PATH.read_bytes()).hexdigest() == YUNET_SHA256
    assert (DEFAULT_DETECTOR_PATH.parent / "LICENSE-yunet").is_file()


def test_astronaut_has_exactly_one_face_on_her_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    (x, y, w, h), score = faces[0]
    assert score > 0.8
    assert abs(x + w / 2 - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(y + h / 2 - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert 60 <= w <= 130 and 80 <= h <= 150
    assert all(isinstance(v, int) for v in faces[0].box)


def test_no_face_in_a_photo_without_people(detector):
    assert detector.detect(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)) == []
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_input_size_follows_each_frame(detector, astronaut):
    """The same face pasted into frames of other sizes is found where it was pasted."""
    reference = detector.detect(astronaut)[0].box
    for height, width, top, left in ((480, 640, 100, 300), (600, 900, 50, 20), (512, 512, 0, 0)):
        frame = np.full((height, width, 3), 90, np.uint8)
        frame[top:top + 512, left:left + 512] = astronaut[: height - top, : width - left]
        faces = detector.detect(frame)
        assert len(faces) == 1, (height, width)
        x, y, w, h = faces[0].box
        # A few pixels of jitter: the detector's grid sees a different surrounding.
        assert abs(x - left - reference[0]) <= 8 and abs(y - top - reference[1]) <= 8
        assert abs(w - reference[2]) <= 0.15 * reference[2] and abs(h - reference[3]) <= 0.15 * reference[3]


def test_grayscale_frames_are_accepted(detector):
    faces = detector.detect(data.camera())
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 180 < x + w / 2 < 260 and 110 < y + h / 2 < 200  # the cameraman's face


def test_boxes_are_clipped_to_the_image(detector, astronaut):
    # Cut the photo through the face: the detector's box reaches past the edge, ours must not.
    cut = np.ascontiguousarray(astronaut[95:, 195:])
    faces = detector.detect(cut)
    assert faces, "a face cut by the edges is still found"
    for (x, y, w, h), _ in faces:
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= cut.shape[1] and y + h <= cut.shape[0]


def test_faces_are_sorted_by_score(detector, astronaut):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.full((512, 1024, 3), 100, np.uint8)
    frame[:, :512] = astronaut
    frame[128:384, 640:896] = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    faces = detector.detect(frame)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score


def test_score_threshold_filters_faces(astronaut):
    assert FaceDetector(score_threshold=0.999).detect(astronaut) == []


def test_crop_region_is_a_square_centred_on_the_face():
    x0, y0, x1, y1 = crop_region((100, 100, 40, 60), (480, 640), margin=0.25)
    assert (x1 - x0, y1 - y0) == (90, 90)  # max(40, 60) * 1.5
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == (120, 130)
    assert crop_region((100, 100, 40, 60), (480, 640), margin=0.0) == (90, 100, 150, 160)


def test_crop_region_is_clipped_at_the_edges():
    assert crop_region((0, 0, 50, 50), (100, 120), margin=0.5) == (0, 0, 75, 75)
    assert crop_region((90, 60, 30, 40), (100, 120), margin=0.2) == (77, 52, 120, 100)


def test_crop_face_keeps_the_face_and_skips_tiny_ones(astronaut):
    box = (178, 63, 90, 113)
    crop = crop_face(astronaut, box)
    x0, y0, x1, y1 = crop_region(box, astronaut.shape, FACE_MARGIN)
    assert crop.shape == (y1 - y0, x1 - x0, 3)
    assert np.array_equal(crop, astronaut[y0:y1, x0:x1])
    assert crop_face(astronaut, (10, 10, MIN_FACE_SIZE - 1, 30)) is None
    assert crop_face(astronaut, (10, 10, MIN_FACE_SIZE, MIN_FACE_SIZE)) is not None
    assert crop_face(astronaut, (10, 10, 20, 20), min_size=30) is None


def test_largest_face():
    faces = [Face((0, 0, 10, 10), 0.9), Face((0, 0, 30, 20), 0.6), Face((5, 5, 20, 30), 0.7)]
    assert largest_face(faces) == faces[2]
    assert largest_face([]) is None


def test_missing_or_corrupt_detector_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        FaceDetector(tmp_path / "none.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(ModelError, match="cannot load face detector model"):
        FaceDetector(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        FaceDetector(empty)


def test_shrunk_detection_gives_boxes_in_original_pixels(detector, astronaut):
    full = detector.detect(astronaut)[0].box
    small = FaceDetector(max_side=256).detect(astronaut)
    assert len(small) == 1
    assert all(abs(a - b) <= 8 for a, b in zip(small[0].box, full))
    with pytest.raises(ModelError):
        FaceDetector(max_side=8)
