"""Every figure of a scenes evaluation, computed from the matched records at one IoU threshold.

The figures are plain data (they are report.json's content). The model's own classes are scored: a face of a
registered class the model cannot name (e.g. ``mask_weared_incorrect`` for a two-class model) is reported
apart, or scored as ``without_mask`` on request; a model that names it gets it scored as a class of its own.
"""

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..annotations.voc import SCENE_CLASSES
from ..boxes import BUCKET_NAMES
from ..classes import INCORRECT_MASK, WITH_MASK, WITHOUT_MASK
from ..matching import DEFAULT_IOU
from ..metrics import classification_figures, expected_calibration_error
from .matching import DetectionRecord, FaceRecord, match_scenes
from .scenes import SceneResult

# The default (matching.DEFAULT_IOU) and the usual 0.5: a scenes report gives both.
REPORTED_IOUS = (0.3, 0.5)

HEADLINE_MIN_FACE = 32
TARGETS = {"detection_recall": 0.95, "unmatched_per_image": 1.0, "balanced_accuracy": 0.97}

Figures = dict[str, Any]


@dataclass(frozen=True)
class SceneScores:
    """Every figure at one IoU threshold, and the records they come from."""

    iou: float
    headline: Figures
    detector: Figures
    box_offsets: Figures
    classifier: Figures
    pipeline: Figures
    faces: list[FaceRecord]
    detections: list[DetectionRecord]

    def figures(self) -> Figures:
        """The figures as report.json holds them under ``by_iou``."""
        return {
            "iou": self.iou,
            "headline": self.headline,
            "detector": self.detector,
            "box_offsets": self.box_offsets,
            "classifier": self.classifier,
            "pipeline": self.pipeline,
        }


@contextlib.contextmanager
def quiet_metrics() -> Iterator[None]:
    """Silence scikit-learn's UserWarnings (UndefinedMetricWarning, "y_pred contains classes not in y_true", "a
    single label was found") on slices holding one class: the report already shows such figures as 0 or n/a."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def maps_incorrect_to_without(class_names: Sequence[str], incorrect_as_without: bool) -> bool:
    """Whether incorrectly worn masks are scored as without_mask: on request, for a model that cannot name them."""
    return bool(incorrect_as_without) and INCORRECT_MASK not in class_names


def score_scenes(
    results: Sequence[SceneResult],
    class_names: Sequence[str],
    iou_threshold: float = DEFAULT_IOU,
    incorrect_as_without: bool = False,
    classes: tuple[str, ...] = SCENE_CLASSES,
) -> SceneScores:
    """Every figure for one IoU threshold, with the matched records."""
    class_names = list(class_names)
    mapped = maps_incorrect_to_without(class_names, incorrect_as_without)
    matched = match_scenes(results, iou_threshold)
    faces, detections = matched.faces, matched.detections
    return SceneScores(
        iou=iou_threshold,
        headline=headline_figures(faces, detections, len(results), class_names),
        detector=detector_figures(faces, detections, classes),
        box_offsets=offset_figures(faces),
        classifier=classifier_figures(faces, class_names, mapped),
        pipeline=pipeline_figures(faces, detections, results, class_names, classes, mapped),
        faces=faces,
        detections=detections,
    )


def truth_label(label: str, incorrect_as_without: bool) -> str:
    """The class a ground-truth face is scored against."""
    if label == INCORRECT_MASK and incorrect_as_without:
        return WITHOUT_MASK
    return label


def outcome(face: FaceRecord, class_names: Sequence[str], incorrect_as_without: bool) -> str:
    """ "missed", "correct", "wrong_label", or "found" for faces of a class the model cannot name."""
    if not face.found:
        return "missed"
    truth = truth_label(face.label, incorrect_as_without)
    if truth not in class_names:
        return "found"
    return "correct" if face.predicted == truth else "wrong_label"


# ------------------------------------------------------------------------------------------------ headline


def headline_figures(
    faces: Sequence[FaceRecord],
    detections: Sequence[DetectionRecord],
    n_images: int,
    class_names: Sequence[str],
    min_face: int = HEADLINE_MIN_FACE,
) -> Figures:
    """The target slice: faces >= min_face px (short side); mask_weared_incorrect left out unless the model
    names it."""
    left_out = () if INCORRECT_MASK in class_names else (INCORRECT_MASK,)
    sliced = [f for f in faces if f.size >= min_face and f.label not in left_out]
    found = [f for f in sliced if f.found]
    unmatched = sum(d.false_alarm for d in detections)
    index = {name: i for i, name in enumerate(class_names)}
    scored = [f for f in found if f.label in index]
    balanced = None
    if scored:
        with quiet_metrics():
            balanced = classification_figures(
                [index[f.label] for f in scored], [index[f.found_label] for f in scored], class_names
            )["balanced_accuracy"]
    figures = {
        "slice": f"faces >= {min_face} px on the short side" + "".join(f", {name} left out" for name in left_out),
        "faces": len(sliced),
        "detection_recall": _ratio(len(found), len(sliced)),
        "unmatched_per_image": _ratio(unmatched, n_images),
        "balanced_accuracy": balanced,
        "pipeline_correct": _ratio(sum(f.predicted == f.label for f in scored), len(sliced)),
        "targets": dict(TARGETS),
    }
    figures["meets_targets"] = _meets_targets(figures)
    figures |= violations_and_calibration(scored, [f.label for f in scored], class_names)
    return figures


def _meets_targets(headline: Figures) -> bool:
    recall, unmatched, balanced = (headline[key] for key in TARGETS)
    return bool(
        recall is not None
        and recall >= TARGETS["detection_recall"]
        and unmatched <= TARGETS["unmatched_per_image"]
        and balanced is not None
        and balanced >= TARGETS["balanced_accuracy"]
    )


# ------------------------------------------------------------------------------------------------ detector


def detector_figures(
    faces: Sequence[FaceRecord], detections: Sequence[DetectionRecord], classes: Sequence[str]
) -> Figures:
    counted = [d for d in detections if d.counted]
    matched = sum(d.face is not None for d in counted)
    found = sum(f.found for f in faces)
    by_class_size = {}
    for label in classes:
        rows = [f for f in faces if f.label == label]
        if rows:
            by_class_size[label] = _ordered(_recall_table(rows, "bucket"), BUCKET_NAMES)
    return {
        "faces": len(faces),
        "found": found,
        "recall": _ratio(found, len(faces)),
        "detections": len(counted),
        "detections_on_unknown_class": len(detections) - len(counted),
        "matched_detections": matched,
        "precision": _ratio(matched, len(counted)),
        "recall_by_class": _ordered(_recall_table(faces, "label"), classes),
        "recall_by_size": _ordered(_recall_table(faces, "bucket"), BUCKET_NAMES),
        "recall_by_class_and_size": by_class_size,
        "precision_by_detection_size": _ordered(_precision_by_size(counted), BUCKET_NAMES),
        "precision_note": "precision per size bucket uses the detection's own box size; detections carry no "
        "ground-truth class until matched, so precision is not split by class",
    }


def _recall_table(faces: Sequence[FaceRecord], key: str) -> dict[str, dict[str, Any]]:
    """{value of the face's ``key`` attribute: {"faces", "found", "recall"}}."""
    table: dict[str, dict[str, Any]] = {}
    for face in faces:
        entry = table.setdefault(getattr(face, key), {"faces": 0, "found": 0})
        entry["faces"] += 1
        entry["found"] += face.found
    for entry in table.values():
        entry["recall"] = _ratio(entry["found"], entry["faces"])
    return table


def _precision_by_size(counted: Sequence[DetectionRecord]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for d in counted:
        entry = table.setdefault(d.bucket, {"detections": 0, "matched": 0})
        entry["detections"] += 1
        entry["matched"] += d.face is not None
    for entry in table.values():
        entry["precision"] = _ratio(entry["matched"], entry["detections"])
    return table


def offset_figures(faces: Sequence[FaceRecord]) -> Figures:
    """Where detector boxes sit relative to the annotated boxes of the faces they matched."""
    pairs = [f for f in faces if f.detection is not None]
    if not pairs:
        return {"pairs": 0}
    gt = np.array([f.truth.xywh for f in pairs], dtype=np.float64)
    det = np.array([f.found_detection.xywh for f in pairs], dtype=np.float64)
    gh = gt[:, 3]
    dx = ((det[:, 0] + det[:, 2] / 2) - (gt[:, 0] + gt[:, 2] / 2)) / gh
    dy = ((det[:, 1] + det[:, 3] / 2) - (gt[:, 1] + gt[:, 3] / 2)) / gh
    return {
        "pairs": len(pairs),
        "median_centre_offset": float(np.median(np.hypot(dx, dy))),
        "median_centre_dx": float(np.median(dx)),
        "median_centre_dy": float(np.median(dy)),
        "median_height_ratio": float(np.median(det[:, 3] / gh)),
        "median_width_ratio": float(np.median(det[:, 2] / gt[:, 2])),
        "median_iou": float(np.median([f.iou for f in pairs])),
        "units": "centre offsets in units of the annotated box height; dy > 0: detector box centre lower than "
        "the annotation's; ratios: detector / annotation",
    }


# ------------------------------------------------------------------------------------------------ classifier


def classifier_figures(faces: Sequence[FaceRecord], class_names: Sequence[str], incorrect_as_without: bool) -> Figures:
    """Classifier on matched faces whose (mapped) class the model knows; other classes as a label split."""
    index = {name: i for i, name in enumerate(class_names)}
    scored = [f for f in faces if f.found and truth_label(f.label, incorrect_as_without) in index]
    with quiet_metrics():
        figures: Figures = _classified(scored, index, class_names, incorrect_as_without) if scored else {"faces": 0}
    figures["faces"] = len(scored)
    figures["accuracy_by_class"] = {
        name: entry["recall"] for name, entry in figures.get("per_class", {}).items() if entry["support"]
    }
    figures["labels_given_to_other_classes"] = _labels_given_to_other_classes(
        faces, index, class_names, incorrect_as_without
    )
    figures["by_size"] = _classifier_by_size(scored, index, class_names, incorrect_as_without)
    figures |= violations_and_calibration(
        scored, [truth_label(f.label, incorrect_as_without) for f in scored], class_names
    )
    return figures


def violations_and_calibration(
    found: Sequence[FaceRecord], truths: Sequence[str], class_names: Sequence[str]
) -> Figures:
    """Of the found bare faces (truth ``without_mask``), how many were labelled so ("violations caught"); of the
    found masked faces, how many were labelled ``with_mask`` (a wrong "No mask" is a false alarm at the door); and
    the classifier's calibration error on the found faces (top-class probability vs being right); None when
    there is nothing to measure. ``truths``: the class each face is scored against."""
    bare = [f for f, truth in zip(found, truths, strict=True) if truth == WITHOUT_MASK]
    caught = sum(f.predicted == WITHOUT_MASK for f in bare)
    masked = [f for f, truth in zip(found, truths, strict=True) if truth == WITH_MASK]
    recognised = sum(f.predicted == WITH_MASK for f in masked)
    ece = None
    if found:
        index = {name: i for i, name in enumerate(class_names)}
        probabilities = np.array([f.found_detection.probabilities for f in found], dtype=np.float64)
        ece = expected_calibration_error(probabilities, np.array([index[t] for t in truths]))
    return {
        "without_mask_found": len(bare),
        "without_mask_caught": caught,
        "violations_caught": _ratio(caught, len(bare)),
        "with_mask_found": len(masked),
        "with_mask_recognised": recognised,
        "with_mask_recall": _ratio(recognised, len(masked)),
        "ece": ece,
    }


def _classified(
    faces: Sequence[FaceRecord], index: dict[str, int], class_names: Sequence[str], incorrect_as_without: bool
) -> Figures:
    """classification_figures of matched faces, every one of a class the model knows."""
    return classification_figures(
        [index[truth_label(f.label, incorrect_as_without)] for f in faces],
        [index[f.found_label] for f in faces],
        class_names,
    )


def _labels_given_to_other_classes(
    faces: Sequence[FaceRecord], index: dict[str, int], class_names: Sequence[str], incorrect_as_without: bool
) -> dict[str, dict[str, int]]:
    """How found faces of classes the model cannot name were labelled (and mapped ones, when mapped)."""
    split: dict[str, dict[str, int]] = {}
    for face in faces:
        if face.found and truth_label(face.label, incorrect_as_without) not in index:
            counts = split.setdefault(face.label, {name: 0 for name in class_names})
            counts[face.found_label] += 1
    if incorrect_as_without and INCORRECT_MASK not in split:
        mapped = [f for f in faces if f.label == INCORRECT_MASK and f.found]
        split[f"{INCORRECT_MASK} (scored as {WITHOUT_MASK})"] = {
            name: sum(f.predicted == name for f in mapped) for name in class_names
        }
    return split


def _classifier_by_size(
    scored: Sequence[FaceRecord], index: dict[str, int], class_names: Sequence[str], incorrect_as_without: bool
) -> dict[str, dict[str, Any]]:
    by_size = {}
    for name in BUCKET_NAMES:
        rows = [f for f in scored if f.bucket == name]
        if rows:
            with quiet_metrics():  # a bucket with faces of one class only is fine here
                sized = _classified(rows, index, class_names, incorrect_as_without)
            by_size[name] = {
                "faces": len(rows),
                "accuracy": sized["accuracy"],
                "balanced_accuracy": sized["balanced_accuracy"],
            } | violations_and_calibration(
                rows, [truth_label(f.label, incorrect_as_without) for f in rows], class_names
            )
    return by_size


# ------------------------------------------------------------------------------------------------ pipeline


def pipeline_figures(
    faces: Sequence[FaceRecord],
    detections: Sequence[DetectionRecord],
    results: Sequence[SceneResult],
    class_names: Sequence[str],
    classes: Sequence[str],
    incorrect_as_without: bool,
) -> Figures:
    """What happened to each annotated face, and the false alarms."""
    per_image = np.zeros(len(results), dtype=int)
    for d in detections:
        if d.false_alarm:
            per_image[d.image] += 1
    worst = np.argsort(-per_image, kind="stable")[:10]
    return {
        "outcomes_by_class": _ordered(_outcomes_by_class(faces, class_names, incorrect_as_without), classes),
        "false_alarms": int(per_image.sum()),
        "false_alarms_per_image": _ratio(per_image.sum(), len(results)),
        "images_with_false_alarms": int((per_image > 0).sum()),
        "most_false_alarms": [
            {"image": results[i].name, "false_alarms": int(per_image[i])} for i in worst if per_image[i] > 0
        ],
        "note": "crowded public photos leave some faces unannotated: some false alarms are real faces",
    }


def _outcomes_by_class(
    faces: Sequence[FaceRecord], class_names: Sequence[str], incorrect_as_without: bool
) -> dict[str, dict[str, int]]:
    by_class: dict[str, dict[str, int]] = {}
    for face in faces:
        entry = by_class.setdefault(face.label, {"faces": 0, "correct": 0, "wrong_label": 0, "missed": 0, "found": 0})
        entry["faces"] += 1
        entry[outcome(face, class_names, incorrect_as_without)] += 1
    for entry in by_class.values():
        if not entry["found"]:
            del entry["found"]
    return by_class


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / denominator if denominator else None


def _ordered(table: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    return {name: table[name] for name in order if name in table}
