"""Training: frozen backbone features computed once (and cached on disk), then only the head is trained.

Flow: arrays -> stratified train/validation/test split (fixed seed) -> backbone features for every image plus
precomputed augmented views of the training images (by default through the backbone converted to TFLite and run
by LiteRT, checked against TensorFlow: see feature_function) -> head trained with RMSprop, early stopping on validation
loss (best weights restored) -> with ``fine_tune_blocks``, the backbone's top blocks trained with the head on the
cached activations below them (the features above were then pooled from those activations) -> a temperature fitted
on the validation split (calibration) -> the test split used once -> full model (uint8 image in, calibrated
probabilities out) checked against the head, then model, metadata, split and plots written as one group (all
replaced, or none).

TensorFlow runs the head (and the feature pass when it sees a GPU) on a GPU when one is visible.

One module per stage, each importing only those before it: config (settings), split (data checks and the
split), cache (the feature cache's folder and keys), features (the feature engine), head, calibration, scores
(test figures and metadata), outputs (the five files). ``train`` runs them in order; their public names are
importable from here.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._tf import keras
from ..arrays import crop_style, load_arrays
from ..backbones import weights_id as backbone_weights_id
from ..model import build_feature_extractor, split_for_fine_tuning
from .cache import (
    FeatureCache,
    default_cache_dir,
    feature_key,
    picture_keys,
    remove_per_dataset_cache_files,
    usable_cache,
    view_names,
)
from .calibration import Calibration, calibrate
from .config import FEATURE_ENGINES, Log, TrainConfig, _quiet
from .features import (
    FAST_ENGINE_MIN_IMAGES,
    FEATURE_BATCH,
    STORE_EVERY,
    compute_missing_features,
    extract_features,
    feature_function,
    features_agree,
    load_or_compute_features,
    pooled_features,
    tensorflow_feature_function,
)
from .head import (
    HEAD_STEPS_PER_EXECUTION,
    HeadFit,
    balanced_class_weight,
    fine_tune,
    fit_head,
    one_hot,
    stop_training_callback,
)
from .outputs import (
    assemble_model,
    check_output_path,
    check_outputs,
    output_paths,
    save_outputs,
    write_model_files,
)
from .scores import HeldOutScore, score_on_test_split, training_metadata
from .split import MIN_IMAGES_PER_CLASS, check_training_data, split_indices

__all__ = [
    "FAST_ENGINE_MIN_IMAGES",
    "FEATURE_BATCH",
    "FEATURE_ENGINES",
    "HEAD_STEPS_PER_EXECUTION",
    "MIN_IMAGES_PER_CLASS",
    "STORE_EVERY",
    "Calibration",
    "FeatureCache",
    "HeadFit",
    "HeldOutScore",
    "Log",
    "TrainConfig",
    "TrainResult",
    "assemble_model",
    "balanced_class_weight",
    "calibrate",
    "check_output_path",
    "check_outputs",
    "check_training_data",
    "compute_missing_features",
    "default_cache_dir",
    "extract_features",
    "feature_function",
    "feature_key",
    "features_agree",
    "fine_tune",
    "fit_head",
    "load_or_compute_features",
    "one_hot",
    "output_paths",
    "picture_keys",
    "pooled_features",
    "remove_per_dataset_cache_files",
    "save_outputs",
    "score_on_test_split",
    "split_indices",
    "stop_training_callback",
    "tensorflow_feature_function",
    "train",
    "training_metadata",
    "usable_cache",
    "view_names",
    "write_model_files",
]


@dataclass
class TrainResult:
    """What ``train`` made: the metadata written beside the model, the five files, and the test report text."""

    metadata: dict
    paths: dict[str, Path]
    report: str


def train(
    config: TrainConfig,
    log: Log | None = None,
    warn: Log | None = None,
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> TrainResult:
    """Train and save a classifier.

    ``log(message)``: progress messages (default: none); ``warn(message)``: problems that do not stop training
    (default: none); ``on_saved(paths)``: called as soon as the new files are in place, before an interrupt that
    came during the save is raised (so a command can say that the model was saved all the same).
    """
    log, warn = log or _quiet, warn or _quiet
    started = time.perf_counter()
    config.validate()
    # Before the slow part: an unwritable output or one that is an input fails now, not after training.
    paths = check_outputs(config)
    arrays = load_arrays(config.data)
    check_training_data(arrays, config.data)
    class_names = [str(c) for c in arrays["class_names"]]
    labels = np.asarray(arrays["labels"], np.int64)
    split = split_indices(
        labels, config.seed, config.val_fraction, config.test_fraction, len(class_names), arrays.get("sources")
    )
    cache = usable_cache(config, warn)
    log(
        f"data: {len(labels)} images, classes {', '.join(class_names)}; split train/validation/test = "
        f"{len(split['train'])}/{len(split['validation'])}/{len(split['test'])} (seed {config.seed})"
    )

    keras().utils.set_random_seed(config.seed)
    features_started = time.perf_counter()
    # The arrays decide the input side (loader.py --input-size), so a backbone can train at its native size.
    input_size = int(arrays["images"].shape[1])
    extractor = build_feature_extractor(config.backbone, config.weights, input_size)
    weights_id = backbone_weights_id(config.backbone, config.weights)
    tuning = split_for_fine_tuning(extractor, config.fine_tune_blocks) if config.fine_tune_blocks else None
    if tuning is None:
        base, aug, feature_source = load_or_compute_features(
            extractor, arrays, split, config, weights_id, cache, log, warn
        )
        head_base, head_aug = base, aug
    else:
        # The activations below the trainable top are what is cached (float16: half the size, and the top's
        # result moves by about 1e-4), under a key naming the cut; the pooled features of the still-frozen top
        # are computed from them, cheap next to the backbone below.
        cut_id = weights_id if weights_id == "random" else f"{weights_id}@{tuning.cut}"
        base, aug, feature_source = load_or_compute_features(
            tuning.lower, arrays, split, config, cut_id, cache, log, warn, dtype=np.float16
        )
        head_base, head_aug = pooled_features(tuning.pooled, base), pooled_features(tuning.pooled, aug)
    feature_seconds = time.perf_counter() - features_started

    head = fit_head(head_base, head_aug, labels, split, len(class_names), config)
    head_seconds, head_epochs = head.seconds, head.epochs_run
    if tuning is not None:
        log(f"fine-tuning the backbone's top {config.fine_tune_blocks} unit(s) above {tuning.cut} with the head ...")
        head = fine_tune(tuning, head, base, aug, labels, split, len(class_names), config)
    calibration = calibrate(head, base, labels, split, warn)
    test = score_on_test_split(head, base, labels, split["test"], class_names, calibration)
    model = assemble_model(extractor, head, arrays["images"], test, config.learning_rate, calibration.temperature)
    metadata = training_metadata(
        config,
        class_names,
        labels,
        split,
        head,
        test,
        calibration,
        weights_id,
        feature_source,
        paths["split"],
        arrays.get("sources"),
        input_size,
    )
    # Detection cuts faces as the training pictures were cut (crop.py).
    metadata["crop"] = crop_style(arrays)
    metadata["timing_seconds"] = {
        "features": round(feature_seconds, 1),
        "head_training": round(head_seconds, 1),
        **({"fine_tune": round(head.seconds - head_seconds, 1)} if tuning is not None else {}),
        "total": round(time.perf_counter() - started, 1),
    }
    if tuning is not None:
        metadata["fine_tune"] = {
            "blocks": config.fine_tune_blocks,
            "cut": tuning.cut,
            "trainable": [layer.name for layer in tuning.trainable],
            "batch_norm": "frozen (inference mode)",
            "optimizer": {"name": "RMSprop", "learning_rate": config.fine_tune_learning_rate},
            "augment_views": config.fine_tune_augment_views,
            "epochs": {
                "requested": config.fine_tune_epochs,
                "run": head.epochs_run - head_epochs,
                "early_stopping_patience": config.fine_tune_patience,
            },
            # False: no fine-tuning epoch beat the head's best validation loss, so the top kept its ImageNet weights.
            "kept": head.best_epoch > head_epochs,
        }
    split_record: dict[str, list[str] | str] = {
        name: [str(arrays["hashes"][i]) for i in idx] for name, idx in split.items()
    }
    split_record["note"] = "sha256 of the source files in each split"
    write_model_files(paths, model, metadata, split_record, config, class_names, started, on_saved)
    return TrainResult(metadata, paths, test.report)
