#!/usr/bin/env python3
"""Classifier time per face for each backbone at its native input size, as detection runs it: the whole
classifier (preprocessing, backbone, pooling, head) exported to float32 and int8 TFLite and run by LiteRT, one face
per call and a batch of 12 faces (a crowd frame), in milliseconds per face.

Untrained models (speed does not depend on the weights; int8 is calibrated on generated pictures). All the models are
built first, then timed in ``--rounds`` rounds that take each model in turn (so load from other work falls on all
alike); each figure is the fastest call of all rounds (``--repeats`` calls per round) after two warm-up calls.

    python benchmarks/backbone_speed.py                                   # Lite0, Lite1, Lite2 at 224/240/260
    python benchmarks/backbone_speed.py --backbone efficientnet_lite2 --size 224   # another side
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

CROWD = 12


def parse_args(argv=None):
    from mask_detection.backbones import LITE_BACKBONES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", action="append", choices=LITE_BACKBONES, help="repeatable (default: all Lite)")
    p.add_argument("--size", type=int, help="input side (default: each backbone's native size)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per model and round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="rounds over all the models (default: %(default)s)")
    p.add_argument("--threads", type=int, help="LiteRT threads (default: one per core, as detection)")
    return p.parse_args(argv)


def per_face_ms(classifier, images, repeats):
    """The fastest of ``repeats`` calls, per face."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict(images)
        times.append(time.perf_counter() - started)
    return 1000 * min(times) / len(images)


def main(argv=None):
    args = parse_args(argv)
    from mask_detection.backbones import LITE_BACKBONES, NATIVE_INPUT_SIZES
    from mask_detection.export import convert, generated_images
    from mask_detection.litert import LiteRTClassifier
    from mask_detection.model import build_classifier, build_feature_extractor, build_head_layers

    with tempfile.TemporaryDirectory() as workdir:
        rows = []  # (backbone, side, export name, MB, classifier, images)
        for backbone in args.backbone or LITE_BACKBONES:
            size = args.size or NATIVE_INPUT_SIZES[backbone]
            extractor = build_feature_extractor(backbone, weights=None, input_size=size)
            model = build_classifier(extractor, build_head_layers(2), 1e-3)
            images = generated_images(CROWD, size=size)
            meta = {"class_names": ["with_mask", "without_mask"], "backbone": backbone, "input_size": size}
            for quantize in ("none", "int8"):
                content = convert(model, quantize, calibration=generated_images(32, size=size, seed=1))
                path = Path(workdir) / f"{backbone}.{quantize}.tflite"
                path.write_bytes(content)
                path.with_suffix(".json").write_text(json.dumps(meta))
                classifier = LiteRTClassifier(path, meta, size, threads=args.threads)
                for batch in (images[:1], images):
                    classifier.predict(batch)  # warm-up
                    classifier.predict(batch)
                name = "float32" if quantize == "none" else quantize
                rows.append((backbone, size, name, len(content) / 1e6, classifier, images))
        best = {i: [math.inf, math.inf] for i in range(len(rows))}
        for _ in range(args.rounds):
            for i, (*_, classifier, images) in enumerate(rows):
                best[i][0] = min(best[i][0], per_face_ms(classifier, images[:1], args.repeats))
                best[i][1] = min(best[i][1], per_face_ms(classifier, images, max(3, args.repeats // 3)))
    print(f"{'backbone':20s} {'side':>4s} {'export':7s} {'MB':>5s} {'1 face ms':>9s} {'12 faces ms/face':>16s}")
    for i, (backbone, size, name, mb, *_) in enumerate(rows):
        print(f"{backbone:20s} {size:4d} {name:7s} {mb:5.1f} {best[i][0]:9.2f} {best[i][1]:16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
