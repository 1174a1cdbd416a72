"""The feature engine: the frozen backbone's pooled features of every picture and of its augmented views (or, for
fine-tuning, the activations below the trainable top of the backbone), looked up in the feature cache first; the
missing ones computed by LiteRT (the frozen part converted to TFLite, checked against TensorFlow) or by TensorFlow,
and stored."""

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from tqdm import tqdm

from .._tf import tf
from ..augment import augment_view
from ..errors import MaskDetectionError
from ..export import convert
from ..feature_store import FeatureStore
from ..fileio import display_path
from ..litert import LiteRTFunction
from .cache import FeatureCache, feature_key, picture_keys, view_names
from .config import FEATURE_ENGINES, Log, TrainConfig, _quiet

FEATURE_BATCH = 32
# Converting the backbone takes 20-30 s; from about this many images on it pays for itself (it saves 20-45 ms
# per image on 2 cores).
FAST_ENGINE_MIN_IMAGES = 1000
# Computed features are stored in transactions of this many (an interrupted run keeps what it computed).
STORE_EVERY = 512


def extract_features(
    extractor_call: Callable,
    images: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    bar: tqdm,
    transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    done: Callable[[np.ndarray, np.ndarray], None] | None = None,
    dtype: DTypeLike = np.float32,
) -> np.ndarray | None:
    """Features (pooled vectors or activation maps) for ``images[indices]`` as ``dtype``, in batches, optionally
    transformed first (augmentation: ``transform(batch, batch_indices)``); ``done(batch_indices, features)`` is
    told of each batch. None when ``indices`` is empty.

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
            assert pending is not None  # submitted for every start, the first one before the loop
            batch = pending.result()
            if i + 1 < len(starts):
                pending = helper.submit(prepare, starts[i + 1])
            feats = extractor_call(batch)
            if out is None:
                out = np.empty((len(indices), *feats.shape[1:]), dtype)
            out[start : start + len(batch)] = feats
            if done is not None:
                done(indices[start : start + len(batch)], feats)
            bar.update(len(batch))
    return out


def tensorflow_feature_function(extractor: Any) -> Callable[[np.ndarray], np.ndarray]:
    t = tf()
    side = int(extractor.input_shape[1])  # the arrays' side: a Lite2 model may take 260 px pictures
    spec = t.TensorSpec([None, side, side, 3], t.uint8)
    call = t.function(lambda x: extractor(x, training=False), input_signature=[spec])
    return lambda batch: call(batch).numpy()


def pooled_features(pooled: Any, activations: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The pooled features of cached activations through the still-frozen top (``model.FineTuneSplit.pooled``),
    any leading shape: (n, h, w, c) -> (n, dim), (views, n, h, w, c) -> (views, n, dim)."""
    flat = activations.reshape(-1, *activations.shape[-3:])
    if len(flat) == 0:
        return np.zeros((*activations.shape[:-3], int(pooled.output_shape[-1])), np.float32)
    out = np.asarray(pooled.predict(flat, batch_size=batch_size, verbose=0), np.float32)
    return out.reshape(*activations.shape[:-3], out.shape[-1])


def features_agree(fast: np.ndarray, reference: np.ndarray) -> bool:
    """Features from the converted backbone match TensorFlow's (seen: about 1e-6 relative; activation maps too)."""
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


def load_or_compute_features(
    extractor: Any,
    arrays: dict[str, np.ndarray],
    split: dict[str, np.ndarray],
    config: TrainConfig,
    weights_id: str,
    cache: FeatureCache,
    log: Log,
    warn: Log,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features of every image, augmented views of the training images, where they came from).

    Each picture view's features are looked up in the cache by picture content, backbone weights (for fine-tuning
    with the cut below the trainable top: ``weights_id`` names it) and view; only the missing ones are computed,
    and stored as ``dtype``. With a writable cache the augmented views of every picture are computed, not only of
    this split's training pictures, so that another split (which adding pictures makes) finds them too.
    """
    images = arrays["images"]
    n = len(images)
    shape = tuple(int(d) for d in extractor.output_shape[1:])  # (dim,) pooled, (h, w, c) activations
    dim = int(np.prod(shape))
    views = view_names(config.augment_views)
    pictures = picture_keys(images)
    store = cache.open(log, warn) if weights_id != "random" else None
    try:
        augmented = np.arange(n) if store is not None and store.writable else split["train"]
        features = np.zeros((len(views), n, *shape), dtype)
        missing, from_cache = [], 0
        for v, view in enumerate(views):
            indices = np.arange(n) if v == 0 else augmented
            keys = [feature_key(weights_id, view, pictures[i]) for i in indices]
            found = store.get(keys, dim, dtype) if store is not None else {}
            todo = []
            for i, key in zip(indices, keys, strict=True):
                vector = found.get(key)
                if vector is None:
                    todo.append(i)
                else:
                    features[v, i] = vector.reshape(shape)
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
                extractor, images, pictures, views, missing, features, config, weights_id, store, log, warn, dtype
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
    dtype: DTypeLike = np.float32,
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
            store.put(pending, dtype)
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
                run, images, todo, FEATURE_BATCH, bar, transform=augment if v else None, done=done, dtype=dtype
            )
        flush()
    return engine
