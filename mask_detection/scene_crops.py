"""Annotated scene photos (PASCAL VOC, as labelImg or CVAT export them) -> training pictures cut like detection.

Annotators draw boxes differently from the detector (scenes-dev's sit lower, scenes-train's are tighter), so each
annotated face is cut around the detector's face box matched to it (one-to-one, best IoU first, IoU at least
``MATCH_IOU`` as in the evaluation), with the detection scale that photos get in the pipeline; only a face that no
detection matches is cut around its annotated box. Both go through ``crop.face_input``, the rule detection uses.

VOC files are read and boxes matched with the building blocks the evaluation uses too (``annotations``, ``boxes``,
``matching``), not with the evaluation itself: preparing training data depends on no evaluation code.
"""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import INPUT_SIZE
from .annotations.scene_set import load_scene_set
from .annotations.voc import Annotation
from .arrays import pixel_hash
from .boxes import XYWH, Box, clip_box, clip_gt_box
from .classes import REGISTRY, WITH_MASK, WITHOUT_MASK
from .crop import MIN_FACE_SIZE, SQUARE, face_input, style_landmarks
from .dataset import format_table
from .detections import Face
from .errors import ImageDecodeError, exception_line
from .fileio import display_path, safe_text
from .images import decode_photo
from .interfaces import FaceDetector
from .matching import DEFAULT_IOU, match_by_overlap

Warn = Callable[[str], None]

MATCH_IOU = DEFAULT_IOU  # a detection is the annotated face's when they overlap this much, as in the evaluation
SCENES_ONLY_CLASSES = (WITH_MASK, WITHOUT_MASK)  # the classes when there are no class folders to name them


@dataclass
class SceneClassCount:
    name: str
    matched: int = 0  # cut around the detector's box
    annotated: int = 0  # no detection matched: cut around the annotated box
    small: int = 0  # annotated box under crop.MIN_FACE_SIZE px: skipped, not a failure
    duplicates: int = 0  # the same crop pixels as an earlier crop

    @property
    def kept(self) -> int:
        return self.matched + self.annotated


@dataclass
class SceneSummary:
    """What one scenes folder gave: per class counts, and every face or file left out, by reason."""

    source: str  # "scenes:<folder>"
    classes: list[SceneClassCount]
    photos: int = 0  # photos read
    detector: bool = True  # faces cut around matched detections (False: around the annotated boxes)
    other_class: dict[str, int] = field(default_factory=dict)  # registered classes the arrays have no class for
    unknown_class: dict[str, int] = field(default_factory=dict)  # names no class is registered under
    outside: int = 0  # boxes wholly outside their photo
    bad_box: int = 0  # unusable <object>: zero-area box, missing or non-numeric coordinates
    missing_image: int = 0  # annotation files whose photo is not there
    malformed: int = 0  # annotation files that cannot be read
    undecodable: int = 0  # photos that cannot be decoded (or processed: out of memory, OpenCV error)

    def total(self, attribute: str) -> int:
        return sum(getattr(item, attribute) for item in self.classes)

    @property
    def broken(self) -> int:
        """Faces or files left out because something is wrong with them (small boxes and other classes are not)."""
        unknown = sum(self.unknown_class.values())
        return unknown + self.outside + self.bad_box + self.missing_image + self.malformed + self.undecodable


def scene_source(scenes_dir: str | Path) -> str:
    """The ``sources`` value of a scenes folder's pictures."""
    return f"scenes:{Path(scenes_dir).as_posix()}"


def build_scene_arrays(
    scenes_dir: str | Path,
    class_names: Sequence[str] = SCENES_ONLY_CLASSES,
    detector: FaceDetector | None = None,
    progress: bool = False,
    warn: Warn | None = None,
    size: int = INPUT_SIZE,
    crop: str = SQUARE,
) -> tuple[dict[str, np.ndarray], SceneSummary]:
    """One training picture per usable annotated face of ``scenes_dir`` (DIR/images + DIR/annotations).

    A face matched by a detection is cut around it in ``crop`` style; an unmatched one around its annotated box by
    the square rule (annotations have no landmarks).

    ``class_names``: the arrays' classes (VOC names go through the registry's aliases); faces of other registered
    classes and of unknown names are left out and counted. ``detector``: the face detector, built with the
    detection scale of photos (``detector.SMALL_PHOTO_UPSCALE``); None cuts every face around its annotated box.
    Returns ``(arrays, summary)``, arrays with the keys of ``arrays.ARRAY_KEYS`` plus ``sources`` and ``crop``; crops
    with the same pixels are kept once. Every face or file left out gets one ``warn`` line (small boxes: one line in
    all). Raises DatasetError when the folder holds no usable annotation file.
    """
    warn = warn or _no_warning
    scene_set = load_scene_set(scenes_dir, known_classes=tuple(class_names))
    counts = [SceneClassCount(name) for name in class_names]
    summary = SceneSummary(scene_source(scenes_dir), counts, detector=detector is not None)
    for kind in ("malformed", "missing_image", "bad_box"):
        messages = scene_set.problems[kind]
        setattr(summary, kind, len(messages))
        for message in messages:
            warn(f"skipped {message}")
    crops: dict[str, tuple[np.ndarray, int, str]] = {}  # pixel sha256 -> (model input, class index, path)
    scenes_root = Path(scenes_dir)
    with tqdm(scene_set.items, desc="scenes", unit="photo", file=sys.stderr, disable=not progress, leave=False) as bar:
        for annotation, image_path in bar:
            _count_left_out_classes(annotation, summary, warn)
            faces = _photo_crops(annotation, image_path, detector, summary, size, crop, warn)
            for index, class_index, face in faces:
                digest = pixel_hash(face)
                if digest in crops:
                    summary.classes[class_index].duplicates += 1
                    continue
                path = f"{_relative(image_path, scenes_root)}#{index}"
                crops[digest] = (face, class_index, path)
    if summary.total("small"):
        warn(f"{summary.total('small')} face(s) under {MIN_FACE_SIZE} px left out in {display_path(scenes_dir)}")
    arrays = _as_arrays(crops, class_names, summary.source, size)
    arrays["crop"] = np.asarray(crop if detector is not None else SQUARE)
    return arrays, summary


def _photo_crops(
    annotation: Annotation,
    image_path: Path,
    detector: FaceDetector | None,
    summary: SceneSummary,
    size: int,
    style: str,
    warn: Warn,
) -> list[tuple[int, int, np.ndarray]]:
    """(object index, class index, model input) of every usable face of one photo, in annotation order; the object
    index counts the file's faces of the arrays' classes."""
    try:
        rgb, full_shape = decode_photo(image_path)
    except ImageDecodeError as exc:
        summary.undecodable += 1
        warn(f"skipped {safe_text(str(exc))}")
        return []
    summary.photos += 1
    names = [item.name for item in summary.classes]
    faces = []  # (object index, class index, annotated box in the decoded photo's pixels)
    for index, truth in enumerate(annotation.objects):
        box = _inside_photo(truth.xywh, full_shape, rgb.shape)
        if box is None:
            summary.outside += 1
            x, y, w, h = truth.xywh
            warn(
                f"skipped {display_path(annotation.xml_path.name)}: {truth.label} box x={x:g} y={y:g} w={w:g} "
                f"h={h:g} lies wholly outside the {full_shape[1]}x{full_shape[0]} photo"
            )
        elif min(box[2:]) < MIN_FACE_SIZE:
            summary.classes[names.index(truth.label)].small += 1
        else:
            faces.append((index, names.index(truth.label), box))
    if not faces:
        return []
    try:
        detected = _matched_faces(rgb, [box for _, _, box in faces], detector)
    except (MemoryError, cv2.error) as exc:
        summary.undecodable += 1
        reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {exception_line(exc, last=True)}"
        warn(f"skipped {display_path(image_path)}: {reason}")
        return []
    out = []
    for (index, class_index, box), found in zip(faces, detected, strict=True):
        crop = face_input(rgb, found.xywh, size, landmarks=style_landmarks(found, style)) if found else None
        count = summary.classes[class_index]
        if crop is not None:
            count.matched += 1
        else:  # unmatched, or a detection too small to crop: the annotated box
            crop = face_input(rgb, box, size)
            assert crop is not None  # an annotated box inside the photo and MIN_FACE_SIZE or more always crops
            count.annotated += 1
        out.append((index, class_index, crop))
    return out


def _inside_photo(xywh: XYWH, full_shape: Sequence[int], shape: Sequence[int]) -> Box | None:
    """An annotated box clipped to its photo and put in the decoded photo's pixels; None when nothing is left."""
    x, y, w, h = clip_gt_box(xywh, int(full_shape[1]), int(full_shape[0]))
    if w <= 0 or h <= 0:
        return None
    fy, fx = shape[0] / full_shape[0], shape[1] / full_shape[1]  # a huge photo is decoded smaller
    return clip_box(x * fx, y * fy, w * fx, h * fy, shape)


def _matched_faces(rgb: np.ndarray, boxes: list[Box], detector: FaceDetector | None) -> list[Face | None]:
    """For each annotated box, the detector's face matched to it, or None (one-to-one, best IoU first)."""
    if detector is None:
        return [None] * len(boxes)
    detections = detector.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
    # Best overlap first over every (detection, face) pair, not by detector score as the evaluation does: a face
    # takes the detection that fits it best even when that detection also overlaps a neighbour.
    matched = match_by_overlap([face.xywh for face in detections], boxes, MATCH_IOU)
    return [None if d is None else detections[d] for d in matched]


def _count_left_out_classes(annotation: Annotation, summary: SceneSummary, warn: Warn) -> None:
    """Count (and warn once per face of an unknown name) the faces of classes the arrays have no class for."""
    for truth in annotation.unknown:
        if truth.label in REGISTRY:
            summary.other_class[truth.label] = summary.other_class.get(truth.label, 0) + 1
            continue
        summary.unknown_class[truth.label] = summary.unknown_class.get(truth.label, 0) + 1
        warn(
            f"skipped {display_path(annotation.xml_path.name)}: unknown class {safe_text(repr(truth.label))} "
            f"(known: {', '.join(item.name for item in summary.classes)})"
        )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _as_arrays(
    crops: dict[str, tuple[np.ndarray, int, str]], class_names: Sequence[str], source: str, size: int
) -> dict[str, np.ndarray]:
    count = len(crops)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for row, (crop, _, _) in enumerate(crops.values()):
        images[row] = crop
    return {
        "images": images,
        "labels": np.asarray([label for _, label, _ in crops.values()], dtype=np.int32),
        "class_names": np.asarray(list(class_names), dtype=str),
        "paths": np.asarray([path for _, _, path in crops.values()], dtype=str).reshape(count),
        "hashes": np.asarray(list(crops), dtype=str).reshape(count),
        "sources": np.full(count, source, dtype=f"<U{max(1, len(source))}"),
    }


def format_scene_summary(summary: SceneSummary) -> str:
    """The per-class table of one scenes folder and a line of what was left out, for the loader to print."""
    columns = ["matched", "annotated", "small", "duplicates", "kept"]
    headers = ["class", "detector box", "annotated box", f"under {MIN_FACE_SIZE} px", "duplicates", "kept"]
    rows = [[item.name] + [str(getattr(item, column)) for column in columns] for item in summary.classes]
    total = ["total"] + [str(summary.total(column)) for column in columns]
    how = "cut around the matched detector box, else the annotated box" if summary.detector else "annotated boxes"
    out = [f"{summary.source}: {summary.photos} photo(s), {how}", format_table(headers, rows, total)]
    left_out = [f"{count} {name} (not a class of these arrays)" for name, count in sorted(summary.other_class.items())]
    left_out += [
        f"{count} of unknown class {safe_text(repr(name))}" for name, count in sorted(summary.unknown_class.items())
    ]
    for attribute, what in (
        ("outside", "box(es) outside the photo"),
        ("bad_box", "unusable box(es) (zero area or bad coordinates)"),
        ("missing_image", "annotation file(s) without their photo"),
        ("malformed", "unreadable annotation file(s)"),
        ("undecodable", "photo(s) that could not be decoded or processed"),
    ):
        if getattr(summary, attribute):
            left_out.append(f"{getattr(summary, attribute)} {what}")
    if left_out:
        out.append("left out: " + "; ".join(left_out))
    return "\n".join(out)


def _no_warning(message: str) -> None:
    pass
