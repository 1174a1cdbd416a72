"""Calibration: the temperature fitted on the validation split, and the expected calibration errors it gives."""

from dataclasses import dataclass

import numpy as np

from ..metrics import ECE_BINS, expected_calibration_error, fit_temperature, softmax_with_temperature, temperature_nll
from .config import Log
from .head import HeadFit


@dataclass
class Calibration:
    """The temperature fitted on the validation split and the expected calibration errors it gives."""

    temperature: float
    fitted: bool  # False: every validation image was right, nothing to fit on (temperature 1)
    validation_images: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    test_ece_before: float | None = None
    test_ece_after: float | None = None

    def to_json(self) -> dict:
        return {
            "temperature": self.temperature,
            "fitted": self.fitted,
            "method": "temperature scaling: minimum negative log-likelihood of softmax(logits / T) on validation",
            "validation_images": self.validation_images,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "ece_bins": ECE_BINS,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "test_ece_before": self.test_ece_before,
            "test_ece_after": self.test_ece_after,
        }


def calibrate(
    head: HeadFit, base: np.ndarray, labels: np.ndarray, split: dict[str, np.ndarray], warn: Log
) -> Calibration:
    """Fit the temperature on the validation split (the split early stopping already looked at; the test split
    stays unseen) and measure the expected calibration error there before and after."""
    val_logits, val_labels = head.logits(base[split["validation"]]), labels[split["validation"]]
    fitted = fit_temperature(val_logits, val_labels)
    if fitted is None:
        warn(
            "calibration: every validation image is classified correctly, so no temperature can be fitted; "
            "keeping temperature 1 (probabilities as trained)"
        )
    temperature = 1.0 if fitted is None else round(fitted, 4)
    return Calibration(
        temperature,
        fitted is not None,
        int(len(val_labels)),
        temperature_nll(val_logits, val_labels, 1.0),
        temperature_nll(val_logits, val_labels, temperature),
        expected_calibration_error(softmax_with_temperature(val_logits, 1.0), val_labels),
        expected_calibration_error(softmax_with_temperature(val_logits, temperature), val_labels),
    )
