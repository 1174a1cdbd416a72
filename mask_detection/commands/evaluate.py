"""Measure the classifier on labelled face crops, or the whole pipeline on real scenes with annotated faces.

python evaluate.py --folder faces/                        # faces/with_mask/*.jpg, faces/without_mask/*.jpg
python evaluate.py --scenes scenes/ --report out/eval     # scenes/images/*.png + scenes/annotations/*.xml
python evaluate.py --video dev.mp4 --gt gt.txt            # MOT ground truth: people followed across frames
"""

import argparse

from ..detector import SMALL_PHOTO_UPSCALE
from ..evaluation import DEFAULT_IOU, FolderEvaluation, ScenesEvaluation, evaluate_folder, evaluate_scenes
from ..evaluation.report import percent
from ..evaluation.summary import unmatched_text
from ..evaluation.video_evaluation import VideoEvaluation, evaluate_video
from ..evaluation.video_summary import HEADLINE_ROWS, shown
from ..fileio import display_path
from ..pipeline import DEFAULT_FACE_CONFIDENCE
from . import common as cli

SCENES_ONLY = ("--iou", "--face-confidence", "--incorrect-as-without", "--upscale")
PHOTOS_ONLY = ("--incorrect-as-without", "--upscale")
VIDEO_ONLY = ("--gt", "--gt-classes", "--gt-segments", "--per-frame")


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
            "a gallery of what went wrong. --video with --gt: a video with ground truth in the MOT Challenge "
            "text format goes through the same stream code as detect_webcam.py (people tracked, one verdict "
            "each; --per-frame: every frame on its own): detector recall per frame, IDF1, HOTA and MOTA "
            "(trackers.eval), tracks per true person, identity switches and purity, tracks across a scene cut, "
            "label flicker, people counted, and balanced accuracy of per-person verdicts beside per-frame."
        ),
        epilog=(
            "Scenes layout: DIR/images/ and DIR/annotations/ (or the .xml files beside the images, as labelImg "
            "saves them). Headline figures: faces of 32 px and more on the short side, mask_weared_incorrect "
            "left out unless the model names it. Output in --report (default output/eval-<DIR name>): report.json "
            "(every figure), summary.md, PNG plots, all replaced together; it must be writable and may not be an "
            "input folder (nor lie inside a class folder of --folder): both are checked before any work. Unusable "
            "boxes (empty, no <bndbox>, wholly outside the photo) are left out with a warning, the file's other "
            "faces kept. Video ground truth: GT.txt lines 'frame, id, x, y, w, h, conf, class[, visibility]' (frames "
            "from 1, conf 0 = a region to ignore), class names one per line in --gt-classes (default: classes.txt "
            "or labels.txt beside GT.txt, else 1 with_mask, 2 without_mask, 3 mask_weared_incorrect), scene "
            "segments 'first_frame, last_frame, name' per line in --gt-segments (default: segments.txt beside "
            "GT.txt; without them tracks across a cut are n/a); benchmarks/make_dev_video.py builds a dev video "
            "with all three. Exit status: 0 done, 1 done but some files or boxes were skipped (listed), 2 nothing "
            "could be evaluated (bad folder, model or report folder)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", metavar="DIR", help="labelled folder of face crops: DIR/<class>/<images>")
    source.add_argument(
        "--scenes", metavar="DIR", help="photos with PASCAL VOC annotations (DIR/images, DIR/annotations)"
    )
    source.add_argument("--video", metavar="VIDEO", help="video file with MOT ground truth (--gt)")
    parser.add_argument("--gt", metavar="GT.txt", help="video: ground truth in the MOT Challenge text format")
    parser.add_argument("--gt-classes", metavar="FILE", help="video: class names, one per line, class id = line number")
    parser.add_argument(
        "--gt-segments", metavar="FILE", help="video: scene segments (first_frame, last_frame, name per line)"
    )
    parser.add_argument(
        "--per-frame",
        action="store_true",
        help="video: classify every face on every frame, as detect_webcam.py --per-frame (no tracks: identity "
        "and per-person figures are n/a)",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="classifier (.keras or .tflite; default: as detect_image.py, models/mask_detector.int8.tflite or "
        "models/mask_detector.keras)",
    )
    parser.add_argument(
        "--report", type=cli.non_empty_path, metavar="OUT_DIR", help="report folder (default: output/eval-<DIR name>)"
    )
    parser.add_argument(
        "--iou",
        type=overlap,
        default=None,
        metavar="T",
        help=f"scenes and video: IoU a detection needs with an annotated face to match it (default: "
        f"{DEFAULT_IOU:g}; for scenes 0.5 is always reported too)",
    )
    parser.add_argument(
        "--face-confidence",
        type=cli.probability,
        default=None,
        metavar="P",
        help=f"scenes and video: minimum face detector score, 0..1 (default: {DEFAULT_FACE_CONFIDENCE:g}, as "
        "detect_image.py and detect_webcam.py)",
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
    if args.video is None:
        ignore_flags(args, VIDEO_ONLY, (args.gt, args.gt_classes, args.gt_segments, args.per_frame))
    if args.folder is not None:
        return run_folder(args)
    if args.video is not None:
        return run_video(args)
    return run_scenes(args)


def ignore_flags(args: argparse.Namespace, flags: tuple[str, ...], values: tuple[object, ...]) -> None:
    for flag, value in zip(flags, values, strict=True):
        if value is not None and value is not False:
            cli.warn(f"{flag} does not apply {'without --video' if flag in VIDEO_ONLY else 'to --video'}; ignored")


def run_video(args: argparse.Namespace) -> int:
    if args.gt is None:
        cli.fail("--video needs --gt GT.txt, its ground truth in the MOT Challenge text format")
        return cli.EXIT_ERROR
    ignore_flags(args, PHOTOS_ONLY, (args.incorrect_as_without, args.upscale))
    result = evaluate_video(
        args.video,
        args.gt,
        gt_classes=args.gt_classes,
        gt_segments=args.gt_segments,
        model_path=args.model,
        report_dir=args.report,
        iou_threshold=DEFAULT_IOU if args.iou is None else args.iou,
        face_confidence=args.face_confidence,
        mask_threshold=args.mask_threshold,
        per_frame=args.per_frame,
        threads=args.threads,
        progress=not args.quiet,
        warn=cli.warn_above_progress,
    )
    for line in video_headline(result):
        cli.say(line)
    cli.say(f"report written to {display_path(result.report_dir)}/ (summary.md, report.json)")
    return cli.EXIT_PARTIAL if result.problems else cli.EXIT_OK


def video_headline(result: VideoEvaluation) -> list[str]:
    """The headline figures, a line each, and which targets are missed."""
    h = result.headline
    settings = result.report["settings"]
    lines = [f"{result.frames} frames, {settings['mode']} mode; slice ({h['slice']}, IoU {settings['iou']:g}):"]
    lines += [f"  {text}: {shown(h[name], kind)}" for name, text, kind in HEADLINE_ROWS]
    missed = [name for name, met in h["met"].items() if met is False]
    applicable = [name for name, met in h["met"].items() if met is not None]
    verdict = "all met" if not missed else "not met: " + ", ".join(missed)
    lines.append(f"targets ({len(applicable)} applicable): {verdict}")
    return lines


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
