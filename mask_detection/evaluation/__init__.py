"""Honest accuracy: labelled folders of face crops, and real scenes with PASCAL VOC boxes.

Scenes go through the same pipeline as detect_image; detections are matched one-to-one to the annotated faces,
highest detector score first, and every figure is written to a report folder (JSON, Markdown, PNG plots, a
gallery of what went wrong). One concern a module:

- ``scenes``: running the pipeline over the scene set (read by the ``annotations`` building blocks);
- ``matching``: the one-to-one matches as face and detection records; ``scoring``: the figures;
- ``summary``, ``plots``, ``report``: summary.md, the pictures, the report folder;
- ``scene_evaluation`` and ``folder``: the two evaluations, each returning a result object.
"""

from ..matching import DEFAULT_IOU
from .folder import FolderEvaluation, evaluate_folder
from .scene_evaluation import ScenesEvaluation, evaluate_scenes
from .scoring import REPORTED_IOUS

__all__ = [
    "DEFAULT_IOU",
    "REPORTED_IOUS",
    "FolderEvaluation",
    "ScenesEvaluation",
    "evaluate_folder",
    "evaluate_scenes",
]
