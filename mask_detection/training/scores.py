"""The test split, used once: the calibrated head's figures, overall and per source, and the model's metadata
that records them with the run's settings."""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import INPUT_SIZE, __version__
from ..metrics import (
    classification_figures,
    classification_report_text,
    expected_calibration_error,
    softmax_with_temperature,
)
from .calibration import Calibration
from .config import TrainConfig
from .head import HeadFit


@dataclass
class HeldOutScore:
    """The test split, used once: indices, the head's probabilities, figures and sklearn's report."""

    indices: np.ndarray
    probabilities: np.ndarray
    figures: dict
    report: str


def score_on_test_split(
    head: HeadFit,
    base: np.ndarray,
    labels: np.ndarray,
    test_idx: np.ndarray,
    class_names: list[str],
    calibration: Calibration,
) -> HeldOutScore:
    """The calibrated head's figures on the test split (used once, here); fills in the calibration's test ECE."""
    logits, truth = head.logits(base[test_idx]), labels[test_idx]
    probabilities = softmax_with_temperature(logits, calibration.temperature).astype(np.float32)
    calibration.test_ece_before = expected_calibration_error(softmax_with_temperature(logits, 1.0), truth)
    calibration.test_ece_after = expected_calibration_error(probabilities, truth)
    predicted = probabilities.argmax(axis=1)
    return HeldOutScore(
        test_idx,
        probabilities,
        classification_figures(labels[test_idx], predicted, class_names),
        classification_report_text(labels[test_idx], predicted, class_names),
    )


def _count_by_source(sources: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, dict[str, int]]:
    return {
        str(source): {name: int(((sources == source) & (labels == i)).sum()) for i, name in enumerate(class_names)}
        for source in np.unique(sources)
    }


def _test_by_source(
    test: HeldOutScore, labels: np.ndarray, sources: np.ndarray, class_names: list[str]
) -> dict[str, dict]:
    """The test split's figures for each source apart (scene crops are harder than close-ups)."""
    predicted = test.probabilities.argmax(axis=1)
    test_sources, truth = sources[test.indices], labels[test.indices]
    out = {}
    for source in np.unique(test_sources):
        mine = test_sources == source
        with warnings.catch_warnings():  # a source with one class in the test split is fine here
            warnings.simplefilter("ignore", UserWarning)
            figures = classification_figures(truth[mine], predicted[mine], class_names)
        out[str(source)] = {
            "pictures": int(mine.sum()),
            "errors": int((truth[mine] != predicted[mine]).sum()),
            "accuracy": figures["accuracy"],
            "balanced_accuracy": figures["balanced_accuracy"],
        }
    return out


def training_metadata(
    config: TrainConfig,
    class_names: list[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    head: HeadFit,
    test: HeldOutScore,
    calibration: Calibration,
    weights_id: str,
    feature_source: dict,
    split_file: Path,
    sources: np.ndarray | None = None,
    input_size: int = INPUT_SIZE,
) -> dict:
    """The model's metadata (the JSON beside it); ``timing_seconds`` is filled in by the caller.

    ``sources``: each picture's source (arrays' ``sources``), counted per source and class when given.
    ``input_size``: the side of the arrays' pictures, which the model takes."""
    best = head.best_epoch
    return {
        "format": "mask_detection classifier",
        "version": __version__,
        "class_names": class_names,
        "backbone": config.backbone,
        "weights": weights_id,
        "input_size": input_size,
        "input": "RGB uint8, pad to square by edge replication then resize (mask_detection.images.to_model_input)",
        "head": {"hidden_units": config.hidden_units, "dropout": config.dropout},
        "optimizer": {"name": "RMSprop", "learning_rate": config.learning_rate},
        "loss": "categorical_crossentropy",
        "epochs": {
            "requested": config.epochs,
            "run": head.epochs_run,
            "best": best,
            "early_stopping_patience": config.patience,
        },
        "batch_size": config.batch_size,
        "augment_views": config.augment_views,
        "data": {
            "file": str(config.data),
            "images": int(len(labels)),
            "per_class": {name: int((labels == i).sum()) for i, name in enumerate(class_names)},
            **({"per_source": _count_by_source(sources, labels, class_names)} if sources is not None else {}),
        },
        "split": {
            "seed": config.seed,
            "fractions": {
                "train": 1 - config.val_fraction - config.test_fraction,
                "validation": config.val_fraction,
                "test": config.test_fraction,
            },
            "sizes": {name: int(len(idx)) for name, idx in split.items()},
            "file": split_file.name,
        },
        "test": test.figures,
        **({"test_by_source": _test_by_source(test, labels, sources, class_names)} if sources is not None else {}),
        "calibration": calibration.to_json(),
        "validation_accuracy": (
            float(head.history["val_accuracy"][best - 1]) if head.history.get("val_accuracy") else None
        ),
        "history": head.history,
        "features_from": feature_source,
        "timing_seconds": None,
        **config.extra,
    }
