"""Classifiers for inference: the Keras one, the choice of the default model, and ``load_classifier``, the factory
that picks Keras or LiteRT by file type and checks what the model computes before detection relies on it.

Both implementations (``KerasClassifier`` here, ``litert.LiteRTClassifier``) follow ``interfaces.Classifier``.
"""

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._tf import keras, silence_stderr, tf
from .backbones import custom_objects
from .crop import metadata_crop
from .errors import ModelError, exception_line
from .fileio import display_path, sha256_file
from .interfaces import Classifier
from .litert import LiteRTClassifier, not_a_tflite_model, tflite_problem
from .model import metadata_input_size, metadata_path, read_metadata
from .paths import classifier_folders, fast_export_in, keras_model_in

Warn = Callable[[str], None]
PROBABILITY_TOLERANCE = 0.02  # an int8 export's probabilities are quantised in steps of 1/256


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64, returned as float32."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class KerasClassifier:
    """A saved ``.keras`` classifier behind one compiled call: uint8 RGB batch in, model outputs out.

    A model built for another image size than its metadata's input_size is refused: Keras would still run it
    (global pooling accepts any size) on images resized for another network, and answer nonsense.
    """

    backend = "keras"

    def __init__(self, model: Any, metadata: dict, path: Path | None = None):
        t = tf()
        self.model = model
        self.metadata = metadata
        self.path = Path(path) if path is not None else None
        self.class_names = list(metadata["class_names"])
        self.input_size = metadata_input_size(metadata)
        self.crop = metadata_crop(metadata)
        self._check_input_shape()
        # One trace for every batch size; model.predict per frame is several times slower.
        spec = t.TensorSpec([None, self.input_size, self.input_size, 3], t.uint8)
        self._call = t.function(lambda x: model(x, training=False), input_signature=[spec])

    def _check_input_shape(self) -> None:
        shown = display_path(self.path) if self.path is not None else "in memory"
        # (height, width, channels) the model was built for; None entries accept any size.
        shapes = [tuple(getattr(x, "shape", ()))[1:] for x in getattr(self.model, "inputs", None) or []]
        if len(shapes) != 1:
            raise ModelError(f"model {shown} has {len(shapes)} inputs; expected one RGB image input")
        (shape,) = shapes
        size = self.input_size
        expected = (size, size, 3)
        if len(shape) != 3 or any(
            have is not None and have != want for have, want in zip(shape, expected, strict=True)
        ):
            shown_shape = "x".join("any" if s is None else str(s) for s in shape)
            raise ModelError(
                f"model {shown} takes {shown_shape} input, but its metadata says input_size "
                f"{size} ({size}x{size}x3 RGB images)"
            )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.uint8)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self._call(batch).numpy().astype(np.float32, copy=False)


class SoftmaxOverLogits:
    """A classifier whose model outputs logits (saved without its softmax), with the softmax applied."""

    def __init__(self, inner: Classifier):
        self.inner = inner
        self.class_names = inner.class_names
        self.input_size = inner.input_size
        self.crop = inner.crop
        self.path = inner.path

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return softmax(self.inner.predict(batch))


def load_keras_model(path: Path | str) -> Any:
    """Load a saved classifier ``.keras`` file (with our custom layers registered)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {display_path(path)} does not exist")
    try:
        with silence_stderr():
            return keras().models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:  # Keras raises many types for corrupt or foreign files
        # Keras says "File not found ... accessible .keras zip file" for a truncated file: say what it is.
        reason = damaged_keras_reason(path) or exception_line(exc)
        raise ModelError(f"cannot load model {display_path(path)}: {reason}") from None


def damaged_keras_reason(path: Path) -> str | None:
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


def export_is_fresh(fast_path: Path, keras_path: Path) -> bool:
    """Whether the export's metadata says it was made from the ``.keras`` file now beside it (same sha256)."""
    try:
        exported_from = json.loads(metadata_path(fast_path).read_text(encoding="utf-8"))["exported_from"]
        return keras_path.is_file() and exported_from["sha256"] == sha256_file(keras_path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def default_model_path(warn: Warn | None = None) -> Path:
    """The classifier detection uses when none is named.

    The first of ``paths.classifier_folders()`` that holds one: ``models/`` in the working directory (where
    training writes), then the shipped model. In it, the int8 export (it agrees with the .keras model on 99.8% of
    the test split, classifies a face about 3x faster and starts without TensorFlow), but only while it was made
    from the ``.keras`` model beside it: after a user retrains that file, a stale export must not silently keep
    answering in its place (``warn`` is told, and the ``.keras`` model used).
    """
    for folder in classifier_folders():
        keras_path, fast_path = keras_model_in(folder), fast_export_in(folder)
        if keras_path.is_file() or fast_path.is_file():
            break
    if not fast_path.is_file():
        return keras_path
    if not keras_path.is_file() or export_is_fresh(fast_path, keras_path):
        return fast_path
    if warn is not None:
        warn(
            f"{display_path(fast_path)} was not exported from the current {display_path(keras_path)}: using the "
            f"slower .keras model (export it again with int8 quantization for the fast one)"
        )
    return keras_path


def load_classifier(path: Path | str | None = None, threads: int | None = None, warn: Warn | None = None) -> Classifier:
    """Load a classifier for inference, by file type (``.keras`` or ``.tflite``); ModelError with a clear message.

    ``path``: None for ``default_model_path()``. ``threads``: CPU threads of the LiteRT interpreter for
    ``.tflite`` models (default: the number of cores); Keras models ignore it (TensorFlow's thread pools can only
    be set before TensorFlow starts). ``warn(message)``: told about problems that loading works around (a stale
    export, a model that outputs logits); None: no warning.
    """
    path = default_model_path(warn) if path is None else Path(path)
    if not path.exists():
        raise ModelError(f"model file {display_path(path)} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        metadata = read_metadata(path)
        classifier: Classifier = KerasClassifier(load_keras_model(path), metadata, path)
    elif suffix == ".tflite":
        metadata = read_tflite_metadata(path)
        classifier = LiteRTClassifier(path, metadata, metadata_input_size(metadata), threads=threads)
    else:
        raise ModelError(f"unsupported model file {display_path(path)}: expected a .keras or .tflite file")
    return check_outputs(classifier, path, warn=warn)


def read_tflite_metadata(path: Path) -> dict:
    """The metadata beside a ``.tflite`` export. Without it, the message says which file is at fault: a damaged
    model, or a model whose JSON was not copied with it (export_model.py writes both; training writes none)."""
    meta = metadata_path(path)
    if not meta.is_file():
        shown = display_path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model {shown}: {exc.strerror or exc}") from None
        problem = tflite_problem(content)
        if problem is not None:
            raise not_a_tflite_model(shown, problem)
        raise ModelError(
            f"model {shown} has no metadata file {display_path(meta.name)} beside it (export_model.py writes "
            "both: copy the .json with the .tflite)"
        )
    return read_metadata(path)


def probe_images(size: int) -> np.ndarray:
    """A few distinct synthetic images (black, white, saturated red, blue, noise) to see what a model outputs."""
    rng = np.random.default_rng(0)
    images = np.zeros((5, size, size, 3), np.uint8)
    images[1] = 255
    images[2, ..., 0] = 255
    images[3, ..., 2] = 255
    images[4] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return images


def check_outputs(classifier: Classifier, path: Path, warn: Warn | None = None) -> Classifier:
    """The classifier to use, once what it outputs is what detection reads: one probability per class name.

    Run on a few probe images: non-finite outputs are refused; outputs outside [0, 1] are logits (a model saved
    without its softmax): the classifier comes back with a softmax applied and ``warn`` is told; outputs in
    [0, 1] whose rows do not sum to 1 (e.g. sigmoid outputs) are refused.
    """
    shown = display_path(path)
    size = classifier.input_size
    probe = probe_images(size)
    try:
        out = np.asarray(classifier.predict(probe), np.float64)
    except Exception as exc:  # a foreign model can fail in many ways
        raise ModelError(f"model {shown} cannot classify a {size}x{size} RGB image: {exception_line(exc)}") from None
    names = classifier.class_names
    if out.ndim != 2 or len(out) != len(probe):
        raise ModelError(
            f"model {shown} outputs shape {out.shape[1:]} per image; expected one probability per class ({len(names)})"
        )
    if out.shape[1] != len(names):
        raise ModelError(
            f"model {shown} outputs {out.shape[1]} classes but its metadata names {len(names)} ({', '.join(names)})"
        )
    if not np.isfinite(out).all():
        raise ModelError(f"model {shown} outputs non-finite values (nan or inf): it is damaged or untrained")
    if out.min() < -PROBABILITY_TOLERANCE or out.max() > 1 + PROBABILITY_TOLERANCE:
        if warn is not None:
            warn(
                f"model {shown} outputs logits (values from {out.min():.3g} to {out.max():.3g}), not "
                "probabilities: applying softmax to them"
            )
        return SoftmaxOverLogits(classifier)
    sums = out.sum(axis=1)
    if np.abs(sums - 1).max() > PROBABILITY_TOLERANCE:
        raise ModelError(
            f"model {shown} does not output probabilities: its outputs lie in 0..1 but do not sum to "
            f"1 per image (sums {sums.min():.3g} to {sums.max():.3g}; sigmoid outputs?); detection "
            "needs a softmax over the classes"
        )
    return classifier
