"""A training run's settings (``TrainConfig``, checked by ``validate``) and the progress callback type."""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..arrays import DEFAULT_ARRAYS
from ..errors import MaskDetectionError
from ..feature_store import DEFAULT_LIMIT_BYTES
from ..model import DROPOUT, HIDDEN_UNITS
from ..paths import DEFAULT_MODEL_OUT

Log = Callable[[str], None]

# Here rather than in features: TrainConfig.validate checks the setting against them before any slow work.
FEATURE_ENGINES = ("auto", "litert", "tensorflow")


@dataclass
class TrainConfig:
    data: str = str(DEFAULT_ARRAYS)
    backbone: str = "resnet50"
    weights: object = "imagenet"  # "imagenet", a local file path, or None for random weights
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    out: str = str(DEFAULT_MODEL_OUT)
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment_views: int = 2
    feature_engine: str = "auto"  # see feature_function
    patience: int = 10
    hidden_units: int = HIDDEN_UNITS
    dropout: float = DROPOUT
    cache_dir: str | os.PathLike[str] | Literal[False] | None = None  # None: the user cache folder; False: no cache
    cache_limit: int = DEFAULT_LIMIT_BYTES  # bytes of features the cache keeps; least recently used go first
    progress: bool = False  # progress bars and Keras' epoch lines on the terminal
    # Partial fine-tuning (EfficientNet-Lite only; 0: the frozen backbone of the reference recipe): the top units
    # that train after the head (1: the 1x1 head conv, 2: also the last MBConv block, ...; model.fine_tune_cut),
    # with their own RMSprop learning rate, epochs and early-stopping patience, on the original training pictures and
    # this many of their augmented views (each view costs as much as the originals: 0 keeps a run within minutes).
    fine_tune_blocks: int = 0
    fine_tune_learning_rate: float = 1e-5
    fine_tune_epochs: int = 5
    fine_tune_patience: int = 2
    fine_tune_augment_views: int = 0
    extra: dict = field(default_factory=dict)

    def validate(self):
        """Raise MaskDetectionError for settings that cannot train (library callers skip argparse's checks).

        A nan or infinite learning rate, say, would train to nan weights and only fail at the very end.
        """

        def bad(message):
            return MaskDetectionError(f"training setting {message}")

        for name in (
            "epochs",
            "batch_size",
            "patience",
            "hidden_units",
            "cache_limit",
            "fine_tune_epochs",
            "fine_tune_patience",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise bad(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in ("augment_views", "fine_tune_augment_views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise bad(f"{name} must be a whole number, 0 or more, got {value!r}")
        if self.fine_tune_augment_views > self.augment_views:
            raise bad(
                f"fine_tune_augment_views ({self.fine_tune_augment_views}) cannot exceed augment_views "
                f"({self.augment_views}): only those views are computed"
            )
        for name in ("learning_rate", "fine_tune_learning_rate"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise bad(f"{name} must be a finite positive number, got {value!r}")
        if (
            isinstance(self.fine_tune_blocks, bool)
            or not isinstance(self.fine_tune_blocks, (int, np.integer))
            or self.fine_tune_blocks < 0
        ):
            raise bad(f"fine_tune_blocks must be a whole number, 0 or more, got {self.fine_tune_blocks!r}")
        if self.fine_tune_blocks and self.backbone == "resnet50":
            # The reference method stays as published: a frozen ResNet50 under the head.
            raise bad("fine_tune_blocks is for the efficientnet_lite backbones; resnet50 (the reference) stays frozen")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not _finite(value) or not 0 < value < 0.5:
                raise bad(f"{name} must be between 0 and 0.5, got {value!r}")
        if not _finite(self.dropout) or not 0 <= self.dropout < 1:
            raise bad(f"dropout must be at least 0 and below 1, got {self.dropout!r}")
        if self.feature_engine not in FEATURE_ENGINES:
            raise bad(f"feature_engine must be one of {', '.join(FEATURE_ENGINES)}, got {self.feature_engine!r}")


def _finite(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(value)
    except TypeError:
        return False


def _quiet(message: str) -> None:
    pass
