"""The classifier's architecture (frozen backbone + GAP/Dense head -> logits -> temperature -> softmax) and its
metadata file.

Saved form: ``<name>.keras`` (raw RGB uint8 input, probabilities out; preprocessing and the calibration
temperature are layers inside the model, so training, Keras and TFLite detection cannot drift apart) and
``<name>.json`` beside it (class names, backbone, input size, training and calibration figures). Models saved
before calibration have no temperature layer: their temperature is 1.
Loading a model for inference is ``classifier.load_classifier``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import INPUT_SIZE
from ._tf import keras
from .backbones import build_backbone, preprocess_layer
from .errors import ModelError

HIDDEN_UNITS = 128
DROPOUT = 0.5
TEMPERATURE_LAYER = "temperature"


def metadata_path(model_path: Path | str) -> Path:
    """The metadata JSON that sits beside a model file."""
    return Path(model_path).with_suffix(".json")


def build_head_layers(n_classes: int, hidden_units: int = HIDDEN_UNITS, dropout: float = DROPOUT) -> list:
    """The head after global average pooling: Dense(relu) -> Dropout -> Dense logits -> Softmax.

    The logits are a layer of their own so that calibration can fit a temperature on them and
    ``calibrated_layers`` can put it between them and the softmax.
    """
    layers = keras().layers
    return [
        layers.Dense(hidden_units, activation="relu", name="head_dense"),
        layers.Dropout(dropout, name="head_dropout"),
        layers.Dense(n_classes, name="logits"),
        layers.Softmax(name="predictions"),
    ]


def calibrated_layers(head_layers: list, temperature: float) -> list:
    """The head with softmax(logits / temperature): a Rescaling by 1/T before the softmax, a plain Keras layer
    (no custom object to register) that the TFLite converter turns into one multiplication."""
    scale = keras().layers.Rescaling(1.0 / temperature, name=TEMPERATURE_LAYER)
    return [*head_layers[:-1], scale, head_layers[-1]]


def model_temperature(model: Any) -> float:
    """The calibration temperature inside a Keras classifier; 1.0 for a model without one (saved before
    calibration, or by hand)."""
    try:
        layer = model.get_layer(TEMPERATURE_LAYER)
    except ValueError:
        return 1.0
    return 1.0 / float(layer.get_config()["scale"])


def apply_layers(x: Any, layers: list) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def build_feature_extractor(backbone_name: str, weights: Any = "imagenet", input_size: int = INPUT_SIZE) -> Any:
    """Raw RGB uint8 ``input_size`` x ``input_size`` images -> pooled backbone features (a keras.Model). Everything
    in it is frozen.

    The same layers (Preprocess, backbone, pooling) go into the saved classifier, so features computed here for
    training are exactly what the classifier computes at detection time.
    """
    k = keras()
    backbone = build_backbone(backbone_name, weights, input_size)
    backbone.trainable = False
    for layer in backbone.layers:  # each layer too, so the saved config says frozen layer by layer
        layer.trainable = False
    inputs = k.Input(shape=(input_size, input_size, 3), dtype="uint8", name="image")
    x = preprocess_layer(backbone_name)(inputs)
    # training=False keeps BatchNorm in inference mode even if the backbone is ever unfrozen.
    x = backbone(x, training=False)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    return k.Model(inputs, x, name=f"{backbone_name}_features")


def build_classifier(
    feature_extractor: Any, head_layers: list, learning_rate: float, temperature: float | None = None
) -> Any:
    """The full model: uint8 image -> frozen backbone -> GAP -> head, compiled with RMSprop.

    ``temperature``: the calibration temperature, a layer before the softmax (None: no such layer).
    """
    k = keras()
    inputs = feature_extractor.input
    if temperature is not None:
        head_layers = calibrated_layers(head_layers, temperature)
    outputs = apply_layers(feature_extractor.output, head_layers)
    model = k.Model(inputs, outputs, name="mask_classifier")
    compile_model(model, learning_rate)
    # Built now so that a reload with its optimizer finds the same variables (no Keras warning).
    model.optimizer.build(model.trainable_variables)
    return model


def compile_model(model: Any, learning_rate: float, steps_per_execution: int = 1) -> None:
    model.compile(
        optimizer=keras().optimizers.RMSprop(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def read_metadata(model_path: Path | str) -> dict:
    """The metadata dict beside a model; ModelError when it is missing, not JSON or has no class names."""
    path = metadata_path(model_path)
    if not path.is_file():
        raise ModelError(f"model metadata {path} is missing (it is written beside the model by train_model.py)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model metadata {path} is not valid JSON: {exc}") from None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ModelError(f"model metadata {path} has no valid 'class_names' list")
    return meta


def metadata_input_size(metadata: dict) -> int:
    """The classifier's input side from its metadata (INPUT_SIZE when not given); ModelError when invalid."""
    try:
        size = int(metadata.get("input_size", INPUT_SIZE))
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise ModelError(f"model metadata has an invalid input_size {metadata.get('input_size')!r}")
    return size


# ----------------------------------------------------------------------------------------------
# Partial fine-tuning: the backbone cut below its top blocks
# ----------------------------------------------------------------------------------------------


@dataclass
class FineTuneSplit:
    """A feature extractor cut in two for fine-tuning its top: ``lower`` (uint8 image -> the activations at the
    cut; frozen, its outputs cached) and ``pooled`` (those activations -> the pooled features, through the top
    blocks). Both use the extractor's own layers, so weights tuned through ``pooled`` are the saved model's."""

    lower: Any
    pooled: Any
    cut: str  # the layer whose output is the cut, part of the feature cache key
    trainable: list  # the top's layers that train (convolutions; BatchNorm stays frozen, in inference mode)

    def set_trainable(self, on: bool) -> None:
        for layer in self.trainable:
            layer.trainable = on


def fine_tune_cut(backbone: Any, blocks: int) -> str:
    """The layer of an EfficientNet-Lite backbone whose output feeds its top ``blocks`` units: 1 is the 1x1 head
    convolution (conv_head, its BatchNorm and ReLU6), 2 adds the last MBConv block, 3 the one before, ...

    ModelError when the backbone has fewer blocks or is not a Lite one.
    """
    names = {layer.name for layer in backbone.layers}
    last = max(
        (int(n.split("_")[1]) for n in names if n.startswith("blocks_") and n.endswith("_project_conv")), default=-1
    )
    if last < 0 or "conv_head" not in names:
        raise ModelError(f"fine-tuning needs an EfficientNet-Lite backbone, not {backbone.name}")
    block = last - (blocks - 1)  # the block whose output is the cut
    if blocks < 1 or block < 0:
        raise ModelError(
            f"the backbone has {last + 2} top units to fine-tune (head conv and {last + 1} blocks), not {blocks}"
        )
    return f"blocks_{block}_add" if f"blocks_{block}_add" in names else f"blocks_{block}_bn2"


def split_for_fine_tuning(extractor: Any, blocks: int) -> FineTuneSplit:
    """Cut ``build_feature_extractor``'s model below its top ``blocks`` (see fine_tune_cut)."""
    k = keras()
    backbone = next(layer for layer in extractor.layers if isinstance(layer, k.Model))
    preprocess = extractor.layers[1]  # image -> Preprocess -> backbone -> pool
    pool = extractor.get_layer("pool")
    cut = fine_tune_cut(backbone, blocks)
    at_cut = backbone.get_layer(cut).output
    lower_backbone = k.Model(backbone.input, at_cut, name=f"{backbone.name}_below_{cut}")
    image = k.Input(shape=extractor.input_shape[1:], dtype="uint8", name="image")
    lower = k.Model(image, lower_backbone(preprocess(image), training=False), name="below_cut")
    top = k.Model(at_cut, backbone.output, name=f"{backbone.name}_top")
    # Activations come in as the cache keeps them (float16) and are computed on in float32.
    activations = k.Input(shape=tuple(at_cut.shape[1:]), dtype="float16", name="activations")
    x = k.layers.Activation("linear", dtype="float32", name="to_float32")(activations)
    pooled = k.Model(activations, pool(top(x, training=False)), name="top_pooled")
    trainable = [layer for layer in top.layers if layer.weights and not isinstance(layer, k.layers.BatchNormalization)]
    return FineTuneSplit(lower, pooled, cut, trainable)
