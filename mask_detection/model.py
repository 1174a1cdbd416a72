"""The classifier: frozen backbone + GAP/Dense/softmax head, its saved form and loading it for inference.

Saved form: ``<name>.keras`` (raw RGB uint8 input; preprocessing is a layer inside the model, so training and
detection cannot drift apart) and ``<name>.json`` beside it (class names, backbone, input size, training figures).
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from . import INPUT_SIZE
from .errors import ModelError
from .fileio import display_path

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


def softmax(logits):
    """Row-wise softmax, computed stably in float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def image_batch(batch):
    """A uint8 (N, H, W, 3) array from one image or a batch of them."""
    batch = np.asarray(batch, dtype=np.uint8)
    return batch[None] if batch.ndim == 3 else batch


class KerasClassifier:
    """A saved ``.keras`` classifier behind one compiled call: uint8 RGB batch in, class probabilities out."""

    backend = "keras"
    softmax_outputs = False  # set by check_outputs for a model that outputs logits

    def __init__(self, model, metadata):
        from ._tf import tf

        t = tf()
        self.model = model
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.input_size = metadata_input_size(metadata)
        # (height, width, channels) the model was built for; None entries accept any size.
        shapes = [tuple(getattr(x, "shape", ()))[1:] for x in getattr(model, "inputs", None) or []]
        self.input_shape = shapes[0] if len(shapes) == 1 else None
        self.input_count = len(shapes)
        # One trace for every batch size; model.predict per frame is several times slower.
        spec = t.TensorSpec([None, self.input_size, self.input_size, 3], t.uint8)
        self._call = t.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict(self, batch):
        batch = image_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        out = self._call(batch).numpy().astype(np.float32, copy=False)
        return softmax(out) if self.softmax_outputs else out


def metadata_input_size(metadata):
    try:
        size = int(metadata.get("input_size", INPUT_SIZE))
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise ModelError(f"model metadata has an invalid input_size {metadata.get('input_size')!r}")
    return size


def load_keras_model(path):
    """Load a saved classifier ``.keras`` file (with our custom layers registered)."""
    from ._tf import keras, silence_stderr
    from .backbones import custom_objects

    k = keras()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {display_path(path)} does not exist")
    try:
        with silence_stderr():
            return k.models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:  # Keras raises many types for corrupt or foreign files
        # Keras says "File not found ... accessible .keras zip file" for a truncated file: say what it is.
        reason = damaged_keras_reason(path)
        if reason is None:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model {display_path(path)}: {reason}") from None


def damaged_keras_reason(path):
    """Why ``path`` is not a readable .keras archive (a zip holding config.json), or None if it looks like one."""
    damaged = "the file is damaged or not a .keras model"
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                head = f.read(4)
            kind = "empty file" if not head else "truncated zip" if head == b"PK\x03\x04" else "not a zip archive"
            return f"{damaged} ({kind})"
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return f"{damaged} (a zip archive without config.json)"
            bad = archive.testzip()
            if bad is not None:
                return f"{damaged} (corrupt entry {bad})"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as exc:
        return f"{damaged} ({str(exc).strip()[:100] or type(exc).__name__})"
    return None


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


def load_classifier(path=None, threads=None, warn=None):
    """Load a classifier for inference, by file type; raises ModelError with a clear message.

    ``threads``: CPU threads of the LiteRT interpreter for ``.tflite`` models (default: the number of cores).
    Keras models ignore it: TensorFlow's thread pools can only be set before TensorFlow starts
    (``mask_detection.pipeline.configure_threads``).
    ``warn(message)``: told about problems that loading works around (a model that outputs logits); the library
    prints nothing itself.
    """
    if path is None:
        if warn is None:
            from .cli import warn
        path = default_model_path(warn)
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {display_path(path)} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        metadata = read_metadata(path)
        model = load_keras_model(path)
        classifier = KerasClassifier(model, metadata)
    elif suffix == ".tflite":
        from .litert import LiteRTClassifier

        classifier = LiteRTClassifier(path, read_metadata(path), threads=threads)
    else:
        raise ModelError(f"unsupported model file {display_path(path)}: expected a .keras or .tflite file")
    check_output_width(classifier, path, warn=warn)
    classifier.path = path
    return classifier


def probe_images(size):
    """A few distinct synthetic images (black, white, saturated red, blue, noise) to see what a model outputs."""
    rng = np.random.default_rng(0)
    images = np.zeros((5, size, size, 3), np.uint8)
    images[1] = 255
    images[2, ..., 0] = 255
    images[3, ..., 2] = 255
    images[4] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return images


def check_input_shape(classifier, path):
    """A Keras model built for another image size than its metadata's input_size is refused: Keras would still
    run it (global pooling accepts any size) on images resized for another network, and answer nonsense."""
    shown = display_path(path)
    count = getattr(classifier, "input_count", 1)
    if count != 1:
        raise ModelError(f"model {shown} has {count} inputs; expected one RGB image input")
    shape = getattr(classifier, "input_shape", None)
    if shape is None:
        return
    expected = (classifier.input_size, classifier.input_size, 3)
    if len(shape) != 3 or any(have is not None and have != want for have, want in zip(shape, expected)):
        shown_shape = "x".join("any" if s is None else str(s) for s in shape)
        raise ModelError(f"model {shown} takes {shown_shape} input, but its metadata says input_size "
                         f"{classifier.input_size} ({classifier.input_size}x{classifier.input_size}x3 RGB images)")


def check_output_width(classifier, path, warn=None):
    """What the model outputs must be what detection reads: one probability per class name in its metadata.

    Run on a few probe images: non-finite outputs are refused; outputs outside [0, 1] are logits (a model saved
    without its softmax), so softmax is applied from then on and ``warn`` is told; outputs in [0, 1] whose
    rows do not sum to 1 (e.g. sigmoid outputs) are refused.
    """
    shown = display_path(path)
    check_input_shape(classifier, path)
    probe = probe_images(classifier.input_size)
    try:
        out = np.asarray(classifier.predict(probe), np.float64)
    except Exception as exc:  # a foreign model can fail in many ways
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        raise ModelError(f"model {shown} cannot classify a {classifier.input_size}x{classifier.input_size} "
                         f"RGB image: {reason}") from None
    width = out.shape[-1] if out.ndim == 2 else 0
    if out.ndim != 2 or len(out) != len(probe):
        raise ModelError(f"model {shown} outputs shape {out.shape[1:]} per image; expected one probability per "
                         f"class ({len(classifier.class_names)})")
    if width != len(classifier.class_names):
        raise ModelError(f"model {shown} outputs {width} classes but its metadata names "
                         f"{len(classifier.class_names)} ({', '.join(classifier.class_names)})")
    if not np.isfinite(out).all():
        raise ModelError(f"model {shown} outputs non-finite values (nan or inf): it is damaged or untrained")
    tolerance = 0.02  # an int8 export's probabilities are quantised in steps of 1/256
    if out.min() < -tolerance or out.max() > 1 + tolerance:
        classifier.softmax_outputs = True
        if warn is not None:
            warn(f"model {shown} outputs logits (values from {out.min():.3g} to {out.max():.3g}), not "
                 "probabilities: applying softmax to them")
    elif np.abs(out.sum(axis=1) - 1).max() > tolerance:
        raise ModelError(f"model {shown} does not output probabilities: its outputs lie in 0..1 but do not sum to "
                         f"1 per image (sums {out.sum(axis=1).min():.3g} to {out.sum(axis=1).max():.3g}; sigmoid "
                         "outputs?); detection needs a softmax over the classes")
