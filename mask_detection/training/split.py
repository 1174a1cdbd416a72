"""The pictures a run trains on: refused when training cannot use them, then split into train/validation/test,
stratified by class (and by source and class when there are several sources) with a fixed seed."""

from pathlib import Path

import numpy as np

from .. import MIN_INPUT_SIZE
from ..errors import DatasetError
from ..fileio import display_path

MIN_IMAGES_PER_CLASS = 5


def split_indices(
    labels: np.ndarray,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    n_classes: int | None = None,
    sources: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Stratified train/validation/test indices with a fixed seed.

    ``n_classes``: the number of class names; a class with no image at all counts as a class with 0 images.
    ``sources``: each picture's source (arrays' ``sources``); when there are several, the split is stratified by
    source and class together, so that validation (where early stopping and the temperature are fitted) and test
    hold scene crops in their share too. One source splits exactly as without it.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    n = len(labels)
    # minlength: without it a class missing from the labels (all images one class) is not even counted.
    counts = np.bincount(labels, minlength=n_classes or 0) if n else np.zeros(n_classes or 2, np.int64)
    n_classes = len(counts)
    if counts.min() < MIN_IMAGES_PER_CLASS:
        raise DatasetError(
            f"every class needs at least {MIN_IMAGES_PER_CLASS} images for a train/validation/test "
            f"split; the smallest has {counts.min()}"
        )
    # At least one image per class in the small splits, whatever the fractions.
    n_test = max(n_classes, int(round(n * test_fraction)))
    n_val = max(n_classes, int(round(n * val_fraction)))
    strata = _split_strata(labels, sources, min(n_test, n_val))
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=n_test, stratify=strata, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=strata[rest], random_state=seed)
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}


def _split_strata(labels: np.ndarray, sources: np.ndarray | None, smallest_split: int) -> np.ndarray:
    """Source and class combined, when there are several sources and every combination has enough pictures to
    appear in each split; otherwise the class alone."""
    if sources is None or len(np.unique(sources)) < 2:
        return labels
    _, strata = np.unique(
        np.char.add(np.char.add(np.asarray(sources, str), "|"), np.asarray(labels).astype(str)), return_inverse=True
    )
    counts = np.bincount(strata)
    if counts.min() < MIN_IMAGES_PER_CLASS or len(counts) > smallest_split:
        return labels
    return strata


def check_training_data(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    """What load_arrays accepts but training cannot use: no images, images too small, a class with too few
    images (all images one class would "test" at 100% accuracy)."""
    images, labels = arrays["images"], np.asarray(arrays["labels"], np.int64)
    shown = display_path(path)
    if len(images) == 0:
        raise DatasetError(f"{shown} holds no images (run loader.py on a dataset folder with images)")
    # Any square side works (the model takes its arrays' side), but the backbones shrink a picture 32 times.
    if images.shape[1] < MIN_INPUT_SIZE:
        raise DatasetError(
            f"{shown} holds {images.shape[1]}x{images.shape[2]} images, but the classifier takes at least "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} images: make the arrays file with loader.py (--input-size)"
        )
    class_names = [str(c) for c in arrays["class_names"]]
    counts = np.bincount(labels, minlength=len(class_names))  # minlength: a class with no image counts as 0
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise DatasetError(
            f"{shown} has no images of class {', '.join(empty)}: a classifier needs images of every "
            f"class ({', '.join(f'{n} {c}' for n, c in zip(class_names, counts, strict=True))})"
        )
