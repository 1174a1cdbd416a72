"""The crop rule (crop.py): aligned crops put the five landmarks where the template says, whatever the face's
tilt, size and place; the square rule stays as it was; the pipeline cuts faces in its classifier's style."""

import cv2
import numpy as np
import pytest

from mask_detection.crop import (
    ALIGN_TEMPLATE,
    ALIGNED,
    SQUARE,
    alignment,
    crop_face,
    face_input,
    metadata_crop,
    style_landmarks,
)
from mask_detection.detections import Face
from mask_detection.errors import ModelError
from mask_detection.images import to_model_input
from mask_detection.pipeline import MaskPipeline

SIZE = 224
# One colour per landmark (BGR), far apart, so each dot can be found again in the crop.
DOT_COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255))


def face_points(centre, side, angle_degrees, squeeze=1.0):
    """The template's five points for a face of ``side`` px (its square crop's side) at ``centre``, turned by
    ``angle_degrees`` in the image plane; ``squeeze`` < 1 narrows them sideways (a head turned aside)."""
    template = (np.asarray(ALIGN_TEMPLATE) - 0.5) * side
    template[:, 0] *= squeeze
    angle = np.deg2rad(angle_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = template @ rotation.T + np.asarray(centre, np.float64)
    return tuple((float(x), float(y)) for x, y in points)


def painted_face(shape, points, radius):
    """A grey picture with a coloured dot on each landmark."""
    image = np.full(shape, 90, np.uint8)
    for (x, y), colour in zip(points, DOT_COLOURS, strict=True):
        cv2.circle(image, (round(x), round(y)), radius, colour, -1, lineType=cv2.LINE_AA)
    return image


def dot_centres(crop):
    """Where each coloured dot landed in a crop: the centroid of the pixels near its colour."""
    centres = []
    for colour in DOT_COLOURS:
        near = np.abs(crop.astype(int) - np.array(colour)).sum(axis=2) < 120
        ys, xs = np.nonzero(near)
        assert len(xs), f"dot {colour} is not in the crop"
        centres.append((xs.mean(), ys.mean()))
    return np.array(centres)


def box_of(centre, side):
    """The face box whose square crop (margin 0.15) has ``side``: brow to chin, as YuNet's."""
    face = side / 1.3
    return (round(centre[0] - face / 2), round(centre[1] - face / 2), round(face), round(face))


@pytest.mark.parametrize(
    ("side", "angle"),
    [(130, 0.0), (130, 30.0), (130, -45.0), (60, 20.0), (900, -15.0)],  # 900: the shrink-first path
)
def test_aligned_crop_puts_the_landmarks_on_the_template(side, angle):
    shape = (1200, 1400, 3) if side > 500 else (400, 500, 3)
    centre = (shape[1] / 2 + 7.3, shape[0] / 2 - 4.6)
    points = face_points(centre, side, angle)
    image = painted_face(shape, points, radius=max(2, side // 40))
    crop = face_input(image, box_of(centre, side), SIZE, landmarks=points)
    assert crop.shape == (SIZE, SIZE, 3)
    found = dot_centres(crop)
    assert np.abs(found - np.asarray(ALIGN_TEMPLATE) * SIZE).max() < 2.0  # upright, one scale, centred


def test_the_crop_scale_stays_near_the_boxs_when_the_points_mislead():
    """Points crowded together (a head turned far aside, a poor view) or spread apart (a wrong fit) must not zoom
    the crop far in or out: the scale stays within 0.8-1.25 of the square crop's."""
    centre, side = (250.0, 200.0), 130
    box = box_of(centre, side)
    box_scale = SIZE / (max(box[2:]) * 1.3)

    def scale(points):
        return np.hypot(*alignment(points, box, SIZE)[0, :2]) / box_scale

    assert scale(face_points(centre, side, 0.0)) == pytest.approx(1.0, rel=0.02)  # a frontal face: the box's
    assert scale(face_points(centre, side, 0.0, squeeze=0.5)) == pytest.approx(1.21, abs=0.01)  # turned: closer
    assert scale(face_points(centre, side / 2, 0.0)) == pytest.approx(1.25)  # crowded: held at the limit
    assert scale(face_points(centre, side * 2, 0.0)) == pytest.approx(0.8)  # spread: held at the other


def test_a_mirrored_set_of_points_is_rotated_not_reflected():
    """Points given in the wrong left-right order (a detector's mistake) must still give a real photo, not its
    mirror image: a similarity transform never reflects."""
    centre, side = (250.0, 200.0), 130
    points = face_points(centre, side, 0.0)
    mirrored = (points[1], points[0], points[2], points[4], points[3])
    matrix = alignment(mirrored, box_of(centre, side), SIZE)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_an_aligned_crop_past_the_picture_edge_replicates_the_edge():
    image = np.zeros((200, 200, 3), np.uint8)
    image[:, :100] = 200  # left half light, right half dark
    points = face_points((10.0, 100.0), 120, 0.0)  # the face's centre 10 px from the left edge
    crop = face_input(image, box_of((10.0, 100.0), 120), SIZE, landmarks=points)
    assert crop[SIZE // 2, 5].tolist() == [200, 200, 200]  # beyond the edge: the edge pixel, not black


def test_without_landmarks_the_square_rule_is_unchanged():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    box = (120, 80, 90, 110)
    assert np.array_equal(face_input(image, box, SIZE), to_model_input(crop_face(image, box), SIZE))
    assert face_input(image, (0, 0, 5, 40), SIZE, landmarks=face_points((2.0, 20.0), 40, 0.0)) is None  # tiny


def test_crop_style_comes_from_the_models_metadata():
    assert metadata_crop({}) == SQUARE  # models made before aligned crops
    assert metadata_crop({"crop": ALIGNED}) == ALIGNED
    with pytest.raises(ModelError, match="unknown crop style 'tilted'"):
        metadata_crop({"crop": "tilted"})
    face = Face((1, 2, 30, 30), 0.9, face_points((16.0, 17.0), 39, 0.0))
    assert style_landmarks(face, ALIGNED) == face.landmarks
    assert style_landmarks(face, SQUARE) is None
    assert style_landmarks(Face((1, 2, 30, 30), 0.9), ALIGNED) is None  # a detector without landmarks


class OneFace:
    def __init__(self, face):
        self.face = face

    def detect(self, bgr):
        return [self.face]


class Recording:
    """A classifier stand-in that keeps the batch it is given."""

    class_names = ["with_mask", "without_mask"]
    input_size = SIZE
    path = None

    def __init__(self, crop):
        self.crop = crop
        self.batch = None

    def predict(self, batch):
        self.batch = batch
        return np.tile([[0.5, 0.5]], (len(batch), 1)).astype(np.float32)


@pytest.mark.parametrize("style", [ALIGNED, SQUARE])
def test_the_pipeline_cuts_faces_in_its_classifiers_style(style):
    centre, side = (250.0, 200.0), 130
    points = face_points(centre, side, 25.0)
    image = painted_face((400, 500, 3), points, radius=3)
    face = Face(box_of(centre, side), 0.9, points)
    classifier = Recording(style)
    MaskPipeline(OneFace(face), classifier).process(image)
    expected = face_input(image, face.xywh, SIZE, landmarks=points if style == ALIGNED else None)
    assert np.array_equal(classifier.batch[0], expected[:, :, ::-1])  # RGB to the classifier
