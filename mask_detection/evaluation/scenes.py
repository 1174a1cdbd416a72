"""Scenes: pairing every VOC file with its photo, and running the detection pipeline over them."""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from ..detections import Detection
from ..errors import DatasetError, ImageDecodeError, exception_line
from ..fileio import display_path, safe_text
from ..images import IMAGE_EXTENSIONS, decode_image, list_images
from ..pipeline import MaskPipeline
from .voc import SCENE_CLASSES, Annotation, AnnotationError, GroundTruth, clip_gt_box, parse_voc

Warn = Callable[[str], None]

# The kinds of annotation problems, in the report's order.
PROBLEM_KINDS = ("malformed", "missing_image", "unknown_class", "bad_box")


@dataclass(frozen=True)
class SceneSet:
    items: list[tuple[Annotation, Path]]  # (annotation, its image), sorted by annotation file name
    problems: dict[str, list[str]]  # kind (PROBLEM_KINDS) -> one-line messages
    unannotated_images: list[Path]  # image files that no annotation names


@dataclass(frozen=True)
class SceneResult:
    """One photo after the pipeline ran on it."""

    name: str  # image file name, printable
    path: Path | None
    shape: tuple[int, int]  # (height, width)
    faces: list[GroundTruth]  # evaluated
    ignored: list[GroundTruth]  # of unknown classes: a detection on them is neither a hit nor a false alarm
    detections: list[Detection]  # best face score first


@dataclass
class SceneRun:
    """What running the pipeline over a scene set gave."""

    results: list[SceneResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # photos that could not be decoded or processed
    outside: list[str] = field(default_factory=list)  # annotated boxes wholly outside their photo (not evaluated)
    seconds: float = 0.0  # in the pipeline alone, over every result

    @property
    def seconds_per_photo(self) -> float:
        return self.seconds / max(1, len(self.results))


def scene_folders(scenes_dir: str | Path) -> tuple[Path, Path]:
    """(annotations folder, images folder): DIR/annotations + DIR/images, or XML files beside the images."""
    scenes_dir = Path(scenes_dir)
    if not scenes_dir.exists():
        raise DatasetError(f"scenes folder not found: {display_path(scenes_dir)}")
    if not scenes_dir.is_dir():
        raise DatasetError(f"scenes path is not a folder: {display_path(scenes_dir)}")
    annotations = scenes_dir / "annotations" if (scenes_dir / "annotations").is_dir() else scenes_dir
    images = scenes_dir / "images" if (scenes_dir / "images").is_dir() else scenes_dir
    return annotations, images


def load_scene_set(scenes_dir: str | Path, known_classes: tuple[str, ...] = SCENE_CLASSES) -> SceneSet:
    """Pair every VOC file with its image. Unusable files are listed in ``problems``, not raised.

    Raises DatasetError when the folder is missing or holds no annotation files, or when none is usable.
    """
    annotations_dir, images_dir = scene_folders(scenes_dir)
    xml_files = _annotation_files(scenes_dir, annotations_dir)
    problems: dict[str, list[str]] = {kind: [] for kind in PROBLEM_KINDS}
    items = []
    for xml_path in xml_files:
        item = _pair_with_image(xml_path, images_dir, known_classes, problems)
        if item is not None:
            items.append(item)
    if not items:
        first = next((m for kind in problems.values() for m in kind), "")
        raise DatasetError(
            f"no usable annotation in {display_path(annotations_dir)} ({len(xml_files)} files; first problem: {first})"
        )
    return SceneSet(items, problems, _unannotated_images(images_dir, {image.resolve() for _, image in items}))


def scene_inputs(scene_set: SceneSet) -> list[Path]:
    """Every file a scenes run reads: the annotation files and their images."""
    return [path for annotation, image in scene_set.items for path in (annotation.xml_path, image)]


def _annotation_files(scenes_dir: str | Path, annotations_dir: Path) -> list[Path]:
    try:
        # Not only regular files: a broken link or a link loop named *.xml is reported, not passed over.
        xml_files = sorted(p for p in annotations_dir.iterdir() if p.suffix.lower() == ".xml" and not p.is_dir())
    except OSError as exc:
        raise DatasetError(f"cannot read {display_path(annotations_dir)}: {exc.strerror or exc}") from None
    if not xml_files:
        raise DatasetError(
            f"no PASCAL VOC annotation files (*.xml) in {display_path(annotations_dir)}: expected "
            f"{display_path(scenes_dir)}/images and {display_path(scenes_dir)}/annotations"
        )
    return xml_files


def _pair_with_image(
    xml_path: Path, images_dir: Path, known_classes: tuple[str, ...], problems: dict[str, list[str]]
) -> tuple[Annotation, Path] | None:
    """(annotation, image), or None with the reason added to ``problems``; the file's own problems too."""
    shown = display_path(xml_path.name)
    try:
        annotation = parse_voc(xml_path, known_classes)
    except AnnotationError as exc:
        problems["malformed"].append(safe_text(exc))
        return None
    image_path = _find_image(images_dir, annotation)
    if image_path is None:
        named = annotation.filename or f"{xml_path.stem}.*"
        problems["missing_image"].append(f"{shown}: image {safe_text(named)} not found in {display_path(images_dir)}")
        return None
    problems["bad_box"].extend(safe_text(message) for message in annotation.bad)
    for unknown in annotation.unknown:
        problems["unknown_class"].append(
            f"{shown}: unknown class {safe_text(repr(unknown.label))} (known: {', '.join(known_classes)}); "
            f"that face is not evaluated"
        )
    return annotation, image_path


def _find_image(images_dir: Path, annotation: Annotation) -> Path | None:
    """The image an annotation describes: its <filename>, else any image with the XML's stem."""
    if annotation.filename:
        named = images_dir / Path(annotation.filename).name
        if named.is_file():
            return named
    stems = [Path(annotation.filename).stem] if annotation.filename else []
    stems.append(annotation.xml_path.stem)
    for stem in stems:
        for ext in IMAGE_EXTENSIONS:
            for candidate in (images_dir / f"{stem}{ext}", images_dir / f"{stem}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def _unannotated_images(images_dir: Path, used: set[Path]) -> list[Path]:
    if not images_dir.is_dir():
        return []
    try:
        return [p for p in list_images(images_dir) if p.resolve() not in used]
    except (ImageDecodeError, OSError):  # only counted in the report: not worth stopping the run for
        return []


# ------------------------------------------------------------------------------------------------ running


def run_scenes(
    pipeline: MaskPipeline, scene_set: SceneSet, progress: bool = False, warn: Warn | None = None
) -> SceneRun:
    """Run ``pipeline`` on every scene (``progress``: a progress bar on stderr).

    A photo that cannot be decoded or processed (out of memory, an OpenCV error) is one failed photo: the run
    goes on. ``warn`` hears of each failed photo and each annotated box wholly outside its photo.
    """
    warn = warn or _ignore
    run = SceneRun()
    with tqdm(scene_set.items, desc="scenes", unit="photo", file=sys.stderr, disable=not progress, leave=False) as bar:
        for annotation, image_path in bar:
            _run_scene(pipeline, annotation, image_path, run, warn)
    return run


def _run_scene(pipeline: MaskPipeline, annotation: Annotation, image_path: Path, run: SceneRun, warn: Warn) -> None:
    """Add one photo's result, or the reason it failed, to ``run``."""
    shown = display_path(annotation.xml_path.name)
    try:
        rgb = decode_image(image_path)
    except ImageDecodeError as exc:
        run.failed.append(safe_text(f"{shown}: {exc}"))
        warn(f"skipped: {exc}")
        return
    height, width = rgb.shape[:2]
    faces = _faces_inside_photo(annotation, shown, width, height, run, warn)
    ignored = [GroundTruth(clip_gt_box(g.xywh, width, height), g.label) for g in annotation.unknown]
    try:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        del rgb
        started = time.perf_counter()
        detections = pipeline.process(bgr)
        run.seconds += time.perf_counter() - started
    except (MemoryError, cv2.error) as exc:
        # One photo too big for memory (or that OpenCV rejects) is one failed photo, not a lost run.
        reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {exception_line(exc, last=True)}"
        message = f"{display_path(image_path)}: {reason}"
        run.failed.append(safe_text(f"{shown}: {message}"))
        warn(f"skipped: {message}")
        return
    run.results.append(
        SceneResult(display_path(image_path.name), image_path, (height, width), faces, ignored, detections)
    )


def _faces_inside_photo(
    annotation: Annotation, shown: str, width: int, height: int, run: SceneRun, warn: Warn
) -> list[GroundTruth]:
    """The annotated faces clipped to the photo; a box wholly outside it is not evaluated (added to ``run``)."""
    faces = []
    for g in annotation.objects:
        clipped = GroundTruth(clip_gt_box(g.xywh, width, height), g.label)
        if clipped.xywh[2] > 0 and clipped.xywh[3] > 0:
            faces.append(clipped)
            continue
        x, y, w, h = g.xywh
        message = (
            f"{shown}: {g.label} box x={x:g} y={y:g} w={w:g} h={h:g} lies wholly outside the "
            f"{width}x{height} photo; that face is not evaluated"
        )
        run.outside.append(safe_text(message))
        warn(message)
    return faces


def _ignore(message: str) -> None:
    """The default ``warn``: the messages are in the returned result anyway."""
