"""Painted masks (painted_masks.py): a mask over nose and mouth of an aligned face, nothing over the eyes, the same
picture for the same draws; the painted source holds one with_mask copy of every bare face."""

import hashlib

import numpy as np
import pytest

from mask_detection.crop import ALIGN_TEMPLATE
from mask_detection.painted_masks import KINDS, PAINTED_SOURCE, paint_mask, painted_source

SIZE = 224


def face():
    """A flat skin-coloured aligned face with a little texture."""
    rng = np.random.default_rng(1)
    return np.clip(rng.normal((200, 160, 140), 3, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def changed(before, after):
    return np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 30


@pytest.mark.parametrize("kind", KINDS)
def test_a_mask_covers_nose_and_mouth_and_leaves_the_eyes(kind):
    bare = face()
    painted = paint_mask(bare, np.random.default_rng(0), kind)
    moved = changed(bare, painted)
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = (np.asarray(ALIGN_TEMPLATE) * SIZE).astype(int)
    assert moved[(mly + mry) // 2, (mlx + mrx) // 2]  # the mouth
    assert moved[ny + 5, nx]  # just under the nose tip
    assert not moved[ly - 5 : ly + 5, lx - 5 : lx + 5].any()  # the eyes stay bare
    assert not moved[ry - 5 : ry + 5, rx - 5 : rx + 5].any()
    assert moved.mean() > 0.2  # a mask, not a dot


def test_the_same_draws_paint_the_same_mask_and_kinds_differ():
    bare = face()
    first = paint_mask(bare, np.random.default_rng(7), "cloth")
    assert np.array_equal(first, paint_mask(bare, np.random.default_rng(7), "cloth"))
    kinds = [paint_mask(bare, np.random.default_rng(7), kind) for kind in KINDS]
    assert not np.array_equal(kinds[0], kinds[1]) and not np.array_equal(kinds[1], kinds[2])
    with pytest.raises(ValueError, match="unknown mask kind"):
        paint_mask(bare, np.random.default_rng(7), "scarf")


def test_the_painted_source_copies_each_bare_face_once_with_a_mask():
    images = np.stack([face(), face()[::-1].copy(), face()[:, ::-1].copy()])
    hashes = ["a" * 64, "b" * 64, "c" * 64]
    arrays = {
        "images": images,
        "labels": np.array([1, 0, 1], np.int32),  # with_mask is 0, without_mask 1
        "class_names": np.array(["with_mask", "without_mask"]),
        "paths": np.array(["without_mask/x.jpg", "with_mask/y.jpg", "without_mask/z.jpg"]),
        "hashes": np.array(hashes),
        "crop": np.asarray("aligned"),
    }
    painted = painted_source(arrays, skip={"c" * 64}, with_mask=0, without_mask=1)  # z was kept whole
    assert painted["labels"].tolist() == [0]
    assert painted["paths"][0].startswith("without_mask/x.jpg#painted-")
    assert painted["paths"][0].rsplit("-", 1)[1] in KINDS
    assert painted["sources"].tolist() == [PAINTED_SOURCE]
    assert painted["hashes"][0] == hashlib.sha256(painted["images"][0].tobytes()).hexdigest()
    assert changed(images[0], painted["images"][0]).mean() > 0.2
    again = painted_source(arrays, skip={"c" * 64}, with_mask=0, without_mask=1)
    assert np.array_equal(again["images"], painted["images"])  # drawn from the picture's hash: repeatable
