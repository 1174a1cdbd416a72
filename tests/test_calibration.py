"""Calibrated probabilities: the expected calibration error, the temperature fit, the temperature stored inside the
saved model (so Keras and TFLite apply it alike) and recorded in its metadata."""

import json

import numpy as np
import pytest
from test_training import make_arrays, save_custom_arrays

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy():
    from mask_detection.metrics import expected_calibration_error

    labels = np.array([0, 0, 1, 1])
    # Always 100% sure, right half of the time: a gap of 0.5.
    sure = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert expected_calibration_error(sure, labels) == pytest.approx(0.5)
    # 75% sure and right 3 times out of 4 (one bin): calibrated.
    fair = np.array([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.25]])
    assert expected_calibration_error(fair, labels) == pytest.approx(0.0)
    # Two bins: 0.95 right twice (gap 0.05), 0.6 wrong twice (gap 0.6): (2 * 0.05 + 2 * 0.6) / 4.
    mixed = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(mixed, labels) == pytest.approx(0.325)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, int)) == 0.0


def overconfident_logits(n=400, accuracy=0.75, margin=6.0, seed=0):
    """Logits that give the right class 75% of the time but say so with about 99.8% (margin 6)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    predicted = np.where(rng.random(n) < accuracy, labels, 1 - labels)
    logits = np.zeros((n, 2))
    logits[np.arange(n), predicted] = margin + rng.normal(0, 0.5, n)
    return logits, labels


def test_temperature_fit_softens_an_overconfident_model_and_sharpens_a_timid_one():
    from mask_detection.metrics import expected_calibration_error, fit_temperature, softmax_with_temperature

    logits, labels = overconfident_logits()
    t = fit_temperature(logits, labels)
    assert t > 1
    before = expected_calibration_error(softmax_with_temperature(logits, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(logits, t), labels)
    assert before > 0.2 and after < 0.05  # "75%" is now right about 75% of the time
    timid, timid_labels = overconfident_logits(accuracy=0.97, margin=0.5)
    assert fit_temperature(timid, timid_labels) < 1
    # Nothing wrong on validation: the likelihood has no minimum, so nothing is fitted.
    assert fit_temperature(logits[labels == logits.argmax(1)], labels[labels == logits.argmax(1)]) is None


def test_a_hand_made_overconfident_head_is_calibrated_with_a_temperature_above_1():
    """training.calibrate on a real Keras head whose weights were set by hand: the right class 80% of the time,
    with logits about 8 apart."""
    from mask_detection._tf import keras
    from mask_detection.training import HeadFit, calibrate

    k = keras()
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    shown = np.where(rng.random(300) < 0.8, labels, 1 - labels)
    features = np.eye(2, dtype=np.float32)[shown] + rng.normal(0, 0.05, (300, 2)).astype(np.float32)
    inputs = k.Input((2,))
    dense = k.layers.Dense(2, name="logits")
    logits = dense(inputs)
    dense.set_weights([np.array([[4.0, -4.0], [-4.0, 4.0]], np.float32), np.zeros(2, np.float32)])
    probabilities = k.layers.Softmax(name="predictions")(logits)
    head = HeadFit([dense], k.Model(inputs, probabilities), k.Model(inputs, logits), {}, 0.0)
    split = {"train": np.arange(0), "validation": np.arange(200), "test": np.arange(200, 300)}
    warnings = []
    calibration = calibrate(head, features, labels, split, warnings.append)
    assert calibration.fitted and not warnings
    assert calibration.temperature > 1
    assert calibration.ece_after < calibration.ece_before and calibration.nll_after < calibration.nll_before
    assert calibration.validation_images == 200


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A real tiny training whose validation split has mistakes to calibrate on (a fifth of the labels swapped),
    and its int8 export (what detection uses by default; test_export checks every quantization mode with a
    temperature inside the model)."""
    from mask_detection.export import export_models
    from mask_detection.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("calibrated")
    n = 40
    images = make_arrays(folder / "clean.npz", n_per_class=n)["images"]
    clean = np.arange(2 * n) // n
    labels = np.where(np.random.default_rng(1).random(2 * n) < 0.2, 1 - clean, clean)
    data = save_custom_arrays(folder / "arrays.npz", images, labels)
    out = folder / "m.keras"
    config = TrainConfig(
        data=str(data),
        backbone="efficientnet_lite0",
        epochs=40,
        augment_views=0,
        val_fraction=0.3,
        feature_engine="tensorflow",
        out=str(out),
        cache_dir=False,
    )
    meta = train(config).metadata
    exported = export_models(out, ["int8"], calibration_path=data)
    return {"meta": meta, "keras": out, "exports": exported, "images": images}


def test_training_fits_a_temperature_and_records_the_calibration_error(calibrated):
    meta = calibrated["meta"]
    calibration = meta["calibration"]
    assert calibration["fitted"] and calibration["temperature"] > 0 and calibration["temperature"] != 1.0
    assert calibration["validation_images"] == meta["split"]["sizes"]["validation"] == 24
    assert calibration["ece_bins"] == 15
    for key in ("ece_before", "ece_after", "test_ece_before", "test_ece_after"):
        assert 0 <= calibration[key] <= 1
    # Fitted on the validation split: its likelihood is the optimum's, and here its calibration error is lower too
    # (not guaranteed on 24 images: a 30-per-class run gave 0.075 -> 0.091).
    assert calibration["nll_after"] <= calibration["nll_before"]
    assert calibration["ece_after"] <= calibration["ece_before"]
    saved = json.loads(calibrated["keras"].with_suffix(".json").read_text())
    assert saved["calibration"] == calibration


def test_the_stored_temperature_is_applied_by_keras_and_by_tflite(calibrated):
    from mask_detection._tf import keras
    from mask_detection.classifier import load_classifier, softmax
    from mask_detection.model import model_temperature

    temperature = calibrated["meta"]["calibration"]["temperature"]
    keras_classifier = load_classifier(calibrated["keras"])
    model = keras_classifier.model
    assert model_temperature(model) == pytest.approx(temperature, rel=1e-6)

    # The saved model's output is softmax(logits / T): the temperature is applied inside it.
    images = calibrated["images"][::4]
    logits = keras().Model(model.input, model.get_layer("logits").output)(images, training=False).numpy()
    from_keras = keras_classifier.predict(images)
    np.testing.assert_allclose(from_keras, softmax(logits / temperature), atol=1e-5)
    assert np.abs(from_keras - softmax(logits)).max() > 0.01  # and it changes them

    # The int8 export carries the same temperature: the same classes, probabilities within int8's error (its
    # self-check bounds the classes; the backbone's quantisation, not the temperature, makes up to about 0.11
    # here, as much as a float32 export differs by 1e-6).
    exported = calibrated["exports"]["int8"]
    assert exported.path is not None, exported.refusal
    tflite_classifier = load_classifier(exported.path)
    assert tflite_classifier.backend == "litert"
    from_tflite = tflite_classifier.predict(images)
    assert (from_tflite.argmax(1) == from_keras.argmax(1)).all()
    assert np.abs(from_tflite - from_keras).max() < 0.15
    assert json.loads(exported.path.with_suffix(".json").read_text())["calibration"]["temperature"] == temperature
