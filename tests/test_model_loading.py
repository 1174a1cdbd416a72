"""Loading a classifier checks the file and what the model computes: damaged files, another input size, logits
or non-probability outputs are caught at load time, through the library and through detect_image.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_script
from detect_support import save_tiny_classifier

from mask_detection.classifier import load_classifier
from mask_detection.commands import detect_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def save_variant(folder, name, activation="softmax", size=224, meta_size=224, bias=(0.0, 0.0)):
    """A real .keras model like detect_support's tiny classifier, with another last activation (None: logits)
    or another input size; its metadata says ``meta_size``."""
    from mask_detection._tf import keras

    k = keras()
    inputs = k.Input((size, size, 3), dtype="uint8", name="image")
    x = k.layers.Rescaling(1 / 255.0)(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    dense = k.layers.Dense(2, activation=activation)
    model = k.Model(inputs, dense(x))
    kernel = np.zeros((3, 2), np.float32)
    kernel[0, 0], kernel[2, 0] = 4.0, -4.0
    dense.set_weights([kernel, np.asarray(bias, np.float32)])
    path = folder / f"{name}.keras"
    model.save(path)
    meta = {"class_names": ["with_mask", "without_mask"], "backbone": "tiny-test", "input_size": meta_size}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    good = save_tiny_classifier(folder)
    content = good.read_bytes()
    truncated = folder / "truncated.keras"
    truncated.write_bytes(content[: len(content) // 2])
    (folder / "truncated.json").write_text((folder / "tiny.json").read_text())
    return {
        "folder": folder,
        "good": good,
        "truncated": truncated,
        # The bias puts the demo face's logits far outside 0..1, as a real logits model's are.
        "logits": save_variant(folder, "logits", activation=None, bias=(5.0, 0.0)),
        "sigmoid": save_variant(folder, "sigmoid", activation="sigmoid"),
        "small_input": save_variant(folder, "small_input", size=96, meta_size=224),
    }


def test_truncated_keras_file_is_called_damaged(models):
    from mask_detection.errors import ModelError

    with pytest.raises(ModelError) as err:
        load_classifier(models["truncated"])
    message = str(err.value)
    assert message == (
        f"cannot load model {models['truncated']}: the file is damaged or not a .keras model (truncated zip)"
    )
    result = run_script("detect_image.py", "--demo", "--model", models["truncated"], "--no-display", "--json")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"


def test_a_model_saved_before_calibration_loads_and_answers_as_before(models):
    """No temperature layer (a Dense softmax last, as models saved before calibration): temperature 1, and the
    classifier's answers are the model's own outputs, unchanged."""
    from mask_detection.classifier import probe_images
    from mask_detection.model import model_temperature

    warnings = []
    classifier = load_classifier(models["good"], warn=warnings.append)
    assert model_temperature(classifier.model) == 1.0 and not warnings
    assert classifier.model.layers[-1].get_config()["activation"] == "softmax"
    images = probe_images(224)
    np.testing.assert_array_equal(classifier.predict(images), classifier.model(images, training=False).numpy())


def test_model_built_for_another_input_size_is_refused(models):
    from mask_detection.errors import ModelError

    with pytest.raises(ModelError) as err:
        load_classifier(models["small_input"])
    assert "takes 96x96x3 input, but its metadata says input_size 224" in str(err.value)
    with pytest.raises(ModelError, match="input_size 224"):  # the command stops with the same error
        detect_image.main(["--demo", "--model", str(models["small_input"]), "--no-display", "--json"])


def test_logits_get_a_softmax_and_a_warning(models):
    from mask_detection.classifier import SoftmaxOverLogits, load_classifier, probe_images, softmax

    warnings = []
    classifier = load_classifier(models["logits"], warn=warnings.append)
    assert len(warnings) == 1 and "outputs logits" in warnings[0] and "softmax" in warnings[0]
    assert isinstance(classifier, SoftmaxOverLogits)
    images = probe_images(224)
    probs = classifier.predict(images)
    raw = classifier.inner.model(images, training=False).numpy()
    assert raw.max() > 1  # the model itself does output logits
    np.testing.assert_allclose(probs, softmax(raw), atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    # A model that outputs probabilities is left as it is, silently.
    good = load_classifier(models["good"], warn=warnings.append)
    assert not isinstance(good, SoftmaxOverLogits) and len(warnings) == 1


def test_detect_image_reports_probabilities_for_a_logits_model(models, capfd):
    assert detect_image.main(["--demo", "--model", str(models["logits"]), "--no-display", "--json"]) == 0
    faces = [face for line in capfd.readouterr().out.splitlines() for face in json.loads(line)["faces"]]
    assert faces
    for face in faces:
        assert 0.5 <= face["probability"] <= 1.0, face  # was the raw logit, about 5.7
        assert face["label"] == "with_mask"


def test_outputs_that_do_not_sum_to_one_are_refused(models):
    from mask_detection.errors import ModelError

    with pytest.raises(ModelError) as err:
        load_classifier(models["sigmoid"])
    assert "does not output probabilities" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="do not sum to 1"):
        detect_image.main(["--demo", "--model", str(models["sigmoid"]), "--no-display", "--json"])


def test_tflite_logits_model_gets_a_softmax_too(models, tmp_path):
    """The same check for LiteRT: a logits model converted to TFLite."""
    from mask_detection._tf import keras
    from mask_detection.classifier import SoftmaxOverLogits, load_classifier, probe_images, softmax
    from mask_detection.export import convert

    model = keras().models.load_model(models["logits"], compile=False)
    path = tmp_path / "logits.tflite"
    path.write_bytes(convert(model, "none"))
    (tmp_path / "logits.json").write_text((models["folder"] / "logits.json").read_text())
    warnings = []
    classifier = load_classifier(path, threads=1, warn=warnings.append)
    assert isinstance(classifier, SoftmaxOverLogits) and classifier.inner.backend == "litert"
    assert len(warnings) == 1 and "outputs logits" in warnings[0]
    images = probe_images(224)
    np.testing.assert_allclose(classifier.predict(images), softmax(model(images, training=False).numpy()), atol=1e-5)


# ------------------------------------------------------------------ the default model: int8 export or .keras


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A real tiny .keras classifier and a real TFLite export of it, named and described as export_model.py
    names and describes the int8 export (its metadata records the .keras file's sha256)."""
    from mask_detection._tf import keras
    from mask_detection.export import convert
    from mask_detection.fileio import sha256_file

    folder = tmp_path_factory.mktemp("pair")
    keras_path = save_tiny_classifier(folder, name="mask_detector")
    fast = folder / "mask_detector.int8.tflite"
    fast.write_bytes(convert(keras().models.load_model(keras_path, compile=False), "none"))
    meta = json.loads((folder / "mask_detector.json").read_text())
    meta["exported_from"] = {"file": str(keras_path), "sha256": sha256_file(keras_path)}
    (folder / "mask_detector.int8.json").write_text(json.dumps(meta))
    return folder


def user_models(tmp_path, tiny_pair, names):
    """``models/`` in a fresh working directory ``tmp_path`` with copies of the named files of the pair."""
    import shutil

    folder = tmp_path / "models"
    folder.mkdir()
    for name in names:
        shutil.copy(tiny_pair / name, folder / name)
    return folder


KERAS_FILES = ("mask_detector.keras", "mask_detector.json")
EXPORT_FILES = ("mask_detector.int8.tflite", "mask_detector.int8.json")


def test_int8_export_is_the_default_while_it_matches_its_keras_model(tiny_pair, tmp_path, monkeypatch):
    from mask_detection.paths import SHIPPED_DIR

    monkeypatch.chdir(tmp_path)
    user_models(tmp_path, tiny_pair, KERAS_FILES + EXPORT_FILES)
    warnings = []
    classifier = load_classifier(threads=1, warn=warnings.append)
    assert classifier.path == Path("models/mask_detector.int8.tflite")  # yours, not the shipped one
    assert classifier.backend == "litert" and warnings == []
    assert not str(classifier.path.resolve()).startswith(str(SHIPPED_DIR))


def test_stale_int8_export_falls_back_to_the_keras_model_with_a_warning(tiny_pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = user_models(tmp_path, tiny_pair, KERAS_FILES + EXPORT_FILES)
    save_tiny_classifier(folder, name="mask_detector", constant=(0.9, 0.1))  # retrained: the export is stale
    warnings = []
    classifier = load_classifier(warn=warnings.append)
    assert classifier.path == Path("models/mask_detector.keras") and classifier.backend == "keras"
    assert len(warnings) == 1 and "was not exported from the current models/mask_detector.keras" in warnings[0]
    assert load_classifier().path == classifier.path  # no warn callback: no warning, same choice


def test_export_without_a_record_of_its_source_is_not_trusted(tiny_pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = user_models(tmp_path, tiny_pair, KERAS_FILES + EXPORT_FILES)
    meta = json.loads((folder / "mask_detector.int8.json").read_text())
    del meta["exported_from"]
    (folder / "mask_detector.int8.json").write_text(json.dumps(meta))
    warnings = []
    assert load_classifier(warn=warnings.append).path == Path("models/mask_detector.keras") and len(warnings) == 1


def test_a_folder_with_only_the_export_uses_it(tiny_pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user_models(tmp_path, tiny_pair, EXPORT_FILES)
    warnings = []
    classifier = load_classifier(threads=1, warn=warnings.append)
    assert classifier.path == Path("models/mask_detector.int8.tflite") and warnings == []


def test_without_models_in_the_working_directory_the_shipped_export_is_used(tmp_path, monkeypatch):
    from mask_detection.classifier import default_model_path
    from mask_detection.paths import SHIPPED_DIR, fast_export_in

    monkeypatch.chdir(tmp_path)
    warnings = []
    # The shipped int8 export was made from the shipped .keras model: it is the default.
    assert default_model_path(warn=warnings.append) == fast_export_in(SHIPPED_DIR) and warnings == []
