"""Scenes: running the detection pipeline over a scene set (``annotations.scene_set`` pairs each VOC file with
its photo)."""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from ..annotations.scene_set import SceneSet
from ..annotations.voc import Annotation, GroundTruth
from ..boxes import clip_gt_box
from ..detections import Detection
from ..errors import ImageDecodeError, exception_line
from ..fileio import display_path, safe_text
from ..images import decode_image
from ..pipeline import MaskPipeline

Warn = Callable[[str], None]


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
