"""The decision rule: which class a face gets from its class probabilities. Built once, checked once."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .classes import WITH_MASK
from .errors import ModelError


@dataclass(frozen=True)
class DecisionRule:
    """The most probable class, or, with ``mask_threshold`` (and a ``with_mask`` class), "with_mask" exactly when
    p(with_mask) >= the threshold and otherwise the most probable of the other classes (0.7 calls fewer faces
    masked than the plain rule, which is 0.5 for two classes).

    Raises ModelError for a threshold outside 0..1. ``ignored_threshold`` says when the threshold has no effect (a
    model without a with_mask class), for the one warning its builder gives.
    """

    class_names: tuple[str, ...]
    mask_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.mask_threshold is not None and not 0.0 <= self.mask_threshold <= 1.0:
            raise ModelError(f"mask threshold must be between 0 and 1, got {self.mask_threshold}")

    @property
    def ignored_threshold(self) -> bool:
        return self.mask_threshold is not None and WITH_MASK not in self.class_names

    def ignored_message(self, what: str = "face") -> str:
        return (
            f"the mask threshold {self.mask_threshold:g} is ignored: the model has no {WITH_MASK} class "
            f"({', '.join(self.class_names)}); each {what} gets its most probable class"
        )

    def decide(self, probabilities: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Index of the chosen class for each row of ``probabilities`` (N, classes)."""
        probabilities = np.asarray(probabilities)
        chosen = probabilities.argmax(axis=1)
        if self.mask_threshold is None or self.ignored_threshold or len(probabilities) == 0:
            return chosen
        mask = self.class_names.index(WITH_MASK)
        others = probabilities.copy()
        others[:, mask] = -1.0
        return np.where(probabilities[:, mask] >= self.mask_threshold, mask, others.argmax(axis=1))

    def decide_one(self, probabilities: np.ndarray | Sequence[float]) -> int:
        return int(self.decide(np.asarray(probabilities)[None, :])[0])
