"""Export a trained classifier (.keras) to TFLite for fast CPU and small-device inference with LiteRT.

Quantization: none (float32: exact, always possible; the default), float16 (half-size weights), dynamic (int8
weights, float activations: about 4x smaller, but measured slower than float32 on x86 CPUs without VNNI) or int8
(full-integer, calibrated on training images: smallest and fastest here, and the choice for Raspberry Pi class
devices and integer-only accelerators). Each export checks itself on the held-out test split of the training
arrays: it must agree with the Keras model on at least 99.5% of the images and lose at most 0.3 points of
accuracy, else nothing is written and the exit status is 2. The metadata JSON (class names, input size,
agreement figures) is written beside the .tflite; detect_image.py / detect_webcam.py / evaluate.py then take
--model X.tflite.
"""

import argparse

from ..arrays import DEFAULT_ARRAYS
from ..export import QUANTIZATIONS, default_calibration_path, default_model_path, export_models
from . import common as cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python export_model.py                                 # models/mask_detector.float32.tflite\n"
        "  python export_model.py --quantize int8                 # models/mask_detector.int8.tflite\n"
        "  python export_model.py --quantize none float16 dynamic int8   # all four, one line each\n"
        "  python detect_image.py --demo --model models/mask_detector.int8.tflite",
    )
    p.add_argument(
        "--model",
        help="trained Keras model (default: models/mask_detector.keras when it exists, else "
        "the shipped model); the export is written beside it",
    )
    p.add_argument(
        "--quantize",
        nargs="+",
        choices=QUANTIZATIONS,
        default=["none"],
        metavar="MODE",
        help=f"one or more of {', '.join(QUANTIZATIONS)} (default: none, i.e. float32)",
    )
    p.add_argument(
        "--calibration",
        metavar="ARRAYS",
        help="arrays file from loader.py: its images in the model's test split (from "
        "<model>_split.json) check the export, the others calibrate int8 (default: the arrays file "
        "the model was trained on, named in its metadata, looked for here and, for a relative name, from the "
        f"folder above the model's (models/ is in the folder training ran in); else {DEFAULT_ARRAYS} if it exists; "
        "without one, the check uses generated images, agreement only, and int8 is refused)",
    )
    p.add_argument(
        "--out",
        type=cli.non_empty_path,
        metavar="FILE.tflite",
        help="output file, with a single --quantize (default: the model's path ending in "
        ".<mode>.tflite, e.g. models/mask_detector.int8.tflite; float32 for none)",
    )
    args = p.parse_args(argv)
    if args.out is not None and len(set(args.quantize)) != 1:
        p.error("--out names one file: give a single --quantize with it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = args.model or default_model_path()
    # Without arrays, int8 is refused by export_models, once the model itself is known to be usable.
    calibration = args.calibration or default_calibration_path(model)
    results = export_models(
        model, args.quantize, calibration_path=calibration, out=args.out, log=cli.say, warn=cli.warn
    )
    refused = [result for result in results.values() if result.path is None]
    for result in refused:
        assert result.refusal is not None  # a refused export always says why
        cli.fail(result.refusal)
    if not refused:
        return cli.EXIT_OK
    return cli.EXIT_PARTIAL if len(refused) < len(results) else cli.EXIT_ERROR


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
