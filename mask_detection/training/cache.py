"""The feature cache: its folder (optional: unwritable only warns) and the keys of its entries, which name a
picture by its pixels, the backbone by its weights, and the view (original or augmented)."""

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..augment import AUGMENT_VERSION
from ..backbones import BACKBONES
from ..errors import OutputError
from ..feature_store import DEFAULT_LIMIT_BYTES, FeatureStore
from ..fileio import check_writable, display_path
from .config import Log, TrainConfig


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mask_detection" / "features"


def picture_keys(images: np.ndarray) -> list[str]:
    """Each picture's content key: sha256 of its model-input pixels and shape (32 hex digits).

    The pixels, not the source files' hashes: the same file cropped differently (loader's face crop or not) is
    another picture. The same pixels get the same key in any arrays file, split or mix of sources.
    """
    shape = repr(images.shape[1:]).encode()
    keys = []
    for image in images:
        digest = hashlib.sha256(shape)
        # numpy tells type checkers of its buffer protocol (__buffer__) only for Python 3.12 and later.
        digest.update(memoryview(np.ascontiguousarray(image)).cast("B"))  # type: ignore[arg-type]
        keys.append(digest.hexdigest()[:32])
    return keys


def view_names(augment_views: int) -> list[str]:
    """The views of each picture whose features are computed: the original, then the augmented views, named
    with the augmentation recipe's version (a new recipe makes new views)."""
    return ["original", *(f"augment-v{AUGMENT_VERSION}-{view}" for view in range(1, augment_views + 1))]


def feature_key(weights_id: str, view: str, picture: str) -> str:
    """A picture view's key in the feature cache: backbone and weights, view, picture content."""
    return f"{weights_id}/{view}/{picture}"


@dataclass
class FeatureCache:
    """Where backbone features are cached (None: nowhere), whether new entries can be written there, and how many
    bytes of features it keeps."""

    folder: Path | None
    writable: bool = False
    limit: int = DEFAULT_LIMIT_BYTES

    def open(self, log: Log, warn: Log) -> FeatureStore | None:
        """The feature store, or None when there is none to use (problems are warnings)."""
        if self.folder is None:
            return None
        store = FeatureStore(self.folder, self.limit, warn, writable=self.writable)
        if store.created:
            remove_per_dataset_cache_files(self.folder, log)
        if not store.readable:
            store.close()
            return None
        return store


def usable_cache(config: TrainConfig, warn: Log) -> FeatureCache:
    """The feature cache, checked before the slow part. It is optional: an unwritable folder only warns (entries
    already in it are still read)."""
    if config.cache_dir is False or config.weights is None:  # random weights differ per run: never cached
        return FeatureCache(None)
    cache_dir = default_cache_dir() if config.cache_dir is None else config.cache_dir
    if not cache_dir:
        return FeatureCache(None)
    try:
        check_writable(cache_dir, folder=True)
    except OutputError as exc:
        warn(f"feature cache not written: {exc}")
        return FeatureCache(Path(cache_dir), writable=False, limit=config.cache_limit)
    return FeatureCache(Path(cache_dir), writable=True, limit=config.cache_limit)


# The cache before the per-picture store: one file per backbone and dataset, e.g. resnet50-0123456789abcdef0123.npz
_PER_DATASET_ENTRY = re.compile(rf"({'|'.join(BACKBONES)})-[0-9a-f]{{20}}\.npz")


def remove_per_dataset_cache_files(folder: Path, log: Log) -> None:
    """Remove the earlier per-dataset cache files from the folder, once (when the feature store is created):
    nothing reads them any more and they were never bounded."""
    removed = 0
    try:
        for path in folder.iterdir():
            if _PER_DATASET_ENTRY.fullmatch(path.name) and path.is_file():
                path.unlink()
                removed += 1
    except OSError:
        pass  # whatever is left stays; it is only disk space
    if removed:
        log(f"feature cache: removed {removed} file(s) of the earlier per-dataset cache from {display_path(folder)}")
