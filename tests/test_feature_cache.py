"""The per-picture feature cache: reuse across added pictures and other splits, deterministic augmented views, the
size bound, and problems (damaged, foreign, locked, read-only, full) that only warn."""

import sqlite3
import types

import numpy as np
import pytest
from conftest import small_disk
from test_training import make_arrays

from mask_detection import feature_store
from mask_detection.feature_store import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def vectors(n, dim=8, seed=0):
    return np.random.default_rng(seed).random((n, dim), dtype=np.float32)


def test_added_pictures_compute_only_theirs_and_another_split_reuses_everything(tmp_path):
    """The real EfficientNet-Lite0 feature pass: 12 pictures, then the same 12 with 4 new ones (which moves the
    split), then another split seed; the cached features are those that computing gives."""
    from mask_detection.model import build_feature_extractor
    from mask_detection.training import FeatureCache, TrainConfig, load_or_compute_features, split_indices

    extractor = build_feature_extractor("efficientnet_lite0", "imagenet")
    arrays = make_arrays(tmp_path / "all.npz", n_per_class=8, seed=4)
    first = np.r_[0:6, 8:14]  # 6 pictures of each class; 2 of each are added later
    cache = FeatureCache(tmp_path / "cache", writable=True)
    config = TrainConfig(backbone="efficientnet_lite0", augment_views=1, feature_engine="auto")

    messages, warnings = [], []

    def features(indices, cache, seed=42):
        part = {key: arrays[key][indices] for key in ("images", "labels")}
        split = split_indices(part["labels"], seed, 0.15, 0.15, 2)
        found = load_or_compute_features(
            extractor, part, split, config, "lite0", cache, messages.append, warnings.append
        )
        return (*found, split)

    assert features(first, cache)[2] == {"cache": 0, "computed": 24, "engine": "TensorFlow"}
    everything = np.arange(16)
    # Only the 4 new pictures, original and augmented view; "auto" counted 8 images, so no LiteRT conversion.
    assert features(everything, cache)[2] == {"cache": 24, "computed": 8, "engine": "TensorFlow"}
    base, aug, source, split = features(everything, cache, seed=7)
    assert source == {"cache": 32, "computed": 0, "engine": None}
    fresh_base, fresh_aug, fresh_source, _ = features(everything, FeatureCache(None), seed=7)
    assert fresh_source == {"cache": 0, "computed": 16 + len(split["train"]), "engine": "TensorFlow"}
    np.testing.assert_allclose(base, fresh_base, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(aug, fresh_aug, rtol=1e-5, atol=1e-5)  # the same augmented views, in any split
    assert warnings == [] and "backbone features: 32 of 32 picture views from the cache" in messages[-1]


def test_augmented_views_depend_only_on_the_picture_and_the_view():
    from mask_detection.augment import augment_view
    from mask_detection.training import picture_keys

    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    keys = picture_keys(images)
    views = [augment_view(image, key, 1) for image, key in zip(images, keys, strict=True)]
    np.random.default_rng(99).random(10)  # other random draws in between change nothing
    again = [augment_view(images[i], keys[i], 1) for i in (2, 0, 1)]  # another order, as in another split
    for i, view in zip((2, 0, 1), again, strict=True):
        assert np.array_equal(view, views[i])
    assert views[0].shape == images[0].shape and views[0].dtype == np.uint8
    assert not np.array_equal(augment_view(images[0], keys[0], 2), views[0])  # view 2 is another view
    assert not np.array_equal(augment_view(images[0], keys[1], 1), views[0])  # another picture's draws


def test_store_reads_in_bulk_and_keeps_entries_across_opens(tmp_path):
    keys = [f"w/original/{i:032x}" for i in range(1200)]  # more than one SQL chunk
    values = vectors(1200)
    with FeatureStore(tmp_path) as store:
        assert store.created and store.put(zip(keys, values, strict=True)) == 1200
    with FeatureStore(tmp_path) as store:
        assert not store.created
        found = store.get([*keys, "w/original/missing"], 8)
        assert len(found) == 1200 and np.array_equal(found[keys[1100]], values[1100])
        assert store.get(keys[:3], 16) == {}  # another backbone's length: not these features
        assert store.size() == sum(8 * 4 + len(key) for key in keys)


def test_size_limit_evicts_the_least_recently_used_entries(tmp_path, monkeypatch):
    # "Recently" is the store's clock (time.time()): here one that ticks a second at every reading, so each use is
    # later than the one before, as sleeping between them was meant to make it (a wall clock can stand still
    # between two quick readings, or step back).
    ticks = iter(range(1_000_000, 2_000_000))
    monkeypatch.setattr(feature_store, "time", types.SimpleNamespace(time=lambda: float(next(ticks))))
    entry = 8 * 4 + len("a")
    warnings = []
    with FeatureStore(tmp_path, limit=3 * entry) as store:
        for name, value in zip("abc", vectors(3), strict=True):
            store.put([(name, value)])
    with FeatureStore(tmp_path, limit=3 * entry, warn=warnings.append) as store:
        assert set(store.get(["a"], 8)) == {"a"}  # used again: now the most recent
        store.put([("d", vectors(1)[0])])
        assert store.evict() == 1
        assert set(store.get(list("abcd"), 8)) == {"a", "c", "d"}  # b was the least recently used
        assert warnings == []
        store.limit = entry  # smaller than what this run used: said so
        assert store.evict() == 2
        assert len(warnings) == 1 and "limit (0 MB) is smaller than this run's features" in warnings[0]


def test_old_entries_leave_the_file_too(tmp_path):
    with FeatureStore(tmp_path, limit=10**9) as store:
        store.put((f"k{i}", v) for i, v in enumerate(vectors(2000, dim=1280)))
    full = (tmp_path / feature_store.DB_NAME).stat().st_size
    with FeatureStore(tmp_path, limit=10**6) as store:
        store.evict()
        assert store.size() <= 10**6
    assert (tmp_path / feature_store.DB_NAME).stat().st_size < full / 5


def test_foreign_database_is_left_alone(tmp_path):
    path = tmp_path / feature_store.DB_NAME
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    before = path.read_bytes()
    warnings = []
    with FeatureStore(tmp_path, warn=warnings.append) as store:
        assert store.get(["k"], 8) == {} and store.put([("k", vectors(1)[0])]) == 0
    assert len(warnings) == 1 and warnings[0].startswith(f"feature cache {path} is not a feature cache of this version")
    assert path.read_bytes() == before


def test_locked_database_only_warns(tmp_path, monkeypatch):
    with FeatureStore(tmp_path) as store:
        store.put([("k", vectors(1)[0])])
    monkeypatch.setattr(feature_store, "LOCK_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(tmp_path / feature_store.DB_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another run in the middle of writing
    try:
        warnings = []
        with FeatureStore(tmp_path, warn=warnings.append) as store:
            assert store.get(["k"], 8) == {} and store.put([("j", vectors(1)[0])]) == 0
        assert warnings == [f"feature cache {tmp_path / feature_store.DB_NAME} not used: database is locked"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_read_only_store_reads_and_writes_nothing(tmp_path):
    with FeatureStore(tmp_path) as store:
        store.put([("k", vectors(1)[0])])
    before = (tmp_path / feature_store.DB_NAME).read_bytes()
    warnings = []
    with FeatureStore(tmp_path, warn=warnings.append, writable=False) as store:
        assert set(store.get(["k"], 8)) == {"k"}
        assert store.put([("j", vectors(1)[0])]) == 0 and store.evict() == 0
    assert (tmp_path / feature_store.DB_NAME).read_bytes() == before and warnings == []
    with FeatureStore(tmp_path / "empty", warn=warnings.append, writable=False) as store:
        assert not store.readable and store.get(["k"], 8) == {}
    assert not (tmp_path / "empty").exists() and warnings == []


def test_full_disk_stops_storing_with_a_warning(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        warnings = []
        with FeatureStore(disk, warn=warnings.append) as store:
            assert store.put([("first", vectors(1, dim=1280)[0])]) == 1
            for i in range(40):  # 5 kB each: the 64 kB file system fills up
                store.put([(f"k{i}", vectors(1, dim=1280)[0])])
            assert len(warnings) == 1 and "nothing more stored in it" in warnings[0], warnings
            assert "full" in warnings[0]
            assert set(store.get(["first"], 1280)) == {"first"}  # what was stored is still read


def test_per_dataset_cache_files_are_removed_once(tmp_path):
    from mask_detection.training import FeatureCache

    old = tmp_path / "resnet50-0123456789abcdef0123.npz"
    old.write_bytes(b"old cache entry")
    mine = tmp_path / "notes.npz"
    mine.write_bytes(b"not a cache entry")
    messages = []
    FeatureCache(tmp_path, writable=True).open(messages.append, messages.append).close()
    assert not old.exists() and mine.exists()
    assert messages == [f"feature cache: removed 1 file(s) of the earlier per-dataset cache from {tmp_path}"]
    old.write_bytes(b"written by an older version afterwards")
    FeatureCache(tmp_path, writable=True).open(messages.append, messages.append).close()
    assert old.exists()  # only when the store is created
