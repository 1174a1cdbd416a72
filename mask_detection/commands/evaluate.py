"""Measure the classifier on labelled face crops, or the whole pipeline on real scenes with annotated faces.

python evaluate.py --folder faces/                        # faces/with_mask/*.jpg, faces/without_mask/*.jpg
python evaluate.py --scenes scenes/ --report out/eval     # scenes/images/*.png + scenes/annotations/*.xml
"""

import argparse

from ..detector import SMALL_PHOTO_UPSCALE
from ..evaluation import DEFAULT_IOU, FolderEvaluation, ScenesEvaluation, evaluate_folder, evaluate_scenes
from ..evaluation.report import percent
from ..evaluation.summary import unmatched_text
from ..fileio import display_path
from ..pipeline import DEFAULT_FACE_CONFIDENCE
from . import common as cli

SCENES_ONLY = ("--iou", "--face-confidence", "--incorrect-as-without", "--upscale")


def overlap(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=(
            "Honest accuracy figures. --folder: a labelled folder in the dataset layout (one sub-folder per class "
            "of face crops) goes through the classifier alone: accuracy, per-class precision/recall/F1, confusion "
            "matrix, ROC and precision-recall curves. --scenes: photos with PASCAL VOC boxes (objects named "
            "with_mask, without_mask, mask_weared_incorrect, or their usual aliases such as mask and no_mask) go "
            "through the same pipeline as detect_image.py: detector recall/precision by class and face size, box "
            "offsets, the classifier on the matched faces, the outcome of every annotated face, false alarms, and "
            "a gallery of what went wrong."
        ),
        epilog=(
            "Scenes layout: DIR/images/ and DIR/annotations/ (or the .xml files beside the images, as labelImg "
            "saves them). Headline figures: faces of 32 px and more on the short side, mask_weared_incorrect "
            "left out unless the model names it. Output in --report (default output/eval-<DIR name>): report.json "
            "(every figure), summary.md, PNG plots, all replaced together; it must be writable and may not be an "
            "input folder (nor lie inside a class folder of --folder): both are checked before any work. Unusable "
            "boxes (empty, no <bndbox>, wholly outside the photo) are left out with a warning, the file's other "
            "faces kept. Exit status: 0 done, 1 done but some files or boxes were skipped (listed), 2 nothing "
            "could be evaluated (bad folder, model or report folder)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", metavar="DIR", help="labelled folder of face crops: DIR/<class>/<images>")
    source.add_argument(
        "--scenes", metavar="DIR", help="photos with PASCAL VOC annotations (DIR/images, DIR/annotations)"
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="classifier (.keras or .tflite; default: as detect_image.py, models/mask_detector.int8.tflite or "
        "models/mask_detector.keras)",
    )
    parser.add_argument("--report", metavar="OUT_DIR", help="report folder (default: output/eval-<DIR name>)")
    parser.add_argument(
        "--iou",
        type=overlap,
        default=None,
        metavar="T",
        help=f"scenes: IoU a detection needs with an annotated face to match it (default: {DEFAULT_IOU:g}; 0.5 is "
        "always reported too)",
    )
    parser.add_argument(
        "--face-confidence",
        type=cli.probability,
        default=None,
        metavar="P",
        help=f"scenes: minimum face detector score, 0..1 (default: detect_image.py's, {DEFAULT_FACE_CONFIDENCE:g})",
    )
    parser.add_argument(
        "--mask-threshold",
        type=cli.probability,
        default=None,
        metavar="P",
        help="call a face 'with_mask' only when its mask probability is at least P (default: the most probable class)",
    )
    parser.add_argument(
        "--incorrect-as-without",
        action="store_true",
        help="scenes: score mask_weared_incorrect faces as without_mask when the model cannot name them (default: "
        "report how they were labelled, apart)",
    )
    parser.add_argument(
        "--upscale",
        type=cli.upscale_factor,
        default=None,
        metavar="F",
        help="scenes: enlarge photos up to 1000 px by F for face detection, as detect_image.py does (default: "
        f"{SMALL_PHOTO_UPSCALE:g}; 1 = never)",
    )
    parser.add_argument(
        "--threads",
        type=cli.positive_int,
        default=None,
        metavar="N",
        help="CPU threads for a .tflite classifier (LiteRT; default: the number of cores)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.folder is not None:
        return run_folder(args)
    return run_scenes(args)


def run_scenes(args: argparse.Namespace) -> int:
    iou = DEFAULT_IOU if args.iou is None else args.iou
    result = evaluate_scenes(
        args.scenes,
        model_path=args.model,
        report_dir=args.report,
        iou_threshold=iou,
        face_confidence=args.face_confidence,
        mask_threshold=args.mask_threshold,
        incorrect_as_without=args.incorrect_as_without,
        progress=not args.quiet,
        threads=args.threads,
        upscale=args.upscale,
        warn=cli.warn_above_progress,
    )
    cli.say(scenes_headline(result))
    cli.say(
        f"report written to {display_path(result.report_dir)}/ (summary.md, report.json, confusion_matrix.png, "
        f"recall_by_size.png, gallery.png)"
    )
    return cli.EXIT_PARTIAL if result.skipped_count else cli.EXIT_OK


def scenes_headline(result: ScenesEvaluation) -> str:
    """One line: the data, the target slice's figures, and whether the targets are met."""
    h = result.headline
    return (
        f"{result.images} photos, {result.faces} annotated faces; slice ({h['slice']}, IoU {result.iou:g}): "
        f"detection recall {percent(h['detection_recall'])}, unmatched detections per photo {unmatched_text(h)}, "
        f"balanced accuracy {percent(h['balanced_accuracy'])} -> targets {'met' if h['meets_targets'] else 'not met'}"
    )


def run_folder(args: argparse.Namespace) -> int:
    given = (
        args.iou is not None,
        args.face_confidence is not None,
        args.incorrect_as_without,
        args.upscale is not None,
    )
    for flag, is_given in zip(SCENES_ONLY, given, strict=True):
        if is_given:
            cli.warn(f"{flag} applies to --scenes only; ignored")
    result = evaluate_folder(
        args.folder,
        model_path=args.model,
        report_dir=args.report,
        mask_threshold=args.mask_threshold,
        progress=not args.quiet,
        threads=args.threads,
        warn=cli.warn_above_progress,
    )
    say_folder_result(result)
    return cli.EXIT_PARTIAL if result.skipped_count else cli.EXIT_OK


def say_folder_result(result: FolderEvaluation) -> None:
    cli.say(result.report_text.rstrip())
    cli.say(
        f"accuracy {percent(result.accuracy, 2)}, balanced accuracy {percent(result.balanced_accuracy, 2)} on "
        f"{result.images} images"
    )
    cli.say(
        f"report written to {display_path(result.report_dir)}/ (summary.md, report.json, confusion_matrix.png, "
        f"roc.png, precision_recall.png)"
    )


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
