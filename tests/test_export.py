"""TFLite export and the LiteRT runtime: each quantization mode, the self-check, detection with a .tflite model."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO, run_script, small_disk
from skimage import data
from test_training import make_arrays

from mask_detection.commands import export as export_command
from mask_detection.errors import MaskDetectionError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TINY_TEMPERATURE = 2.5


def save_trained_tiny_model(folder, arrays, test_per_class=3, swap_outputs=False):
    """A small trained conv classifier with the shipped model's input, metadata and split record formats.

    Trained on ``arrays`` except the last ``test_per_class`` images of each class (its test split), then saved
    with a calibration temperature (TINY_TEMPERATURE) before its softmax, as training saves it. ``swap_outputs``
    saves the same network with its two output columns exchanged: a model that says the opposite class every time.
    """
    from mask_detection._tf import keras
    from mask_detection.backbones import preprocess_layer
    from mask_detection.model import apply_layers, build_head_layers, calibrated_layers, compile_model

    k = keras()
    k.utils.set_random_seed(0)
    labels = arrays["labels"]
    test = np.concatenate([np.flatnonzero(labels == c)[-test_per_class:] for c in np.unique(labels)])
    train = np.setdiff1d(np.arange(len(labels)), test)

    inputs = k.Input((224, 224, 3), dtype="uint8", name="image")
    x = preprocess_layer("efficientnet_lite0")(inputs)
    x = k.layers.Conv2D(8, 5, strides=4, activation="relu")(x)
    x = k.layers.DepthwiseConv2D(3, strides=2, activation="relu")(x)
    x = k.layers.Conv2D(16, 1, activation="relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    head = build_head_layers(2)
    model = k.Model(inputs, apply_layers(x, head))
    compile_model(model, 3e-3)
    model.fit(arrays["images"][train], np.eye(2, dtype=np.float32)[labels[train]], epochs=12, batch_size=8, verbose=0)
    model = k.Model(inputs, apply_layers(x, calibrated_layers(head, TINY_TEMPERATURE)))
    name = "tiny"
    if swap_outputs:
        name = "tiny_swapped"
        last = model.get_layer("logits")
        kernel, bias = last.get_weights()
        last.set_weights([kernel[:, ::-1], bias[::-1]])
    path = folder / f"{name}.keras"
    model.save(path)
    meta = {"class_names": [str(c) for c in arrays["class_names"]], "backbone": "tiny-test", "input_size": 224}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    split = {
        "train": [str(arrays["hashes"][i]) for i in train],
        "validation": [],
        "test": [str(arrays["hashes"][i]) for i in test],
    }
    (folder / f"{name}_split.json").write_text(json.dumps(split))
    return path, model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-export")
    arrays_path = folder / "arrays.npz"
    arrays = make_arrays(arrays_path, n_per_class=12)
    path, model = save_trained_tiny_model(folder, arrays)
    return {"folder": folder, "arrays_path": arrays_path, "arrays": arrays, "path": path, "model": model}


@pytest.fixture(scope="module")
def tiny_exports(tiny):
    """The tiny model exported in every quantization mode in one call."""
    from mask_detection.export import QUANTIZATIONS, export_models

    lines = []
    results = export_models(tiny["path"], QUANTIZATIONS, calibration_path=tiny["arrays_path"], log=lines.append)
    return results, lines


def test_help_lists_the_options_without_starting_tensorflow():
    code = "import sys; from mask_detection.commands import export; export.main(['--help'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0
    assert "--quantize" in result.stdout and "--calibration" in result.stdout and "--format" not in result.stdout
    code = (
        "import sys; from mask_detection.commands import export\n"
        "try:\n    export.main(['--help'])\nexcept SystemExit:\n    print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("quantize, atol", [("none", 1e-4), ("float16", 2e-2), ("dynamic", 5e-2), ("int8", 8e-2)])
def test_each_quantization_mode_exports_a_model_that_agrees(tiny, tiny_exports, quantize, atol):
    from mask_detection._tf import keras
    from mask_detection.classifier import load_classifier, softmax

    results, lines = tiny_exports
    out = results[quantize].path
    expected_name = "tiny.float32.tflite" if quantize == "none" else f"tiny.{quantize}.tflite"
    assert out == tiny["folder"] / expected_name and out.is_file()
    # One summary line per export with its size and time, after the line naming the check set.
    assert "held-out test split (6 of 24 images" in lines[0]
    line = next(text for text in lines if str(out) in text)
    assert " MB" in line or " kB" in line
    assert " s; agreement 100.00% of 6" in line

    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["class_names"] == ["with_mask", "without_mask"] and meta["input_size"] == 224
    assert meta["quantization"] == quantize
    assert meta["exported_from"]["file"] == str(tiny["path"])
    assert meta["agreement"]["images"] == 6 and meta["agreement"]["agreement"] == 1.0
    assert meta["agreement"]["accuracy_loss"] <= 0.003

    classifier = load_classifier(out, threads=1)
    assert classifier.backend == "litert" and classifier.class_names == ["with_mask", "without_mask"]
    if quantize == "int8":
        assert classifier.input_dtype == np.uint8  # camera pixels go in unchanged
    images = tiny["arrays"]["images"][::3]
    expected = tiny["model"](images, training=False).numpy()
    got = classifier.predict(images)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # The calibration temperature inside the model is applied by LiteRT too: softmax(logits / T).
    model = tiny["model"]
    logits = keras().Model(model.input, model.get_layer("logits").output)(images, training=False).numpy()
    np.testing.assert_allclose(got, softmax(logits / TINY_TEMPERATURE), atol=atol)
    # A face's answer does not depend on the batch it comes in.
    assert np.allclose(classifier.predict(images[:1]), got[:1], atol=1e-5)
    assert np.allclose(classifier.predict(images[:2]), got[:2], atol=1e-5)
    assert classifier.predict(images[:0]).shape == (0, 2)


def test_tflite_runtime_path_does_not_import_tensorflow(tiny_exports):
    results, _ = tiny_exports
    code = (
        "import sys, numpy as np\n"
        "from mask_detection.classifier import load_classifier\n"
        f"c = load_classifier({str(results['dynamic'].path)!r})\n"
        "p = c.predict(np.zeros((3, 224, 224, 3), np.uint8))\n"
        "print(p.shape, c.backend, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 2) litert False False"
    assert result.stderr == ""  # LiteRT's XNNPACK INFO line stays hidden


def test_self_check_refuses_an_export_that_disagrees_and_leaves_no_file(tiny, tmp_path):
    """The swapped-output twin of the tiny model, exported and checked against the original, is refused."""
    from mask_detection.classifier import load_classifier
    from mask_detection.errors import ModelError
    from mask_detection.export import convert, load_check_data, predict_all, write_checked

    twin_dir = tmp_path / "twin"
    twin_dir.mkdir()
    _, twin = save_trained_tiny_model(twin_dir, tiny["arrays"], swap_outputs=True)
    check = load_check_data(
        tiny["path"], tiny["arrays_path"], ["with_mask", "without_mask"], 224, need_calibration=False
    )
    reference = predict_all(load_classifier(tiny["path"]), check.images)
    out = tmp_path / "out" / "broken.dynamic.tflite"
    meta = {"class_names": ["with_mask", "without_mask"], "input_size": 224}
    with pytest.raises(ModelError) as refused:
        write_checked(convert(twin, "dynamic"), out, reference, check, lambda figures, size: meta)
    message = str(refused.value)
    assert "export refused" in message and "agrees with the Keras model on only 0.0% of 6 images" in message
    assert "\n" not in message
    assert list(out.parent.iterdir()) == []  # neither the .tflite nor its metadata nor a temporary file


def test_without_calibration_non_int8_checks_generated_images_and_int8_is_refused(tiny, tmp_path, monkeypatch, capfd):
    import shutil

    monkeypatch.chdir(tmp_path)  # no dataset/arrays.npz here
    for suffix in (".keras", ".json", "_split.json"):
        shutil.copy(tiny["path"].with_name("tiny" + suffix), tmp_path / ("m" + suffix))
    assert export_command.main(["--model", str(tmp_path / "m.keras")]) == 0
    output = capfd.readouterr()
    assert "48 generated images (no calibration arrays: agreement only" in output.out
    assert (tmp_path / "m.float32.tflite").is_file() and output.err == ""  # the default: float32

    with pytest.raises(MaskDetectionError) as refused:
        export_command.main(["--model", str(tmp_path / "m.keras"), "--quantize", "int8"])
    assert "--calibration" in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "m.int8.tflite").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "missing.keras"], "model file missing.keras does not exist"),
        (["--model", "x.tflite"], "cannot export x.tflite: export starts from a trained .keras model"),
        (["--calibration", "missing.npz"], "arrays file not found: missing.npz"),
    ],
)
def test_bad_arguments_give_one_error(tiny, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args[0] != "--model":
        args = ["--model", str(tiny["path"]), *args]
    with pytest.raises(MaskDetectionError) as error:
        export_command.main(args)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_out_with_several_quantizations_is_a_usage_error(tiny, capsys):
    with pytest.raises(SystemExit) as exited:
        export_command.main(["--model", str(tiny["path"]), "--quantize", "none", "dynamic", "--out", "a.tflite"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out names one file: give a single --quantize")


# ------------------------------------------------------------------ a real backbone, the command line, detection


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    """An efficientnet_lite0 model trained by the real training code, exported by the real command line."""
    from mask_detection.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("lite-export")
    arrays_path = folder / "arrays.npz"
    make_arrays(arrays_path, n_per_class=12)
    model = folder / "lite.keras"
    train(
        TrainConfig(
            data=str(arrays_path),
            backbone="efficientnet_lite0",
            weights="imagenet",
            epochs=15,
            augment_views=0,
            out=str(model),
            cache_dir=False,
            progress=False,
        ),
        log=lambda *a: None,
    )
    # int8: the kind of export that detection uses by default.
    result = run_script("export_model.py", "--model", model, "--calibration", arrays_path, "--quantize", "int8")
    return {"folder": folder, "keras": model, "tflite": folder / "lite.int8.tflite", "export": result}


def test_command_line_export_is_quiet_and_checks_itself(lite):
    result = lite["export"]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # none of the converter's output reaches the terminal
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("self-check on the held-out test split")
    assert lines[1].startswith(f"exported {lite['tflite']} (full-integer int8, ")
    meta = json.loads(lite["tflite"].with_suffix(".json").read_text())
    assert meta["backbone"] == "efficientnet_lite0" and meta["quantization"] == "int8"
    assert meta["agreement"]["agreement"] >= 0.995


def detect_json(model, photos):
    result = run_script("detect_image.py", "--model", model, "--json", "--image", *photos)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_detect_image_with_tflite_gives_the_keras_labels(lite, tmp_path):
    photos = []
    for name, rgb in (
        ("astronaut", data.astronaut()),
        ("astronaut_flipped", data.astronaut()[:, ::-1]),
        ("cameraman", cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)),
    ):
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        photos.append(path)
    from_keras = detect_json(lite["keras"], photos)
    from_tflite = detect_json(lite["tflite"], photos)
    assert sum(len(r["faces"]) for r in from_keras) >= 2
    for a, b in zip(from_keras, from_tflite, strict=True):
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]]
        assert [f["label"] for f in a["faces"]] == [f["label"] for f in b["faces"]]
        for fa, fb in zip(a["faces"], b["faces"], strict=True):
            assert abs(fa["probability"] - fb["probability"]) < 0.05


def test_missing_or_corrupt_tflite_is_a_clear_error(lite, tmp_path):
    from mask_detection.classifier import load_classifier
    from mask_detection.errors import ModelError

    good = lite["tflite"].read_bytes()
    meta = lite["tflite"].with_suffix(".json").read_text()
    cases = {"missing": None, "text": b"this is not a model\n", "truncated": good[: len(good) // 3], "empty": b""}
    for name, content in cases.items():
        path = tmp_path / f"{name}.tflite"
        if content is not None:
            path.write_bytes(content)
            path.with_suffix(".json").write_text(meta)
        with pytest.raises(ModelError) as err:
            load_classifier(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        result = run_script("detect_image.py", "--model", path, "--demo", "--json")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], result.stderr
        assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ issue 9: outputs checked before the work


def copy_tiny_model(tiny, folder, name="m"):
    import shutil

    for suffix in (".keras", ".json", "_split.json"):
        shutil.copy(tiny["path"].with_name("tiny" + suffix), folder / (name + suffix))
    return folder / f"{name}.keras"


@pytest.mark.parametrize("out, replaced", [("m.tflite", "m.json"), ("m_split.tflite", "m_split.json")])
def test_export_never_replaces_the_model_metadata_or_split(tiny, tmp_path, out, replaced, capfd):
    """``--out m.tflite`` would write its metadata to m.json, the Keras model's own: refused at once."""
    model = copy_tiny_model(tiny, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(MaskDetectionError) as error:
        export_command.main(
            ["--model", str(model), "--out", str(tmp_path / out), "--calibration", str(tiny["arrays_path"])]
        )
    message = str(error.value)
    assert message.startswith(f"refusing to write {tmp_path / replaced}: ") and "\n" not in message
    if replaced == "m.json":
        assert "metadata of the model" in message and f"e.g. {tmp_path / 'm.float32.tflite'}" in message
    assert capfd.readouterr().out == ""  # before the self-check, let alone a conversion
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_unwritable_export_output_fails_before_the_work(tiny, tmp_path, capfd):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    with pytest.raises(MaskDetectionError) as error:
        export_command.main(
            [
                "--model",
                str(tiny["path"]),
                "--out",
                str(blocker / "m.tflite"),
                "--calibration",
                str(tiny["arrays_path"]),
            ]
        )
    assert str(error.value) == f"cannot write {blocker / 'm.tflite'}: {blocker} is not a folder"
    assert capfd.readouterr().out == ""


def test_full_disk_during_export_is_one_error_and_keeps_the_old_export(tiny, tmp_path):
    """A real full file system (a small tmpfs, root only, filled up but for a few kB): the converter works in
    /tmp, the .tflite cannot be written beside the model. One error line, the old export kept, nothing left."""
    import os

    with small_disk(tmp_path / "disk", "1m") as disk:
        model = copy_tiny_model(tiny, disk)
        old = {"m.float32.tflite": b"old export\n", "m.float32.json": b'{"old": true}\n'}
        for name, content in old.items():
            (disk / name).write_bytes(content)
        stat = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 4096))  # 4 kB stay free
        result = run_script("export_model.py", "--model", model, "--calibration", tiny["arrays_path"], cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines == [f"error: cannot write {disk / 'm.float32.tflite'}: No space left on device"], result.stderr
        for name, content in old.items():
            assert (disk / name).read_bytes() == content
        assert sorted(p.name for p in disk.iterdir()) == sorted(["m.keras", "m.json", "m_split.json", "filler", *old])


def save_near_tie_model(folder, arrays):
    """A real model whose two probabilities differ by less than int8's output step (1/256) on every image:
    float32 reproduces its answers, a full-integer export cannot (it is refused by the self-check)."""
    from mask_detection._tf import keras

    k = keras()
    inputs = k.Input((224, 224, 3), dtype="uint8", name="image")
    x = k.layers.Rescaling(1 / 255.0)(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    dense = k.layers.Dense(2, activation="softmax")
    model = k.Model(inputs, dense(x))
    kernel = np.zeros((3, 2), np.float32)
    kernel[0, 0], kernel[2, 0] = 4e-3, -4e-3  # red minus blue, tiny
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    path = folder / "tie.keras"
    model.save(path)
    (folder / "tie.json").write_text(
        json.dumps({"class_names": [str(c) for c in arrays["class_names"]], "backbone": "tiny-test", "input_size": 224})
    )
    return path


def test_exit_status_is_2_when_the_export_is_refused_and_1_when_some_are(tiny, tmp_path, capfd):
    model = save_near_tie_model(tmp_path, tiny["arrays"])
    single = run_script(
        "export_model.py", "--model", model, "--quantize", "int8", "--calibration", tiny["arrays_path"], cwd=tmp_path
    )
    assert single.returncode == 2, single.stderr
    lines = single.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export refused, tie.int8.tflite not written")
    assert not (tmp_path / "tie.int8.tflite").exists()

    assert (
        export_command.main(
            ["--model", str(model), "--quantize", "none", "int8", "--calibration", str(tiny["arrays_path"])]
        )
        == 1
    )
    several = capfd.readouterr()
    lines = several.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export refused, tie.int8.tflite not written")
    assert (tmp_path / "tie.float32.tflite").is_file() and not (tmp_path / "tie.int8.tflite").exists()
    assert f"exported {tmp_path / 'tie.float32.tflite'}" in several.out


def figures_of(n_images, disagreements, accuracy_drop):
    """Self-check figures for ``n_images`` labelled images where the export changes ``disagreements`` answers, of
    which ``accuracy_drop`` turn a right answer into a wrong one (the rest turn wrong answers into other wrong
    ones: three classes)."""
    from mask_detection.export import compare

    labels = np.zeros(n_images, int)
    reference = np.eye(3, dtype=np.float32)[labels]
    reference[n_images // 2 :] = np.eye(3, dtype=np.float32)[1]  # the Keras model is wrong on half of them
    exported = reference.copy()
    exported[:accuracy_drop] = np.eye(3, dtype=np.float32)[2]  # right -> wrong
    rest = slice(n_images // 2, n_images // 2 + disagreements - accuracy_drop)
    exported[rest] = np.eye(3, dtype=np.float32)[2]  # wrong -> another wrong
    return compare(reference, exported, labels)


@pytest.mark.parametrize(
    "disagreements, accuracy_drop, refused",
    [
        (5, 0, []),  # 99.5% agreement: just enough
        (6, 0, ["agrees"]),  # 99.4%
        (3, 3, []),  # 0.3 points of accuracy lost: just allowed
        (4, 4, ["accuracy"]),  # 0.4 points
        (6, 4, ["agrees", "accuracy"]),
    ],
)
def test_self_check_thresholds_are_exactly_99_5_percent_and_0_3_points(disagreements, accuracy_drop, refused):
    from mask_detection.export import MAX_ACCURACY_LOSS, MIN_AGREEMENT, check_problems

    assert (MIN_AGREEMENT, MAX_ACCURACY_LOSS) == (0.995, 0.003)
    figures = figures_of(1000, disagreements, accuracy_drop)
    assert figures["disagreements"] == disagreements
    assert figures["accuracy_loss"] == pytest.approx(accuracy_drop / 1000)
    problems = check_problems(figures)
    assert [("agrees" if "agrees" in p else "accuracy") for p in problems] == refused
