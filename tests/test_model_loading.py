"""Loading a classifier checks the file and what the model computes: damaged files, another input size, logits
or non-probability outputs are caught at load time, through the library and through detect_image.py."""

import json

import numpy as np
import pytest

from conftest import run_script
from detect_support import save_tiny_classifier

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
    from mask_detection.model import load_classifier

    with pytest.raises(ModelError) as err:
        load_classifier(models["truncated"])
    message = str(err.value)
    assert message == (f"cannot load model {models['truncated']}: the file is damaged or not a .keras model "
                       "(truncated zip)")
    result = run_script("detect_image.py", "--demo", "--model", models["truncated"], "--no-display", "--json")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"


def test_model_built_for_another_input_size_is_refused(models):
    from mask_detection.errors import ModelError
    from mask_detection.model import load_classifier

    with pytest.raises(ModelError) as err:
        load_classifier(models["small_input"])
    assert "takes 96x96x3 input, but its metadata says input_size 224" in str(err.value)
    result = run_script("detect_image.py", "--demo", "--model", models["small_input"], "--no-display", "--json")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "input_size 224" in lines[0]


def test_logits_get_a_softmax_and_a_warning(models):
    from mask_detection.model import load_classifier, probe_images, softmax

    warnings = []
    classifier = load_classifier(models["logits"], warn=warnings.append)
    assert len(warnings) == 1 and "outputs logits" in warnings[0] and "softmax" in warnings[0]
    images = probe_images(224)
    probs = classifier.predict(images)
    raw = classifier.model(images, training=False).numpy()
    assert raw.max() > 1  # the model itself does output logits
    np.testing.assert_allclose(probs, softmax(raw), atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    # A model that outputs probabilities is left as it is, silently.
    assert not load_classifier(models["good"], warn=warnings.append).softmax_outputs and len(warnings) == 1


def test_detect_image_reports_probabilities_for_a_logits_model(models):
    result = run_script("detect_image.py", "--demo", "--model", models["logits"], "--no-display", "--json")
    assert result.returncode == 0, result.stderr
    faces = [face for line in result.stdout.splitlines() for face in json.loads(line)["faces"]]
    assert faces
    for face in faces:
        assert 0.5 <= face["probability"] <= 1.0, face  # was the raw logit, about 5.7
        assert face["label"] == "with_mask"


def test_outputs_that_do_not_sum_to_one_are_refused(models):
    from mask_detection.errors import ModelError
    from mask_detection.model import load_classifier

    with pytest.raises(ModelError) as err:
        load_classifier(models["sigmoid"])
    assert "does not output probabilities" in str(err.value) and "\n" not in str(err.value)
    result = run_script("detect_image.py", "--demo", "--model", models["sigmoid"], "--no-display", "--json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "do not sum to 1" in lines[0]


def test_tflite_logits_model_gets_a_softmax_too(models, tmp_path):
    """The same check for LiteRT: a logits model converted to TFLite."""
    from mask_detection._tf import keras
    from mask_detection.export import convert
    from mask_detection.model import load_classifier, probe_images, softmax

    model = keras().models.load_model(models["logits"], compile=False)
    path = tmp_path / "logits.tflite"
    path.write_bytes(convert(model, "none"))
    (tmp_path / "logits.json").write_text((models["folder"] / "logits.json").read_text())
    warnings = []
    classifier = load_classifier(path, threads=1, warn=warnings.append)
    assert classifier.backend == "litert" and len(warnings) == 1 and "outputs logits" in warnings[0]
    images = probe_images(224)
    np.testing.assert_allclose(classifier.predict(images), softmax(model(images, training=False).numpy()),
                               atol=1e-5)
