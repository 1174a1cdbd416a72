"""Training: frozen backbone features computed once (and cached on disk), then only the head is trained.

Flow: arrays -> stratified train/validation/test split (fixed seed) -> backbone features for every image plus
precomputed augmented views of the training images (by default through the backbone converted to TFLite and run
by LiteRT, checked against TensorFlow: see feature_function) -> head trained with RMSprop, early stopping on validation
loss (best weights restored) -> a temperature fitted on the validation split (calibration) -> the test split used
once -> full model (uint8 image in, calibrated probabilities out) checked against the head, then model, metadata,
split and plots written as one group (all replaced, or none).

TensorFlow runs the head (and the feature pass when it sees a GPU) on a GPU when one is visible.
"""

import contextlib
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import INPUT_SIZE, __version__
from ._tf import keras, tf
from .arrays import DEFAULT_ARRAYS, load_arrays
from .augment import AUGMENT_VERSION, augment_view
from .backbones import BACKBONES
from .backbones import weights_id as backbone_weights_id
from .errors import DatasetError, MaskDetectionError, OutputError
from .export import convert
from .feature_store import DEFAULT_LIMIT_BYTES, FeatureStore
from .fileio import atomic_paths, check_writable, display_path, refuse_overwriting_inputs
from .interrupts import StopFlag
from .litert import LiteRTFunction
from .metrics import (
    ECE_BINS,
    classification_figures,
    classification_report_text,
    expected_calibration_error,
    fit_temperature,
    plot_confusion_matrix,
    plot_history,
    softmax_with_temperature,
    temperature_nll,
)
from .model import (
    DROPOUT,
    HIDDEN_UNITS,
    apply_layers,
    build_classifier,
    build_feature_extractor,
    build_head_layers,
    compile_model,
    metadata_path,
)
from .paths import DEFAULT_MODEL_OUT

Log = Callable[[str], None]

MIN_IMAGES_PER_CLASS = 5
FEATURE_BATCH = 32
HEAD_STEPS_PER_EXECUTION = 64
FEATURE_ENGINES = ("auto", "litert", "tensorflow")
# Converting the backbone takes 20-30 s; from about this many images on it pays for itself (it saves 20-45 ms
# per image on 2 cores).
FAST_ENGINE_MIN_IMAGES = 1000
# Computed features are stored in transactions of this many (an interrupted run keeps what it computed).
STORE_EVERY = 512


@dataclass
class TrainConfig:
    data: str = str(DEFAULT_ARRAYS)
    backbone: str = "resnet50"
    weights: object = "imagenet"  # "imagenet", a local file path, or None for random weights
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    out: str = str(DEFAULT_MODEL_OUT)
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment_views: int = 2
    feature_engine: str = "auto"  # see feature_function
    patience: int = 10
    hidden_units: int = HIDDEN_UNITS
    dropout: float = DROPOUT
    cache_dir: object = None  # None: the user cache folder; False: no cache
    cache_limit: int = DEFAULT_LIMIT_BYTES  # bytes of features the cache keeps; least recently used go first
    progress: bool = False  # progress bars and Keras' epoch lines on the terminal
    extra: dict = field(default_factory=dict)

    def validate(self):
        """Raise MaskDetectionError for settings that cannot train (library callers skip argparse's checks).

        A nan or infinite learning rate, say, would train to nan weights and only fail at the very end.
        """

        def bad(message):
            return MaskDetectionError(f"training setting {message}")

        for name in ("epochs", "batch_size", "patience", "hidden_units", "cache_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise bad(f"{name} must be a whole number of at least 1, got {value!r}")
        if (
            isinstance(self.augment_views, bool)
            or not isinstance(self.augment_views, (int, np.integer))
            or self.augment_views < 0
        ):
            raise bad(f"augment_views must be a whole number, 0 or more, got {self.augment_views!r}")
        if not _finite(self.learning_rate) or self.learning_rate <= 0:
            raise bad(f"learning_rate must be a finite positive number, got {self.learning_rate!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not _finite(value) or not 0 < value < 0.5:
                raise bad(f"{name} must be between 0 and 0.5, got {value!r}")
        if not _finite(self.dropout) or not 0 <= self.dropout < 1:
            raise bad(f"dropout must be at least 0 and below 1, got {self.dropout!r}")
        if self.feature_engine not in FEATURE_ENGINES:
            raise bad(f"feature_engine must be one of {', '.join(FEATURE_ENGINES)}, got {self.feature_engine!r}")


def _finite(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(value)
    except TypeError:
        return False


def _quiet(message: str) -> None:
    pass


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mask_detection" / "features"


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


def picture_keys(images: np.ndarray) -> list[str]:
    """Each picture's content key: sha256 of its model-input pixels and shape (32 hex digits).

    The pixels, not the source files' hashes: the same file cropped differently (loader's face crop or not) is
    another picture. The same pixels get the same key in any arrays file, split or mix of sources.
    """
    shape = repr(images.shape[1:]).encode()
    keys = []
    for image in images:
        digest = hashlib.sha256(shape)
        digest.update(memoryview(np.ascontiguousarray(image)).cast("B"))
        keys.append(digest.hexdigest()[:32])
    return keys


def view_names(augment_views: int) -> list[str]:
    """The views of each picture whose features are computed: the original, then the augmented views, named
    with the augmentation recipe's version (a new recipe makes new views)."""
    return ["original", *(f"augment-v{AUGMENT_VERSION}-{view}" for view in range(1, augment_views + 1))]


def feature_key(weights_id: str, view: str, picture: str) -> str:
    """A picture view's key in the feature cache: backbone and weights, view, picture content."""
    return f"{weights_id}/{view}/{picture}"


def extract_features(
    extractor_call: Callable,
    images: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    bar: tqdm,
    transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    done: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Pooled features for ``images[indices]``, in batches, optionally transformed first (augmentation:
    ``transform(batch, batch_indices)``); ``done(batch_indices, features)`` is told of each batch.

    The next batch is prepared on a helper thread while the backbone runs on this one (OpenCV, NumPy and LiteRT
    release the GIL).
    """

    def prepare(start):
        batch = images[indices[start : start + batch_size]]
        return transform(batch, indices[start : start + batch_size]) if transform is not None else batch

    starts = range(0, len(indices), batch_size)
    out = None
    with ThreadPoolExecutor(max_workers=1) as helper:
        pending = helper.submit(prepare, starts[0]) if len(starts) else None
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = helper.submit(prepare, starts[i + 1])
            feats = extractor_call(batch)
            if out is None:
                out = np.empty((len(indices), feats.shape[-1]), np.float32)
            out[start : start + len(batch)] = feats
            if done is not None:
                done(indices[start : start + len(batch)], feats)
            bar.update(len(batch))
    return out


def tensorflow_feature_function(extractor: Any) -> Callable[[np.ndarray], np.ndarray]:
    t = tf()
    spec = t.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], t.uint8)
    call = t.function(lambda x: extractor(x, training=False), input_signature=[spec])
    return lambda batch: call(batch).numpy()


def features_agree(fast: np.ndarray, reference: np.ndarray) -> bool:
    """Features from the converted backbone match TensorFlow's (seen: about 1e-6 relative)."""
    scale = max(1.0, float(np.abs(reference).max()))
    return fast.shape == reference.shape and np.allclose(fast, reference, rtol=1e-3, atol=1e-4 * scale)


def _gpu_visible() -> bool:
    try:
        return bool(tf().config.list_physical_devices("GPU"))
    except Exception:  # no GPU support compiled in, broken drivers: no GPU to use
        return False


def feature_function(
    extractor: Any, engine: str, total: int, probe: np.ndarray, log: Log, warn: Log | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(function computing features of a uint8 batch, engine name).

    ``engine``: "tensorflow"; "litert" (the frozen backbone converted to float32 TFLite and run by LiteRT's
    XNNPACK, checked against TensorFlow on ``probe`` images); "auto": LiteRT when there are at least
    FAST_ENGINE_MIN_IMAGES images to compute and no GPU, else TensorFlow. A conversion or check that fails in
    auto mode falls back to TensorFlow, and ``warn`` is told.
    """
    if engine not in FEATURE_ENGINES:
        raise MaskDetectionError(f"unknown feature engine {engine!r}; choose one of {', '.join(FEATURE_ENGINES)}")
    reference = tensorflow_feature_function(extractor)
    if engine == "tensorflow" or (engine == "auto" and (total < FAST_ENGINE_MIN_IMAGES or _gpu_visible())):
        return reference, "TensorFlow"
    log("backbone: converting to TFLite for a faster feature pass (LiteRT, XNNPACK) ...")
    try:
        fast = LiteRTFunction(convert(extractor, "none"), what="the converted backbone")
        if not features_agree(fast(probe), reference(probe)):
            raise MaskDetectionError("the converted backbone does not reproduce TensorFlow's features")
    except MaskDetectionError as exc:
        if engine == "litert":
            raise
        (warn or _quiet)(f"{exc}; computing the features with TensorFlow instead (slower)")
        return reference, "TensorFlow"
    return fast, "LiteRT"


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


def load_or_compute_features(
    extractor: Any,
    arrays: dict[str, np.ndarray],
    split: dict[str, np.ndarray],
    config: TrainConfig,
    weights_id: str,
    cache: FeatureCache,
    log: Log,
    warn: Log,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features of every image, augmented views of the training images, where they came from).

    Each picture view's features are looked up in the cache by picture content, backbone weights and view; only
    the missing ones are computed, and stored. With a writable cache the augmented views of every picture are
    computed, not only of this split's training pictures, so that another split (which adding pictures makes)
    finds them too.
    """
    images = arrays["images"]
    n = len(images)
    dim = int(extractor.output_shape[-1])
    views = view_names(config.augment_views)
    pictures = picture_keys(images)
    store = cache.open(log, warn) if weights_id != "random" else None
    try:
        augmented = np.arange(n) if store is not None and store.writable else split["train"]
        features = np.zeros((len(views), n, dim), np.float32)
        missing, from_cache = [], 0
        for v, view in enumerate(views):
            indices = np.arange(n) if v == 0 else augmented
            keys = [feature_key(weights_id, view, pictures[i]) for i in indices]
            found = store.get(keys, dim) if store is not None else {}
            todo = []
            for i, key in zip(indices, keys, strict=True):
                vector = found.get(key)
                if vector is None:
                    todo.append(i)
                else:
                    features[v, i] = vector
            from_cache += len(indices) - len(todo)
            if todo:
                missing.append((v, np.array(todo, np.int64)))
        to_compute = sum(len(todo) for _, todo in missing)
        if store is not None:
            log(
                f"backbone features: {from_cache} of {from_cache + to_compute} picture views from the cache "
                f"{display_path(store.path)}"
            )
        engine = None
        if to_compute:
            engine = compute_missing_features(
                extractor, images, pictures, views, missing, features, config, weights_id, store, log, warn
            )
        if store is not None:
            store.evict()
    finally:
        if store is not None:
            store.close()
    base = features[0]
    aug = features[1:][:, split["train"]]
    return base, aug, {"cache": from_cache, "computed": to_compute, "engine": engine}


def compute_missing_features(
    extractor: Any,
    images: np.ndarray,
    pictures: list[str],
    views: list[str],
    missing: list[tuple[int, np.ndarray]],
    features: np.ndarray,
    config: TrainConfig,
    weights_id: str,
    store: FeatureStore | None,
    log: Log,
    warn: Log,
) -> str:
    """Fill ``features[view, index]`` for each view's missing indices and store them; returns the engine's name.

    The engine is chosen by the number of images to compute, so a few new pictures never pay for the
    conversion to LiteRT.
    """
    total = sum(len(todo) for _, todo in missing)
    first = missing[0][1][:4]
    run, engine = feature_function(extractor, config.feature_engine, total, images[first], log, warn)
    pending: list[tuple[str, np.ndarray]] = []

    def flush():
        if store is not None and pending:
            store.put(pending)
        pending.clear()

    with tqdm(
        total=total,
        desc=f"backbone features ({engine})",
        unit="img",
        disable=not config.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        for v, todo in missing:

            def augment(batch, indices, view=v):
                return np.stack(
                    [augment_view(image, pictures[i], view) for image, i in zip(batch, indices, strict=True)]
                )

            def done(indices, feats, view=views[v]):
                pending.extend(
                    (feature_key(weights_id, view, pictures[i]), f) for i, f in zip(indices, feats, strict=True)
                )
                if len(pending) >= STORE_EVERY:
                    flush()

            features[v, todo] = extract_features(
                run, images, todo, FEATURE_BATCH, bar, transform=augment if v else None, done=done
            )
        flush()
    return engine


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def balanced_class_weight(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return {i: float(len(labels) / (n_classes * c)) for i, c in enumerate(counts) if c > 0}


def check_output_path(out: Path | str) -> Path:
    out = Path(out)
    if out.suffix != ".keras":
        raise MaskDetectionError(
            f"the model file {display_path(out)} must have a name ending in .keras (Keras 3 format)"
        )
    if out.exists() and out.is_dir():
        raise MaskDetectionError(f"the model file {display_path(out)} is a folder; give a file name ending in .keras")
    return out


def check_outputs(config: TrainConfig) -> dict[str, Path]:
    """The five output paths, checked before any slow work: writable, and none of them an input of the run."""
    paths = output_paths(check_output_path(config.out))
    inputs = [config.data]
    if isinstance(config.weights, (str, os.PathLike)) and os.fspath(config.weights) != "imagenet":
        inputs.append(config.weights)
    refuse_overwriting_inputs(paths.values(), inputs)
    for path in paths.values():
        check_writable(path)
    return paths


def check_training_data(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    """What load_arrays accepts but training cannot use: no images, another image size, a class with too few
    images (all images one class would "test" at 100% accuracy)."""
    images, labels = arrays["images"], np.asarray(arrays["labels"], np.int64)
    shown = display_path(path)
    if len(images) == 0:
        raise DatasetError(f"{shown} holds no images (run loader.py on a dataset folder with images)")
    if images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        raise DatasetError(
            f"{shown} holds {images.shape[1]}x{images.shape[2]} images, but the classifier takes "
            f"{INPUT_SIZE}x{INPUT_SIZE} images: make the arrays file with loader.py"
        )
    class_names = [str(c) for c in arrays["class_names"]]
    counts = np.bincount(labels, minlength=len(class_names))  # minlength: a class with no image counts as 0
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise DatasetError(
            f"{shown} has no images of class {', '.join(empty)}: a classifier needs images of every "
            f"class ({', '.join(f'{n} {c}' for n, c in zip(class_names, counts, strict=True))})"
        )


def output_paths(out: Path | str) -> dict[str, Path]:
    out = Path(out)
    return {
        "model": out,
        "metadata": metadata_path(out),
        "split": out.with_name(out.stem + "_split.json"),
        "history_plot": out.with_name(out.stem + "_training.png"),
        "confusion_plot": out.with_name(out.stem + "_confusion.png"),
    }


def save_outputs(
    paths: dict[str, Path],
    write: Callable[[Callable[[str], Path]], None],
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> None:
    """Write the model's five files as one group: all replaced together, or none (every old file kept).

    ``write(target)`` writes each file to ``target(role)``, a temporary path. A failure (disk full, an
    interrupt) removes the temporaries; the plots and split of an old model must keep describing that model
    (the export's self-check reads its split). ``on_saved(paths)`` is called once the new files are in place,
    before any interrupt that arrived meanwhile is raised: a caller stopped right after the save still knows of it.
    """
    roles = list(paths)
    current = [paths[roles[0]]]

    def target(role):
        current[0] = paths[role]
        return tmps[role]

    stop = StopFlag()
    try:
        with contextlib.ExitStack() as deferred:
            with atomic_paths([paths[role] for role in roles]) as temporaries:
                tmps = dict(zip(roles, temporaries, strict=True))
                write(target)
                # From the last write through the renames to on_saved, a signal only sets a flag, raised below.
                # Blocking it (fileio.signals_held) holds it back from this thread alone: TensorFlow's threads
                # take it, and Python raises it here all the same, between two renames or before on_saved.
                deferred.enter_context(stop.on_signals())
            if on_saved is not None:
                on_saved(dict(paths))
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(current[0])}: {exc.strerror or exc}") from None
    stop.raise_if_set()


@dataclass
class HeadFit:
    """The trained head: its layers (shared with the saved model), its Keras model, the same model up to its
    logits (sharing the layers) and its training history."""

    layers: list
    model: Any
    logits_model: Any
    history: dict[str, list[float]]
    seconds: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self.logits_model(features, training=False).numpy()

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def best_epoch(self) -> int:
        val_loss = self.history.get("val_loss")
        return int(np.argmin(val_loss)) + 1 if val_loss else self.epochs_run


@dataclass
class Calibration:
    """The temperature fitted on the validation split and the expected calibration errors it gives."""

    temperature: float
    fitted: bool  # False: every validation image was right, nothing to fit on (temperature 1)
    validation_images: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    test_ece_before: float | None = None
    test_ece_after: float | None = None

    def to_json(self) -> dict:
        return {
            "temperature": self.temperature,
            "fitted": self.fitted,
            "method": "temperature scaling: minimum negative log-likelihood of softmax(logits / T) on validation",
            "validation_images": self.validation_images,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "ece_bins": ECE_BINS,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "test_ece_before": self.test_ece_before,
            "test_ece_after": self.test_ece_after,
        }


@dataclass
class HeldOutScore:
    """The test split, used once: indices, the head's probabilities, figures and sklearn's report."""

    indices: np.ndarray
    probabilities: np.ndarray
    figures: dict
    report: str


@dataclass
class TrainResult:
    """What ``train`` made: the metadata written beside the model, the five files, and the test report text."""

    metadata: dict
    paths: dict[str, Path]
    report: str


def stop_training_callback(stop: StopFlag) -> Any:
    """A Keras callback that ends training after the current step once ``stop`` is set."""

    class _StopTrainingWhen(keras().callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if stop.set:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.on_train_batch_end(0)

    return _StopTrainingWhen()


def fit_head(
    base: np.ndarray,
    aug: np.ndarray,
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    n_classes: int,
    config: TrainConfig,
) -> HeadFit:
    """Train the head on the features of the training images (and their augmented views), early stopping on the
    validation loss with the best epoch's weights restored."""
    k = keras()
    train_x = np.concatenate([base[split["train"]], *aug]) if len(aug) else base[split["train"]]
    train_y = np.tile(labels[split["train"]], 1 + len(aug))
    val_x, val_y = base[split["validation"]], labels[split["validation"]]
    head_layers = build_head_layers(n_classes, config.hidden_units, config.dropout)
    head_input = k.Input(shape=(base.shape[1],), name="features")
    logits = apply_layers(head_input, head_layers[:-1])
    head = k.Model(head_input, head_layers[-1](logits), name="head")
    # Many small batches per compiled call: the same updates in the same order, about 1.8x faster epochs.
    compile_model(head, config.learning_rate, steps_per_execution=HEAD_STEPS_PER_EXECUTION)
    stopper = k.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    stop = StopFlag()
    started = time.perf_counter()
    # Ctrl-C/SIGTERM end training between steps: an interrupt raised inside TensorFlow's step can corrupt its
    # heap (seen: "free(): invalid next size" and an abort instead of exit 130).
    with stop.on_signals():
        fit = head.fit(
            train_x,
            one_hot(train_y, n_classes),
            validation_data=(val_x, one_hot(val_y, n_classes)),
            epochs=config.epochs,
            batch_size=config.batch_size,
            shuffle=True,
            class_weight=balanced_class_weight(train_y, n_classes),
            callbacks=[stopper, stop_training_callback(stop)],
            verbose=(2 if config.progress else 0),
        )
    stop.raise_if_set()
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    logits_model = k.Model(head_input, logits, name="head_logits")
    return HeadFit(head_layers, head, logits_model, history, time.perf_counter() - started)


def calibrate(
    head: HeadFit, base: np.ndarray, labels: np.ndarray, split: dict[str, np.ndarray], warn: Log
) -> Calibration:
    """Fit the temperature on the validation split (the split early stopping already looked at; the test split
    stays unseen) and measure the expected calibration error there before and after."""
    val_logits, val_labels = head.logits(base[split["validation"]]), labels[split["validation"]]
    fitted = fit_temperature(val_logits, val_labels)
    if fitted is None:
        warn(
            "calibration: every validation image is classified correctly, so no temperature can be fitted; "
            "keeping temperature 1 (probabilities as trained)"
        )
    temperature = 1.0 if fitted is None else round(fitted, 4)
    return Calibration(
        temperature,
        fitted is not None,
        int(len(val_labels)),
        temperature_nll(val_logits, val_labels, 1.0),
        temperature_nll(val_logits, val_labels, temperature),
        expected_calibration_error(softmax_with_temperature(val_logits, 1.0), val_labels),
        expected_calibration_error(softmax_with_temperature(val_logits, temperature), val_labels),
    )


def score_on_test_split(
    head: HeadFit,
    base: np.ndarray,
    labels: np.ndarray,
    test_idx: np.ndarray,
    class_names: list[str],
    calibration: Calibration,
) -> HeldOutScore:
    """The calibrated head's figures on the test split (used once, here); fills in the calibration's test ECE."""
    logits, truth = head.logits(base[test_idx]), labels[test_idx]
    probabilities = softmax_with_temperature(logits, calibration.temperature).astype(np.float32)
    calibration.test_ece_before = expected_calibration_error(softmax_with_temperature(logits, 1.0), truth)
    calibration.test_ece_after = expected_calibration_error(probabilities, truth)
    predicted = probabilities.argmax(axis=1)
    return HeldOutScore(
        test_idx,
        probabilities,
        classification_figures(labels[test_idx], predicted, class_names),
        classification_report_text(labels[test_idx], predicted, class_names),
    )


def assemble_model(
    extractor: Any, head: HeadFit, images: np.ndarray, test: HeldOutScore, learning_rate: float, temperature: float
) -> Any:
    """The saved model: the extractor with the head's layers and the temperature on top. It must reproduce the
    calibrated head on raw images, or the features (cache included) did not come from this model."""
    model = build_classifier(extractor, head.layers, learning_rate, temperature)
    probe = test.indices[:16]
    full_probs = model(images[probe], training=False).numpy()
    if not np.allclose(full_probs, test.probabilities[: len(probe)], atol=2e-3):
        raise MaskDetectionError(
            "the assembled model does not reproduce the trained head on test images "
            "(stale feature cache?); train again without the feature cache"
        )
    return model


def _count_by_source(sources: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, dict[str, int]]:
    return {
        str(source): {name: int(((sources == source) & (labels == i)).sum()) for i, name in enumerate(class_names)}
        for source in np.unique(sources)
    }


def _test_by_source(
    test: HeldOutScore, labels: np.ndarray, sources: np.ndarray, class_names: list[str]
) -> dict[str, dict]:
    """The test split's figures for each source apart (scene crops are harder than close-ups)."""
    predicted = test.probabilities.argmax(axis=1)
    test_sources, truth = sources[test.indices], labels[test.indices]
    out = {}
    for source in np.unique(test_sources):
        mine = test_sources == source
        with warnings.catch_warnings():  # a source with one class in the test split is fine here
            warnings.simplefilter("ignore", UserWarning)
            figures = classification_figures(truth[mine], predicted[mine], class_names)
        out[str(source)] = {
            "pictures": int(mine.sum()),
            "errors": int((truth[mine] != predicted[mine]).sum()),
            "accuracy": figures["accuracy"],
            "balanced_accuracy": figures["balanced_accuracy"],
        }
    return out


def training_metadata(
    config: TrainConfig,
    class_names: list[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    head: HeadFit,
    test: HeldOutScore,
    calibration: Calibration,
    weights_id: str,
    feature_source: dict,
    split_file: Path,
    sources: np.ndarray | None = None,
) -> dict:
    """The model's metadata (the JSON beside it); ``timing_seconds`` is filled in by the caller.

    ``sources``: each picture's source (arrays' ``sources``), counted per source and class when given."""
    best = head.best_epoch
    return {
        "format": "mask_detection classifier",
        "version": __version__,
        "class_names": class_names,
        "backbone": config.backbone,
        "weights": weights_id,
        "input_size": INPUT_SIZE,
        "input": "RGB uint8, pad to square by edge replication then resize (mask_detection.images.to_model_input)",
        "head": {"hidden_units": config.hidden_units, "dropout": config.dropout},
        "optimizer": {"name": "RMSprop", "learning_rate": config.learning_rate},
        "loss": "categorical_crossentropy",
        "epochs": {
            "requested": config.epochs,
            "run": head.epochs_run,
            "best": best,
            "early_stopping_patience": config.patience,
        },
        "batch_size": config.batch_size,
        "augment_views": config.augment_views,
        "data": {
            "file": str(config.data),
            "images": int(len(labels)),
            "per_class": {name: int((labels == i).sum()) for i, name in enumerate(class_names)},
            **({"per_source": _count_by_source(sources, labels, class_names)} if sources is not None else {}),
        },
        "split": {
            "seed": config.seed,
            "fractions": {
                "train": 1 - config.val_fraction - config.test_fraction,
                "validation": config.val_fraction,
                "test": config.test_fraction,
            },
            "sizes": {name: int(len(idx)) for name, idx in split.items()},
            "file": split_file.name,
        },
        "test": test.figures,
        **({"test_by_source": _test_by_source(test, labels, sources, class_names)} if sources is not None else {}),
        "calibration": calibration.to_json(),
        "validation_accuracy": (
            float(head.history["val_accuracy"][best - 1]) if head.history.get("val_accuracy") else None
        ),
        "history": head.history,
        "features_from": feature_source,
        "timing_seconds": None,
        **config.extra,
    }


def write_model_files(
    paths: dict[str, Path],
    model: Any,
    metadata: dict,
    split_record: dict,
    config: TrainConfig,
    class_names: list[str],
    started: float,
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> None:
    """The model, its metadata, split record and plots, as one group (see save_outputs)."""
    history, figures = metadata["history"], metadata["test"]
    n_test = metadata["split"]["sizes"]["test"]

    def write(target):
        target("split").write_text(json.dumps(split_record, indent=2) + "\n", encoding="utf-8")
        plot_history(history, target("history_plot"), title=f"{config.backbone} head", in_place=True)
        plot_confusion_matrix(
            figures["confusion_matrix"],
            class_names,
            target("confusion_plot"),
            title=f"Test split ({n_test} images)",
            in_place=True,
        )
        model.save(target("model"))
        metadata["timing_seconds"]["total"] = round(time.perf_counter() - started, 1)
        target("metadata").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")

    save_outputs(paths, write, on_saved)


def train(
    config: TrainConfig,
    log: Log | None = None,
    warn: Log | None = None,
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> TrainResult:
    """Train and save a classifier.

    ``log(message)``: progress messages (default: none); ``warn(message)``: problems that do not stop training
    (default: none); ``on_saved(paths)``: called as soon as the new files are in place, before an interrupt that
    came during the save is raised (so a command can say that the model was saved all the same).
    """
    log, warn = log or _quiet, warn or _quiet
    started = time.perf_counter()
    config.validate()
    # Before the slow part: an unwritable output or one that is an input fails now, not after training.
    paths = check_outputs(config)
    arrays = load_arrays(config.data)
    check_training_data(arrays, config.data)
    class_names = [str(c) for c in arrays["class_names"]]
    labels = np.asarray(arrays["labels"], np.int64)
    split = split_indices(
        labels, config.seed, config.val_fraction, config.test_fraction, len(class_names), arrays.get("sources")
    )
    cache = usable_cache(config, warn)
    log(
        f"data: {len(labels)} images, classes {', '.join(class_names)}; split train/validation/test = "
        f"{len(split['train'])}/{len(split['validation'])}/{len(split['test'])} (seed {config.seed})"
    )

    keras().utils.set_random_seed(config.seed)
    features_started = time.perf_counter()
    extractor = build_feature_extractor(config.backbone, config.weights)
    weights_id = backbone_weights_id(config.backbone, config.weights)
    base, aug, feature_source = load_or_compute_features(extractor, arrays, split, config, weights_id, cache, log, warn)
    feature_seconds = time.perf_counter() - features_started

    head = fit_head(base, aug, labels, split, len(class_names), config)
    calibration = calibrate(head, base, labels, split, warn)
    test = score_on_test_split(head, base, labels, split["test"], class_names, calibration)
    model = assemble_model(extractor, head, arrays["images"], test, config.learning_rate, calibration.temperature)
    metadata = training_metadata(
        config,
        class_names,
        labels,
        split,
        head,
        test,
        calibration,
        weights_id,
        feature_source,
        paths["split"],
        arrays.get("sources"),
    )
    metadata["timing_seconds"] = {
        "features": round(feature_seconds, 1),
        "head_training": round(head.seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    }
    split_record = {name: [str(arrays["hashes"][i]) for i in idx] for name, idx in split.items()}
    split_record["note"] = "sha256 of the source files in each split"
    write_model_files(paths, model, metadata, split_record, config, class_names, started, on_saved)
    return TrainResult(metadata, paths, test.report)
