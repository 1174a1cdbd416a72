"""Export a trained ``.keras`` classifier to TFLite (float32, float16, dynamic-range int8, full int8).

Every export checks itself before it is written: the exported model must agree with the Keras model on at least
99.5% of the held-out test images (from the model's ``<stem>_split.json``) and lose at most 0.3 points of
accuracy. A refused export leaves no file behind.
"""

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import INPUT_SIZE
from ._tf import silence_output, tf
from .arrays import DEFAULT_ARRAYS, load_arrays
from .classifier import KerasClassifier, check_outputs, load_keras_model
from .errors import DatasetError, ModelError, OutputError
from .fileio import (
    atomic_paths,
    check_writable,
    display_path,
    refuse_overwriting_inputs,
    safe_text,
    same_file,
    sha256_file,
)
from .images import to_model_input
from .interfaces import Classifier
from .litert import LiteRTClassifier
from .model import metadata_input_size, metadata_path, read_metadata
from .paths import SHIPPED_DIR, USER_MODELS_DIR, keras_model_in

Log = Callable[[str], None]
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
DESCRIPTIONS = {
    "none": "float32",
    "float16": "float16 weights",
    "dynamic": "dynamic-range int8 weights",
    "int8": "full-integer int8",
}
MIN_AGREEMENT = 0.995
MAX_ACCURACY_LOSS = 0.003  # 0.3 percentage points
# int8 activation ranges come from this many training images (not test ones). 300 was enough for the close-ups
# of the reference set; with real scene crops in training, 300 left 0.7% of test answers changed by quantization
# (1,000: 0.4%), and the export refused.
CALIBRATION_IMAGES = 1000
GENERATED_CHECK_IMAGES = 48
CHECK_BATCH = 32


def default_model_path() -> Path:
    """The model exported when none is named: yours in ``models/`` when there is one, else the shipped one."""
    yours = keras_model_in(USER_MODELS_DIR)
    return yours if yours.is_file() else keras_model_in(SHIPPED_DIR)


def default_calibration_path(model_path: Path | str) -> Path | None:
    """The first of ``calibration_candidates(model_path)`` that is a file, else None."""
    return next((c for c in calibration_candidates(model_path) if _is_file(c)), None)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system: not a file to use
        return False


def calibration_candidates(model_path: Path | str) -> list[Path]:
    """Where the arrays to check (and int8-calibrate) an export on are looked for, in order: the arrays file the
    model was trained on (its metadata's ``data.file``) as named, and when that name is relative, also from the
    folder above the model's (training writes ``models/`` in the folder it runs in, the one the name is relative
    to); then the loader's default arrays file."""
    model_path = Path(model_path)
    candidates = []
    trained_on = _trained_on(model_path)
    if trained_on is not None:
        candidates.append(trained_on)
        if not trained_on.is_absolute():
            candidates.append(Path(os.path.realpath(model_path)).parent.parent / trained_on)
    candidates.append(DEFAULT_ARRAYS)
    return list(dict.fromkeys(candidates))


def _trained_on(model_path: Path) -> Path | None:
    """The arrays file named in the model's metadata, or None."""
    name = _data_record(model_path).get("file")
    # The metadata is only a hint: a value that is not a file name is ignored, never a crash.
    return Path(name) if isinstance(name, str) and name and "\0" not in name else None


def _data_record(model_path: Path) -> dict:
    """The metadata's ``data`` record (the arrays trained on), {} when there is none."""
    try:
        data = json.loads(metadata_path(model_path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def missing_calibration_message(model_path: Path | str) -> str:
    """Why an int8 export of ``model_path`` has no calibration images, and the two ways to give it some."""
    model_path = Path(model_path)
    trained_on = _trained_on(model_path)
    if trained_on is not None:
        made_by = _data_record(model_path).get("made_by")
        how = f"; made by: {safe_text(made_by[:200])}" if isinstance(made_by, str) and made_by.strip() else ""
        looked = f"{display_path(model_path)} was trained on {display_path(trained_on)} (not found{how})"
        if not same_file(trained_on, DEFAULT_ARRAYS):
            looked += f" and there is no {DEFAULT_ARRAYS}"
    else:
        looked = f"the metadata of {display_path(model_path)} names no arrays file and there is no {DEFAULT_ARRAYS}"
    return (
        f"full-integer int8 export calibrates on training pictures, and none were found: {looked}; make the arrays "
        "with loader.py, or name an arrays file with --calibration ARRAYS.npz"
    )


def default_output_path(model_path: Path | str, quantize: str) -> Path:
    """``models/mask_detector.keras`` -> ``models/mask_detector.dynamic.tflite`` (``.float32`` for none)."""
    name = "float32" if quantize == "none" else quantize
    return Path(model_path).with_suffix(f".{name}.tflite")


def split_record_path(model_path: Path | str) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + "_split.json")


@dataclass
class CheckData:
    images: np.ndarray  # uint8 (N, S, S, 3): what the exported model is checked on
    labels: np.ndarray | None  # int array (N,), or None for generated images (agreement only)
    description: str
    calibration: np.ndarray | None  # uint8 images for int8 calibration, or None


@dataclass
class ExportResult:
    """One export: its file, or why it was refused (then nothing was written)."""

    quantization: str
    path: Path | None = None  # None: refused
    figures: dict | None = None  # the self-check's agreement figures
    refusal: str | None = None


def generated_images(n: int = GENERATED_CHECK_IMAGES, size: int = INPUT_SIZE, seed: int = 0) -> np.ndarray:
    """Deterministic check images when no arrays file is at hand: scikit-image's photos and smooth colour fields."""
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB),
    ]
    images = [to_model_input(p, size) for p in photos]
    images += [to_model_input(p[:, ::-1], size) for p in photos]
    rng = np.random.default_rng(seed)
    while len(images) < n:
        cells = int(rng.integers(2, 12))
        field = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        images.append(cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC))
    return np.stack(images[:n])


def load_check_data(
    model_path: Path | str,
    calibration_path: Path | str | None,
    class_names: list[str],
    input_size: int,
    need_calibration: bool,
) -> CheckData:
    """The images the export is checked (and int8-calibrated) on, and a sentence saying which they are."""
    if calibration_path is None:
        if need_calibration:
            raise ModelError(missing_calibration_message(model_path))
        images = generated_images(size=input_size)
        return CheckData(
            images,
            None,
            f"{len(images)} generated images (no calibration arrays: agreement only, no accuracy check)",
            None,
        )
    arrays = load_arrays(calibration_path)
    names = [str(c) for c in arrays["class_names"]]
    if names != list(class_names):
        raise DatasetError(
            f"calibration arrays {calibration_path} have classes {', '.join(names)} but the model "
            f"has {', '.join(class_names)}"
        )
    if arrays["images"].shape[1] != input_size:
        raise DatasetError(
            f"calibration arrays {calibration_path} hold {arrays['images'].shape[1]}px images, the "
            f"model takes {input_size}px"
        )
    n = len(arrays["hashes"])
    split_file = split_record_path(model_path)
    test_idx, pool_idx, reason = _test_split_rows(arrays["hashes"], split_file)
    if test_idx is not None and pool_idx is not None:  # both or neither
        description = (
            f"the held-out test split ({len(test_idx)} of {n} images in {calibration_path}, from {split_file.name})"
        )
    else:
        test_idx = pool_idx = np.arange(n)
        description = f"all {n} images of {calibration_path} ({reason})"
    if len(test_idx) == 0:
        raise DatasetError(f"calibration arrays {calibration_path} hold no images")
    calibration = None
    if need_calibration:
        if len(pool_idx) == 0:
            pool_idx = test_idx
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.permutation(pool_idx)[:CALIBRATION_IMAGES])
        calibration = arrays["images"][chosen]
    return CheckData(arrays["images"][test_idx], arrays["labels"][test_idx], description, calibration)


def _test_split_rows(hashes: np.ndarray, split_file: Path) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(rows in the model's test split, the other rows, None), or (None, None, why the split is not usable)."""
    if not split_file.is_file():
        return None, None, f"no split record {split_file.name} beside the model"
    try:
        record = json.loads(split_file.read_text(encoding="utf-8"))
        test_hashes = set(record["test"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None, f"split record {split_file} is unreadable"
    in_test = np.isin(hashes, list(test_hashes))
    if not in_test.any():
        return None, None, f"the model's split record {split_file.name} names none of these images"
    return np.flatnonzero(in_test), np.flatnonzero(~in_test), None


def predict_all(classifier: Classifier, images: np.ndarray, batch: int = CHECK_BATCH) -> np.ndarray:
    parts = [classifier.predict(images[i : i + batch]) for i in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, len(classifier.class_names)), np.float32)


def compare(reference: np.ndarray, exported: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Agreement figures of exported vs reference probabilities (and accuracy against labels when known)."""
    ref_pred, exp_pred = reference.argmax(axis=1), exported.argmax(axis=1)
    figures = {
        "images": int(len(reference)),
        "agreement": float(np.mean(ref_pred == exp_pred)),
        "disagreements": int(np.sum(ref_pred != exp_pred)),
        "max_probability_difference": float(np.max(np.abs(reference - exported))) if len(reference) else 0.0,
    }
    if labels is not None:
        labels = np.asarray(labels)
        figures["keras_accuracy"] = float(np.mean(ref_pred == labels))
        figures["exported_accuracy"] = float(np.mean(exp_pred == labels))
        figures["accuracy_loss"] = figures["keras_accuracy"] - figures["exported_accuracy"]
    return figures


def check_problems(figures: dict) -> list[str]:
    """Why an export fails its self-check (empty list: it passes)."""
    problems = []
    if figures["agreement"] < MIN_AGREEMENT:
        problems.append(
            f"it agrees with the Keras model on only {figures['agreement']:.1%} of "
            f"{figures['images']} images ({figures['disagreements']} differ; at least "
            f"{MIN_AGREEMENT:.1%} needed)"
        )
    if figures.get("accuracy_loss", 0.0) > MAX_ACCURACY_LOSS + 1e-9:
        problems.append(
            f"its accuracy drops from {figures['keras_accuracy']:.2%} to "
            f"{figures['exported_accuracy']:.2%} (at most {MAX_ACCURACY_LOSS * 100:.1f} points allowed)"
        )
    return problems


def convert(model: object, quantize: str, calibration: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer bytes of a Keras model (uint8 image input kept; probabilities out as float32)."""
    t = tf()
    if quantize not in QUANTIZATIONS:
        raise ModelError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    try:
        # The converter prints hundreds of lines (MLIR passes, the SavedModel signature) to fd 1 and 2.
        with silence_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Statistics for quantized inputs were expected" (int8)
            converter = t.lite.TFLiteConverter.from_keras_model(model)
            if quantize != "none":
                converter.optimizations = [t.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [t.float16]
            elif quantize == "int8":
                if calibration is None or len(calibration) == 0:
                    raise ModelError("full-integer int8 export needs calibration images")

                def representative_dataset():
                    for image in calibration:
                        yield [image[None]]

                converter.representative_dataset = representative_dataset
                converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = t.uint8  # the camera's pixels go in as they are
                converter.inference_output_type = t.float32  # probabilities, as from the Keras model
            return converter.convert()
    except ModelError:
        raise
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        text = str(exc).strip()
        lines = (
            [line.strip() for line in text.splitlines() if "error" in line.lower()]
            or text.splitlines()
            or [type(exc).__name__]
        )
        raise ModelError(f"TFLite conversion ({DESCRIPTIONS[quantize]}) failed: {lines[0][:200]}") from None


def exported_metadata(
    keras_metadata: dict,
    model_path: Path,
    model_sha256: str,
    quantize: str,
    size: int,
    figures: dict,
    check_description: str,
    tf_version: str,
) -> dict:
    meta = dict(keras_metadata)
    meta.update(
        {
            "exported_from": {"file": str(model_path), "sha256": model_sha256},
            "format": "mask_detection classifier (TFLite)",
            "runtime": "LiteRT (ai-edge-litert)",
            "quantization": quantize,
            "quantization_description": DESCRIPTIONS[quantize],
            "converter": f"TensorFlow {tf_version} TFLiteConverter.from_keras_model",
            "file_bytes": int(size),
            "agreement": {
                **figures,
                "checked_on": check_description,
                "min_agreement": MIN_AGREEMENT,
                "max_accuracy_loss": MAX_ACCURACY_LOSS,
            },
        }
    )
    return meta


def write_checked(
    tflite_bytes: bytes,
    out: Path | str,
    reference_probs: np.ndarray,
    check: CheckData,
    metadata_for: Callable[[dict, int], dict],
    threads: int | None = None,
) -> dict:
    """Write the .tflite and its metadata only if the exported model passes the self-check; returns figures.

    ``metadata_for(figures, size)`` builds the metadata dict. Raises ModelError (and leaves nothing) on failure.
    """
    out = Path(out)
    # The .tflite and its metadata are one group: both replaced, or neither (disk full, Ctrl-C, a refusal).
    with atomic_paths([out, metadata_path(out)]) as (tmp_model, tmp_meta):
        tmp_model.write_bytes(tflite_bytes)
        probe_meta = metadata_for({}, len(tflite_bytes))
        exported: Classifier = LiteRTClassifier(tmp_model, probe_meta, metadata_input_size(probe_meta), threads=threads)
        exported = check_outputs(exported, out)  # as detection will load it (logits get a softmax there too)
        probs = predict_all(exported, check.images)
        if probs.shape != reference_probs.shape:
            raise ModelError(
                f"export refused: the exported model outputs {probs.shape[1:]} per image, the Keras "
                f"model {reference_probs.shape[1:]}"
            )
        figures = compare(reference_probs, probs, check.labels)
        problems = check_problems(figures)
        if problems:
            raise ModelError(
                f"export refused, {out.name} not written: checked on {check.description}, " + "; ".join(problems)
            )
        tmp_meta.write_text(json.dumps(metadata_for(figures, len(tflite_bytes)), indent=2) + "\n", encoding="utf-8")
    return figures


def describe_figures(figures: dict) -> str:
    text = f"agreement {figures['agreement']:.2%} of {figures['images']}"
    if "keras_accuracy" in figures:
        text += f", accuracy {figures['keras_accuracy']:.2%} -> {figures['exported_accuracy']:.2%}"
    return text


def format_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def check_export_outputs(
    model_path: Path, targets: dict[str, Path], calibration_path: Path | str | None = None
) -> None:
    """Before any slow work: every output (.tflite and its .json) is writable and none of them is an input (the
    .keras model, its metadata, its split record, the calibration arrays)."""
    model_meta = metadata_path(model_path)
    for quantize, target in targets.items():
        if same_file(metadata_path(target), model_meta):
            raise OutputError(
                f"refusing to write {display_path(metadata_path(target))}: it is the metadata of the model "
                f"{display_path(model_path)}, and an export writes its own beside {display_path(target)}; give "
                f"the output another name, e.g. {display_path(default_output_path(model_path, quantize))}"
            )
    inputs: list[Path | str] = [model_path, model_meta, split_record_path(model_path)]
    if calibration_path is not None:
        inputs.append(calibration_path)
    outputs = [p for target in targets.values() for p in (Path(target), metadata_path(target))]
    refuse_overwriting_inputs(outputs, inputs)
    for path in outputs:
        check_writable(path)


def export_targets(model_path: Path, quantizations: list[str], out: Path | str | None) -> dict[str, Path]:
    """{quantization: output file}: ``out`` for a single export, else beside the model."""
    if model_path.suffix.lower() != ".keras":
        raise ModelError(f"cannot export {display_path(model_path)}: export starts from a trained .keras model")
    if not model_path.is_file():
        raise ModelError(f"model file {display_path(model_path)} does not exist (train one with train_model.py)")
    if out is None:
        return {q: default_output_path(model_path, q) for q in quantizations}
    if len(quantizations) != 1:
        raise ModelError(f"one output file was named for {len(quantizations)} exports: name one quantization with it")
    if Path(out).suffix.lower() != ".tflite":
        raise ModelError(f"the output file {display_path(out)} must have a name ending in .tflite")
    return {quantizations[0]: Path(out)}


def export_models(
    model_path: Path | str,
    quantizations: list[str],
    calibration_path: Path | str | None = None,
    out: Path | str | None = None,
    log: Log | None = None,
    warn: Log | None = None,
) -> dict[str, ExportResult]:
    """Export ``model_path`` once per quantization, each checked before it is written; a refused export (self-check
    failed, or its file could not be written) is reported in its result and the others go on.

    ``out``: the output file of a single export (default: beside the model). ``log(message)``: progress
    (default: none); ``warn(message)``: problems worked around (default: none). Outputs are checked before the
    slow part (writable, none of them one of the inputs): those problems, and a model or calibration arrays that
    cannot be used, raise MaskDetectionError.
    """
    log = log or _quiet
    model_path = Path(model_path)
    quantizations = list(dict.fromkeys(quantizations))
    targets = export_targets(model_path, quantizations, out)
    check_export_outputs(model_path, targets, calibration_path)
    metadata = read_metadata(model_path)
    check = load_check_data(
        model_path,
        calibration_path,
        metadata["class_names"],
        metadata_input_size(metadata),
        need_calibration="int8" in quantizations,
    )
    log(f"self-check on {check.description}")

    model = load_keras_model(model_path)
    # A foreign model fails now, not once per export.
    reference = check_outputs(KerasClassifier(model, metadata, model_path), model_path, warn=warn)
    reference_probs = predict_all(reference, check.images)
    tf_version = tf().__version__
    model_sha256 = sha256_file(model_path)

    def metadata_for(quantize):
        return lambda figures, size: exported_metadata(
            metadata, model_path, model_sha256, quantize, size, figures, check.description, tf_version
        )

    results = {}
    for quantize in quantizations:
        target = targets[quantize]
        started = time.perf_counter()
        try:
            flatbuffer = convert(model, quantize, check.calibration)
            try:
                figures = write_checked(flatbuffer, target, reference_probs, check, metadata_for(quantize))
            except OSError as exc:  # e.g. disk full: neither file of this export is left behind
                raise OutputError(f"cannot write {display_path(target)}: {exc.strerror or exc}") from None
        except (ModelError, OutputError) as exc:
            results[quantize] = ExportResult(quantize, refusal=str(exc))
            continue
        log(
            f"exported {target} ({DESCRIPTIONS[quantize]}, {format_size(len(flatbuffer))}, "
            f"{format_size(model_path.stat().st_size)} as .keras) in {time.perf_counter() - started:.0f} s; "
            f"{describe_figures(figures)}"
        )
        results[quantize] = ExportResult(quantize, target, figures)
    return results


def _quiet(message: str) -> None:
    pass
