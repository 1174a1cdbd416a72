"""Training augmentation, applied once to make extra precomputed views (not per epoch).

The backbone is frozen, so each view is run through it once and its features cached; the head then trains on
original and augmented features alike. Besides the usual flips, small rotations, shifts and brightness changes, some
views are blurred or shrunk and enlarged again: faces found in real scenes are often small and soft.
"""

import cv2
import numpy as np

AUGMENT_VERSION = 1  # part of the feature cache key: bump when the recipe below changes


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of a square uint8 RGB image, same shape."""
    size = image.shape[0]
    out = image
    if rng.random() < 0.5:
        out = out[:, ::-1]
    angle = rng.uniform(-12, 12)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.08, 0.08, size=2) * size
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += shift
    out = cv2.warpAffine(
        np.ascontiguousarray(out), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if rng.random() < 0.3:
        small = int(rng.integers(20, 65))
        out = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=rng.uniform(0.5, 1.5))
    contrast = rng.uniform(0.8, 1.2)
    brightness = rng.uniform(-0.2, 0.2) * 255
    out = out.astype(np.float32) * contrast + brightness + (1 - contrast) * 127.5
    return np.clip(out, 0, 255).astype(np.uint8)


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.stack([augment_image(img, rng) for img in images])
