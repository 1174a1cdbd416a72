"""The arrays file: a dataset made ready for training (written by the loader, read by training and export).

An uncompressed ``.npz`` holding:

- ``images`` uint8 (N, 224, 224, 3) RGB, made by ``images.to_model_input``
- ``labels`` int32 (N,), indices into ``class_names``
- ``class_names`` str (n_classes,)
- ``paths`` str (N,), relative to the dataset folder, '/'-separated; a scene crop's is its photo's path and
  ``#k``, k counting the faces of the arrays' classes in its annotation file
- ``hashes`` str (N,), sha256 hex of the file bytes (of the crop's model-input pixels for a crop cut from an
  annotated scene photo, which is not a file of its own)
- optional ``sources`` str (N,): where each picture comes from, ``folders`` or ``scenes:<folder>`` (``paths`` are
  relative to that source's folder); files without it are read as before
- optional ``crop`` str (a single value): the crop style of the face crops (``crop.CROP_STYLES``); files without
  it hold square crops
"""

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .crop import CROP_STYLES, SQUARE
from .errors import DatasetError, exception_line
from .fileio import atomic_path

ARRAY_KEYS = ("images", "labels", "class_names", "paths", "hashes")
OPTIONAL_KEYS = ("sources", "crop")
DEFAULT_DATASET_DIR = Path("dataset")  # relative on purpose: the working directory's
ARRAYS_NAME = "arrays.npz"  # the loader writes it beside the class folders by default
DEFAULT_ARRAYS = DEFAULT_DATASET_DIR / ARRAYS_NAME
_HINT = "(run loader.py to create it)"


def save_arrays(path: Path | str, arrays: dict[str, np.ndarray]) -> int:
    """Write the arrays file (uncompressed .npz) atomically; returns its size in bytes."""
    path = Path(path)
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"arrays lack keys {missing}")
    try:
        with atomic_path(path) as tmp:
            # A file object, not a name: np.savez would append ".npz" to any other ending.
            with open(tmp, "wb") as stream:
                named = {key: arrays[key] for key in (*ARRAY_KEYS, *OPTIONAL_KEYS) if key in arrays}
                # mypy matches **named against savez's allow_pickle: bool too; the keys are ARRAY_KEYS names.
                np.savez(stream, **named)  # type: ignore[arg-type]
    except OSError as exc:
        raise DatasetError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path.stat().st_size


def load_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Read and validate an arrays file written by the loader; DatasetError when unusable."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"arrays file not found: {path} {_HINT}")
    if not path.is_file():
        raise DatasetError(f"arrays path is not a file: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ARRAY_KEYS if key not in archive.files]
            if missing:
                raise DatasetError(f"{path} is not a loader arrays file: missing {', '.join(missing)} {_HINT}")
            arrays = {key: archive[key] for key in (*ARRAY_KEYS, *OPTIONAL_KEYS) if key in archive.files}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DatasetError(f"{path} is not a valid arrays file: {exception_line(exc, last=True)} {_HINT}") from None
    reason = _invalid_reason(arrays)
    if reason is not None:
        raise DatasetError(f"{path} is not a valid arrays file: {reason} {_HINT}")
    arrays["labels"] = arrays["labels"].astype(np.int32, copy=False)
    return arrays


def _invalid_reason(arrays: dict[str, np.ndarray]) -> str | None:
    """What is wrong with the arrays' types and shapes, or None."""
    images, labels, class_names = arrays["images"], arrays["labels"], arrays["class_names"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        return f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}"
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        return f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
    if class_names.ndim != 1 or class_names.dtype.kind != "U" or len(class_names) < 2:
        return f"class_names must be 2 or more strings, got {class_names.dtype} {class_names.shape}"
    count = images.shape[0]
    per_picture = [key for key in ("labels", "paths", "hashes", "sources") if key in arrays]
    for key in per_picture:
        if arrays[key].shape != (count,):
            return f"{key} has shape {arrays[key].shape}, expected ({count},)"
    for key in per_picture[1:]:
        if arrays[key].dtype.kind != "U":
            return f"{key} must be strings, got {arrays[key].dtype}"
    if count and (labels.min() < 0 or labels.max() >= len(class_names)):
        return f"labels outside 0..{len(class_names) - 1}"
    if "crop" in arrays and (arrays["crop"].shape != () or str(arrays["crop"]) not in CROP_STYLES):
        return f"crop must be one of {', '.join(CROP_STYLES)}, got {arrays['crop']!r}"
    return None


def pixel_hash(image: np.ndarray) -> str:
    """sha256 hex of a picture's pixels: the ``hashes`` entry of a picture that is not a file of its own (a scene
    crop, a painted copy), and how pictures from several sources are told apart."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def crop_style(arrays: dict[str, np.ndarray]) -> str:
    """The crop style of an arrays file's faces (files made before aligned crops hold square ones)."""
    return str(arrays["crop"]) if "crop" in arrays else SQUARE
