"""Export a trained ``.keras`` classifier to TFLite (float32, float16, dynamic-range int8, full int8).

Every export checks itself before it is written: the exported model must agree with the Keras model on at least
99.5% of the held-out test images (from the model's ``<stem>_split.json``) and lose at most 0.3 points of
accuracy. A refused export leaves no file behind.
"""

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import INPUT_SIZE
from .errors import DatasetError, ModelError, OutputError
from .fileio import atomic_paths, check_writable, display_path, refuse_overwriting_inputs, same_file
from .model import file_sha256, metadata_path

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
DESCRIPTIONS = {
    "none": "float32",
    "float16": "float16 weights",
    "dynamic": "dynamic-range int8 weights",
    "int8": "full-integer int8",
}
FORMATS = ("tflite",)
MIN_AGREEMENT = 0.995
MAX_ACCURACY_LOSS = 0.003  # 0.3 percentage points
CALIBRATION_IMAGES = 300
GENERATED_CHECK_IMAGES = 48
CHECK_BATCH = 32


def default_output_path(model_path, quantize):
    """``models/mask_detector.keras`` -> ``models/mask_detector.dynamic.tflite`` (``.float32`` for none)."""
    name = "float32" if quantize == "none" else quantize
    return Path(model_path).with_suffix(f".{name}.tflite")


def split_record_path(model_path):
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + "_split.json")


@dataclass
class CheckData:
    images: np.ndarray  # uint8 (N, S, S, 3): what the exported model is checked on
    labels: object  # int array (N,) or None for generated images (agreement only)
    description: str
    calibration: object  # uint8 images for int8 calibration, or None


def generated_images(n=GENERATED_CHECK_IMAGES, size=INPUT_SIZE, seed=0):
    """Deterministic check images when no arrays file is at hand: scikit-image's photos and smooth colour fields."""
    import cv2
    from skimage import data

    from .images import to_model_input

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
              cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)]
    images = [to_model_input(p, size) for p in photos]
    images += [to_model_input(p[:, ::-1], size) for p in photos]
    rng = np.random.default_rng(seed)
    while len(images) < n:
        cells = int(rng.integers(2, 12))
        field = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        images.append(cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC))
    return np.stack(images[:n])


def load_check_data(model_path, calibration_path, class_names, input_size, need_calibration, log=print):
    """The images the export is checked (and int8-calibrated) on, and a sentence saying which they are."""
    if calibration_path is None:
        if need_calibration:
            raise ModelError("full-integer int8 export needs calibration images: give --calibration ARRAYS.npz "
                             "(the arrays file made by loader.py)")
        images = generated_images(size=input_size)
        return CheckData(images, None, f"{len(images)} generated images (no calibration arrays: agreement only, "
                                       "no accuracy check)", None)

    from .dataset import load_arrays

    arrays = load_arrays(calibration_path)
    names = [str(c) for c in arrays["class_names"]]
    if names != list(class_names):
        raise DatasetError(f"calibration arrays {calibration_path} have classes {', '.join(names)} but the model "
                           f"has {', '.join(class_names)}")
    if arrays["images"].shape[1] != input_size:
        raise DatasetError(f"calibration arrays {calibration_path} hold {arrays['images'].shape[1]}px images, the "
                           f"model takes {input_size}px")
    hashes = arrays["hashes"]
    n = len(hashes)
    split_file = split_record_path(model_path)
    test_idx = pool_idx = None
    reason = f"no split record {split_file.name} beside the model"
    if split_file.is_file():
        try:
            record = json.loads(split_file.read_text(encoding="utf-8"))
            test_hashes = set(record["test"])
        except (OSError, ValueError, KeyError, TypeError):
            reason = f"split record {split_file} is unreadable"
        else:
            in_test = np.isin(hashes, list(test_hashes))
            if in_test.any():
                test_idx = np.flatnonzero(in_test)
                pool_idx = np.flatnonzero(~in_test)
            else:
                reason = f"the model's split record {split_file.name} names none of these images"
    if test_idx is not None:
        description = (f"the held-out test split ({len(test_idx)} of {n} images in {calibration_path}, "
                       f"from {split_file.name})")
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


def predict_all(classifier, images, batch=CHECK_BATCH):
    parts = [classifier.predict(images[i:i + batch]) for i in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, len(classifier.class_names)), np.float32)


def compare(reference, exported, labels=None):
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


def check_problems(figures):
    """Why an export fails its self-check (empty list: it passes)."""
    problems = []
    if figures["agreement"] < MIN_AGREEMENT:
        problems.append(f"it agrees with the Keras model on only {figures['agreement']:.1%} of "
                        f"{figures['images']} images ({figures['disagreements']} differ; at least "
                        f"{MIN_AGREEMENT:.1%} needed)")
    if figures.get("accuracy_loss", 0.0) > MAX_ACCURACY_LOSS + 1e-9:
        problems.append(f"its accuracy drops from {figures['keras_accuracy']:.2%} to "
                        f"{figures['exported_accuracy']:.2%} (at most {MAX_ACCURACY_LOSS * 100:.1f} points allowed)")
    return problems


def convert(model, quantize, calibration=None):
    """TFLite flatbuffer bytes of a Keras model (uint8 image input kept; probabilities out as float32)."""
    from ._tf import silence_output, tf

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
        lines = [line.strip() for line in text.splitlines() if "error" in line.lower()] or text.splitlines() or [
            type(exc).__name__]
        raise ModelError(f"TFLite conversion ({DESCRIPTIONS[quantize]}) failed: {lines[0][:200]}") from None


def exported_metadata(keras_metadata, model_path, model_sha256, quantize, size, figures, check_description,
                      tf_version):
    meta = dict(keras_metadata)
    meta.update({
        "exported_from": {"file": str(model_path), "sha256": model_sha256},
        "format": "mask_detection classifier (TFLite)",
        "runtime": "LiteRT (ai-edge-litert)",
        "quantization": quantize,
        "quantization_description": DESCRIPTIONS[quantize],
        "converter": f"TensorFlow {tf_version} TFLiteConverter.from_keras_model",
        "file_bytes": int(size),
        "agreement": {**figures, "checked_on": check_description, "min_agreement": MIN_AGREEMENT,
                      "max_accuracy_loss": MAX_ACCURACY_LOSS},
    })
    return meta


def write_checked(tflite_bytes, out, reference_probs, check, metadata_for, threads=None):
    """Write the .tflite and its metadata only if the exported model passes the self-check; returns figures.

    ``metadata_for(figures, size)`` builds the metadata dict. Raises ModelError (and leaves nothing) on failure.
    """
    from .litert import LiteRTClassifier

    from .model import check_output_width

    out = Path(out)
    meta_path = metadata_path(out)
    # The .tflite and its metadata are one group: both replaced, or neither (disk full, Ctrl-C, a refusal).
    with atomic_paths([out, meta_path]) as (tmp_model, tmp_meta):
        tmp_model.write_bytes(tflite_bytes)
        probe_meta = metadata_for({}, len(tflite_bytes))
        exported = LiteRTClassifier(tmp_model, probe_meta, threads=threads)
        check_output_width(exported, out)  # as detection will load it (logits get a softmax there too)
        probs = predict_all(exported, check.images)
        if probs.shape != reference_probs.shape:
            raise ModelError(f"export refused: the exported model outputs {probs.shape[1:]} per image, the Keras "
                             f"model {reference_probs.shape[1:]}")
        figures = compare(reference_probs, probs, check.labels)
        problems = check_problems(figures)
        if problems:
            raise ModelError(f"export refused, {out.name} not written: checked on {check.description}, "
                             + "; ".join(problems))
        tmp_meta.write_text(json.dumps(metadata_for(figures, len(tflite_bytes)), indent=2) + "\n",
                            encoding="utf-8")
    return figures


def describe_figures(figures):
    text = f"agreement {figures['agreement']:.2%} of {figures['images']}"
    if "keras_accuracy" in figures:
        text += f", accuracy {figures['keras_accuracy']:.2%} -> {figures['exported_accuracy']:.2%}"
    return text


def format_size(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def check_export_outputs(model_path, targets, calibration_path=None):
    """Before any slow work: every output (.tflite and its .json) is writable and none of them is an input (the
    .keras model, its metadata, its split record, the calibration arrays)."""
    model_path = Path(model_path)
    model_meta = metadata_path(model_path)
    for quantize, target in targets.items():
        if same_file(metadata_path(target), model_meta):
            raise OutputError(
                f"refusing to write {display_path(metadata_path(target))}: it is the metadata of the model "
                f"{display_path(model_path)}, and an export writes its own beside {display_path(target)}; give "
                f"--out another name, e.g. {display_path(default_output_path(model_path, quantize))}")
    inputs = [model_path, model_meta, split_record_path(model_path)]
    if calibration_path is not None:
        inputs.append(calibration_path)
    outputs = [p for target in targets.values() for p in (Path(target), metadata_path(target))]
    refuse_overwriting_inputs(outputs, inputs)
    for path in outputs:
        check_writable(path)


def export_models(model_path, quantizations, calibration_path=None, out=None, fmt="tflite", log=print, warn=None,
                  warning=None):
    """Export ``model_path`` once per quantization; returns {quantization: output path or None when refused}.

    Raises ModelError when the only requested export is refused; with several, each refusal is reported through
    ``warn`` and the rest go on. ``warning(message)``: problems worked around (default: ``log("warning: ...")``).
    Outputs are checked before the slow part: writable, and none of them one of the inputs.
    """
    warning = warning or (lambda message: log(f"warning: {message}"))
    from ._tf import tf
    from .model import KerasClassifier, check_output_width, load_keras_model, read_metadata

    if fmt not in FORMATS:
        raise ModelError(f"unsupported export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_path = Path(model_path)
    if model_path.suffix.lower() != ".keras":
        raise ModelError(f"--model {model_path}: export starts from a trained .keras model")
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} does not exist (train one with train_model.py)")
    quantizations = list(dict.fromkeys(quantizations))
    if out is not None and len(quantizations) != 1:
        raise ModelError("--out names one file: give a single --quantize with it")
    if out is not None and Path(out).suffix.lower() != ".tflite":
        raise ModelError(f"--out {display_path(out)}: the file name must end in .tflite")
    targets = {q: Path(out) if out is not None else default_output_path(model_path, q) for q in quantizations}
    check_export_outputs(model_path, targets, calibration_path)
    metadata = read_metadata(model_path)
    input_size = int(metadata.get("input_size", INPUT_SIZE))
    check = load_check_data(model_path, calibration_path, metadata["class_names"], input_size,
                            need_calibration="int8" in quantizations, log=log)
    log(f"self-check on {check.description}")

    model = load_keras_model(model_path)
    reference = KerasClassifier(model, metadata)
    check_output_width(reference, model_path, warn=warning)  # a foreign model fails now, not per export
    reference_probs = predict_all(reference, check.images)
    tf_version = tf().__version__
    model_sha256 = file_sha256(model_path)
    results = {}
    for quantize in quantizations:
        target = targets[quantize]
        started = time.perf_counter()
        try:
            flatbuffer = convert(model, quantize, check.calibration)

            def metadata_for(figures, size, quantize=quantize):
                return exported_metadata(metadata, model_path, model_sha256, quantize, size, figures,
                                         check.description, tf_version)

            try:
                figures = write_checked(flatbuffer, target, reference_probs, check, metadata_for)
            except OSError as exc:  # e.g. disk full: neither file of this export is left behind
                raise OutputError(f"cannot write {display_path(target)}: {exc.strerror or exc}") from None
        except (ModelError, OutputError) as exc:
            if len(quantizations) == 1:
                raise
            (warn or log)(str(exc))
            results[quantize] = None
            continue
        seconds = time.perf_counter() - started
        log(f"exported {target} ({DESCRIPTIONS[quantize]}, {format_size(len(flatbuffer))}, "
            f"{format_size(model_path.stat().st_size)} as .keras) in {seconds:.0f} s; {describe_figures(figures)}")
        results[quantize] = target
    return results
