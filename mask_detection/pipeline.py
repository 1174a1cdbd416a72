"""Detection pipeline: YuNet faces -> shared crop rule -> resize rule -> one batched classifier call per frame.

Also the image command line's work (``detect_images``): inputs, JSON Lines, readable lines, annotated files.
"""

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ImageDecodeError, MaskDetectionError, ModelError, OutputError
from .faces import FACE_MARGIN, MIN_FACE_SIZE, SMALL_PHOTO_UPSCALE, crop_face
from .fileio import atomic_path, check_writable, display_path, refuse_overwriting_inputs

MASK_CLASS = "with_mask"
DEFAULT_FACE_CONFIDENCE = 0.5


class Detection(NamedTuple):
    box: tuple  # (x, y, w, h) in pixels of the original image
    score: float  # face detector confidence
    label: str  # class name
    probability: float  # the classifier's probability for ``label``
    probabilities: tuple  # all class probabilities, in the classifier's class order

    def to_json(self):
        """The JSON form used by ``--json`` (and read by the evaluation)."""
        return {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
            "probability": round(float(self.probability), 4),
        }


def decide(probabilities, class_names, mask_threshold=None):
    """Index of the chosen class for each row of ``probabilities``.

    Default: the most probable class. With ``mask_threshold`` (and a ``with_mask`` class) a face is
    "with_mask" when p(with_mask) >= threshold, otherwise the most probable of the other classes; e.g. 0.7
    calls fewer faces masked than plain argmax does (0.5 for two classes).
    """
    probabilities = np.asarray(probabilities)
    chosen = probabilities.argmax(axis=1)
    if mask_threshold is None or MASK_CLASS not in class_names or len(probabilities) == 0:
        return chosen
    mask = class_names.index(MASK_CLASS)
    others = probabilities.copy()
    others[:, mask] = -1.0
    return np.where(probabilities[:, mask] >= mask_threshold, mask, others.argmax(axis=1))


def check_mask_threshold(value):
    if value is not None and not 0.0 <= value <= 1.0:
        raise ModelError(f"mask threshold must be between 0 and 1, got {value}")
    return value


class MaskPipeline:
    """``process(bgr)`` -> list of Detection for every face (skipping tiny ones), best face score first."""

    def __init__(self, detector, classifier, margin=FACE_MARGIN, min_face=MIN_FACE_SIZE, mask_threshold=None):
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.min_face = min_face
        self.mask_threshold = check_mask_threshold(mask_threshold)
        self.class_names = list(classifier.class_names)

    def process(self, bgr, timings=None):
        """Detections for one BGR uint8 frame.

        ``timings``: optional dict; seconds spent in "detect", "crop" (crop + resize rule) and "classify"
        are added to it, for the speed benchmark.
        """
        from .images import to_model_input

        t0 = time.perf_counter()
        faces = self.detector.detect(bgr)
        t1 = time.perf_counter()
        kept, inputs = [], []
        for face in faces:
            crop = crop_face(bgr, face.box, self.margin, self.min_face)
            if crop is None:
                continue
            kept.append(face)
            # The resize rule is channel-blind, so flip BGR -> RGB on the small result, not the crop.
            inputs.append(to_model_input(crop, self.classifier.input_size)[:, :, ::-1])
        batch = np.stack(inputs) if inputs else None
        t2 = time.perf_counter()
        detections = []
        if batch is not None:
            # One call for all faces of the frame.
            probabilities = self.classifier.predict(batch)
            chosen = decide(probabilities, self.class_names, self.mask_threshold)
            for face, probs, index in zip(kept, probabilities, chosen):
                detections.append(
                    Detection(
                        face.box, face.score, self.class_names[index], float(probs[index]), tuple(map(float, probs))
                    )
                )
        t3 = time.perf_counter()
        if timings is not None:
            for key, seconds in (("detect", t1 - t0), ("crop", t2 - t1), ("classify", t3 - t2)):
                timings[key] = timings.get(key, 0.0) + seconds
        return detections


# Thread pools (benchmarks/pipeline_speed.py --cv-threads/--tf-threads compares them). None keeps each library's
# default: one thread per core. The stages run one after another, so each library can use both cores in turn;
# one thread only won on a machine already loaded by other work, which a deployment should not assume.
CV_THREADS = None
TF_THREADS = None


def configure_threads(cv_threads=None, tf_threads=None):
    """Set OpenCV's and TensorFlow's thread pools before TensorFlow starts (it cannot change them later)."""
    import cv2

    cv_threads = CV_THREADS if cv_threads is None else cv_threads
    tf_threads = TF_THREADS if tf_threads is None else tf_threads
    if cv_threads is not None:
        cv2.setNumThreads(int(cv_threads))
    if tf_threads is not None:
        from ._tf import tf

        t = tf()
        try:
            t.config.threading.set_intra_op_parallelism_threads(int(tf_threads))
            t.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised in this process: keep what it has
            pass


def load_pipeline(
    model_path=None, face_confidence=DEFAULT_FACE_CONFIDENCE, mask_threshold=None, detector_path=None, detect_size=None,
    threads=None, upscale=SMALL_PHOTO_UPSCALE, warn=None,
):
    """The face detector (checked first: fast) and the classifier, as one pipeline.

    ``upscale``: small photos are enlarged by this factor for face detection (1 = never); video passes 1.
    ``warn``: hears of settings that have no effect (a mask threshold for a model without a with_mask class).
    """
    from .faces import FaceDetector
    from .model import load_classifier

    if not 0.0 <= face_confidence <= 1.0:
        raise ModelError(f"face confidence must be between 0 and 1, got {face_confidence}")
    check_mask_threshold(mask_threshold)
    configure_threads()
    detector = FaceDetector(detector_path, score_threshold=face_confidence, max_side=detect_size, upscale=upscale)
    classifier = load_classifier(model_path, threads=threads, warn=warn)
    if mask_threshold is not None and MASK_CLASS not in classifier.class_names and warn is not None:
        warn(f"the mask threshold {mask_threshold:g} is ignored: the model has no {MASK_CLASS} class "
             f"({', '.join(classifier.class_names)}); each face gets its most probable class")
    return MaskPipeline(detector, classifier, mask_threshold=mask_threshold)


# ---------------------------------------------------------------------------------------------- images CLI


class ImageInput(NamedTuple):
    name: str  # what JSON and messages call it (the path as given, printable; or the demo's name)
    path: Path  # None for in-memory images (the demo)

    @property
    def stem(self):
        return "astronaut" if self.path is None else self.path.stem


DEMO_NAME = "skimage.data.astronaut"


class ImageInputs(NamedTuple):
    items: list  # ImageInput, in the order given (folders: sorted by name)
    problems: list  # one-line messages about inputs that cannot be used
    folders: list  # the folders that were listed


def expand_inputs(paths, warn=None):
    """The image files of the given files and folders, as ImageInputs.

    Fails at once (ImageDecodeError) when no given input is usable (a missing file, a folder without images),
    so the user hears about it before the model loads. ``warn`` hears of unreadable folder entries (broken
    links, link loops).
    """
    from .images import list_images

    items, problems, folders = [], [], []
    for raw in paths:
        path = Path(raw)
        shown = display_path(raw)
        if path.is_dir():
            folders.append(path)
            found = list_images(path, warn=warn)
            if not found:
                problems.append(f"no images in folder {shown}")
            items.extend(ImageInput(display_path(p), p) for p in found)
        elif path.exists():
            items.append(ImageInput(shown, path))
        else:
            problems.append(f"cannot decode {shown}: {'broken link' if path.is_symlink() else 'no such file'}")
    if not items:
        raise ImageDecodeError(problems[0] if len(problems) == 1 else "; ".join(problems))
    return ImageInputs(items, problems, folders)


def output_targets(items, output, several):
    """({item index: output file}, output folder or None).

    ``output`` is a folder when it ends with a path separator, is an existing folder, or there are several
    images; else one picture file. Several images and a picture file name (``out.jpg``) is an error rather than
    a folder named ``out.jpg``.
    """
    if output is None:
        return {}, None
    text = os.fspath(output)
    path = Path(text)
    folder = text.endswith(("/", os.sep)) or path.is_dir()
    if several and not folder:
        from .images import IMAGE_EXTENSIONS

        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise OutputError(f"output {display_path(text)} names one picture, but there are {len(items)} images: "
                              "give a folder (a name ending in /)")
        folder = True
    if not folder:
        check_image_suffix(path)
        return {0: path}, None
    targets, used = {}, set()
    for i, item in enumerate(items):
        stem = item.stem
        name = f"{stem}_annotated.jpg"
        n = 2
        while name in used:  # a.png and a.jpg in one run
            name = f"{stem}_annotated_{n}.jpg"
            n += 1
        used.add(name)
        targets[i] = path / name
    return targets, path


def check_outputs(inputs, targets, folder):
    """Before any work: no output is one of the inputs (nor the output folder an input folder), and every output
    can be written. Raises OutputError."""
    sources = [item.path for item in inputs.items if item.path is not None] + list(inputs.folders)
    refuse_overwriting_inputs([*([folder] if folder is not None else []), *targets.values()], sources)
    if folder is not None:
        check_writable(folder, folder=True)
    for target in targets.values():
        if folder is None:
            check_writable(target)


def check_image_suffix(path):
    import cv2

    if not path.suffix or not re.fullmatch(r"\.[A-Za-z0-9]+", path.suffix) or not cv2.haveImageWriter(
            "x" + path.suffix):
        raise OutputError(f"cannot write {display_path(path)}: unsupported image type (use .jpg or .png)")


def write_image(path, bgr):
    """Encode in memory, then write atomically: a full disk or an unwritable folder is an OutputError."""
    import cv2

    ok, encoded = cv2.imencode(Path(path).suffix or ".jpg", bgr)
    if not ok:
        raise OutputError(f"cannot write {display_path(path)}: OpenCV cannot encode this picture type")
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None


def describe(name, detections):
    """Readable lines for one image, one per face."""
    if not detections:
        return [f"{name}: no faces"]
    from .overlay import class_style

    lines = []
    for i, d in enumerate(detections, 1):
        x, y, w, h = d.box
        text, _ = class_style(d.label)
        lines.append(
            f"{name}: face {i}/{len(detections)} at x={x} y={y} {w}x{h}: {text} {d.probability * 100:.1f}% "
            f"(face score {d.score:.2f})"
        )
    return lines


def to_full_size(detections, shape, full_shape):
    """Detections found on a photo decoded at reduced size (``shape``), in the full photo's pixels."""
    if tuple(shape[:2]) == tuple(full_shape[:2]):
        return detections
    from .faces import clip_box

    fy, fx = full_shape[0] / shape[0], full_shape[1] / shape[1]
    scaled = []
    for d in detections:
        x, y, w, h = d.box
        box = clip_box(x * fx, y * fy, w * fx, h * fy, full_shape) or d.box
        scaled.append(d._replace(box=box))
    return scaled


def detect_images(
    paths=(),
    model_path=None,
    output=None,
    as_json=False,
    display=None,
    face_confidence=DEFAULT_FACE_CONFIDENCE,
    mask_threshold=None,
    demo=False,
    default_output_dir="output",
    detect_size=None,
    out=None,
    threads=None,
    upscale=None,
):
    """Run the pipeline over image files and folders (or the demo photo). Returns an exit code.

    ``display``: False, or None for "show a window when a display is available". Without a display the
    annotated images are saved instead (to ``output``, else ``default_output_dir``); the demo always saves
    its picture. Outputs are checked (never one of the inputs, writable) before any work; the model loads only
    once the first image has decoded, so bad inputs fail fast.
    """
    import cv2

    from .cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, fail, say, warn
    from .images import decode_photo
    from .overlay import annotate
    from .video import display_available

    out = out or sys.stdout
    check_mask_threshold(mask_threshold)
    if demo:
        inputs = ImageInputs([ImageInput(DEMO_NAME, None)], [], [])
    else:
        inputs = expand_inputs(paths, warn=warn)
    items, problems = inputs.items, inputs.problems
    several = len(items) > 1 or bool(inputs.folders)

    show = False
    if display is None:
        show, why = display_available()
        if not show:
            if output is None:
                output, several = default_output_dir, True
            warn(f"no display ({why}): not showing a window; annotated images go to {display_path(output)}")
    if demo and output is None:
        output, several = default_output_dir, True
    targets, folder = output_targets(items, output, several)
    check_outputs(inputs, targets, folder)

    for message in problems:
        warn(f"skipped: {message}")
    pipeline = None
    failed = len(problems)
    done = 0
    for i, item in enumerate(items):
        try:
            if item.path is None:
                from skimage import data

                rgb, full_shape = data.astronaut(), (512, 512)
            else:
                rgb, full_shape = decode_photo(item.path)
            if pipeline is None:
                pipeline = load_pipeline(model_path, face_confidence, mask_threshold, detect_size=detect_size,
                                         threads=threads,
                                         upscale=SMALL_PHOTO_UPSCALE if upscale is None else upscale, warn=warn)
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            del rgb
            detections = pipeline.process(bgr)
        except ImageDecodeError as exc:
            if len(items) == 1 and not problems:
                raise
            warn(f"skipped: {exc}")
            failed += 1
            continue
        except (MemoryError, cv2.error) as exc:
            # One photo too large for this machine (or one OpenCV cannot handle) must not end a folder run.
            reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV failed ({_first_line(exc)})"
            warn(f"skipped: {item.name}: {reason}")
            failed += 1
            continue
        done += 1
        reported = to_full_size(detections, bgr.shape, full_shape)
        if as_json:
            record = {
                "image": item.name,
                "width": int(full_shape[1]),
                "height": int(full_shape[0]),
                "faces": [d.to_json() for d in reported],
            }
            say(json.dumps(record), file=out)
        else:
            for line in describe(item.name, reported):
                say(line, file=out)
        if i in targets or show:
            annotate(bgr, detections, pipeline.class_names)
        if i in targets:
            try:
                write_image(targets[i], bgr)
            except MaskDetectionError as exc:
                warn(str(exc))
                failed += 1
                continue
            if not as_json:
                say(f"saved {display_path(targets[i])}", file=out)
        if show:
            show = show_until_key(item.name, bgr)
            if not show:
                cv2.destroyAllWindows()
    if show:
        cv2.destroyAllWindows()
    if done == 0:
        fail("no image could be processed")
        return EXIT_ERROR
    return EXIT_PARTIAL if failed else EXIT_OK


def _first_line(exc):
    text = str(exc).strip()
    return (text.splitlines()[-1] if text else type(exc).__name__)[:200]


def show_until_key(title, bgr):
    """Show one image; any key goes on, q or Esc stops showing. Returns whether to keep showing."""
    import cv2

    window = "Mask detection"
    cv2.imshow(window, bgr)
    cv2.setWindowTitle(window, f"Mask detection - {title} (any key: next, q: stop)")
    key = cv2.waitKey(0) & 0xFF
    if key in (ord("q"), 27):
        cv2.destroyAllWindows()
        return False
    return True
