"""Fixtures of the fast tier: the real tracked pipeline with scripted stand-ins for the models (``stand_ins``)."""

import pytest

from mask_detection.people import TrackingConfig

from .stand_ins import TWO_CLASSES, Stage


@pytest.fixture
def make_stage():
    """Makes a ``Stage``: ``make_stage(class_names=..., mask_threshold=..., **TrackingConfig settings)``."""

    def make(class_names=TWO_CLASSES, mask_threshold=None, **settings):
        return Stage(TrackingConfig(**settings), class_names, mask_threshold)

    return make
