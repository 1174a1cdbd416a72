#!/usr/bin/env python3
"""Detection pipeline speed per stage at 640x480 with 1, 3 and 8 faces.

Frames are built from real face photos (scikit-image's astronaut and cameraman, flipped and scaled) pasted on a
640x480 canvas and stored as JPEG, so "decode" is a real frame decode. Stages per frame: decode (JPEG -> BGR),
detect (YuNet), crop (shared crop rule + resize rule, all faces), classify (one batched call for all faces), draw
(boxes, labels, status panel). FPS = 1 / mean total time per frame. A second table puts each model's accuracy
beside its speed: a .tflite file's agreement with the .keras model it was exported from (export_model.py's
self-check on that model's test split) and the test accuracy before and after export.

    python benchmarks/pipeline_speed.py                                   # the shipped .keras and its exports
    python benchmarks/pipeline_speed.py --model a.keras --model b.keras   # several models
    python benchmarks/pipeline_speed.py --architecture resnet50           # untrained model of that backbone
                                                                          # (speed does not depend on weights)
    python benchmarks/pipeline_speed.py --architecture resnet50 --export none --export dynamic --export int8
    python benchmarks/pipeline_speed.py --detect-size 320                 # also detection on shrunk frames
"""

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 480
STAGES = ("decode", "detect", "crop", "classify", "draw")


def face_photos():
    """Head-and-shoulders crops (BGR) from real photos that scikit-image ships."""
    import cv2
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 110:340]
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[60:260, 150:310]
    return [astronaut, cameraman, astronaut[:, ::-1], cameraman[:, ::-1]]


def make_frame(n_faces):
    """A 640x480 BGR frame with ``n_faces`` real faces laid out in a grid on a plain background."""
    import cv2

    photos = face_photos()
    frame = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
    cols = {1: 1, 3: 3, 8: 4}.get(n_faces, int(np.ceil(np.sqrt(n_faces))))
    rows = int(np.ceil(n_faces / cols))
    cell_w, cell_h = WIDTH // cols, HEIGHT // rows
    for i in range(n_faces):
        photo = photos[i % len(photos)]
        scale = min(cell_w / photo.shape[1], cell_h / photo.shape[0]) * 0.92
        tile = cv2.resize(
            photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
        r, c = divmod(i, cols)
        y = r * cell_h + (cell_h - tile.shape[0]) // 2
        x = c * cell_w + (cell_w - tile.shape[1]) // 2
        frame[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return frame


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


def time_pipeline(pipeline, jpeg, frames, warmup):
    import cv2

    from mask_detection.overlay import annotate

    totals = dict.fromkeys(STAGES, 0.0)
    n_faces = None
    for i in range(warmup + frames):
        timings = {}
        t0 = time.perf_counter()
        frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        detections = pipeline.process(frame, timings=timings)
        t2 = time.perf_counter()
        annotate(frame, detections, pipeline.class_names, fps=30.0)
        t3 = time.perf_counter()
        timings["decode"] = t1 - t0
        timings["draw"] = t3 - t2
        n_faces = len(detections)
        if i >= warmup:
            for key in STAGES:
                totals[key] += timings.get(key, 0.0)
    return {key: value / frames for key, value in totals.items()}, n_faces


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="PATH",
        help="classifier file (repeatable; default: models/mask_detector.keras and its .tflite exports "
        "beside it, when no --architecture)",
    )
    p.add_argument(
        "--architecture",
        action="append",
        default=[],
        choices=("efficientnet_lite0", "resnet50"),
        help="also time an untrained classifier of this backbone (repeatable)",
    )
    p.add_argument(
        "--export",
        action="append",
        default=[],
        choices=("none", "float16", "dynamic", "int8"),
        help="with --architecture: also time that untrained model exported to TFLite with this "
        "quantization (repeatable)",
    )
    p.add_argument("--faces", default="1,3,8", help="face counts per frame (default: %(default)s)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per setting (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default: %(default)s)")
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
    p.add_argument("--save-frames", metavar="DIR", help="also save the annotated test frames here")
    args = p.parse_args()

    import cv2

    from mask_detection.classifier import load_classifier
    from mask_detection.commands import common as cli
    from mask_detection.detector import YuNetDetector
    from mask_detection.errors import MaskDetectionError
    from mask_detection.overlay import annotate
    from mask_detection.pipeline import MaskPipeline

    configure_threads(cv_threads=args.cv_threads, tf_threads=args.tf_threads)
    from mask_detection._tf import tf

    t = tf()
    models = list(args.model) or ([] if args.architecture else default_models())
    classifiers = []
    try:
        for path in models:
            classifiers.append((Path(path).name, load_classifier(path)))
    except MaskDetectionError as exc:
        cli.fail(str(exc))
        return 2
    exports = tempfile.TemporaryDirectory(prefix="pipeline_speed-")  # removed when main returns
    for backbone in args.architecture:
        classifiers.extend(untrained_classifiers(backbone, args.export, exports.name))

    detectors = [("full", YuNetDetector())] + [(str(n), YuNetDetector(max_side=n)) for n in args.detect_size]
    counts = [int(n) for n in args.faces.split(",")]
    jpegs = {n: cv2.imencode(".jpg", make_frame(n), [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for n in counts}
    print(
        f"CPU cores: {os.cpu_count()}, cv2 threads: {cv2.getNumThreads()}, "
        f"TF intra-op threads: {t.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"{args.frames} frames per row, {WIDTH}x{HEIGHT}"
    )
    header = (
        f"{'model':<34} {'det':>4} {'faces':>5} "
        + " ".join(f"{s + ' ms':>11}" for s in STAGES)
        + f" {'total ms':>9} {'FPS':>6}"
    )
    print(header)
    print("-" * len(header))
    for (name, classifier), (det_name, detector) in itertools.product(classifiers, detectors):
        pipeline = MaskPipeline(detector, classifier)
        for n in counts:
            stages, found = time_pipeline(pipeline, jpegs[n], args.frames, args.warmup)
            total = sum(stages.values())
            note = "" if found == n else f"  (detected {found})"
            print(
                f"{name:<34} {det_name:>4} {n:>5} "
                + " ".join(f"{stages[s] * 1000:>11.1f}" for s in STAGES)
                + f" {total * 1000:>9.1f} {1 / total:>6.1f}{note}",
                flush=True,
            )
            if args.save_frames:
                frame = cv2.imdecode(jpegs[n], cv2.IMREAD_COLOR)
                annotate(frame, pipeline.process(frame), pipeline.class_names)
                Path(args.save_frames).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(args.save_frames) / f"faces_{n}_{det_name}.jpg"), frame)
    print_agreement(classifiers)
    return 0


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
