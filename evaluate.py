"""Measure the classifier on labelled face crops, or the whole pipeline on real scenes with annotated faces.

    python evaluate.py --folder faces/                        # faces/with_mask/*.jpg, faces/without_mask/*.jpg
    python evaluate.py --scenes scenes/ --report out/eval     # scenes/images/*.png + scenes/annotations/*.xml
"""

import argparse

from mask_detection import cli


def overlap(text):
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        description=(
            "Honest accuracy figures. --folder: a labelled folder in the dataset layout (one sub-folder per class "
            "of face crops) goes through the classifier alone: accuracy, per-class precision/recall/F1, confusion "
            "matrix, ROC and precision-recall curves. --scenes: photos with PASCAL VOC boxes (objects named "
            "with_mask, without_mask, mask_weared_incorrect) go through the same pipeline as detect_image.py: "
            "detector recall/precision by class and face size, box offsets, the classifier on the matched faces, "
            "the outcome of every annotated face, false alarms, and a gallery of what went wrong."
        ),
        epilog=(
            "Scenes layout: DIR/images/ and DIR/annotations/ (or the .xml files beside the images, as labelImg "
            "saves them). Headline figures: faces of 32 px and more on the short side, mask_weared_incorrect "
            "left out. Output in --report (default output/eval-<DIR name>): report.json (every figure), "
            "summary.md, PNG plots, all replaced together; it must be writable and may not be an input folder "
            "(nor lie inside a class folder of --folder): both are checked before any work. Unusable boxes (empty, "
            "no <bndbox>, wholly outside the photo) are left out with a warning, the file's other faces kept. "
            "Exit status: 0 done, 1 done but some files or boxes were skipped (listed), 2 nothing could be "
            "evaluated (bad folder, model or report folder)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", metavar="DIR", help="labelled folder of face crops: DIR/<class>/<images>")
    source.add_argument("--scenes", metavar="DIR", help="photos with PASCAL VOC annotations (DIR/images, "
                        "DIR/annotations)")
    parser.add_argument("--model", metavar="PATH", help="classifier (.keras or .tflite; default: as "
                        "detect_image.py, models/mask_detector.int8.tflite or models/mask_detector.keras)")
    parser.add_argument("--report", metavar="OUT_DIR", help="report folder (default: output/eval-<DIR name>)")
    parser.add_argument("--iou", type=overlap, default=0.3, metavar="T",
                        help="scenes: IoU a detection needs with an annotated face to match it (default: "
                        "%(default)s; 0.5 is always reported too)")
    parser.add_argument("--face-confidence", type=cli.probability, default=None, metavar="P",
                        help="scenes: minimum face detector score, 0..1 (default: detect_image.py's, 0.5)")
    parser.add_argument("--mask-threshold", type=cli.probability, default=None, metavar="P",
                        help="call a face 'with_mask' only when its mask probability is at least P (default: "
                        "the most probable class)")
    parser.add_argument("--incorrect-as-without", action="store_true",
                        help="scenes: score mask_weared_incorrect faces as without_mask (default: report how "
                        "they were labelled, apart)")
    parser.add_argument("--upscale", type=cli.upscale_factor, default=None, metavar="F",
                        help="scenes: enlarge photos up to 1000 px by F for face detection, as detect_image.py "
                        "does (default: 1.5; 1 = never)")
    parser.add_argument("--threads", type=cli.positive_int, default=None, metavar="N",
                        help="CPU threads for a .tflite classifier (LiteRT; default: the number of cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mask_detection import evaluation

    if args.folder is not None:
        for flag, given in (("--iou", args.iou != 0.3), ("--face-confidence", args.face_confidence is not None),
                            ("--incorrect-as-without", args.incorrect_as_without),
                            ("--upscale", args.upscale is not None)):
            if given:
                cli.warn(f"{flag} applies to --scenes only; ignored")
        return evaluation.evaluate_folder(args.folder, model_path=args.model, report_dir=args.report,
                                          mask_threshold=args.mask_threshold, progress=not args.quiet,
                                          threads=args.threads)
    return evaluation.evaluate_scenes(
        args.scenes, model_path=args.model, report_dir=args.report, iou_threshold=args.iou,
        face_confidence=args.face_confidence, mask_threshold=args.mask_threshold,
        incorrect_as_without=args.incorrect_as_without, progress=not args.quiet, threads=args.threads,
        upscale=args.upscale,
    )


if __name__ == "__main__":
    cli.run(main)
