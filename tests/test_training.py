"""Training end to end on a tiny generated dataset: architecture, outputs, reload, cache, CLI errors, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_script

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def make_arrays(path, n_per_class=8, size=224, seed=0):
    """A tiny two-class arrays file: class 0 bluish with a bright band, class 1 reddish with a dark band."""
    from mask_detection.dataset import save_arrays

    rng = np.random.default_rng(seed)
    images, labels, hashes = [], [], []
    for label in (0, 1):
        for i in range(n_per_class):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., 2 if label == 0 else 0] += 120
            band = slice(size // 2, size // 2 + 40)
            img[band] = 250 if label == 0 else 10
            images.append(img)
            labels.append(label)
            hashes.append(f"{label}-{i}-{seed}".ljust(64, "0"))
    arrays = {
        "images": np.stack(images),
        "labels": np.array(labels, np.int32),
        "class_names": np.array(["with_mask", "without_mask"]),
        "paths": np.array([f"c{label}/{i}.png" for i, label in enumerate(labels)]),
        "hashes": np.array(hashes),
    }
    save_arrays(path, arrays)
    return arrays


@pytest.fixture(scope="module")
def tiny_arrays(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "arrays.npz"
    arrays = make_arrays(path)
    return path, arrays


def test_resnet50_random_weights_trains_saves_and_reloads(tiny_arrays, tmp_path):
    from mask_detection._tf import keras
    from mask_detection.model import load_classifier
    from mask_detection.training import TrainConfig, output_paths, train

    data, arrays = tiny_arrays
    out = tmp_path / "models" / "m.keras"
    config = TrainConfig(data=str(data), backbone="resnet50", weights=None, epochs=3, augment_views=1,
                         out=str(out), cache_dir=False, progress=False)
    meta = train(config, log=lambda *a: None)

    paths = output_paths(out)
    for p in paths.values():
        assert p.is_file(), p
    saved = json.loads(paths["metadata"].read_text())
    assert saved["class_names"] == ["with_mask", "without_mask"]
    assert saved["backbone"] == "resnet50"
    assert saved["optimizer"]["name"] == "RMSprop"
    assert sum(saved["split"]["sizes"].values()) == len(arrays["labels"])
    assert saved["test"]["confusion_matrix"] == meta["test"]["confusion_matrix"]
    split = json.loads(paths["split"].read_text())
    assert set(split["train"]).isdisjoint(split["test"]) and set(split["validation"]).isdisjoint(split["test"])

    # Architecture of the saved model, reloaded with its optimizer.
    k = keras()
    model = k.models.load_model(out)
    assert type(model.optimizer).__name__ == "RMSprop"
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "GlobalAveragePooling2D" in kinds and "Dropout" in kinds
    assert model.layers[-1].get_config()["activation"] == "softmax"
    backbone = next(layer for layer in model.layers if isinstance(layer, k.Model))
    assert len(backbone.layers) > 100
    assert not backbone.trainable
    assert all(not layer.trainable for layer in backbone.layers if layer.weights)
    assert not backbone.trainable_weights
    assert model.input.dtype == "uint8" and tuple(model.input.shape[1:]) == (224, 224, 3)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"head_dense", "predictions"}

    # The classifier used by detection gives the same predictions as the reloaded Keras model.
    classifier = load_classifier(out)
    images = arrays["images"][:5]
    np.testing.assert_allclose(classifier.predict(images), model(images, training=False).numpy(), atol=1e-5)
    assert classifier.class_names == ["with_mask", "without_mask"]


def test_efficientnet_lite0_cli_learns_and_uses_feature_cache(tiny_arrays, tmp_path):
    data, arrays = tiny_arrays
    out = tmp_path / "lite.keras"
    cache = tmp_path / "cache"
    # The converted LiteRT backbone, as on a real dataset (auto mode picks it from 1000 images on).
    args = ["--data", str(data), "--backbone", "efficientnet_lite0", "--epochs", "30", "--augment-views", "1",
            "--cache-dir", str(cache), "--out", str(out), "--feature-engine", "litert"]
    first = run_script("train_model.py", *args)
    assert first.returncode == 0, first.stderr
    assert "precision" in first.stdout and "test accuracy" in first.stdout  # sklearn's report on the terminal
    assert len(list(cache.glob("efficientnet_lite0-*.npz"))) == 1
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["features_from"] == "LiteRT"
    assert meta["test"]["accuracy"] == 1.0  # two trivially separable classes, ImageNet features
    assert meta["weights"].startswith("efficientnet_lite0:")

    second = run_script("train_model.py", *args)
    assert second.returncode == 0, second.stderr
    assert "from cache" in second.stdout
    second_meta = json.loads(out.with_suffix(".json").read_text())
    assert second_meta["features_from"] == "cache" and second_meta["test"] == meta["test"]


def tiny_extractor():
    """A small uint8-image -> pooled-features model, quick to convert."""
    from mask_detection._tf import keras
    from mask_detection.backbones import preprocess_layer

    k = keras()
    inputs = k.Input(shape=(224, 224, 3), dtype="uint8")
    x = preprocess_layer("efficientnet_lite0")(inputs)
    x = k.layers.Conv2D(8, 3, strides=4, activation="relu")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    return k.Model(inputs, k.layers.GlobalAveragePooling2D()(x))


def test_litert_feature_engine_matches_tensorflow():
    from mask_detection.training import FAST_ENGINE_MIN_IMAGES, feature_function

    extractor = tiny_extractor()
    images = np.random.default_rng(3).integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    messages = []
    fast, engine = feature_function(extractor, "litert", len(images), images[:4], messages.append)
    assert engine == "LiteRT" and any("converting" in m for m in messages)
    reference, ref_engine = feature_function(extractor, "tensorflow", len(images), images[:4], messages.append)
    assert ref_engine == "TensorFlow"
    expected = reference(images)
    got = fast(images[4:])
    assert got.shape == (8, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected[4:], rtol=1e-4, atol=1e-5)
    # Few images: the conversion would cost more than it saves.
    assert feature_function(extractor, "auto", FAST_ENGINE_MIN_IMAGES - 1, images[:4], messages.append)[1] == \
        "TensorFlow"


def test_features_agree_rejects_different_features():
    from mask_detection.training import features_agree

    reference = np.random.default_rng(0).random((4, 16)).astype(np.float32) * 5
    assert features_agree(reference + 1e-6, reference)
    assert not features_agree(reference * 1.01, reference)
    assert not features_agree(reference[:, :8], reference)


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.npz"], "missing.npz"),
    (["--out", "model.h5"], ".keras"),
])
def test_cli_errors_are_one_line(tmp_path, tiny_arrays, args, message):
    data, _ = tiny_arrays
    full = ["--data", str(data), "--random-weights", "--out", str(tmp_path / "m.keras")] + args
    result = run_script("train_model.py", *full, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_resnet50_without_network_or_file_names_both_remedies(tiny_arrays, tmp_path):
    data, _ = tiny_arrays
    closed = "http://127.0.0.1:9"
    env = {"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": closed, "HTTP_PROXY": closed,
           "https_proxy": closed, "http_proxy": closed}
    result = run_script("train_model.py", "--data", str(data), "--epochs", "1", "--out",
                        str(tmp_path / "m.keras"), env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--weights" in result.stderr and "internet" in result.stderr.lower()
    assert not (tmp_path / "m.keras").exists()


def test_interrupt_leaves_existing_model_untouched(tiny_arrays, tmp_path):
    data, _ = tiny_arrays
    out = tmp_path / "m.keras"
    out.write_bytes(b"previous model")
    out.with_suffix(".json").write_text("{}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train_model.py"), "--data", str(data), "--random-weights",
         "--epochs", "100000", "--patience", "100000", "--augment-views", "0", "--no-cache", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    deadline = time.time() + 240
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Epoch 3/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert out.read_bytes() == b"previous model"
    assert out.with_suffix(".json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]


def test_feature_cache_key_follows_the_pixels(tiny_arrays):
    """The same files cropped differently (loader --face-crop) must not reuse each other's cached features."""
    from mask_detection.training import TrainConfig, feature_cache_key, split_indices

    _, arrays = tiny_arrays
    config = TrainConfig()
    split = split_indices(arrays["labels"], 42, 0.15, 0.15)
    key = feature_cache_key("w", arrays["images"], arrays["labels"], split, config)
    cropped = arrays["images"].copy()
    cropped[0, 0, 0, 0] ^= 1
    assert feature_cache_key("w", cropped, arrays["labels"], split, config) != key
    assert feature_cache_key("w", arrays["images"].copy(), arrays["labels"], split, config) == key
    assert feature_cache_key("other", arrays["images"], arrays["labels"], split, config) != key
