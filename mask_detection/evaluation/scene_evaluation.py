"""The scenes evaluation: photos with annotated faces through the same pipeline as detect_image, every figure
written to a report folder (report.json, summary.md, recall_by_size.png, a confusion matrix, a gallery)."""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..annotations.scene_set import SceneSet, load_scene_set, scene_folders, scene_inputs
from ..annotations.voc import SCENE_CLASSES
from ..boxes import BUCKET_NAMES
from ..classes import INCORRECT_MASK
from ..detector import SMALL_PHOTO_UPSCALE
from ..errors import DatasetError, MaskDetectionError
from ..fileio import display_path
from ..matching import DEFAULT_IOU
from ..metrics import plot_confusion_matrix
from ..pipeline import DEFAULT_FACE_CONFIDENCE, MaskPipeline, load_pipeline
from .plots import gallery_sections, plot_gallery, plot_recall_by_size
from .report import FileWriter, check_report_dir, default_report_dir, json_writer, text_writer, write_report_files
from .scenes import SceneResult, SceneRun, run_scenes
from .scoring import REPORTED_IOUS, SceneScores, maps_incorrect_to_without, outcome, score_scenes
from .summary import iou_key, scenes_markdown

Warn = Callable[[str], None]
Report = dict[str, Any]

SCENE_REPORT_FILES = ("report.json", "summary.md", "confusion_matrix.png", "recall_by_size.png", "gallery.png")


@dataclass(frozen=True)
class SceneSettings:
    """How the scenes were evaluated (report.json's "settings", in this order)."""

    iou: float
    face_confidence: float
    mask_threshold: float | None
    margin: float
    detection_upscale: float
    min_face: int
    incorrect_as_without: bool  # as applied: only for a model that cannot name mask_weared_incorrect
    detector: str


@dataclass(frozen=True)
class ScenesEvaluation:
    """What ``evaluate_scenes`` measured and wrote."""

    report_dir: Path
    report: Report  # report.json's content
    iou: float
    images: int
    faces: int  # annotated faces evaluated
    headline: Report  # the target slice's figures at ``iou``
    skipped: dict[str, list[str]]  # kind -> one message per file, box or photo left out

    @property
    def skipped_count(self) -> int:
        return sum(len(messages) for messages in self.skipped.values())


def evaluate_scenes(
    scenes_dir: str | Path,
    model_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    iou_threshold: float = DEFAULT_IOU,
    face_confidence: float | None = None,
    mask_threshold: float | None = None,
    incorrect_as_without: bool = False,
    progress: bool = False,
    threads: int | None = None,
    upscale: float | None = None,
    warn: Warn | None = None,
) -> ScenesEvaluation:
    """Evaluate the pipeline on ``scenes_dir`` (DIR/images + DIR/annotations, or VOC files beside the images).

    The report folder (default output/eval-<DIR name>) is checked before any slow work. Unusable annotations,
    boxes and photos are left out: ``warn`` hears of each, and the result lists them. ``progress``: a progress
    bar on stderr. ``incorrect_as_without``: score mask_weared_incorrect faces as without_mask (for a model that
    cannot name them).
    """
    warn = warn or _ignore
    if not 0.0 < iou_threshold <= 1.0:
        raise MaskDetectionError(f"the IoU threshold must be above 0 and at most 1, got {iou_threshold}")
    report_dir = Path(report_dir) if report_dir else default_report_dir(scenes_dir)
    scene_set = _load_checked_scene_set(scenes_dir, report_dir, warn)
    face_confidence = DEFAULT_FACE_CONFIDENCE if face_confidence is None else face_confidence
    upscale = SMALL_PHOTO_UPSCALE if upscale is None else upscale
    pipeline = load_pipeline(model_path, face_confidence, mask_threshold, threads=threads, upscale=upscale, warn=warn)
    mapped = _incorrect_mapping(pipeline.class_names, incorrect_as_without, warn)
    run = run_scenes(pipeline, scene_set, progress=progress, warn=warn)
    if not run.results:
        raise DatasetError(f"no scene image of {display_path(scenes_dir)} could be decoded")
    ious = sorted({float(iou_threshold), *REPORTED_IOUS})
    by_iou = {iou_key(v): score_scenes(run.results, pipeline.class_names, v, mapped) for v in ious}
    settings = _settings(pipeline, iou_threshold, face_confidence, mask_threshold, mapped)
    report = scene_report(scenes_dir, pipeline, settings, scene_set, run, by_iou)
    write_report_files(report_dir, _report_writers(report, run.results, by_iou, settings, pipeline.class_names))
    data = report["data"]
    return ScenesEvaluation(
        report_dir, report, float(iou_threshold), data["images"], data["faces"], report["headline"], data["skipped"]
    )


def _incorrect_mapping(class_names: list[str], incorrect_as_without: bool, warn: Warn) -> bool:
    """Whether mask_weared_incorrect faces are scored as without_mask; ``warn`` when asked for in vain."""
    if incorrect_as_without and INCORRECT_MASK in class_names:
        warn(
            f"{INCORRECT_MASK} faces are scored as a class of their own: the model names it (they are not "
            f"scored as without_mask)"
        )
    return maps_incorrect_to_without(class_names, incorrect_as_without)


def _load_checked_scene_set(scenes_dir: str | Path, report_dir: Path, warn: Warn) -> SceneSet:
    """The scene set, once the report folder is known to be writable and none of the inputs."""
    annotations_dir, images_dir = scene_folders(scenes_dir)
    # Before the slow part: an unwritable report folder, or one that is an input folder, fails at once.
    check_report_dir(report_dir, input_folders=[annotations_dir, images_dir])
    scene_set = load_scene_set(scenes_dir)
    check_report_dir(report_dir, input_files=scene_inputs(scene_set), report_files=SCENE_REPORT_FILES)
    for kind, messages in scene_set.problems.items():
        for message in messages:
            warn(f"skipped ({kind.replace('_', ' ')}): {message}")
    return scene_set


def _settings(
    pipeline: MaskPipeline, iou: float, face_confidence: float, mask_threshold: float | None, mapped: bool
) -> SceneSettings:
    return SceneSettings(
        iou=float(iou),
        face_confidence=face_confidence,
        mask_threshold=mask_threshold,
        margin=pipeline.margin,
        detection_upscale=pipeline.detector.upscale,
        min_face=pipeline.min_face,
        incorrect_as_without=mapped,
        detector=display_path(pipeline.detector.model_path),
    )


def scene_report(
    scenes_dir: str | Path,
    pipeline: MaskPipeline,
    settings: SceneSettings,
    scene_set: SceneSet,
    run: SceneRun,
    by_iou: dict[str, SceneScores],
) -> Report:
    """report.json's content: every figure at every IoU, and each face's and false alarm's record."""
    primary = by_iou[iou_key(settings.iou)]
    class_names = list(pipeline.class_names)
    return {
        "kind": "scenes",
        "scenes": display_path(scenes_dir),
        "model": None if pipeline.classifier.path is None else display_path(pipeline.classifier.path),
        "class_names": class_names,
        "settings": asdict(settings),
        "data": _data_figures(primary, scene_set, run),
        "timing": {"seconds_per_photo": run.seconds_per_photo},
        "headline": primary.headline,
        "by_iou": {key: scores.figures() for key, scores in by_iou.items()},
        "faces": face_json(run.results, primary, class_names, settings.incorrect_as_without),
        "false_alarms": false_alarm_json(run.results, primary),
    }


def _data_figures(primary: SceneScores, scene_set: SceneSet, run: SceneRun) -> Report:
    faces_by_class: dict[str, int] = {}
    faces_by_size: dict[str, int] = {}
    for face in primary.faces:
        faces_by_class[face.label] = faces_by_class.get(face.label, 0) + 1
        faces_by_size[face.bucket] = faces_by_size.get(face.bucket, 0) + 1
    class_order = SCENE_CLASSES + tuple(sorted(set(faces_by_class) - set(SCENE_CLASSES)))
    return {
        "images": len(run.results),
        "faces": len(primary.faces),
        "faces_by_class": {name: faces_by_class[name] for name in class_order if name in faces_by_class},
        "faces_by_size": {name: faces_by_size[name] for name in BUCKET_NAMES if name in faces_by_size},
        "skipped": {**scene_set.problems, "outside_image": list(run.outside), "undecodable": list(run.failed)},
        "unannotated_images": len(scene_set.unannotated_images),
    }


def face_json(
    results: list[SceneResult], scores: SceneScores, class_names: list[str], incorrect_as_without: bool
) -> list[Report]:
    """Every annotated face with its outcome (so any other figure can be computed from report.json)."""
    faces = []
    for f in scores.faces:
        d = f.detection
        faces.append(
            {
                "image": results[f.image].name,
                "box": [round(v, 1) for v in f.truth.xywh],
                "label": f.label,
                "size": round(f.size, 1),
                "outcome": outcome(f, class_names, incorrect_as_without),
                "predicted": f.predicted,
                "probability": None if d is None else round(d.probability, 4),
                "face_score": None if d is None else round(d.score, 4),
                "iou": None if f.iou is None else round(f.iou, 3),
                "detection_box": None if d is None else [int(v) for v in d.xywh],
            }
        )
    return faces


def false_alarm_json(results: list[SceneResult], scores: SceneScores) -> list[Report]:
    return [
        {
            "image": results[r.image].name,
            "box": [int(v) for v in r.detection.xywh],
            "face_score": round(r.detection.score, 4),
            "label": r.detection.class_name,
            "probability": round(r.detection.probability, 4),
        }
        for r in scores.detections
        if r.false_alarm
    ]


def _report_writers(
    report: Report,
    results: list[SceneResult],
    by_iou: dict[str, SceneScores],
    settings: SceneSettings,
    class_names: list[str],
) -> list[FileWriter]:
    primary = by_iou[iou_key(settings.iou)]
    writers: list[FileWriter] = [
        ("report.json", json_writer(report)),
        ("summary.md", text_writer(scenes_markdown(report))),
    ]
    if primary.classifier["faces"]:
        writers.append(
            (
                "confusion_matrix.png",
                lambda tmp: plot_confusion_matrix(
                    primary.classifier["confusion_matrix"],
                    class_names,
                    tmp,
                    title=f"Matched faces (IoU {settings.iou:g})",
                    in_place=True,
                ),
            )
        )
    sections = gallery_sections(results, primary, class_names, settings.incorrect_as_without)
    writers.append(("recall_by_size.png", lambda tmp: plot_recall_by_size(by_iou, tmp, settings.iou)))
    writers.append(("gallery.png", lambda tmp: plot_gallery(results, sections, tmp)))
    return writers


def _ignore(message: str) -> None:
    """The default ``warn``: every message is in the result too."""
