"""Masks painted onto bare faces: the same face with and without a mask, so a classifier must look at the nose
and mouth (issue 18, step 3).

Works on aligned crops (``crop.ALIGNED``), where the five landmarks sit on ``crop.ALIGN_TEMPLATE``: the mask is
drawn in template coordinates, from the nose bridge to under the chin and from cheek to cheek. Three kinds, each
with its own shape and colours: surgical (pleats, ear loops), cloth (a curved panel, plain, striped or dotted) and
N95 (a white cup with a seam and sometimes a valve). Shading (light from one side, a darker lower edge) and noise
keep it from looking like flat paint. Every draw comes from the random generator it is given.
"""

import cv2
import numpy as np

from .arrays import pixel_hash
from .crop import ALIGN_TEMPLATE

KINDS = ("surgical", "cloth", "n95")
PAINTED_SOURCE = "painted"  # the arrays' source name of the painted pictures
# RGB. Surgical masks: light blue, white, black, pink, mint. Cloth: darker and brighter fabrics.
_SURGICAL = ((170, 205, 230), (236, 238, 240), (38, 40, 46), (240, 196, 206), (176, 222, 200))
_CLOTH = ((30, 45, 90), (70, 70, 75), (20, 20, 22), (150, 30, 40), (200, 180, 150), (60, 110, 70), (230, 230, 225))
_N95 = ((238, 238, 236), (222, 224, 226), (200, 205, 210))

_BOX_BOTTOM = 0.885  # the face box's lower edge (the chin) in an aligned crop: (1 + margin) / (1 + 2 margin)
_BOX_SIDES = (0.115, 0.885)


def paint_mask(rgb: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A copy of an aligned face crop (RGB uint8, square) with a mask over nose and mouth; ``kind``: one of
    ``KINDS``, or None for a random one."""
    size = rgb.shape[0]
    kind = kind if kind is not None else KINDS[int(rng.integers(len(KINDS)))]
    eyes_y, nose_y = ALIGN_TEMPLATE[0][1] * size, ALIGN_TEMPLATE[2][1] * size
    top = eyes_y + rng.uniform(0.3, 0.55) * (nose_y - eyes_y)  # the nose bridge
    bottom = size * (_BOX_BOTTOM + rng.uniform(-0.02, 0.04))
    left = size * (_BOX_SIDES[0] + rng.uniform(-0.02, 0.05))
    right = size * (_BOX_SIDES[1] + rng.uniform(-0.05, 0.02))
    layer = np.zeros_like(rgb)
    shape = np.zeros(rgb.shape[:2], np.uint8)
    if kind == "surgical":
        colour = _SURGICAL[int(rng.integers(len(_SURGICAL)))]
        _surgical(layer, shape, colour, top, bottom, left, right, size)
    elif kind == "cloth":
        colour = _CLOTH[int(rng.integers(len(_CLOTH)))]
        _cloth(layer, shape, colour, top, bottom, left, right, rng)
    elif kind == "n95":
        colour = _N95[int(rng.integers(len(_N95)))]
        _n95(layer, shape, colour, top, bottom, left, right, rng)
    else:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(KINDS)}")
    shaded = layer.astype(np.float32) * _shading(size, rng)[:, :, None]
    shaded += rng.normal(0.0, 4.0, shaded.shape).astype(np.float32)
    # Soft edges: the mask blends into the face over a pixel or two, as a real edge does after resizing.
    alpha = cv2.GaussianBlur(shape.astype(np.float32) / 255.0, (0, 0), 1.0)[:, :, None]
    out = rgb.astype(np.float32) * (1.0 - alpha) + shaded * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def _points(outline: list[tuple[float, float]]) -> np.ndarray:
    return np.array([[round(x), round(y)] for x, y in outline], np.int32)


def _surgical(layer, shape, colour, top, bottom, left, right, size):
    middle, height = (left + right) / 2.0, bottom - top
    width = right - left
    outline = [
        (left + 0.1 * width, top), (middle, top - 0.05 * height), (right - 0.1 * width, top),
        (right, top + 0.25 * height), (right - 0.06 * width, bottom - 0.15 * height), (middle, bottom),
        (left + 0.06 * width, bottom - 0.15 * height), (left, top + 0.25 * height),
    ]  # fmt: skip
    polygon = _points(outline)
    cv2.fillPoly(shape, [polygon], 255, lineType=cv2.LINE_AA)
    cv2.fillPoly(layer, [polygon], colour, lineType=cv2.LINE_AA)
    pleat = tuple(int(c * 0.8) for c in colour)
    thickness = max(1, size // 110)
    for share in (0.3, 0.5, 0.7):
        row = round(top + share * height)
        cv2.line(layer, (round(left + 0.05 * width), row), (round(right - 0.05 * width), row), pleat, thickness)
    loop = (235, 235, 235) if sum(colour) < 300 else tuple(int(c * 0.9) for c in colour)
    for side, outward in ((left, -1.0), (right, 1.0)):
        start = (round(side), round(top + 0.2 * height))
        end = (round(side + outward * 0.1 * width), round(top - 0.15 * height))
        cv2.line(layer, start, end, loop, thickness + 1, cv2.LINE_AA)
        cv2.line(shape, start, end, 255, thickness + 1, cv2.LINE_AA)


def _cloth(layer, shape, colour, top, bottom, left, right, rng):
    middle, height = (left + right) / 2.0, bottom - top
    width = right - left
    # A curved panel: straight-ish top over the nose, round bottom under the chin.
    xs = np.linspace(left, right, 24)
    upper = [(x, top + 0.12 * height * ((x - middle) / (width / 2)) ** 2) for x in xs]
    lower = [(x, bottom - 0.35 * height * ((x - middle) / (width / 2)) ** 2) for x in xs[::-1]]
    polygon = _points(upper + lower)
    cv2.fillPoly(shape, [polygon], 255, lineType=cv2.LINE_AA)
    cv2.fillPoly(layer, [polygon], colour, lineType=cv2.LINE_AA)
    pattern = int(rng.integers(3))
    other = tuple(int(255 - c * 0.7) for c in colour)
    if pattern == 1:  # stripes
        step = max(4, round(height / rng.uniform(5, 9)))
        for y in range(round(top), round(bottom), step):
            cv2.line(layer, (round(left), y), (round(right), y), other, max(1, step // 3))
    elif pattern == 2:  # dots
        step = max(5, round(width / rng.uniform(6, 10)))
        for y in range(round(top) + step // 2, round(bottom), step):
            for x in range(round(left) + step // 2, round(right), step):
                cv2.circle(layer, (x, y), max(1, step // 5), other, -1, cv2.LINE_AA)
    cv2.line(layer, (round(middle), round(top)), (round(middle), round(bottom)), tuple(int(c * 0.75) for c in colour))


def _n95(layer, shape, colour, top, bottom, left, right, rng):
    centre = (round((left + right) / 2.0), round((top + bottom) / 2.0 + 0.03 * (bottom - top)))
    axes = (round((right - left) / 2.0 * 0.95), round((bottom - top) / 2.0 * 1.05))
    cv2.ellipse(shape, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.ellipse(layer, centre, axes, 0, 0, 360, colour, -1, cv2.LINE_AA)
    seam = tuple(int(c * 0.82) for c in colour)
    cv2.line(layer, (centre[0], centre[1] - axes[1]), (centre[0], centre[1] + axes[1]), seam, 1, cv2.LINE_AA)
    cv2.ellipse(layer, centre, axes, 0, 0, 360, seam, 2, cv2.LINE_AA)  # the rim
    if rng.random() < 0.4:  # an exhalation valve, off the centre
        valve = (centre[0] + round(axes[0] * 0.35), centre[1] + round(axes[1] * 0.2))
        cv2.circle(layer, valve, max(3, axes[0] // 5), (90, 95, 100), -1, cv2.LINE_AA)


def _shading(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth brightness field: light from one side and above, darker toward the lower edge."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    side = rng.uniform(-0.18, 0.18)
    return (1.0 + side * (xs - 0.5) - rng.uniform(0.05, 0.2) * np.clip(ys - 0.6, 0, None) * 2.5).astype(np.float32)


def painted_source(
    arrays: dict[str, np.ndarray], skip: set[str], with_mask: int, without_mask: int
) -> dict[str, np.ndarray]:
    """Arrays of one new source, ``PAINTED_SOURCE``: every bare face of ``arrays`` (label ``without_mask``, hash not
    in ``skip``, e.g. pictures kept whole because no face was found) once more with a painted mask, labelled
    ``with_mask``. The kind and every random draw come from the picture's hash, so a run gives the same pictures.
    Paths are the original's with ``#painted-<kind>``; hashes are the new pixels' sha256."""
    rows = [i for i in np.nonzero(arrays["labels"] == without_mask)[0] if str(arrays["hashes"][i]) not in skip]
    images = np.empty((len(rows), *arrays["images"].shape[1:]), np.uint8)
    paths, hashes = [], []
    for out_row, row in enumerate(rows):
        digest = str(arrays["hashes"][row])
        rng = np.random.default_rng(int(digest[:16], 16))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        images[out_row] = paint_mask(arrays["images"][row], rng, kind)
        paths.append(f"{arrays['paths'][row]}#painted-{kind}")
        hashes.append(pixel_hash(images[out_row]))
    count = len(rows)
    return {
        "images": images,
        "labels": np.full(count, with_mask, np.int32),
        "class_names": arrays["class_names"],
        "paths": np.asarray(paths, dtype=str).reshape(count),
        "hashes": np.asarray(hashes, dtype=str).reshape(count),
        "sources": np.full(count, PAINTED_SOURCE),
        "crop": arrays["crop"],
    }
