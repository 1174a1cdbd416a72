#!/usr/bin/env python3
"""Export a trained classifier (.keras) to TFLite for fast CPU and small-device inference with LiteRT.

Quantization: none (float32: exact, always possible; the default), float16 (half-size weights), dynamic (int8
weights, float activations: about 4x smaller, but measured slower than float32 on x86 CPUs without VNNI) or int8
(full-integer, calibrated on training images: smallest and fastest here, and the choice for Raspberry Pi class
devices and integer-only accelerators). Each export checks itself on the held-out test split of the training arrays: it must
agree with the Keras model on at least 99.5% of the images and lose at most 0.3 points of accuracy, else nothing
is written and the exit status is 2. The metadata JSON (class names, input size, agreement figures) is written
beside the .tflite; detect_image.py / detect_webcam.py / evaluate.py then take --model X.tflite.
"""

import argparse

from mask_detection import cli

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def parse_args(argv=None):
    p = cli.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python export_model.py                                 # models/mask_detector.float32.tflite\n"
               "  python export_model.py --quantize int8                 # models/mask_detector.int8.tflite\n"
               "  python export_model.py --quantize none float16 dynamic int8   # all four, one line each\n"
               "  python detect_image.py --demo --model models/mask_detector.int8.tflite")
    p.add_argument("--model", default="models/mask_detector.keras",
                   help="trained Keras model (default: %(default)s)")
    p.add_argument("--format", default="tflite", choices=("tflite",), help="export format (default: %(default)s)")
    p.add_argument("--quantize", nargs="+", choices=QUANTIZATIONS, default=["none"], metavar="MODE",
                   help="one or more of none, float16, dynamic, int8 (default: none, i.e. float32)")
    p.add_argument("--calibration", metavar="ARRAYS",
                   help="arrays file from loader.py: its images in the model's test split (from "
                        "<model>_split.json) check the export, the others calibrate int8 (default: the arrays file "
                        "the model was trained on, if it is there, else dataset/arrays.npz if it exists; without "
                        "one, the check uses generated images, agreement only, and int8 is not possible)")
    p.add_argument("--out", metavar="FILE.tflite",
                   help="output file, with a single --quantize (default: the model's path ending in "
                        ".<mode>.tflite, e.g. models/mask_detector.int8.tflite; float32 for none)")
    return p.parse_args(argv)


def default_calibration(model_path):
    """The arrays file the model was trained on (named in its metadata), else dataset/arrays.npz, else None."""
    import json
    from pathlib import Path

    candidates = []
    try:
        meta = json.loads(Path(model_path).with_suffix(".json").read_text(encoding="utf-8"))
        candidates.append(meta["data"]["file"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    candidates.append("dataset/arrays.npz")
    # The metadata is only a hint: a value that is not a file name is ignored, never a crash.
    return next((c for c in candidates if isinstance(c, str) and c and "\0" not in c and Path(c).is_file()), None)


def main(argv=None):
    args = parse_args(argv)
    from mask_detection.export import export_models

    calibration = args.calibration or default_calibration(args.model)
    results = export_models(args.model, args.quantize, calibration_path=calibration, out=args.out,
                            fmt=args.format, log=cli.say, warn=cli.fail, warning=cli.warn)
    failed = [q for q, path in results.items() if path is None]
    if not failed:
        return cli.EXIT_OK
    return cli.EXIT_PARTIAL if len(failed) < len(results) else cli.EXIT_ERROR


if __name__ == "__main__":
    cli.run(main)
