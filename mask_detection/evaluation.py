"""Honest accuracy: labelled folders of face crops, and real scenes with PASCAL VOC boxes.

Scenes go through the same pipeline as ``detect_image.py`` (``pipeline.MaskPipeline``); detections are matched
one-to-one to the annotated faces, highest detector score first, and every figure is written to a report folder
(JSON, Markdown, PNG plots, a gallery of what went wrong).
"""

import contextlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DatasetError, ImageDecodeError, MaskDetectionError, OutputError
from .fileio import display_path, safe_text

SCENE_CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")
INCORRECT_CLASS = "mask_weared_incorrect"
WITHOUT_CLASS = "without_mask"

# IoU 0.3 by default: on real scene sets annotators' boxes sit lower than detector boxes (chin included, brow
# left out), so at 0.5 many faces a good detector found count as misses. 0.5 is always reported too.
DEFAULT_IOU = 0.3
REPORTED_IOUS = (0.3, 0.5)

# Face size = the short side of the annotated box, in pixels of the original photo.
SIZE_BUCKETS = (("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), (">=64", 64, math.inf))
HEADLINE_MIN_FACE = 32
TARGETS = {"detection_recall": 0.95, "unmatched_per_image": 1.0, "balanced_accuracy": 0.97}

GALLERY_PER_SECTION = 12


class AnnotationError(DatasetError):
    """A VOC file, or one <object> of it, that cannot be used (malformed XML, missing fields, empty boxes)."""


def _default_warn(message):
    """One warning line on stderr, above a running progress bar, printable whatever the names' bytes."""
    from tqdm import tqdm

    stream = sys.stderr
    text = safe_text(f"warning: {message}")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    with contextlib.suppress(LookupError):
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    tqdm.write(text, file=stream)


@contextlib.contextmanager
def _quiet_metrics():
    """Silence scikit-learn's UserWarnings (UndefinedMetricWarning, "y_pred contains classes not in y_true", "a
    single label was found") on slices holding one class: the report already shows such figures as 0 or n/a."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


class GroundTruth(NamedTuple):
    box: tuple  # (x, y, w, h) floats, clipped to the image when its size is known
    label: str


class Annotation(NamedTuple):
    xml_path: Path
    filename: str  # the image file named in the XML ("" when it names none)
    width: int  # 0 when the XML gives no size
    height: int
    objects: list  # GroundTruth with known class names
    unknown: list  # GroundTruth with class names outside ``known_classes`` (not evaluated)
    bad: tuple = ()  # one message per <object> left out (no box, empty box, not a number): the rest is kept


# ------------------------------------------------------------------------------------------------ geometry


def box_size(box):
    """The short side of an (x, y, w, h) box."""
    return min(box[2], box[3])


def size_bucket(box):
    short = box_size(box)
    for name, low, high in SIZE_BUCKETS:
        if low <= short < high:
            return name
    return SIZE_BUCKETS[-1][0]


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes; 0 for empty boxes."""
    ax, ay, aw, ah = map(float, a)
    bx, by, bw, bh = map(float, b)
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(det_boxes, gt_boxes):
    """(n_det, n_gt) IoU matrix."""
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(det) == 0 or len(gt) == 0:
        return np.zeros((len(det), len(gt)))
    x0 = np.maximum(det[:, None, 0], gt[None, :, 0])
    y0 = np.maximum(det[:, None, 1], gt[None, :, 1])
    x1 = np.minimum(det[:, None, 0] + det[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    y1 = np.minimum(det[:, None, 1] + det[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (det[:, 2] * det[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_detections(det_boxes, det_scores, gt_boxes, iou_threshold):
    """One-to-one greedy matching: list with the matched ground-truth index (or None) for each detection.

    Detections are taken highest score first (equal scores: in the given order); each takes the still free
    ground-truth box it overlaps most (equal IoU: the lower index), if that IoU is at least ``iou_threshold``.
    A second detection of an already matched face stays unmatched, as in PASCAL VOC and COCO.
    """
    n_det = len(det_boxes)
    matched = [None] * n_det
    if n_det == 0 or len(gt_boxes) == 0:
        return matched
    overlaps = iou_matrix(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    order = sorted(range(n_det), key=lambda i: -float(det_scores[i]))  # sorted() is stable: ties keep order
    for d in order:
        candidates = np.where(taken, -1.0, overlaps[d])
        g = int(np.argmax(candidates))  # first maximum: the lower index on ties
        if candidates[g] >= iou_threshold and candidates[g] > 0:
            matched[d] = g
            taken[g] = True
    return matched


# ------------------------------------------------------------------------------------------------ VOC files


def _text(element, tag):
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _number(element, tag, where):
    text = _text(element, tag)
    if text is None:
        raise AnnotationError(f"{where}: missing <{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: <{tag}> is not a number ({text[:20]!r})") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: <{tag}> is not a finite number ({text[:20]!r})")
    return value


def clip_gt_box(box, width, height):
    """Clip (x, y, w, h) to a width x height image (some annotations reach a pixel past the edge)."""
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def parse_voc(path, known_classes=SCENE_CLASSES):
    """Read one PASCAL VOC annotation file. Raises AnnotationError with the reason for unusable files.

    Box convention: width = xmax - xmin (as the public mask sets draw them). Objects whose class is not in
    ``known_classes`` go to ``unknown``. An unusable <object> (no <name> or <bndbox>, a coordinate that is not a
    number, an empty box) is left out with its reason in ``bad``; the file's other faces are kept.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    shown = display_path(path.name)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(f"{shown}: malformed XML ({exc})") from None
    except OSError as exc:
        raise AnnotationError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding declaration Python does not know
        raise AnnotationError(f"{shown}: malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{shown}: not a PASCAL VOC file (root element <{root.tag}>, expected <annotation>)")
    filename = _text(root, "filename") or ""
    width = height = 0
    size = root.find("size")
    if size is not None and _text(size, "width") is not None and _text(size, "height") is not None:
        width = int(_number(size, "width", f"{shown} <size>"))
        height = int(_number(size, "height", f"{shown} <size>"))
    objects, unknown, bad = [], [], []
    for n, obj in enumerate(root.iter("object"), 1):
        try:
            name, box = _voc_object(obj, f"{shown} object {n}")
        except AnnotationError as exc:
            bad.append(f"{exc}; that object is left out")
            continue
        if width > 0 and height > 0:
            box = clip_gt_box(box, width, height)
        (objects if name in known_classes else unknown).append(GroundTruth(box, name))
    return Annotation(path, filename, width, height, objects, unknown, tuple(bad))


def _voc_object(obj, where):
    """(class name, (x, y, w, h)) of one <object>; AnnotationError when it cannot be used."""
    name = _text(obj, "name")
    if not name:
        raise AnnotationError(f"{where}: missing <name>")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise AnnotationError(f"{where} ({name}): missing <bndbox>")
    x0, y0, x1, y1 = (_number(bndbox, tag, f"{where} ({name})") for tag in ("xmin", "ymin", "xmax", "ymax"))
    if x1 <= x0 or y1 <= y0:
        raise AnnotationError(f"{where} ({name}): empty box xmin={x0:g} ymin={y0:g} xmax={x1:g} ymax={y1:g}")
    return name, (x0, y0, x1 - x0, y1 - y0)


class SceneSet(NamedTuple):
    items: list  # (Annotation, image path), sorted by annotation file name
    problems: dict  # kind -> list of one-line messages ("malformed", "missing_image", "unknown_class", ...)
    unannotated_images: list  # image files that no annotation names


def _layout(scenes_dir):
    """(annotations folder, images folder): DIR/annotations + DIR/images, or XML files beside the images."""
    scenes_dir = Path(scenes_dir)
    if not scenes_dir.exists():
        raise DatasetError(f"scenes folder not found: {display_path(scenes_dir)}")
    if not scenes_dir.is_dir():
        raise DatasetError(f"scenes path is not a folder: {display_path(scenes_dir)}")
    annotations = scenes_dir / "annotations" if (scenes_dir / "annotations").is_dir() else scenes_dir
    images = scenes_dir / "images" if (scenes_dir / "images").is_dir() else scenes_dir
    return annotations, images


def _find_image(images_dir, annotation):
    """The image an annotation describes: its <filename>, else any image with the XML's stem."""
    from .images import IMAGE_EXTENSIONS

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


def load_scene_set(scenes_dir, known_classes=SCENE_CLASSES):
    """Pair every VOC file with its image. Unusable files are listed in ``problems``, not raised.

    Raises DatasetError when the folder is missing or holds no annotation files, or when none is usable.
    """
    from .images import list_images

    annotations_dir, images_dir = _layout(scenes_dir)
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
    problems = {"malformed": [], "missing_image": [], "unknown_class": [], "bad_box": []}
    items, used = [], set()
    for xml_path in xml_files:
        shown = display_path(xml_path.name)
        try:
            annotation = parse_voc(xml_path, known_classes)
        except AnnotationError as exc:
            problems["malformed"].append(safe_text(exc))
            continue
        image_path = _find_image(images_dir, annotation)
        if image_path is None:
            named = annotation.filename or f"{xml_path.stem}.*"
            problems["missing_image"].append(
                f"{shown}: image {safe_text(named)} not found in {display_path(images_dir)}")
            continue
        problems["bad_box"].extend(safe_text(message) for message in annotation.bad)
        for obj in annotation.unknown:
            problems["unknown_class"].append(
                f"{shown}: unknown class {safe_text(repr(obj.label))} (known: {', '.join(known_classes)}); "
                f"that face is not evaluated"
            )
        items.append((annotation, image_path))
        used.add(image_path.resolve())
    if not items:
        first = next((m for kind in problems.values() for m in kind), "")
        raise DatasetError(f"no usable annotation in {display_path(annotations_dir)} ({len(xml_files)} files; "
                           f"first problem: {first})")
    try:
        unannotated = [p for p in list_images(images_dir) if p.resolve() not in used] if images_dir.is_dir() else []
    except (ImageDecodeError, OSError):  # only counted in the report: not worth stopping the run for
        unannotated = []
    return SceneSet(items, problems, unannotated)


def scene_inputs(scene_set):
    """Every file a scenes run reads: the annotation files and their images."""
    return [path for annotation, image in scene_set.items for path in (annotation.xml_path, image)]


# ------------------------------------------------------------------------------------------------ running


class SceneResult(NamedTuple):
    name: str  # image file name
    path: Path
    shape: tuple  # (height, width)
    faces: list  # GroundTruth (evaluated)
    ignored: list  # GroundTruth of unknown classes: a detection on them is neither a hit nor a false alarm
    detections: list  # pipeline.Detection, best face score first


def run_scenes(pipeline, scene_set, progress=True, warn=None):
    """Run ``pipeline`` on every scene.

    Returns (results, failed photo messages, seconds per photo, messages for annotated boxes wholly outside
    their photo). A photo that cannot be decoded or processed (out of memory, an OpenCV error) is one failed
    photo: the run goes on.
    """
    import cv2
    from tqdm import tqdm

    from .images import decode_image

    warn = warn or _default_warn
    results, failed, outside = [], [], []
    seconds = 0.0
    bar = tqdm(scene_set.items, desc="scenes", unit="photo", file=sys.stderr, disable=not progress, leave=False)
    for annotation, image_path in bar:
        shown = display_path(annotation.xml_path.name)
        try:
            rgb = decode_image(image_path)
        except ImageDecodeError as exc:
            failed.append(safe_text(f"{shown}: {exc}"))
            warn(f"skipped: {exc}")
            continue
        height, width = rgb.shape[:2]
        faces = []
        for g in annotation.objects:
            clipped = GroundTruth(clip_gt_box(g.box, width, height), g.label)
            if clipped.box[2] > 0 and clipped.box[3] > 0:
                faces.append(clipped)
                continue
            x, y, w, h = g.box
            message = (f"{shown}: {g.label} box x={x:g} y={y:g} w={w:g} h={h:g} lies wholly outside the "
                       f"{width}x{height} photo; that face is not evaluated")
            outside.append(safe_text(message))
            warn(message)
        ignored = [GroundTruth(clip_gt_box(g.box, width, height), g.label) for g in annotation.unknown]
        try:
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            del rgb
            started = time.perf_counter()
            detections = pipeline.process(bgr)
            seconds += time.perf_counter() - started
        except (MemoryError, cv2.error) as exc:
            # One photo too big for memory (or that OpenCV rejects) is one failed photo, not a lost run.
            reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {_last_line(exc)}"
            message = f"{display_path(image_path)}: {reason}"
            failed.append(safe_text(f"{shown}: {message}"))
            warn(f"skipped: {message}")
            continue
        results.append(SceneResult(display_path(image_path.name), image_path, (height, width), faces, ignored, detections))
    bar.close()
    return results, failed, seconds / max(1, len(results)), outside


def _last_line(exc):
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# ------------------------------------------------------------------------------------------------ scoring


def _ratio(numerator, denominator):
    return float(numerator) / denominator if denominator else None


def truth_label(label, incorrect_as_without):
    """The class a ground-truth face is scored against (None: not scored by the classifier)."""
    if label == INCORRECT_CLASS and incorrect_as_without:
        return WITHOUT_CLASS
    return label


def match_scenes(results, iou_threshold):
    """Per-face and per-detection records for every scene at one IoU threshold."""
    faces, detections = [], []
    for image_index, result in enumerate(results):
        det_boxes = [d.box for d in result.detections]
        det_scores = [d.score for d in result.detections]
        gt_boxes = [g.box for g in result.faces]
        matched = match_detections(det_boxes, det_scores, gt_boxes, iou_threshold)
        overlaps = iou_matrix(det_boxes, gt_boxes)
        by_face = {g: d for d, g in enumerate(matched) if g is not None}
        for g, truth in enumerate(result.faces):
            d = by_face.get(g)
            det = result.detections[d] if d is not None else None
            faces.append({
                "image": image_index,
                "box": truth.box,
                "label": truth.label,
                "size": box_size(truth.box),
                "bucket": size_bucket(truth.box),
                "detection": d,
                "iou": float(overlaps[d, g]) if d is not None else None,
                "predicted": det.label if det is not None else None,
                "probability": det.probability if det is not None else None,
                "score": det.score if det is not None else None,
                "det_box": tuple(det.box) if det is not None else None,
            })
        ignored_boxes = [g.box for g in result.ignored]
        ignore_overlap = iou_matrix(det_boxes, ignored_boxes)
        for d, det in enumerate(result.detections):
            on_ignored = matched[d] is None and ignore_overlap.shape[1] > 0 and ignore_overlap[d].max() >= iou_threshold
            detections.append({
                "image": image_index,
                "box": tuple(det.box),
                "score": det.score,
                "label": det.label,
                "probability": det.probability,
                "face": matched[d],
                "ignored": bool(on_ignored),
                "bucket": size_bucket(det.box),
            })
    return faces, detections


def _recall_table(faces, key):
    table = {}
    for face in faces:
        entry = table.setdefault(face[key], {"faces": 0, "found": 0})
        entry["faces"] += 1
        entry["found"] += face["detection"] is not None
    for entry in table.values():
        entry["recall"] = _ratio(entry["found"], entry["faces"])
    return table


def _ordered(table, order):
    return {name: table[name] for name in order if name in table}


def detector_figures(faces, detections, classes):
    buckets = [name for name, _, _ in SIZE_BUCKETS]
    counted = [d for d in detections if not d["ignored"]]
    matched = sum(d["face"] is not None for d in counted)
    by_det_bucket = {}
    for d in counted:
        entry = by_det_bucket.setdefault(d["bucket"], {"detections": 0, "matched": 0})
        entry["detections"] += 1
        entry["matched"] += d["face"] is not None
    for entry in by_det_bucket.values():
        entry["precision"] = _ratio(entry["matched"], entry["detections"])
    by_class_size = {}
    for label in classes:
        rows = [f for f in faces if f["label"] == label]
        if rows:
            by_class_size[label] = _ordered(_recall_table(rows, "bucket"), buckets)
    return {
        "faces": len(faces),
        "found": sum(f["detection"] is not None for f in faces),
        "recall": _ratio(sum(f["detection"] is not None for f in faces), len(faces)),
        "detections": len(counted),
        "detections_on_unknown_class": len(detections) - len(counted),
        "matched_detections": matched,
        "precision": _ratio(matched, len(counted)),
        "recall_by_class": _ordered(_recall_table(faces, "label"), classes),
        "recall_by_size": _ordered(_recall_table(faces, "bucket"), buckets),
        "recall_by_class_and_size": by_class_size,
        "precision_by_detection_size": _ordered(by_det_bucket, buckets),
        "precision_note": "precision per size bucket uses the detection's own box size; detections carry no "
        "ground-truth class until matched, so precision is not split by class",
    }


def offset_figures(faces):
    """Where detector boxes sit relative to the annotated boxes of the faces they matched."""
    pairs = [f for f in faces if f["det_box"] is not None]
    if not pairs:
        return {"pairs": 0}
    gt = np.array([f["box"] for f in pairs], dtype=np.float64)
    det = np.array([f["det_box"] for f in pairs], dtype=np.float64)
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
        "median_iou": float(np.median([f["iou"] for f in pairs])),
        "units": "centre offsets in units of the annotated box height; dy > 0: detector box centre lower than "
        "the annotation's; ratios: detector / annotation",
    }


def classifier_figures(faces, class_names, incorrect_as_without):
    """Classifier on matched faces whose (mapped) class the model knows; other classes as a label split."""
    from .metrics import classification_figures

    index = {name: i for i, name in enumerate(class_names)}
    y_true, y_pred, split = [], [], {}
    for face in faces:
        if face["detection"] is None:
            continue
        truth = truth_label(face["label"], incorrect_as_without)
        if truth in index:
            y_true.append(index[truth])
            y_pred.append(index[face["predicted"]])
        else:
            counts = split.setdefault(face["label"], {name: 0 for name in class_names})
            counts[face["predicted"]] += 1
    with _quiet_metrics():
        figures = classification_figures(y_true, y_pred, class_names) if y_true else {"faces": 0}
    figures["faces"] = len(y_true)
    figures["accuracy_by_class"] = {
        name: entry["recall"] for name, entry in figures.get("per_class", {}).items() if entry["support"]
    }
    figures["labels_given_to_other_classes"] = split
    by_size = {}
    for name, _, _ in SIZE_BUCKETS:
        rows = [f for f in faces if f["detection"] is not None and f["bucket"] == name
                and truth_label(f["label"], incorrect_as_without) in index]
        if rows:
            with _quiet_metrics():  # a bucket with faces of one class only is fine here
                sized = classification_figures([index[truth_label(f["label"], incorrect_as_without)] for f in rows],
                                               [index[f["predicted"]] for f in rows], class_names)
            by_size[name] = {"faces": len(rows), "accuracy": sized["accuracy"],
                             "balanced_accuracy": sized["balanced_accuracy"]}
    figures["by_size"] = by_size
    if INCORRECT_CLASS not in split and incorrect_as_without:
        mapped = [f for f in faces if f["label"] == INCORRECT_CLASS and f["detection"] is not None]
        figures["labels_given_to_other_classes"][f"{INCORRECT_CLASS} (scored as {WITHOUT_CLASS})"] = {
            name: sum(f["predicted"] == name for f in mapped) for name in class_names
        }
    return figures


def outcome(face, class_names, incorrect_as_without):
    """"missed", "correct", "wrong_label", or "found" for faces of a class the model cannot name."""
    if face["detection"] is None:
        return "missed"
    truth = truth_label(face["label"], incorrect_as_without)
    if truth not in class_names:
        return "found"
    return "correct" if face["predicted"] == truth else "wrong_label"


def pipeline_figures(faces, detections, results, class_names, classes, incorrect_as_without):
    by_class = {}
    for face in faces:
        entry = by_class.setdefault(face["label"], {"faces": 0, "correct": 0, "wrong_label": 0, "missed": 0, "found": 0})
        entry["faces"] += 1
        entry[outcome(face, class_names, incorrect_as_without)] += 1
    for entry in by_class.values():
        if not entry["found"]:
            del entry["found"]
    per_image = np.zeros(len(results), dtype=int)
    for d in detections:
        if d["face"] is None and not d["ignored"]:
            per_image[d["image"]] += 1
    worst = np.argsort(-per_image, kind="stable")[:10]
    return {
        "outcomes_by_class": _ordered(by_class, classes),
        "false_alarms": int(per_image.sum()),
        "false_alarms_per_image": _ratio(per_image.sum(), len(results)),
        "images_with_false_alarms": int((per_image > 0).sum()),
        "most_false_alarms": [
            {"image": results[i].name, "false_alarms": int(per_image[i])} for i in worst if per_image[i] > 0
        ],
        "note": "crowded public photos leave some faces unannotated: some false alarms are real faces",
    }


def headline_figures(faces, detections, n_images, class_names, min_face=HEADLINE_MIN_FACE):
    """The target slice: faces >= min_face px (short side), mask_weared_incorrect left out."""
    from .metrics import classification_figures

    sliced = [f for f in faces if f["size"] >= min_face and f["label"] != INCORRECT_CLASS]
    found = [f for f in sliced if f["detection"] is not None]
    unmatched = sum(d["face"] is None and not d["ignored"] for d in detections)
    index = {name: i for i, name in enumerate(class_names)}
    scored = [f for f in found if f["label"] in index]
    balanced = None
    if scored:
        with _quiet_metrics():
            balanced = classification_figures(
                [index[f["label"]] for f in scored], [index[f["predicted"]] for f in scored], class_names
            )["balanced_accuracy"]
    figures = {
        "slice": f"faces >= {min_face} px on the short side, {INCORRECT_CLASS} left out",
        "faces": len(sliced),
        "detection_recall": _ratio(len(found), len(sliced)),
        "unmatched_per_image": _ratio(unmatched, n_images),
        "balanced_accuracy": balanced,
        "pipeline_correct": _ratio(sum(f["predicted"] == f["label"] for f in scored), len(sliced)),
    }
    figures["targets"] = dict(TARGETS)
    figures["meets_targets"] = bool(
        figures["detection_recall"] is not None
        and figures["detection_recall"] >= TARGETS["detection_recall"]
        and figures["unmatched_per_image"] <= TARGETS["unmatched_per_image"]
        and balanced is not None
        and balanced >= TARGETS["balanced_accuracy"]
    )
    return figures


def score_scenes(results, class_names, iou_threshold=DEFAULT_IOU, incorrect_as_without=False,
                 classes=SCENE_CLASSES):
    """Every figure for one IoU threshold, plus the matched records (``_faces``, ``_detections``)."""
    class_names = list(class_names)
    faces, detections = match_scenes(results, iou_threshold)
    return {
        "iou": iou_threshold,
        "headline": headline_figures(faces, detections, len(results), class_names),
        "detector": detector_figures(faces, detections, classes),
        "box_offsets": offset_figures(faces),
        "classifier": classifier_figures(faces, class_names, incorrect_as_without),
        "pipeline": pipeline_figures(faces, detections, results, class_names, classes, incorrect_as_without),
        "_faces": faces,
        "_detections": detections,
    }


# ------------------------------------------------------------------------------------------------ report


def _pct(value, digits=1):
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _iou_key(value):
    return f"{value:g}"


def _public(figures):
    return {k: v for k, v in figures.items() if not k.startswith("_")}


def face_records(results, figures, class_names, incorrect_as_without):
    """Per-face and false-alarm lists for the JSON (so any other figure can be computed from it)."""
    faces = []
    for f in figures["_faces"]:
        faces.append({
            "image": results[f["image"]].name,
            "box": [round(v, 1) for v in f["box"]],
            "label": f["label"],
            "size": round(f["size"], 1),
            "outcome": outcome(f, class_names, incorrect_as_without),
            "predicted": f["predicted"],
            "probability": None if f["probability"] is None else round(f["probability"], 4),
            "face_score": None if f["score"] is None else round(f["score"], 4),
            "iou": None if f["iou"] is None else round(f["iou"], 3),
            "detection_box": None if f["det_box"] is None else [int(v) for v in f["det_box"]],
        })
    alarms = [
        {"image": results[d["image"]].name, "box": [int(v) for v in d["box"]], "face_score": round(d["score"], 4),
         "label": d["label"], "probability": round(d["probability"], 4)}
        for d in figures["_detections"] if d["face"] is None and not d["ignored"]
    ]
    return faces, alarms


def plot_recall_by_size(by_iou, path, primary):
    from .metrics import _pyplot, save_figure

    plt = _pyplot()
    buckets = [name for name, _, _ in SIZE_BUCKETS]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    primary_fig = by_iou[_iou_key(primary)]
    table = primary_fig["detector"]["recall_by_class_and_size"]
    width = 0.8 / max(1, len(table))
    for i, (label, rows) in enumerate(table.items()):
        values = [(rows.get(b) or {}).get("recall") or 0.0 for b in buckets]
        counts = [(rows.get(b) or {}).get("faces", 0) for b in buckets]
        xs = np.arange(len(buckets)) + (i - (len(table) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=f"{label} (IoU {primary:g})")
        for bar, n in zip(bars, counts):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"n={n}", ha="center", fontsize=7)
    for key, figures in by_iou.items():
        rows = figures["detector"]["recall_by_size"]
        ax.plot(range(len(buckets)), [(rows.get(b) or {}).get("recall") or 0.0 for b in buckets], marker="o",
                label=f"all classes, IoU {key}")
    ax.set_xticks(range(len(buckets)), [f"{b} px" for b in buckets])
    ax.set_xlabel("face size (short side of the annotated box)")
    ax.set_ylabel("detection recall")
    ax.set_ylim(0, 1.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.set_title("Faces found, by size")
    save_figure(fig, path)


def _tile(rgb, boxes, tile=128):
    """A context crop around boxes[0] with every (box, colour) drawn, resized to tile x tile."""
    import cv2

    from .faces import crop_region

    x, y, w, h = boxes[0][0]
    x0, y0, x1, y1 = crop_region((x, y, max(w, 1), max(h, 1)), rgb.shape, margin=0.6)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if crop.size == 0:
        return np.full((tile, tile, 3), 255, np.uint8)
    scale = tile / max(crop.shape[:2])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    resized = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                         interpolation=interpolation)
    for (bx, by, bw, bh), colour in boxes:
        p0 = (int((bx - x0) * scale), int((by - y0) * scale))
        p1 = (int((bx + bw - x0) * scale), int((by + bh - y0) * scale))
        cv2.rectangle(resized, p0, p1, colour, 1)
    out = np.full((tile, tile, 3), 255, np.uint8)
    oy, ox = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    out[oy:oy + resized.shape[0], ox:ox + resized.shape[1]] = resized
    return out


def gallery_sections(results, figures, class_names, incorrect_as_without, per_section=GALLERY_PER_SECTION):
    """[(title, [(image index, [(box, rgb colour)], caption)])]: the worst misses, wrong labels, false alarms."""
    from .overlay import class_style

    def short(label):
        return class_style(label)[0] if label in class_names else label

    faces = figures["_faces"]
    missed = sorted((f for f in faces if f["detection"] is None), key=lambda f: -f["size"])[:per_section]
    # Largest first: a big face labelled wrong is worse than a 10-px one (and the classifier is often sure of both).
    wrong = sorted((f for f in faces if outcome(f, class_names, incorrect_as_without) == "wrong_label"),
                   key=lambda f: (-f["size"], -f["probability"]))[:per_section]
    alarms = sorted((d for d in figures["_detections"] if d["face"] is None and not d["ignored"]),
                    key=lambda d: -d["score"])[:per_section]
    gt_colour, det_colour = (255, 200, 0), (255, 0, 255)
    sections = [
        ("Missed faces (largest first; yellow: annotation)",
         [(f["image"], [(f["box"], gt_colour)], f"{short(f['label'])}, {f['size']:.0f}px\n{results[f['image']].name}")
          for f in missed]),
        ("Wrong labels (largest first; yellow: annotation, magenta: detection)",
         [(f["image"], [(f["box"], gt_colour), (f["det_box"], det_colour)],
           f"is {short(f['label'])}, said\n{short(f['predicted'])} {f['probability'] * 100:.0f}%, {f['size']:.0f}px")
          for f in wrong]),
        ("False alarms (highest face score first; magenta: detection)",
         [(d["image"], [(d["box"], det_colour)],
           f"score {d['score']:.2f}, {short(d['label'])}\n{results[d['image']].name}") for d in alarms]),
    ]
    return sections


def plot_gallery(results, sections, path, columns=6, tile=128):
    from .images import decode_image
    from .metrics import _pyplot, save_figure

    plt = _pyplot()
    rows = [(title, items[i:i + columns]) for title, items in sections for i in range(0, max(1, len(items)), columns)]
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 1.7, len(rows) * 2.1), squeeze=False)
    cache = {}
    shown_title = set()
    for r, (title, items) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c == 0 and title not in shown_title:
                shown_title.add(title)
                ax.set_title(title + ("" if items else ": none"), loc="left", fontsize=8, fontweight="bold",
                             x=0.0, y=1.18)
            if c >= len(items):
                continue
            image_index, boxes, caption = items[c]
            if image_index not in cache:
                try:
                    cache[image_index] = decode_image(results[image_index].path)
                except ImageDecodeError:
                    cache[image_index] = np.full(results[image_index].shape + (3,), 255, np.uint8)
            ax.imshow(_tile(cache[image_index], boxes, tile))
            ax.text(0.5, -0.03, caption, transform=ax.transAxes, ha="center", va="top", fontsize=6)
    fig.subplots_adjust(hspace=0.75, wspace=0.08)
    save_figure(fig, path)


def scenes_markdown(report):
    primary = report["by_iou"][_iou_key(report["settings"]["iou"])]
    lines = [f"# Scene evaluation: {report['scenes']}", ""]
    s = report["settings"]
    lines += [
        f"Model `{report['model']}` ({', '.join(report['class_names'])}); face detector YuNet at score "
        f">= {s['face_confidence']}, crop margin {s['margin']}, mask threshold "
        f"{s['mask_threshold'] if s['mask_threshold'] is not None else 'argmax'}; matching one-to-one, highest "
        f"score first, IoU >= {s['iou']:g}; {INCORRECT_CLASS} "
        f"{'scored as ' + WITHOUT_CLASS if s['incorrect_as_without'] else 'reported on its own'}.",
        "",
        f"{report['data']['images']} photos, {report['data']['faces']} annotated faces "
        f"({', '.join(f'{k} {v}' for k, v in report['data']['faces_by_class'].items())}); "
        f"{report['timing']['seconds_per_photo'] * 1000:.0f} ms per photo.",
        "",
        "## Headline (target slice: " + primary["headline"]["slice"] + ")",
        "",
        "| IoU | detection recall | unmatched detections / photo | balanced accuracy (matched faces) | faces |",
        "|---|---|---|---|---|",
    ]
    for key, figures in report["by_iou"].items():
        h = figures["headline"]
        unmatched = "n/a" if h["unmatched_per_image"] is None else f"{h['unmatched_per_image']:.2f}"
        lines.append(f"| {key} | {_pct(h['detection_recall'])} | {unmatched} | {_pct(h['balanced_accuracy'])} | "
                     f"{h['faces']} |")
    t = TARGETS
    lines += [
        "",
        f"Targets: recall >= {t['detection_recall'] * 100:.0f}% with <= {t['unmatched_per_image']:.1f} unmatched "
        f"detection per photo, balanced accuracy >= {t['balanced_accuracy'] * 100:.0f}%: "
        f"{'met' if primary['headline']['meets_targets'] else 'not met'} at IoU {s['iou']:g}.",
        "",
        "## Detector",
        "",
        "Recall by face size (short side of the annotated box, px), every class:",
        "",
        "| IoU | " + " | ".join(name for name, _, _ in SIZE_BUCKETS) + " | all | precision |",
        "|---|" + "---|" * (len(SIZE_BUCKETS) + 2),
    ]
    for key, figures in report["by_iou"].items():
        d = figures["detector"]
        cells = []
        for name, _, _ in SIZE_BUCKETS:
            e = d["recall_by_size"].get(name)
            cells.append(f"{_pct(e['recall'])} ({e['found']}/{e['faces']})" if e else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {_pct(d['recall'])} | {_pct(d['precision'])} |")
    lines += ["", f"Recall by class and size at IoU {s['iou']:g}:", "",
              "| class | " + " | ".join(name for name, _, _ in SIZE_BUCKETS) + " | all |",
              "|---|" + "---|" * (len(SIZE_BUCKETS) + 1)]
    d = primary["detector"]
    for label, rows in d["recall_by_class_and_size"].items():
        cells = []
        for name, _, _ in SIZE_BUCKETS:
            e = rows.get(name)
            cells.append(f"{_pct(e['recall'])} ({e['found']}/{e['faces']})" if e else "-")
        total = d["recall_by_class"][label]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_pct(total['recall'])} ({total['found']}/{total['faces']}) |")
    lines += ["", "Precision by detection size (the detection's own box): " + ", ".join(
        f"{k} {_pct(v['precision'])} ({v['matched']}/{v['detections']})"
        for k, v in d["precision_by_detection_size"].items()) + "."]
    o = primary["box_offsets"]
    if o.get("pairs"):
        lines += ["", f"Box offsets over {o['pairs']} matched faces: median centre offset "
                  f"{o['median_centre_offset']:.3f} of the annotated box height (dx {o['median_centre_dx']:+.3f}, "
                  f"dy {o['median_centre_dy']:+.3f}; dy > 0: detector box lower), detector/annotation height "
                  f"ratio {o['median_height_ratio']:.2f}, width ratio {o['median_width_ratio']:.2f}, median IoU "
                  f"{o['median_iou']:.2f}."]
    c = primary["classifier"]
    lines += ["", f"## Classifier on matched faces (IoU {s['iou']:g}, every size)", ""]
    if c["faces"]:
        names = report["class_names"]
        lines += [f"{c['faces']} faces: accuracy {_pct(c['accuracy'])}, balanced accuracy "
                  f"{_pct(c['balanced_accuracy'])}; per class: "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in c["accuracy_by_class"].items()) + ".", "",
                  "| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for name, row in zip(names, c["confusion_matrix"]):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    if c.get("by_size"):
        lines += ["", "By face size: " + ", ".join(
            f"{k} px {_pct(v['balanced_accuracy'])} balanced ({v['faces']} faces)" for k, v in c["by_size"].items()) + "."]
    for label, counts in c["labels_given_to_other_classes"].items():
        lines += ["", f"{label} faces found were labelled: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "."]
    p = primary["pipeline"]
    lines += ["", "## Pipeline: what happened to each annotated face", "",
              "| class | faces | correct | wrong label | missed |", "|---|---|---|---|---|"]
    for label, e in p["outcomes_by_class"].items():
        correct = f"{e['correct']}" + (f" (+{e['found']} found, no such class in the model)" if e.get("found") else "")
        lines.append(f"| {label} | {e['faces']} | {correct} | {e['wrong_label']} | {e['missed']} |")
    lines += ["", f"False alarms (detections matching no annotated face): {p['false_alarms']} in total, "
              f"{p['false_alarms_per_image']:.2f} per photo, in {p['images_with_false_alarms']} photos. "
              f"{p['note'].capitalize()}."]
    problems = report["data"]["skipped"]
    skipped = {k: v for k, v in problems.items() if v}
    lines += ["", "## Skipped", ""]
    if skipped:
        for kind, messages in skipped.items():
            lines.append(f"- {kind.replace('_', ' ')}: {len(messages)}")
            lines += [f"  - {m}" for m in messages[:20]]
            if len(messages) > 20:
                lines.append(f"  - ... and {len(messages) - 20} more (see report.json)")
    else:
        lines.append("nothing")
    if report["data"]["unannotated_images"]:
        lines.append(f"- images without an annotation file (not evaluated): {report['data']['unannotated_images']}")
    lines += ["", "## Plots", "", "- confusion matrix: `confusion_matrix.png`", "- recall by face size: "
              "`recall_by_size.png`", "- worst misses, wrong labels and false alarms: `gallery.png`", ""]
    return "\n".join(lines)


SCENE_REPORT_FILES = ("report.json", "summary.md", "confusion_matrix.png", "recall_by_size.png", "gallery.png")
FOLDER_REPORT_FILES = ("report.json", "summary.md", "confusion_matrix.png", "roc.png", "precision_recall.png")


def check_report_dir(report_dir, input_folders=(), inside_forbidden=(), input_files=(), report_files=()):
    """Fail at once, before the model loads or any photo runs, when the report cannot be written or would touch
    the run's inputs.

    ``input_folders``: folders read (the report folder may not be one of them); ``inside_forbidden``: folders
    read recursively (the report may not go anywhere inside them: its pictures would be inputs of the next
    run); ``input_files``: files read (no report file may be one of them, through links or other spellings).
    """
    from .fileio import check_writable, refuse_overwriting_inputs

    report_dir = Path(report_dir)
    check_writable(report_dir, folder=True)
    refuse_overwriting_inputs([report_dir], input_folders)
    real = Path(os.path.realpath(report_dir))
    for folder in inside_forbidden:
        base = Path(os.path.realpath(folder))
        if real == base or real.is_relative_to(base):
            raise OutputError(f"refusing to write the report into {display_path(report_dir)}: it is inside "
                              f"{display_path(folder)}, whose files are this run's inputs")
    # Only report files that already exist can be an input (a link, a hard link): check those alone, fast.
    existing = [report_dir / name for name in report_files if os.path.lexists(report_dir / name)]
    if existing:
        refuse_overwriting_inputs(existing, input_files)
    return report_dir


def _write_report_files(report_dir, writers):
    """``writers``: [(file name, function(temporary path))]. The report's files are replaced together or not at
    all, so an interrupted or failed run leaves the previous report whole, never a mix of old and new files."""
    from .fileio import atomic_paths

    report_dir = Path(report_dir)
    try:
        with atomic_paths([report_dir / name for name, _ in writers]) as temporaries:
            for (_, write), tmp in zip(writers, temporaries):
                write(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write the report in {display_path(report_dir)}: {exc.strerror or exc}") from None


def _text_writer(text):
    def write(tmp):
        Path(tmp).write_text(safe_text(text), encoding="utf-8")

    return write


def _json_writer(obj):
    import json

    return _text_writer(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_scene_report(report_dir, results, by_iou, settings, model_path, scene_set, undecodable, class_names,
                       seconds_per_photo, scenes_dir, outside=()):
    from .metrics import plot_confusion_matrix

    report_dir = Path(report_dir)
    primary = by_iou[_iou_key(settings["iou"])]
    faces_by_class, faces_by_size = {}, {}
    for f in primary["_faces"]:
        faces_by_class[f["label"]] = faces_by_class.get(f["label"], 0) + 1
        faces_by_size[f["bucket"]] = faces_by_size.get(f["bucket"], 0) + 1
    faces, alarms = face_records(results, primary, class_names, settings["incorrect_as_without"])
    report = {
        "kind": "scenes",
        "scenes": display_path(scenes_dir),
        "model": display_path(model_path),
        "class_names": list(class_names),
        "settings": settings,
        "data": {
            "images": len(results),
            "faces": len(primary["_faces"]),
            "faces_by_class": _ordered(faces_by_class, SCENE_CLASSES + tuple(sorted(set(faces_by_class) - set(SCENE_CLASSES)))),
            "faces_by_size": _ordered(faces_by_size, [name for name, _, _ in SIZE_BUCKETS]),
            "skipped": {**scene_set.problems, "outside_image": list(outside), "undecodable": list(undecodable)},
            "unannotated_images": len(scene_set.unannotated_images),
        },
        "timing": {"seconds_per_photo": seconds_per_photo},
        "headline": primary["headline"],
        "by_iou": {key: _public(figures) for key, figures in by_iou.items()},
        "faces": faces,
        "false_alarms": alarms,
    }
    classifier = primary["classifier"]
    sections = gallery_sections(results, primary, class_names, settings["incorrect_as_without"])
    writers = [("report.json", _json_writer(report)), ("summary.md", _text_writer(scenes_markdown(report)))]
    if classifier["faces"]:
        writers.append(("confusion_matrix.png", lambda tmp: plot_confusion_matrix(
            classifier["confusion_matrix"], list(class_names), tmp, title=f"Matched faces (IoU {settings['iou']:g})")))
    writers.append(("recall_by_size.png", lambda tmp: plot_recall_by_size(by_iou, tmp, settings["iou"])))
    writers.append(("gallery.png", lambda tmp: plot_gallery(results, sections, tmp)))
    _write_report_files(report_dir, writers)
    return report


def default_report_dir(source):
    return Path("output") / f"eval-{Path(source).resolve().name or 'scenes'}"


def evaluate_scenes(scenes_dir, model_path=None, report_dir=None, iou_threshold=DEFAULT_IOU, face_confidence=None,
                    mask_threshold=None, incorrect_as_without=False, progress=True, out=None, pipeline=None,
                    threads=None, upscale=None):
    """The ``evaluate.py --scenes`` command. Returns an exit code (1 when something was skipped)."""
    from .cli import EXIT_OK, EXIT_PARTIAL, say, warn
    from .faces import SMALL_PHOTO_UPSCALE
    from .pipeline import DEFAULT_FACE_CONFIDENCE, load_pipeline

    out = out or sys.stdout
    upscale = SMALL_PHOTO_UPSCALE if upscale is None else upscale
    if not 0.0 < iou_threshold <= 1.0:
        raise MaskDetectionError(f"--iou must be in (0, 1], got {iou_threshold}")
    face_confidence = DEFAULT_FACE_CONFIDENCE if face_confidence is None else face_confidence
    annotations_dir, images_dir = _layout(scenes_dir)
    report_dir = Path(report_dir) if report_dir else default_report_dir(scenes_dir)
    # Before the slow part: an unwritable report folder, or one that is an input folder, fails at once.
    check_report_dir(report_dir, input_folders=[annotations_dir, images_dir])
    scene_set = load_scene_set(scenes_dir)
    check_report_dir(report_dir, input_files=scene_inputs(scene_set), report_files=SCENE_REPORT_FILES)
    for kind, messages in scene_set.problems.items():
        for message in messages:
            warn(f"skipped ({kind.replace('_', ' ')}): {message}")
    if pipeline is None:
        pipeline = load_pipeline(model_path, face_confidence, mask_threshold, threads=threads, upscale=upscale,
                                 warn=warn)
    class_names = pipeline.class_names
    results, undecodable, seconds, outside = run_scenes(pipeline, scene_set, progress=progress)
    if not results:
        raise DatasetError(f"no scene image of {display_path(scenes_dir)} could be decoded")
    ious = sorted({float(iou_threshold), *REPORTED_IOUS})
    by_iou = {_iou_key(v): score_scenes(results, class_names, v, incorrect_as_without) for v in ious}
    settings = {
        "iou": float(iou_threshold),
        "face_confidence": face_confidence,
        "mask_threshold": mask_threshold,
        "margin": pipeline.margin,
        "detection_upscale": getattr(pipeline.detector, "upscale", 1.0),
        "min_face": pipeline.min_face,
        "incorrect_as_without": bool(incorrect_as_without),
        "detector": display_path(getattr(pipeline.detector, "model_path", "")),
    }
    used_model = getattr(pipeline.classifier, "path", model_path)
    write_scene_report(report_dir, results, by_iou, settings, used_model, scene_set, undecodable, class_names,
                       seconds, scenes_dir, outside)
    h = by_iou[_iou_key(iou_threshold)]["headline"]
    unmatched = "n/a" if h["unmatched_per_image"] is None else f"{h['unmatched_per_image']:.2f}"
    say(f"{len(results)} photos, {len(by_iou[_iou_key(iou_threshold)]['_faces'])} annotated faces; "
        f"slice ({h['slice']}, IoU {iou_threshold:g}): detection recall {_pct(h['detection_recall'])}, "
        f"unmatched detections per photo {unmatched}, balanced accuracy {_pct(h['balanced_accuracy'])} "
        f"-> targets {'met' if h['meets_targets'] else 'not met'}", file=out)
    say(f"report written to {display_path(report_dir)}/ (summary.md, report.json, confusion_matrix.png, "
        f"recall_by_size.png, gallery.png)", file=out)
    skipped = sum(len(v) for v in scene_set.problems.values()) + len(undecodable) + len(outside)
    return EXIT_PARTIAL if skipped else EXIT_OK


# ------------------------------------------------------------------------------------------------ folders


def evaluate_folder(folder, model_path=None, report_dir=None, mask_threshold=None, batch_size=32, progress=True,
                    out=None, classifier=None, threads=None):
    """The ``evaluate.py --folder`` command: a labelled folder of face crops. Returns an exit code."""
    import cv2
    from tqdm import tqdm

    from .cli import EXIT_OK, EXIT_PARTIAL, say, warn
    from .dataset import find_classes, scan_class_folder
    from .images import decode_image, to_model_input
    from .metrics import (classification_figures, classification_report_text, plot_confusion_matrix,
                          plot_pr_curves, plot_roc_curves, score_curve_figures)
    from .model import load_classifier
    from .pipeline import MASK_CLASS, check_mask_threshold, decide

    out = out or sys.stdout
    check_mask_threshold(mask_threshold)
    folder = Path(folder)
    shown_folder = display_path(folder)
    folder_classes = find_classes(folder)
    class_dirs = [folder / name for name in folder_classes]
    report_dir = Path(report_dir) if report_dir else default_report_dir(folder)
    # Before the slow part. Class folders are read recursively: the report may not go anywhere inside one.
    check_report_dir(report_dir, inside_forbidden=class_dirs)
    unreadable = []
    files = {}
    for name in folder_classes:
        files[name], broken = scan_class_folder(folder / name, warn=_default_warn)
        unreadable.extend(f"{name}/{rel}: {reason}" for rel, reason in broken)
    if not any(files.values()):
        raise DatasetError(f"no files in the class folders of {shown_folder}")
    check_report_dir(report_dir, input_files=[folder / name / rel for name in folder_classes for rel in files[name]],
                     report_files=FOLDER_REPORT_FILES)
    if classifier is None:
        classifier = load_classifier(model_path, threads=threads, warn=warn)
    class_names = list(classifier.class_names)
    if mask_threshold is not None and MASK_CLASS not in class_names:
        warn(f"--mask-threshold {mask_threshold:g} is ignored: the model has no {MASK_CLASS} class "
             f"({', '.join(class_names)}); each image gets its most probable class")
    unknown = [name for name in folder_classes if name not in class_names]
    known = [name for name in folder_classes if name in class_names]
    for name in unknown:
        warn(f"skipped: class folder {display_path(folder / name)} ({len(files[name])} files) is not a class of "
             f"the model ({', '.join(class_names)})")
    if not known:
        raise DatasetError(f"none of the class folders of {shown_folder} ({', '.join(folder_classes)}) is a class "
                           f"of the model ({', '.join(class_names)})")
    unreadable = [message for message in unreadable if message.split("/", 1)[0] in known]
    candidates = [(class_names.index(name), f"{name}/{rel}") for name in known for rel in files[name]]
    y_true, probabilities, undecodable = [], [], []
    batch, batch_labels = [], []

    def flush():
        if batch:
            probabilities.append(classifier.predict(np.stack(batch)))
            y_true.extend(batch_labels)
            batch.clear()
            batch_labels.clear()

    for label, rel in tqdm(candidates, desc="images", unit="img", file=sys.stderr, disable=not progress, leave=False):
        try:
            rgb = decode_image(folder / rel, max_side=classifier.input_size)
            face = to_model_input(rgb, classifier.input_size)
        except ImageDecodeError as exc:
            undecodable.append(safe_text(exc))
            _default_warn(f"skipped: {exc}")
            continue
        except (MemoryError, cv2.error) as exc:
            # One picture too big for memory is one failed file, not a lost run.
            reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {_last_line(exc)}"
            undecodable.append(safe_text(f"{rel}: {reason}"))
            _default_warn(f"skipped {rel}: {reason}")
            continue
        del rgb
        batch.append(face)
        batch_labels.append(label)
        if len(batch) >= batch_size:
            flush()
    flush()
    if not y_true:
        raise DatasetError(f"no image in {shown_folder} could be decoded")
    probabilities = np.concatenate(probabilities)
    y_true = np.asarray(y_true)
    y_pred = decide(probabilities, class_names, mask_threshold)
    with _quiet_metrics():
        figures = classification_figures(y_true, y_pred, class_names)
        figures["curves"] = score_curve_figures(y_true, probabilities, class_names)
        text = classification_report_text(y_true, y_pred, class_names)
    report = {
        "kind": "folder",
        "folder": shown_folder,
        "model": display_path(getattr(classifier, "path", model_path)),
        "class_names": class_names,
        "mask_threshold": mask_threshold,
        "images": int(len(y_true)),
        "images_by_class": {name: int((y_true == i).sum()) for i, name in enumerate(class_names)},
        "skipped": {"undecodable": undecodable, "unreadable": [safe_text(m) for m in unreadable],
                    "unknown_class_folders": [safe_text(name) for name in unknown]},
        **figures,
    }
    curve_lines = [f"- {name}: ROC AUC {v['roc_auc']:.4f}, average precision {v['average_precision']:.4f}"
                   for name, v in figures["curves"].items() if v["roc_auc"] is not None]
    md = [f"# Folder evaluation: {shown_folder}", "", f"Model `{report['model']}`; {len(y_true)} face images "
          f"({', '.join(f'{k} {v}' for k, v in report['images_by_class'].items())}); skipped: "
          f"{len(undecodable)} undecodable, {len(unreadable)} unreadable, {len(unknown)} class folders unknown to "
          f"the model.", "",
          f"Accuracy {_pct(figures['accuracy'], 2)}, balanced accuracy {_pct(figures['balanced_accuracy'], 2)}.", "",
          "```", text.rstrip(), "```", "", "| true \\ predicted | " + " | ".join(class_names) + " |",
          "|---|" + "---|" * len(class_names)]
    md += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
           for name, row in zip(class_names, figures["confusion_matrix"])]
    md += ["", *curve_lines, "", "Plots: `confusion_matrix.png`, `roc.png`, `precision_recall.png`.", ""]

    def curves(plot):
        def write(tmp):
            with _quiet_metrics():
                plot(y_true, probabilities, class_names, tmp)

        return write

    _write_report_files(report_dir, [
        ("report.json", _json_writer(report)),
        ("summary.md", _text_writer("\n".join(md))),
        ("confusion_matrix.png", lambda tmp: plot_confusion_matrix(figures["confusion_matrix"], class_names, tmp,
                                                                   title=display_path(folder.name))),
        ("roc.png", curves(plot_roc_curves)),
        ("precision_recall.png", curves(plot_pr_curves)),
    ])
    say(text.rstrip(), file=out)
    say(f"accuracy {_pct(figures['accuracy'], 2)}, balanced accuracy {_pct(figures['balanced_accuracy'], 2)} on "
        f"{len(y_true)} images", file=out)
    say(f"report written to {display_path(report_dir)}/ (summary.md, report.json, confusion_matrix.png, roc.png, "
        f"precision_recall.png)", file=out)
    return EXIT_PARTIAL if undecodable or unreadable or unknown else EXIT_OK
