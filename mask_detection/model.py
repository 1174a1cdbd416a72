"""The classifier: frozen backbone + GAP/Dense/softmax head, its saved form and loading it for inference.

Saved form: ``<name>.keras`` (raw RGB uint8 input; preprocessing is a layer inside the model, so training and
detection cannot drift apart) and ``<name>.json`` beside it (class names, backbone, input size, training figures).
"""

import json
from pathlib import Path

import numpy as np

from . import INPUT_SIZE
from .errors import ModelError

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED_KERAS_PATH = MODELS_DIR / "mask_detector.keras"
# Detection runs the int8 TFLite export of the shipped model by default: it agrees with the .keras model on
# 99.8% of the test split, classifies a face about 3x faster and starts without TensorFlow (about 1 s, not 12).
FAST_EXPORT_PATH = MODELS_DIR / "mask_detector.int8.tflite"
HIDDEN_UNITS = 128
DROPOUT = 0.5


def metadata_path(model_path):
    """The metadata JSON that sits beside a model file."""
    return Path(model_path).with_suffix(".json")


def build_head_layers(n_classes, hidden_units=HIDDEN_UNITS, dropout=DROPOUT):
    """The trainable head after global average pooling: Dense(relu) -> Dropout -> Dense(softmax)."""
    from ._tf import keras

    layers = keras().layers
    return [
        layers.Dense(hidden_units, activation="relu", name="head_dense"),
        layers.Dropout(dropout, name="head_dropout"),
        layers.Dense(n_classes, activation="softmax", name="predictions"),
    ]


def apply_layers(x, layers):
    for layer in layers:
        x = layer(x)
    return x


def build_feature_extractor(backbone_name, weights="imagenet"):
    """Raw RGB uint8 images -> pooled backbone features. Everything in it is frozen.

    The same layers (Preprocess, backbone, pooling) go into the saved classifier, so features computed here for
    training are exactly what the classifier computes at detection time.
    """
    from ._tf import keras
    from .backbones import build_backbone, preprocess_layer

    k = keras()
    backbone = build_backbone(backbone_name, weights)
    backbone.trainable = False
    for layer in backbone.layers:  # each layer too, so the saved config says frozen layer by layer
        layer.trainable = False
    inputs = k.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), dtype="uint8", name="image")
    x = preprocess_layer(backbone_name)(inputs)
    # training=False keeps BatchNorm in inference mode even if the backbone is ever unfrozen.
    x = backbone(x, training=False)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    return k.Model(inputs, x, name=f"{backbone_name}_features")


def build_classifier(feature_extractor, head_layers, learning_rate):
    """The full model: uint8 image -> frozen backbone -> GAP -> head, compiled with RMSprop."""
    from ._tf import keras

    k = keras()
    inputs = feature_extractor.input
    outputs = apply_layers(feature_extractor.output, head_layers)
    model = k.Model(inputs, outputs, name="mask_classifier")
    compile_model(model, learning_rate)
    # Built now so that a reload with its optimizer finds the same variables (no Keras warning).
    model.optimizer.build(model.trainable_variables)
    return model


def compile_model(model, learning_rate, steps_per_execution=1):
    from ._tf import keras

    k = keras()
    model.compile(
        optimizer=k.optimizers.RMSprop(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def read_metadata(model_path):
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


def image_batch(batch):
    """A uint8 (N, H, W, 3) array from one image or a batch of them."""
    batch = np.asarray(batch, dtype=np.uint8)
    return batch[None] if batch.ndim == 3 else batch


class KerasClassifier:
    """A saved ``.keras`` classifier behind one compiled call: uint8 RGB batch in, class probabilities out."""

    backend = "keras"

    def __init__(self, model, metadata):
        from ._tf import tf

        t = tf()
        self.model = model
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.input_size = int(metadata.get("input_size", INPUT_SIZE))
        # One trace for every batch size; model.predict per frame is several times slower.
        spec = t.TensorSpec([None, self.input_size, self.input_size, 3], t.uint8)
        self._call = t.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict(self, batch):
        batch = image_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self._call(batch).numpy().astype(np.float32, copy=False)


def load_keras_model(path):
    """Load a saved classifier ``.keras`` file (with our custom layers registered)."""
    from ._tf import keras, silence_stderr
    from .backbones import custom_objects

    k = keras()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        with silence_stderr():
            return k.models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:  # Keras raises many types for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model {path}: {reason[:200]}") from None


def file_sha256(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_model_path(warn=None):
    """The classifier detection uses when none is named.

    The int8 export, but only while it was made from the current ``models/mask_detector.keras``: after a user
    retrains that file, a stale export must not silently keep answering in its place.
    """
    if not FAST_EXPORT_PATH.is_file():
        return SHIPPED_KERAS_PATH
    try:
        exported_from = json.loads(metadata_path(FAST_EXPORT_PATH).read_text(encoding="utf-8"))["exported_from"]
        fresh = SHIPPED_KERAS_PATH.is_file() and exported_from["sha256"] == file_sha256(SHIPPED_KERAS_PATH)
    except (OSError, ValueError, KeyError, TypeError):
        fresh = False
    if fresh or not SHIPPED_KERAS_PATH.is_file():
        return FAST_EXPORT_PATH
    if warn is not None:
        warn(f"{FAST_EXPORT_PATH.name} was not exported from the current {SHIPPED_KERAS_PATH.name}: using the "
             f"slower .keras model (python export_model.py --quantize int8 makes a new export)")
    return SHIPPED_KERAS_PATH


def load_classifier(path=None, threads=None):
    """Load a classifier for inference, by file type; raises ModelError with a clear message.

    ``threads``: CPU threads of the LiteRT interpreter for ``.tflite`` models (default: the number of cores).
    Keras models ignore it: TensorFlow's thread pools can only be set before TensorFlow starts
    (``mask_detection.pipeline.configure_threads``).
    """
    if path is None:
        from .cli import warn

        path = default_model_path(warn)
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        metadata = read_metadata(path)
        model = load_keras_model(path)
        classifier = KerasClassifier(model, metadata)
    elif suffix == ".tflite":
        from .litert import LiteRTClassifier

        classifier = LiteRTClassifier(path, read_metadata(path), threads=threads)
    else:
        raise ModelError(f"unsupported model file {path}: expected a .keras or .tflite file")
    check_output_width(classifier, path)
    classifier.path = path
    return classifier


def check_output_width(classifier, path):
    """The model's output must have one column per class name in its metadata."""
    probe = np.zeros((1, classifier.input_size, classifier.input_size, 3), np.uint8)
    try:
        width = classifier.predict(probe).shape[-1]
    except Exception as exc:
        raise ModelError(f"model {path} cannot classify a {classifier.input_size}x{classifier.input_size} "
                         f"RGB image: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc!r}") from None
    if width != len(classifier.class_names):
        raise ModelError(f"model {path} outputs {width} classes but its metadata names "
                         f"{len(classifier.class_names)} ({', '.join(classifier.class_names)})")
