#!/usr/bin/env python3
"""Detection speed at 640x480, per-frame mode and tracked mode side by side, on short videos of moving faces.

For each face count a 120-frame video is built from real face photos (scikit-image's astronaut and cameraman,
flipped and scaled) on a 640x480 canvas, each face drifting a few pixels per frame on a smooth path (tracking
needs a video, not independent frames); frames are stored as JPEG, so "decode" is a real frame decode. Both modes
run the same frames with full-resolution detection:

- per-frame (``--per-frame``, ``MaskPipeline``): decode, detect (YuNet), crop (shared crop rule + resize rule, all
  faces), classify (one batched call for all faces), draw; every face classified on every frame;
- tracked (the default, ``people.PeoplePipeline``): decode, detect on every frame, track (with the scene-cut
  check), classify only the faces that add evidence (a new track, a clearly better view, every few frames), draw
  (track ids, people counts, alert banner).

FPS = frames / total time, from the first frame of the video (new tracks, and their first classifications,
included); the modes run in turn, ``--rounds`` times each, and each keeps its fastest round. The table prints the
ratio tracked / per-frame, faces classified per frame in each mode ("cls/f") and the issue's targets. A second
table puts each model's accuracy beside its speed (an export's agreement with its .keras model).

    python benchmarks/pipeline_speed.py             # the issue's rows: the shipped models with 1, 3 and 12 faces,
                                                    # ResNet50 (untrained, .keras and float32 .tflite) with 1 face
    python benchmarks/pipeline_speed.py --model a.keras --model b.keras   # several models
    python benchmarks/pipeline_speed.py --architecture resnet50           # only an untrained model of that
                                                                          # backbone (speed does not depend on weights)
    python benchmarks/pipeline_speed.py --architecture resnet50 --export none --export dynamic --export int8
    python benchmarks/pipeline_speed.py --detect-size 320                 # also detection on shrunk frames
"""

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 480
VIDEO_FPS = 30.0
STAGES = ("decode", "detect", "crop", "classify", "draw")
DRIFT_PERIOD = 60  # frames per loop of a face's path
# The issue's targets for the tracked mode (frames per second), by face count.
SHIPPED_TARGETS = {1: 50.0, 3: 40.0}
CROWD, CROWD_TARGET = 12, 20.0
RESNET50_TARGETS = {1: 30.0}


def face_photos():
    """Head-and-shoulders crops (BGR) from real photos that scikit-image ships."""
    import cv2
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 110:340]
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[60:260, 150:310]
    return [astronaut, cameraman, astronaut[:, ::-1], cameraman[:, ::-1]]


def face_layout(n_faces):
    """(tile, x, y, drift) per face: a grid of cells, each face at 80% of its cell, free to drift in the rest."""
    import cv2

    photos = face_photos()
    cols = {1: 1, 3: 3, 8: 4}.get(n_faces, math.ceil(math.sqrt(n_faces)))
    rows = math.ceil(n_faces / cols)
    cell_w, cell_h = WIDTH // cols, HEIGHT // rows
    layout = []
    for i in range(n_faces):
        photo = photos[i % len(photos)]
        scale = min(cell_w / photo.shape[1], cell_h / photo.shape[0]) * 0.8
        size = (int(photo.shape[1] * scale), int(photo.shape[0] * scale))
        tile = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        x = c * cell_w + (cell_w - tile.shape[1]) // 2
        y = r * cell_h + (cell_h - tile.shape[0]) // 2
        layout.append((tile, x, y, 0.08 * min(cell_w, cell_h)))  # drift stays inside the 10% margins
    return layout


def make_video(n_faces, frames):
    """``frames`` JPEG-encoded 640x480 frames with ``n_faces`` real faces, each drifting on its own smooth loop
    (at most about 0.1 x its drift radius per frame: 4 px for one big face, 1-2 px in a crowd)."""
    import cv2

    layout = face_layout(n_faces)
    video = []
    for t in range(frames):
        frame = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
        for i, (tile, x, y, drift) in enumerate(layout):
            angle = 2 * math.pi * t / DRIFT_PERIOD + i * 1.7  # each face out of step with the others
            dx, dy = round(drift * math.sin(angle)), round(drift * math.cos(angle))
            frame[y + dy : y + dy + tile.shape[0], x + dx : x + dx + tile.shape[1]] = tile
        video.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    return video


class CountingClassifier:
    """A classifier that counts the faces it is asked about (everything else is the real one's)."""

    def __init__(self, inner):
        self.inner = inner
        self.faces = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, batch):
        self.faces += len(batch)
        return self.inner.predict(batch)


def default_models():
    """The shipped .keras model and every .tflite exported from it that sits beside it."""
    from mask_detection.paths import SHIPPED_DIR, keras_model_in

    keras_path = keras_model_in(SHIPPED_DIR)
    return [str(keras_path)] + sorted(str(p) for p in SHIPPED_DIR.glob(keras_path.stem + ".*.tflite"))


def untrained_classifiers(backbone, quantizations, workdir):
    """An untrained classifier of ``backbone`` (speed does not depend on weights), then its TFLite exports."""
    import json

    from mask_detection.classifier import KerasClassifier, load_classifier
    from mask_detection.export import convert, generated_images
    from mask_detection.model import build_classifier, build_feature_extractor, build_head_layers

    model = build_classifier(build_feature_extractor(backbone, weights=None), build_head_layers(2), 1e-3)
    meta = {"class_names": ["with_mask", "without_mask"], "backbone": backbone, "input_size": 224}
    yield f"{backbone} (untrained)", KerasClassifier(model, meta)
    for quantize in quantizations:
        content = convert(model, quantize, calibration=generated_images(32))
        path = Path(workdir) / f"{backbone}.{quantize}.tflite"
        path.write_bytes(content)
        path.with_suffix(".json").write_text(
            json.dumps(
                {
                    **meta,
                    "format": "mask_detection classifier (TFLite)",
                    "quantization": quantize,
                    "file_bytes": len(content),
                }
            )
        )
        yield f"{backbone} {quantize} .tflite (untrained)", load_classifier(path)


def configure_threads(cv_threads=None, tf_threads=None):
    """Set OpenCV's and TensorFlow's thread pools before TensorFlow starts (it cannot change them later).

    None keeps each library's default: one thread per core. The pipeline's stages run one after another, so each
    library can use both cores in turn; one thread only won on a machine already loaded by other work.
    """
    import cv2

    if cv_threads is not None:
        cv2.setNumThreads(int(cv_threads))
    if tf_threads is not None:
        from mask_detection._tf import tf

        t = tf()
        try:
            t.config.threading.set_intra_op_parallelism_threads(int(tf_threads))
            t.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised in this process: keep what it has
            pass


class JpegFrames:
    """The benchmark's video as a source for the frame seam: JPEG frames in memory, decoded as they are read."""

    live = False
    failure = None
    name = "benchmark video"
    fps = VIDEO_FPS

    def __init__(self, video):
        self._video = video
        self._next = 0

    def read(self):
        import cv2

        if self._next >= len(self._video):
            return None
        frame = cv2.imdecode(self._video[self._next], cv2.IMREAD_COLOR)
        self._next += 1
        return frame, (self._next - 1) / VIDEO_FPS

    def close(self):
        pass


def time_per_frame(pipeline, video):
    """Mean seconds per stage over the video, and the faces found in its last frame."""
    from mask_detection.pipeline import PerFrameProcessor
    from mask_detection.stream import process_stream

    processor = PerFrameProcessor(pipeline)
    timings = processor.timings
    *_, last = process_stream(JpegFrames(video), processor, draw=True, timings=timings)
    timings["decode"] = timings.get("read", 0.0)
    return {key: timings.get(key, 0.0) / len(video) for key in STAGES}, len(last.detections)


def time_tracked(pipeline, video):
    """Seconds per frame of the tracked mode over the video, from a fresh tracker (new tracks included): in all,
    in the tracker (with the scene-cut check), and classifying (crops included); and the people counted."""
    from mask_detection.people import PeoplePipeline
    from mask_detection.stream import process_stream

    people = PeoplePipeline(pipeline, fps=VIDEO_FPS)
    started = time.perf_counter()
    for _ in process_stream(JpegFrames(video), people, draw=True):
        pass
    total = time.perf_counter() - started
    timings = people.timings
    return total / len(video), timings["track"] / len(video), timings["classify"] / len(video), people.people.total


def target_for(family, n_faces):
    """The issue's tracked-mode target for this row, or None."""
    if family == "shipped":
        return SHIPPED_TARGETS.get(n_faces, CROWD_TARGET if n_faces >= CROWD else None)
    if family == "resnet50":
        return RESNET50_TARGETS.get(n_faces)
    return None


def face_counts(text):
    return [int(n) for n in text.split(",")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="PATH",
        help="classifier file (repeatable; with neither this nor --architecture: the shipped .keras model and "
        "its .tflite exports beside it)",
    )
    p.add_argument(
        "--architecture",
        action="append",
        default=[],
        choices=("efficientnet_lite0", "resnet50"),
        help="time an untrained classifier of this backbone (repeatable; with neither this nor --model: the "
        "shipped models and resnet50, .keras and --export none)",
    )
    p.add_argument(
        "--export",
        action="append",
        default=[],
        choices=("none", "float16", "dynamic", "int8"),
        help="with --architecture: also time that untrained model exported to TFLite with this "
        "quantization (repeatable)",
    )
    p.add_argument("--faces", type=face_counts, default=[1, 3, CROWD], help="face counts (default: 1,3,12)")
    p.add_argument(
        "--architecture-faces",
        type=face_counts,
        default=[1],
        help="face counts for the --architecture models (default: 1)",
    )
    p.add_argument("--frames", type=int, default=120, help="frames of each video (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default: %(default)s)")
    p.add_argument(
        "--rounds", type=int, default=2, help="timed runs of each mode per row, the fastest kept (default: %(default)s)"
    )
    p.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's, one per core)")
    p.add_argument(
        "--tf-threads", type=int, default=None, help="TensorFlow intra-op threads (default: TensorFlow's, one per core)"
    )
    p.add_argument(
        "--detect-size",
        type=int,
        action="append",
        default=[],
        metavar="PIXELS",
        help="also time face detection on frames shrunk to this longer side (repeatable)",
    )
    p.add_argument("--save-frames", metavar="DIR", help="also save each video's last frame, annotated, here")
    args = p.parse_args()
    args.shipped = not args.model and not args.architecture  # the issue's rows
    if args.shipped:
        args.architecture, args.export = ["resnet50"], args.export or ["none"]
    return args


def load_classifiers(args, workdir):
    """(name, classifier, family, face counts) for every model to time."""
    from mask_detection.classifier import load_classifier
    from mask_detection.paths import SHIPPED_DIR

    models = list(args.model) or (default_models() if args.shipped else [])
    rows = []
    for path in models:
        family = "shipped" if Path(path).resolve().parent == SHIPPED_DIR.resolve() else "user"
        rows.append((Path(path).name, load_classifier(path), family, args.faces))
    for backbone in args.architecture:
        for name, classifier in untrained_classifiers(backbone, args.export, workdir):
            rows.append((name, classifier, backbone, args.architecture_faces))
    return rows


def main():
    args = parse_args()

    import cv2

    from mask_detection.commands import common as cli
    from mask_detection.detector import YuNetDetector
    from mask_detection.errors import MaskDetectionError
    from mask_detection.pipeline import MaskPipeline

    configure_threads(cv_threads=args.cv_threads, tf_threads=args.tf_threads)
    from mask_detection._tf import tf

    t = tf()
    exports = tempfile.TemporaryDirectory(prefix="pipeline_speed-")  # removed when main returns
    try:
        classifiers = load_classifiers(args, exports.name)
    except MaskDetectionError as exc:
        cli.fail(str(exc))
        return 2
    detectors = [("full", YuNetDetector())] + [(str(n), YuNetDetector(max_side=n)) for n in args.detect_size]
    counts = sorted({n for *_, faces in classifiers for n in faces})
    videos = {n: make_video(n, args.frames) for n in counts}
    print(
        f"CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, cv2 threads: {cv2.getNumThreads()}, "
        f"TF intra-op threads: {t.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"{WIDTH}x{HEIGHT}, videos of {args.frames} frames of moving faces"
    )
    row_name = f"{'model':<34} {'det':>4} {'faces':>5} "
    per_frame = "".join(f"{s:>9}" for s in STAGES) + f" {'FPS':>6} {'cls/f':>5} "
    tracked = f"{'track':>8}{'classify':>9} {'FPS':>6} {'cls/f':>5} {'ratio':>6} "
    header = f"{row_name}|{per_frame}|{tracked}| target"
    print(f"{'':<{len(row_name)}}|{'per-frame mode (ms per frame)':^{len(per_frame)}}|{'tracked':^{len(tracked)}}|")
    print(header)
    print("-" * len(header))
    for (name, classifier, family, faces), (det_name, detector) in itertools.product(classifiers, detectors):
        counter = CountingClassifier(classifier)
        pipeline = MaskPipeline(detector, counter)
        for n in faces:
            time_per_frame(pipeline, videos[n][: args.warmup])  # loads and warms both models
            per_frame_runs, tracked_runs = [], []
            for _ in range(args.rounds):  # the modes in turn, so a busy moment of the machine hits both alike
                counter.faces = 0
                per_frame_runs.append((*time_per_frame(pipeline, videos[n]), counter.faces / args.frames))
                counter.faces = 0
                tracked_runs.append((*time_tracked(pipeline, videos[n]), counter.faces / args.frames))
            # The fastest round of each: other work on the machine only ever slows a round down.
            stages, found, per_frame_classified = min(per_frame_runs, key=lambda run: sum(run[0].values()))
            tracked, track, classify, people, tracked_classified = min(tracked_runs)
            per_frame_fps, tracked_fps = 1 / sum(stages.values()), 1 / tracked
            target = target_for(family, n) if det_name == "full" else None
            verdict = "" if target is None else f">= {target:.0f} {'met' if tracked_fps >= target else 'MISSED'}"
            note = "" if found == n and people == n else f"  (detected {found}, {people} people)"
            print(
                f"{name:<34} {det_name:>4} {n:>5} |"
                + "".join(f"{stages[s] * 1000:>9.1f}" for s in STAGES)
                + f" {per_frame_fps:>6.1f} {per_frame_classified:>5.2f} |"
                + f"{track * 1000:>8.1f}{classify * 1000:>9.1f} {tracked_fps:>6.1f} {tracked_classified:>5.2f}"
                + f" {tracked_fps / per_frame_fps:>5.2f}x | "
                + verdict
                + note,
                flush=True,
            )
            if args.save_frames:
                save_last_frame(pipeline, videos[n], Path(args.save_frames) / f"faces_{n}_{det_name}.jpg")
    print(f"cls/f: faces classified per frame. Load average at the end: {os.getloadavg()[0]:.2f}")
    print_agreement([(name, classifier) for name, classifier, *_ in classifiers])
    return 0


def save_last_frame(pipeline, video, path):
    """The video's last frame as the tracked mode draws it, after the whole video."""
    import cv2

    from mask_detection.overlay import draw_result
    from mask_detection.people import PeoplePipeline
    from mask_detection.stream import process_stream

    people = PeoplePipeline(pipeline, fps=VIDEO_FPS)
    *_, last = process_stream(JpegFrames(video), people)
    draw_result(last, pipeline.class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), last.image)


def print_agreement(classifiers):
    """Accuracy beside speed: each export's self-check against its .keras model on that model's test split
    (written by export_model.py into the export's JSON), and each .keras model's own test accuracy."""
    rows = []
    for name, classifier in classifiers:
        meta = classifier.metadata
        test_accuracy = (meta.get("test") or {}).get("accuracy")
        check = meta.get("agreement")
        if check and "agreement" in check:
            size = meta.get("file_bytes")
            rows.append(
                (
                    name,
                    meta.get("quantization", "?"),
                    f"{size / 1e6:.1f} MB" if size else "",
                    f"{check['agreement']:.2%} of {check['images']}",
                    f"{check['keras_accuracy']:.2%} -> {check['exported_accuracy']:.2%}"
                    if "keras_accuracy" in check
                    else "",
                )
            )
        elif meta.get("format", "").endswith("(TFLite)"):
            untrained = "test" not in meta  # made by --architecture/--export: nothing to agree on
            rows.append((name, meta.get("quantization", "?"), "", "untrained" if untrained else "not recorded", ""))
        else:
            path = getattr(classifier, "path", None)
            size = f"{Path(path).stat().st_size / 1e6:.1f} MB" if path else ""
            rows.append(
                (name, "keras", size, "reference", f"{test_accuracy:.2%}" if test_accuracy is not None else "untrained")
            )
    print()
    print(
        "accuracy: each .tflite against the .keras model it was exported from, on that model's test split "
        "(export_model.py's self-check)"
    )
    header = f"{'model':<34} {'variant':>8} {'size':>9} {'agreement':>18}  test accuracy (keras -> export)"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row[0]:<34} {row[1]:>8} {row[2]:>9} {row[3]:>18}  {row[4]}")


if __name__ == "__main__":
    sys.exit(main())
