"""Training end to end on a tiny generated dataset: architecture, outputs, reload, cache, CLI errors, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    REPO,
    hooked_script,
    on_call,
    read_until,
    run_script,
    send_signal,
    send_signal_and_wait_until_handled,
    small_disk,
)

from mask_detection.commands import train as train_command
from mask_detection.errors import MaskDetectionError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def make_arrays(path, n_per_class=8, size=224, seed=0):
    """A tiny two-class arrays file: class 0 bluish with a bright band, class 1 reddish with a dark band."""
    from mask_detection.arrays import save_arrays

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
    from mask_detection.classifier import load_classifier
    from mask_detection.model import model_temperature
    from mask_detection.training import TrainConfig, output_paths, train

    data, arrays = tiny_arrays
    out = tmp_path / "models" / "m.keras"
    config = TrainConfig(
        data=str(data),
        backbone="resnet50",
        weights=None,
        epochs=3,
        augment_views=1,
        out=str(out),
        cache_dir=False,
        progress=False,
    )
    meta = train(config).metadata

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
    assert kinds[-3:] == ["Dense", "Rescaling", "Softmax"]  # logits, calibration temperature, probabilities
    backbone = next(layer for layer in model.layers if isinstance(layer, k.Model))
    assert len(backbone.layers) > 100
    assert not backbone.trainable
    assert all(not layer.trainable for layer in backbone.layers if layer.weights)
    assert not backbone.trainable_weights
    assert model.input.dtype == "uint8" and tuple(model.input.shape[1:]) == (224, 224, 3)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"head_dense", "logits"}
    calibration = saved["calibration"]
    assert calibration["temperature"] > 0 and calibration["ece_bins"] == 15
    assert model_temperature(model) == pytest.approx(calibration["temperature"], rel=1e-6)

    # The classifier used by detection gives the same predictions as the reloaded Keras model.
    classifier = load_classifier(out)
    images = arrays["images"][:5]
    np.testing.assert_allclose(classifier.predict(images), model(images, training=False).numpy(), atol=1e-5)
    assert classifier.class_names == ["with_mask", "without_mask"]


def test_efficientnet_lite0_cli_learns_and_uses_feature_cache(tiny_arrays, tmp_path, capfd):
    data, arrays = tiny_arrays
    out = tmp_path / "lite.keras"
    cache = tmp_path / "cache"
    # The converted LiteRT backbone, as on a real dataset (auto mode picks it from 1000 images on).
    args = [
        "--data",
        str(data),
        "--backbone",
        "efficientnet_lite0",
        "--epochs",
        "30",
        "--augment-views",
        "1",
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--feature-engine",
        "litert",
    ]
    assert train_command.main(args) == 0
    first = capfd.readouterr().out
    assert "precision" in first and "test accuracy" in first  # sklearn's report on the terminal
    assert [p.name for p in cache.iterdir()] == ["features.sqlite3"]
    meta = json.loads(out.with_suffix(".json").read_text())
    # Every picture's original and augmented view: the augmented views of the validation and test pictures too,
    # for other splits.
    assert meta["features_from"] == {"cache": 0, "computed": 2 * len(arrays["images"]), "engine": "LiteRT"}
    assert meta["test"]["accuracy"] == 1.0  # two trivially separable classes, ImageNet features
    assert meta["weights"].startswith("efficientnet_lite0:")

    assert train_command.main(args) == 0
    assert "backbone features: 32 of 32 picture views from the cache" in capfd.readouterr().out
    second_meta = json.loads(out.with_suffix(".json").read_text())
    assert second_meta["features_from"] == {"cache": 32, "computed": 0, "engine": None}
    assert second_meta["test"] == meta["test"]


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
    assert (
        feature_function(extractor, "auto", FAST_ENGINE_MIN_IMAGES - 1, images[:4], messages.append)[1] == "TensorFlow"
    )


def test_features_agree_rejects_different_features():
    from mask_detection.training import features_agree

    reference = np.random.default_rng(0).random((4, 16)).astype(np.float32) * 5
    assert features_agree(reference + 1e-6, reference)
    assert not features_agree(reference * 1.01, reference)
    assert not features_agree(reference[:, :8], reference)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "missing.npz"], "arrays file not found: missing.npz"),
        (["--out", "model.h5"], "the model file model.h5 must have a name ending in .keras"),
    ],
)
def test_command_errors_are_one_line(tmp_path, tiny_arrays, args, message, monkeypatch):
    data, _ = tiny_arrays
    monkeypatch.chdir(tmp_path)
    full = ["--data", str(data), "--random-weights", "--out", str(tmp_path / "m.keras")] + args
    with pytest.raises(MaskDetectionError) as error:
        train_command.main(full)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_resnet50_without_network_or_file_names_both_remedies(tiny_arrays, tmp_path):
    data, _ = tiny_arrays
    closed = "http://127.0.0.1:9"
    env = {
        "KERAS_HOME": str(tmp_path / "keras"),
        "HTTPS_PROXY": closed,
        "HTTP_PROXY": closed,
        "https_proxy": closed,
        "http_proxy": closed,
    }
    result = run_script(
        "train_model.py", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "m.keras"), env=env
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "as the weights file" in result.stderr and "internet" in result.stderr.lower()
    assert "efficientnet_lite0 backbone" in result.stderr
    assert not (tmp_path / "m.keras").exists()


def test_interrupt_leaves_existing_model_untouched(tiny_arrays, tmp_path):
    data, _ = tiny_arrays
    out = tmp_path / "m.keras"
    out.write_bytes(b"previous model")
    out.with_suffix(".json").write_text("{}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train_model.py"),
            "--data",
            str(data),
            "--random-weights",
            "--epochs",
            "100000",
            "--patience",
            "100000",
            "--augment-views",
            "0",
            "--no-cache",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    # Ctrl-C once the third epoch has started (an event of the run, not a time: it cannot have finished then).
    seen = read_until(proc, lambda line: line.startswith("Epoch 3/"))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert out.read_bytes() == b"previous model"
    assert out.with_suffix(".json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]


def test_feature_cache_key_follows_the_pixels(tiny_arrays):
    """The same files cropped differently (loader --face-crop) must not reuse each other's cached features; the
    same pixels get the same key wherever they are."""
    from mask_detection.training import feature_key, picture_keys, view_names

    _, arrays = tiny_arrays
    keys = picture_keys(arrays["images"])
    assert len(set(keys)) == len(keys) and all(len(key) == 32 for key in keys)
    cropped = arrays["images"].copy()
    cropped[0, 0, 0, 0] ^= 1
    changed = picture_keys(cropped)
    assert changed[0] != keys[0] and changed[1:] == keys[1:]
    assert picture_keys(arrays["images"][::-1].copy()) == keys[::-1]  # position and neighbours do not matter
    assert picture_keys(arrays["images"][:, :112, :112].copy())[0] != keys[0]
    views = view_names(2)
    assert views[0] == "original" and len(set(views)) == 3
    key = feature_key("w", views[1], keys[0])
    assert len({key, feature_key("other", views[1], keys[0]), feature_key("w", views[2], keys[0])}) == 3


# ------------------------------------------------------------------ issue 9: nothing lost, nothing crashes

TINY_RUN = [
    "--random-weights",
    "--backbone",
    "efficientnet_lite0",
    "--epochs",
    "1",
    "--augment-views",
    "0",
    "--feature-engine",
    "tensorflow",
    "--no-cache",
    "--quiet",
]


def tiny_run_command(data, out):
    """The argv of a real train_model.py process doing TINY_RUN on ``data`` into ``out``."""
    return [sys.executable, str(REPO / "train_model.py"), "--data", str(data), *TINY_RUN, "--out", str(out)]


OUTPUT_NAMES = ("m.keras", "m.json", "m_split.json", "m_training.png", "m_confusion.png")


def make_old_model_files(folder):
    """An earlier model's five files, each with known content."""
    folder.mkdir(parents=True, exist_ok=True)
    old = {name: f"old {name} of an earlier model\n".encode() for name in OUTPUT_NAMES}
    for name, content in old.items():
        (folder / name).write_bytes(content)
    return old


def error_line(result):
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _ignore_sigxfsz_and_limit(limit):
    import resource

    def limit_file_size():
        # Writes past the limit fail with EFBIG ("File too large") instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


def test_full_disk_while_saving_keeps_every_old_file(tiny_arrays, tmp_path):
    """A file-size limit that the JSON and the plots fit in (tens of kB) but the model (about 15 MB) does not:
    the run fails with one error line and every file of the earlier model is left as it was."""
    data, _ = tiny_arrays
    folder = tmp_path / "models"
    old = make_old_model_files(folder)
    result = subprocess.run(
        tiny_run_command(data, folder / "m.keras"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        preexec_fn=_ignore_sigxfsz_and_limit(1_000_000),
    )
    assert result.returncode == 2, result.stderr
    assert error_line(result) == f"error: cannot write {folder / 'm.keras'}: File too large"
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_NAMES)  # no temporary file left
    for name, content in old.items():
        assert (folder / name).read_bytes() == content, name


def test_full_tmpfs_while_saving_keeps_every_old_file(tiny_arrays, tmp_path):
    """The same on a real full file system: a 2 MB tmpfs (root only)."""
    data, _ = tiny_arrays
    with small_disk(tmp_path / "disk", "2m") as disk:
        old = make_old_model_files(disk)
        result = run_script("train_model.py", "--data", data, *TINY_RUN, "--out", disk / "m.keras")
        assert result.returncode == 2, result.stderr
        assert error_line(result) == f"error: cannot write {disk / 'm.keras'}: No space left on device"
        assert sorted(p.name for p in disk.iterdir()) == sorted(OUTPUT_NAMES)
        for name, content in old.items():
            assert (disk / name).read_bytes() == content, name


# The moments a SIGTERM can come while the five files are saved, each chosen by a hook in the real process (a
# signal sent from outside when a temporary file is seen could come at any of them, or after the run, with the
# machine's load): all five temporaries just made, nothing written into them yet (the old files must all stay);
# the first file renamed onto its target, four to go (the renames run with signals held back: all must be new).
# There the hook also waits until a handler has run: the signal the renaming thread holds back goes to another
# thread, whose handling would otherwise come during the renames or after them as the scheduler has it.
SAVING_MOMENTS = {
    "temporaries-made": (
        on_call("mask_detection.fileio:atomic_paths", send_signal(signal.SIGTERM), when="inside", match="m.keras"),
        "old",
    ),
    "first-rename-done": (
        on_call("os:replace", send_signal_and_wait_until_handled(signal.SIGTERM), when="after", match=".m.tmp-"),
        "new",
    ),
}


@pytest.mark.parametrize("moment", list(SAVING_MOMENTS))
def test_sigterm_while_saving_leaves_all_old_files_or_all_new(tiny_arrays, tmp_path, moment):
    """SIGTERM while the model's files are being saved: never a mix of old and new files, no temporary left."""
    data, _ = tiny_arrays
    folder = tmp_path / "models"
    old = make_old_model_files(folder)
    hook, expected = SAVING_MOMENTS[moment]
    argv = hooked_script("train_model.py", "--data", data, *TINY_RUN, "--out", folder / "m.keras", hooks=[hook])
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 143, result.stderr  # the signal came while saving, not after the run
    assert "Traceback" not in result.stderr
    assert "stopped by signal SIGTERM" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_NAMES)  # no temporary file left
    unchanged = [name for name in OUTPUT_NAMES if (folder / name).read_bytes() == old[name]]
    assert unchanged in ([], list(OUTPUT_NAMES)), f"a mix of old and new files: {unchanged} kept"
    assert unchanged == (list(OUTPUT_NAMES) if expected == "old" else []), f"expected all {expected} files"


def test_unwritable_output_fails_before_training(tiny_arrays, tmp_path, capfd):
    data, _ = tiny_arrays
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    with pytest.raises(MaskDetectionError) as error:
        train_command.main(["--data", str(data), *TINY_RUN[:-1], "--out", str(blocker / "m.keras")])
    assert str(error.value).startswith(f"cannot write {blocker / 'm.keras'}") and "not a folder" in str(error.value)
    assert capfd.readouterr().out == ""  # refused before loading the data, let alone training


def test_outputs_never_replace_the_training_data(tiny_arrays, tmp_path):
    """An arrays file that happens to have the name of one of the outputs (here the split record) is an input:
    refused, and left as it was."""
    import shutil

    data, _ = tiny_arrays
    inputs = tmp_path / "m_split.json"
    shutil.copy(data, inputs)
    before = inputs.read_bytes()
    with pytest.raises(MaskDetectionError) as error:
        train_command.main(["--data", str(inputs), *TINY_RUN, "--out", str(tmp_path / "m.keras")])
    assert str(error.value) == f"refusing to write {inputs}: it is one of this run's inputs"
    assert inputs.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_split.json"]


def save_custom_arrays(path, images, labels, sources=None):
    from mask_detection.arrays import save_arrays

    n = len(labels)
    save_arrays(
        path,
        {
            "images": images,
            "labels": np.asarray(labels, np.int32),
            "class_names": np.array(["with_mask", "without_mask"]),
            "paths": np.array([f"{i}.png" for i in range(n)], dtype=str).reshape(n),
            "hashes": np.array([f"{i}".ljust(64, "0") for i in range(n)], dtype=str).reshape(n),
        }
        | ({} if sources is None else {"sources": np.asarray(sources, str)}),
    )
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "holds no images"),
        (
            "small",
            "holds 16x16 images, but the classifier takes at least 32x32 images: make the arrays file with loader.py",
        ),
        ("one_class", "has no images of class without_mask"),
    ],
)
def test_unusable_arrays_are_one_clear_error(tmp_path, case, message):
    path = tmp_path / f"{case}.npz"
    if case == "empty":
        save_custom_arrays(path, np.zeros((0, 224, 224, 3), np.uint8), [])
    elif case == "small":
        make_arrays(path, n_per_class=6, size=16)
    else:
        arrays = make_arrays(path, n_per_class=6)
        save_custom_arrays(path, arrays["images"], np.zeros(12))  # every image labelled with_mask
    with pytest.raises(MaskDetectionError) as error:
        train_command.main(["--data", str(path), *TINY_RUN, "--out", str(tmp_path / "m.keras")])
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_learning_rate_is_refused(tiny_arrays, tmp_path, value, capsys):
    from mask_detection.training import TrainConfig, train

    data, _ = tiny_arrays
    with pytest.raises(SystemExit) as exited:
        train_command.main(
            ["--data", str(data), *TINY_RUN, "--learning-rate", value, "--out", str(tmp_path / "m.keras")]
        )
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--learning-rate" in lines[0]
    # Library callers get the same refusal, before any work.
    config = TrainConfig(
        data=str(data), weights=None, learning_rate=float(value), out=str(tmp_path / "m.keras"), cache_dir=False
    )
    with pytest.raises(MaskDetectionError, match="learning_rate must be a finite positive number"):
        train(config)
    assert list(tmp_path.iterdir()) == []


def test_feature_cache_problems_only_warn(tiny_arrays, tmp_path, capfd):
    """The cache is optional: an unwritable cache folder is a warning (on stderr, even with --quiet) and a
    damaged cache file is a warning too: the features are computed and it is replaced by a whole one."""
    data, _ = tiny_arrays
    run = [
        "--data",
        str(data),
        "--backbone",
        "efficientnet_lite0",
        "--epochs",
        "1",
        "--augment-views",
        "0",
        "--feature-engine",
        "tensorflow",
        "--quiet",
        "--out",
        str(tmp_path / "m.keras"),
    ]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert train_command.main([*run, "--cache-dir", str(blocker / "cache")]) == 0
    unwritable = capfd.readouterr()
    assert unwritable.err == (
        f"warning: feature cache not written: cannot write {blocker / 'cache'}: {blocker} is not a folder\n"
    )
    assert unwritable.out == ""  # --quiet
    assert (tmp_path / "m.keras").is_file()

    cache = tmp_path / "cache"
    cache.mkdir()
    damaged = cache / "features.sqlite3"
    damaged.write_bytes(b"\x00not a database, e.g. half written by a crash of another tool" * 100)
    assert train_command.main([*run[:-2], "--cache-dir", str(cache), "--out", str(tmp_path / "again.keras")]) == 0
    warned = capfd.readouterr().err
    assert warned == f"warning: feature cache {damaged} is damaged (file is not a database); replaced by a new one\n"
    assert json.loads((tmp_path / "again.json").read_text())["features_from"] == {
        "cache": 0,
        "computed": 16,
        "engine": "TensorFlow",
    }
    from mask_detection.feature_store import FeatureStore

    with FeatureStore(cache) as store:  # and the file is a whole cache again, holding this run's features
        assert store.readable and not store.created and store.size() > 16 * 1280 * 4


# ------------------------------------------------------------------ issue 10: the invariants, pinned


def test_split_is_70_15_15_stratified_and_fixed_by_its_seed():
    from mask_detection.training import TrainConfig, split_indices

    config = TrainConfig()
    labels = np.array([0] * 60 + [1] * 140)  # 30% / 70%
    split = split_indices(labels, config.seed, config.val_fraction, config.test_fraction, 2)
    sizes = {name: len(idx) for name, idx in split.items()}
    assert sizes == {"train": 140, "validation": 30, "test": 30}
    for name, idx in split.items():
        # Each split keeps the classes' proportions (stratified), to the image.
        assert np.bincount(labels[idx], minlength=2).tolist() == [round(0.3 * sizes[name]), round(0.7 * sizes[name])], (
            name
        )
    everything = np.concatenate(list(split.values()))
    assert len(everything) == len(set(everything.tolist())) == len(labels)  # no overlap, nothing lost
    again = split_indices(labels, config.seed, config.val_fraction, config.test_fraction, 2)
    assert all(np.array_equal(split[name], again[name]) for name in split)
    other = split_indices(labels, config.seed + 1, config.val_fraction, config.test_fraction, 2)
    assert not np.array_equal(split["test"], other["test"])
    assert not np.array_equal(split["validation"], other["validation"])
    # The exact split of a seed is part of reproducing a model (README): both draws follow the seed.
    seven = split_indices(labels, 7, config.val_fraction, config.test_fraction, 2)
    assert seven["validation"].tolist() == [
        7,
        14,
        15,
        18,
        33,
        35,
        43,
        49,
        53,
        60,
        61,
        62,
        73,
        78,
        85,
        88,
        103,
        112,
        117,
        123,
        131,
        149,
        161,
        162,
        165,
        173,
        178,
        188,
        189,
        193,
    ]
    assert seven["test"].tolist() == [
        3,
        4,
        19,
        23,
        25,
        28,
        39,
        47,
        54,
        64,
        72,
        76,
        79,
        81,
        90,
        93,
        107,
        118,
        127,
        133,
        135,
        143,
        153,
        167,
        179,
        183,
        187,
        197,
        198,
        199,
    ]


def test_split_holds_each_source_in_its_share_and_one_source_splits_as_before():
    """Scene crops (a minority source) land in validation and test in their share, so that early stopping and
    the temperature are fitted on the kind of faces cameras see; a single source splits exactly as without."""
    from mask_detection.training import split_indices

    labels = np.array([0] * 100 + [1] * 100 + [0] * 30 + [1] * 10)
    sources = np.array(["folders"] * 200 + ["scenes:x"] * 40)
    split = split_indices(labels, 42, 0.15, 0.15, 2, sources)
    for name in ("validation", "test"):
        idx = split[name]
        scene = idx[sources[idx] == "scenes:x"]
        # 36 pictures per small split: 6 of them scene crops (40/240), 4-5 masked and 1-2 bare.
        assert len(idx) == 36 and len(scene) == 6, name
        assert sorted(np.bincount(labels[scene], minlength=2).tolist()) in ([1, 5], [2, 4]), name
    everything = np.concatenate(list(split.values()))
    assert len(set(everything.tolist())) == len(labels)
    plain = split_indices(labels, 42, 0.15, 0.15, 2)
    one_source = split_indices(labels, 42, 0.15, 0.15, 2, np.array(["folders"] * len(labels)))
    assert all(np.array_equal(plain[name], one_source[name]) for name in plain)
    # Too few pictures of a source and class to share out: the class alone is the stratum (no error).
    few = np.array(["folders"] * 238 + ["scenes:x"] * 2)
    assert sum(len(idx) for idx in split_indices(labels, 42, 0.15, 0.15, 2, few).values()) == len(labels)


def test_early_stopping_saves_the_best_epochs_weights(tmp_path):
    """Labels that do not follow the pictures: the head learns the training images by heart and the validation
    loss goes up again. Training stops, and the model saved is the best epoch's (its validation loss is the
    history's minimum, not the last epoch's)."""
    from mask_detection._tf import keras
    from mask_detection.classifier import load_keras_model
    from mask_detection.training import TrainConfig, split_indices, train

    images = make_arrays(tmp_path / "separable.npz", n_per_class=14)["images"]
    labels = np.random.default_rng(5).permutation(np.arange(len(images)) % 2)
    data = save_custom_arrays(tmp_path / "arrays.npz", images, labels)
    arrays = {"images": images, "labels": labels}
    config = TrainConfig(
        data=str(data),
        backbone="efficientnet_lite0",
        epochs=60,
        patience=3,
        learning_rate=3e-3,
        augment_views=0,
        feature_engine="tensorflow",
        out=str(tmp_path / "m.keras"),
        cache_dir=False,
    )
    meta = train(config).metadata
    val_loss = meta["history"]["val_loss"]
    best = int(np.argmin(val_loss))
    assert meta["epochs"]["best"] == best + 1 < meta["epochs"]["run"] == best + 1 + config.patience
    assert val_loss[-1] > val_loss[best] * 1.01  # the last epoch is measurably worse

    split = split_indices(arrays["labels"], config.seed, config.val_fraction, config.test_fraction, 2)
    model = load_keras_model(tmp_path / "m.keras")
    images = arrays["images"][split["validation"]]
    onehot = np.eye(2, dtype=np.float32)[arrays["labels"][split["validation"]]]
    # The head's own probabilities (before the calibration temperature) give the best epoch's validation loss.
    k = keras()
    logits = k.Model(model.input, model.get_layer("logits").output)(images, training=False)
    saved_loss = float(k.losses.categorical_crossentropy(onehot, k.ops.softmax(logits)).numpy().mean())
    assert saved_loss == pytest.approx(val_loss[best], rel=1e-3, abs=1e-5)
    # The temperature was fitted on that split: the calibrated probabilities are no less likely there.
    calibrated_loss = float(k.losses.categorical_crossentropy(onehot, model(images, training=False)).numpy().mean())
    assert calibrated_loss <= saved_loss + 1e-6
    assert calibrated_loss == pytest.approx(meta["calibration"]["nll_after"], rel=1e-3, abs=1e-5)


def test_metadata_counts_and_scores_each_source_apart(tmp_path):
    """Two sources, as loader.py --scenes writes them: the split holds both, the metadata counts and scores each."""
    from mask_detection.training import TrainConfig, train

    images = make_arrays(tmp_path / "clean.npz", n_per_class=20)["images"]
    labels = np.arange(40) // 20
    sources = np.where(np.arange(40) % 2 == 0, "scenes:street", "folders")
    data = save_custom_arrays(tmp_path / "arrays.npz", images, labels, sources)
    config = TrainConfig(
        data=str(data),
        backbone="efficientnet_lite0",
        epochs=2,
        augment_views=0,
        feature_engine="tensorflow",
        out=str(tmp_path / "m.keras"),
        cache_dir=False,
    )
    meta = train(config).metadata
    assert meta["data"]["per_source"] == {
        "folders": {"with_mask": 10, "without_mask": 10},
        "scenes:street": {"with_mask": 10, "without_mask": 10},
    }
    by_source = meta["test_by_source"]
    n_test = meta["split"]["sizes"]["test"]
    assert {name: entry["pictures"] for name, entry in by_source.items()} == {
        "folders": n_test // 2,
        "scenes:street": n_test // 2,
    }
    errors = sum(entry["errors"] for entry in by_source.values())
    assert errors == round((1 - meta["test"]["accuracy"]) * n_test)
    for entry in by_source.values():
        assert entry["accuracy"] == pytest.approx(1 - entry["errors"] / entry["pictures"])


def test_a_source_with_one_class_in_the_test_split_is_scored_quietly():
    import warnings

    from mask_detection.training.scores import HeldOutScore, _test_by_source

    labels = np.array([0, 0, 1, 1, 0, 0])
    sources = np.array(["folders"] * 4 + ["scenes:x"] * 2)  # the scene crops in test are all masked
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.8, 0.2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's "y_pred contains classes not in y_true" would be printed
        by_source = _test_by_source(HeldOutScore(np.arange(6), probabilities, {}, ""), labels, sources, ["a", "b"])
    assert by_source["folders"] == {"pictures": 4, "errors": 1, "accuracy": 0.75, "balanced_accuracy": 0.75}
    assert by_source["scenes:x"]["errors"] == 1 and by_source["scenes:x"]["pictures"] == 2
