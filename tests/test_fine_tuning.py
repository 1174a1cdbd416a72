"""Issue 18 step 2: classifiers at their backbone's native input size (the arrays' side), and partial fine-tuning
of an EfficientNet-Lite backbone's top on cached activations, on tiny generated data."""

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image
from test_training import TINY_RUN, make_arrays

from mask_detection.commands import loader
from mask_detection.commands import train as train_command
from mask_detection.errors import MaskDetectionError, ModelError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIDE = 64  # small pictures: every Lite backbone still leaves a 2x2 feature map
LITE0_IMAGENET = "efficientnet_lite0:efficientnet-lite0-57934424"


@pytest.fixture(scope="module")
def small_arrays(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / f"arrays{SIDE}.npz"
    return path, make_arrays(path, n_per_class=10, size=SIDE)


# ------------------------------------------------------------------ the arrays' side is the model's


def test_loader_writes_the_asked_input_size(tmp_path):
    for name, colour in (("with_mask", (20, 40, 200)), ("without_mask", (200, 40, 20))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (50 + 10 * i, 40), colour).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "a.npz"
    args = ["--dataset", str(tmp_path / "data"), "--out", str(out), "--no-face-crop", "--quiet"]
    assert loader.main([*args, "--input-size", "72"]) == 0
    with np.load(out) as arrays:
        assert arrays["images"].shape == (6, 72, 72, 3)
    with pytest.raises(SystemExit):
        loader.parse_args([*args, "--input-size", "16"])  # the backbones shrink pictures 32 times


def test_training_takes_the_side_of_its_arrays(small_arrays, tmp_path):
    from mask_detection.classifier import load_classifier

    data, arrays = small_arrays
    out = tmp_path / "m.keras"
    assert train_command.main(["--data", str(data), *TINY_RUN, "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["input_size"] == SIDE
    classifier = load_classifier(out)  # refuses a model whose input differs from its metadata's input_size
    assert classifier.input_size == SIDE
    assert classifier.predict(arrays["images"][:3]).shape == (3, 2)


# ------------------------------------------------------------------ where the backbone is cut


@pytest.fixture(scope="module")
def lite0_extractor():
    from mask_detection.model import build_feature_extractor

    return build_feature_extractor("efficientnet_lite0", None, SIDE)


@pytest.mark.parametrize(
    "blocks, cut, first_trainable",
    [(1, "blocks_15_bn2", "conv_head"), (2, "blocks_14_add", "blocks_15_expand_conv"), (3, "blocks_13_add", None)],
)
def test_cut_below_the_top_units(lite0_extractor, blocks, cut, first_trainable):
    from mask_detection.model import split_for_fine_tuning

    tuning = split_for_fine_tuning(lite0_extractor, blocks)
    assert tuning.cut == cut
    names = [layer.name for layer in tuning.trainable]
    assert names[-1] == "conv_head" and not any("bn" in name for name in names)  # BatchNorm stays frozen
    if first_trainable:
        assert names[0] == first_trainable
    images = np.random.default_rng(0).integers(0, 256, (3, SIDE, SIDE, 3), dtype=np.uint8)
    activations = tuning.lower(images).numpy().astype(np.float16)  # as the cache keeps them
    assert activations.shape[1:3] == (2, 2)
    expected = lite0_extractor(images).numpy()
    got = tuning.pooled(activations).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3 * max(1.0, float(np.abs(expected).max())))


def test_cuts_that_cannot_be_made(lite0_extractor):
    from mask_detection.model import build_feature_extractor, fine_tune_cut, split_for_fine_tuning

    with pytest.raises(ModelError, match="17 top units"):
        split_for_fine_tuning(lite0_extractor, 18)
    resnet = build_feature_extractor("resnet50", None, SIDE)
    with pytest.raises(ModelError, match="EfficientNet-Lite"):
        fine_tune_cut(resnet.get_layer("resnet50"), 1)


def test_resnet50_reference_recipe_is_never_fine_tuned(small_arrays, tmp_path, capsys):
    from mask_detection.training import TrainConfig

    data, _ = small_arrays
    with pytest.raises(SystemExit):
        train_command.parse_args(["--data", str(data), "--backbone", "resnet50", "--fine-tune-blocks", "1"])
    assert "resnet50 (the reference) stays frozen" in capsys.readouterr().err
    with pytest.raises(MaskDetectionError, match="stays frozen"):
        TrainConfig(data=str(data), backbone="resnet50", fine_tune_blocks=1).validate()
    assert train_command.parse_args(["--data", str(data)]).fine_tune_blocks == 0  # the reference recipe's default


# ------------------------------------------------------------------ the fine-tuning stage


def _head_on_frozen_top(extractor, blocks, arrays):
    """The cut, the cached-like activations, the split and a head trained on the frozen top's pooled features."""
    from mask_detection.model import split_for_fine_tuning
    from mask_detection.training import TrainConfig, fit_head, pooled_features, split_indices

    tuning = split_for_fine_tuning(extractor, blocks)
    labels = arrays["labels"].astype(np.int64)
    split = split_indices(labels, 42, 0.15, 0.15, 2)
    base = tuning.lower(arrays["images"]).numpy().astype(np.float16)
    aug = base[None, split["train"]]
    config = TrainConfig(epochs=2, fine_tune_epochs=2, fine_tune_learning_rate=1e-2, batch_size=4)
    head = fit_head(pooled_features(tuning.pooled, base), pooled_features(tuning.pooled, aug), labels, split, 2, config)
    return tuning, base, aug, labels, split, head, config


def _weights(layers):
    return [w.copy() for layer in layers for w in layer.get_weights()]


@pytest.mark.parametrize("head_best_val_loss, kept", [(np.inf, True), (-1.0, False)])
def test_fine_tuning_keeps_its_weights_only_when_they_beat_the_head(small_arrays, head_best_val_loss, kept):
    """A stage whose epochs beat the head's validation loss keeps the tuned top (and the saved model carries it);
    one that cannot puts back the weights from before, the top's and the head's."""
    from mask_detection.model import build_classifier, build_feature_extractor
    from mask_detection.training import fine_tune

    _, arrays = small_arrays
    # ImageNet weights: a random Lite0 saturates its ReLU6 layers, and no gradient reaches its top.
    extractor = build_feature_extractor("efficientnet_lite0", "imagenet", SIDE)
    tuning, base, aug, labels, split, head, config = _head_on_frozen_top(extractor, 2, arrays)
    head.history["val_loss"] = [head_best_val_loss] * len(head.history["val_loss"])
    top_before, head_before = _weights(tuning.trainable), _weights(head.layers)

    tuned = fine_tune(tuning, head, base, aug, labels, split, 2, config)

    top_after, head_after = _weights(tuning.trainable), _weights(head.layers)
    changed = [not np.array_equal(a, b) for a, b in zip(top_before, top_after, strict=True)]
    assert all(changed) if kept else not any(changed)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, head_after, strict=True)) == kept
    assert all(not layer.trainable for layer in tuning.trainable)  # frozen again for saving
    assert tuned.epochs_run == len(head.history["loss"]) + config.fine_tune_epochs
    # The whole model (image in) is the tuned one: it gives what the activations path gives.
    model = build_classifier(extractor, tuned.layers, 1e-3)
    images = arrays["images"][:4]
    expected = tuned.model(base[:4]).numpy()
    np.testing.assert_allclose(model(images).numpy(), expected, atol=2e-3)


def test_fine_tuned_training_caches_the_activations_under_its_cut(small_arrays, tmp_path):
    """The cut is part of the cache key (the frozen Lite0 keys stay as they were); a second run computes
    nothing; the saved model is frozen layer by layer and records the fine-tuning."""
    from mask_detection._tf import keras
    from mask_detection.training import TrainConfig, train

    data, arrays = small_arrays
    cache = tmp_path / "cache"

    def run(blocks, name):
        config = TrainConfig(
            data=str(data),
            backbone="efficientnet_lite0",
            epochs=2,
            augment_views=1,
            feature_engine="tensorflow",
            out=str(tmp_path / name),
            cache_dir=cache,
            fine_tune_blocks=blocks,
            fine_tune_epochs=2,
        )
        return train(config).metadata

    n = len(arrays["labels"])
    first = run(2, "ft.keras")
    assert first["features_from"] == {"cache": 0, "computed": 2 * n, "engine": "TensorFlow"}
    assert first["fine_tune"]["cut"] == "blocks_14_add" and first["fine_tune"]["epochs"]["run"] == 2
    assert first["timing_seconds"]["fine_tune"] > 0
    assert run(2, "ft2.keras")["features_from"] == {"cache": 2 * n, "computed": 0, "engine": None}
    frozen = run(0, "frozen.keras")
    assert frozen["features_from"]["cache"] == 0 and "fine_tune" not in frozen
    with sqlite3.connect(cache / "features.sqlite3") as db:
        keys = [key for (key,) in db.execute("SELECT key FROM entries")]
        sizes = {size for (size,) in db.execute("SELECT length(data) FROM blobs")}
    assert len(keys) == 4 * n
    assert sum(key.startswith(f"{LITE0_IMAGENET}@blocks_14_add/") for key in keys) == 2 * n
    assert sum(key.startswith(f"{LITE0_IMAGENET}/") for key in keys) == 2 * n  # the frozen keys, unchanged
    assert sizes == {2 * 2 * 2 * 192, 4 * 1280}  # float16 2x2x192 activations, float32 pooled features

    model = keras().saving.load_model(tmp_path / "ft.keras")
    backbone = model.get_layer("efficientnet_lite0")
    assert not backbone.trainable_weights and all(not layer.trainable for layer in backbone.layers if layer.weights)
