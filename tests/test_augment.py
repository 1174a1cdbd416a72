"""The training augmentation, in particular the small-face degradation applied to every class."""

import cv2
import numpy as np
import pytest

from mask_detection.augment import SMALL_FACE_PIXELS, augment_image, degrade_like_small_face


def _checkerboard(size: int, square: int = 2) -> np.ndarray:
    """Fine detail that a small face cannot keep: alternating black and white squares."""
    cells = (np.indices((size, size)) // square).sum(axis=0) % 2
    return np.repeat((cells * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _detail(image: np.ndarray) -> float:
    """Mean absolute Laplacian: high for sharp fine detail, near 0 for a smooth picture."""
    return float(np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).mean())


@pytest.mark.parametrize("size", [224, 160, 97])
def test_degradation_keeps_the_picture_size_and_type(size):
    image = _checkerboard(size)
    rng = np.random.default_rng(0)
    for face_pixels in (None, 3.0, SMALL_FACE_PIXELS[0], SMALL_FACE_PIXELS[1], 500.0):
        out = degrade_like_small_face(image, rng, face_pixels)
        assert out.shape == image.shape and out.dtype == np.uint8 and out.flags.c_contiguous
        assert augment_image(image, rng).shape == image.shape


def test_degradation_removes_the_detail_a_small_face_cannot_carry():
    image = _checkerboard(224)
    rng = np.random.default_rng(1)
    tiny = degrade_like_small_face(image, rng, SMALL_FACE_PIXELS[0])
    larger = degrade_like_small_face(image, rng, 150.0)
    # A 2-px checkerboard shrunk to about 13 px averages to grey: next to no detail is left.
    assert _detail(tiny) < 0.05 * _detail(image)
    assert _detail(tiny) < _detail(larger)
    # The picture's average colour survives (only detail is lost).
    assert abs(float(tiny.mean()) - float(image.mean())) < 12


def test_degradation_keeps_colours_in_place():
    """RGB in, RGB out: the JPEG step must not swap red and blue."""
    image = np.zeros((224, 224, 3), np.uint8)
    image[:, :, 0] = 220  # red
    image[:, :, 2] = 30
    rng = np.random.default_rng(2)
    for _ in range(20):
        out = degrade_like_small_face(image, rng).astype(int)
        assert out[:, :, 0].mean() > 180 and out[:, :, 2].mean() < 70


def test_most_augmented_views_are_degraded_like_small_faces():
    """Both classes go through the same recipe (it does not look at labels); most views lose fine detail."""
    image = _checkerboard(224)
    rng = np.random.default_rng(3)
    details = [_detail(augment_image(image, rng)) for _ in range(60)]
    degraded = sum(d < 0.3 * _detail(image) for d in details)
    assert 25 <= degraded <= 55  # DEGRADE_PROBABILITY 0.6 (plus some plain blur): not all, not none
