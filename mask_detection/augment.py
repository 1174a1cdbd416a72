"""Training augmentation, applied once to make extra precomputed views (not per epoch).

The backbone is frozen, so each view is run through it once and its features cached; the head then trains on
original and augmented features alike. Besides the usual flips, small rotations, shifts and contrast/brightness
changes, most views are degraded like a small face seen by a real camera (``degrade_like_small_face``), for every
class alike: when only masked faces appear small and soft in training, "blurry" comes to mean "mask".
"""

import hashlib

import cv2
import numpy as np

from .crop import FACE_MARGIN
from .images import to_model_input

AUGMENT_VERSION = 2  # part of the feature cache key: bump when the recipe below changes

# Faces in real scenes are mostly 10-48 px (short side of the face box; scenes-train: a third under 32 px).
SMALL_FACE_PIXELS = (10.0, 48.0)
DEGRADE_PROBABILITY = 0.6
JPEG_QUALITY = (30, 90)


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of a square uint8 RGB image, same shape."""
    out = _geometric(image, rng)
    if rng.random() < DEGRADE_PROBABILITY:
        out = degrade_like_small_face(out, rng)
    elif rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=rng.uniform(0.5, 1.5))
    contrast = rng.uniform(0.8, 1.2)
    brightness = rng.uniform(-0.2, 0.2) * 255
    out = out.astype(np.float32) * contrast + brightness + (1 - contrast) * 127.5
    return np.clip(out, 0, 255).astype(np.uint8)


def _geometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, rotation (12 degrees at most), scale (10%) and shift (8%), edges replicated."""
    size = image.shape[0]
    out = image[:, ::-1] if rng.random() < 0.5 else image
    angle = rng.uniform(-12, 12)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.08, 0.08, size=2) * size
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(
        np.ascontiguousarray(out), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def degrade_like_small_face(
    image: np.ndarray, rng: np.random.Generator, face_pixels: float | None = None
) -> np.ndarray:
    """A face crop as the pipeline would see the same face ``face_pixels`` px tall in a real photo (random in
    SMALL_FACE_PIXELS when None): shrunk to that face plus the crop margin, sometimes blurred or noisy, usually
    JPEG-compressed, then enlarged back by the detection's resize rule. Same shape and dtype as ``image``."""
    size = image.shape[0]
    face = rng.uniform(*SMALL_FACE_PIXELS) if face_pixels is None else face_pixels
    side = max(4, int(round(face * (1 + 2 * FACE_MARGIN))))
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=rng.uniform(0.3, 0.9))
    if rng.random() < 0.3:
        noise = rng.normal(0.0, rng.uniform(2.0, 8.0), small.shape)
        small = np.clip(small + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(*JPEG_QUALITY))
        # OpenCV's JPEG codec takes BGR; the swap keeps its luma/chroma split right for RGB pictures.
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(small[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
            assert decoded is not None  # the JPEG OpenCV itself just encoded
            small = decoded[:, :, ::-1]
    return to_model_input(small, size)


def augment_view(image: np.ndarray, picture_key: str, view: int) -> np.ndarray:
    """Augmented view number ``view`` (1, 2, ...) of a picture whose content key is ``picture_key``.

    Its random draws depend only on the key and the view number, not on the split, the batch, the other pictures
    or the training seed: a picture's view k is the same in every run and every mix of sources, so its cached
    features stay valid.
    """
    digest = hashlib.sha256(picture_key.encode()).digest()
    rng = np.random.default_rng([int(view), *np.frombuffer(digest, np.uint32).tolist()])
    return augment_image(image, rng)
