"""Turn a dataset folder (one sub-folder per class) into one arrays file for training.

python loader.py                                  # dataset/ -> dataset/arrays.npz
python loader.py --dataset photos --out /tmp/arrays.npz --no-face-crop
python loader.py --dataset dataset --scenes scenes-train    # class folders and annotated scene photos
python loader.py --scenes scenes-train --out /tmp/scenes.npz  # annotated scene photos alone
"""

import argparse
import sys
import time
from pathlib import Path

from .. import INPUT_SIZE, MIN_INPUT_SIZE
from ..annotations.scene_set import scene_folders
from ..arrays import ARRAYS_NAME, DEFAULT_DATASET_DIR, save_arrays
from ..classes import WITH_MASK, WITHOUT_MASK
from ..crop import ALIGNED, CROP_STYLES, SQUARE
from ..dataset import build_arrays, check_arrays_output, combine_sources, find_classes, format_sources, format_summary
from ..detector import SMALL_PHOTO_UPSCALE, load_detector
from ..errors import DatasetError
from ..fileio import check_writable, display_path
from ..painted_masks import painted_source
from ..scene_crops import SCENES_ONLY_CLASSES, build_scene_arrays, format_scene_summary
from . import common as cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=(
            "Read every picture under DATASET/<class>/ (any two or more class folders, e.g. with_mask and "
            "without_mask; files decoded by content, undecodable ones skipped with a warning), drop exact "
            "duplicates and pictures found under two classes, resize each to "
            f"{INPUT_SIZE}x{INPUT_SIZE} (or --input-size; padded to a square by edge replication) and write one "
            ".npz file "
            "for train_model.py. With --scenes, also one picture per annotated face of photos with PASCAL VOC "
            "boxes (labelImg, CVAT), cut by the same crop rule as detection around the face detector's box "
            "matched to the annotation (IoU >= 0.3), or around the annotated box when no detection matches."
        ),
        epilog=(
            "Exit status: 0 done; 1 done, but some files were skipped as undecodable or unreadable (listed as "
            "warnings; the arrays file is written from the rest, but some of your pictures are not in it, and "
            "scripts can tell); 2 nothing written: bad dataset (missing folder, fewer than two classes, a class "
            "with no usable picture) or an --out that cannot be written or lies inside a class folder. Exact "
            "duplicates and label conflicts are not failures. Links to folders inside a class folder are not "
            "followed (a warning says so). Scenes: annotated faces under 8 px and faces of a registered class "
            "the arrays have no class for (e.g. mask_weared_incorrect without such a class folder) are counted, "
            "not failures; boxes outside the photo, zero-area or malformed boxes, unknown class names, "
            "unreadable annotation files, missing or undecodable photos are skipped with a warning and give "
            "status 1."
        ),
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"dataset folder with one sub-folder per class (default: {DEFAULT_DATASET_DIR}, unless only "
        "--scenes is given)",
    )
    parser.add_argument(
        "--scenes",
        action="append",
        default=[],
        metavar="DIR",
        help="also (or, without --dataset, only) the annotated faces of DIR/images with PASCAL VOC files in "
        "DIR/annotations; repeatable. Class names go through the usual aliases and must be class folder "
        f"names ({' and '.join(SCENES_ONLY_CLASSES)} without --dataset). Each picture's source is recorded in "
        "the arrays file; the same picture from two sources is kept once",
    )
    parser.add_argument(
        "--out",
        type=cli.non_empty_path,
        default=None,
        help=f"arrays file to write (default: DATASET/{ARRAYS_NAME}, or {DEFAULT_DATASET_DIR / ARRAYS_NAME})",
    )
    parser.add_argument(
        "--face-crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop each picture to its largest detected face (YuNet, same margin as detection), so training "
        "sees what detection feeds the classifier; pictures with no face found are kept whole and counted as "
        "'no face'. On by default: measured on real scenes it labels faces better than whole pictures "
        "(see README). --no-face-crop keeps whole pictures, and cuts scene faces around their annotated boxes",
    )
    parser.add_argument(
        "--crop",
        choices=CROP_STYLES,
        default=SQUARE,
        help="how faces are cut (with --face-crop): 'square' cuts a square around the face box (the shipped "
        "model's rule), 'aligned' turns each face upright and to one scale from the detector's five landmarks "
        "(eyes, nose, mouth corners): it catches more bare faces of 32 px and over, but its int8 export usually "
        "fails the export's agreement check (see docs/results.md). The model trained on these arrays records it, "
        "and detection cuts faces the same way (default: %(default)s)",
    )
    parser.add_argument(
        "--face-confidence",
        type=float,
        default=0.5,
        metavar="P",
        help="minimum face detector score for the face crop, 0..1 (default: %(default)s)",
    )
    parser.add_argument(
        "--input-size",
        type=cli.positive_int,
        default=INPUT_SIZE,
        metavar="PX",
        help="side of the square pictures in the arrays file, which the trained classifier then takes: the "
        "backbone's native size, e.g. 240 for efficientnet_lite1, 260 for efficientnet_lite2 (default: %(default)s)",
    )
    parser.add_argument(
        "--painted-masks",
        action="store_true",
        help="add every bare face of the class folders once more with a mask painted over nose and mouth "
        "(surgical, cloth or N95, drawn from the aligned landmarks) as a with_mask picture of source 'painted', so "
        "the classifier must look at nose and mouth; needs aligned face crops and with_mask/without_mask folders",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (warnings and the summary are still printed)"
    )
    args = parser.parse_args(argv)
    if args.dataset is None and not args.scenes:
        args.dataset = str(DEFAULT_DATASET_DIR)
    if args.input_size < MIN_INPUT_SIZE:  # the backbones shrink a picture 32 times
        parser.error(f"--input-size must be at least {MIN_INPUT_SIZE}, got {args.input_size}")
    if not 0.0 <= args.face_confidence <= 1.0:
        parser.error(f"--face-confidence must be between 0 and 1, got {args.face_confidence}")
    if args.painted_masks and (args.dataset is None or not args.face_crop or args.crop != ALIGNED):
        parser.error(
            "--painted-masks paints on the class folders' aligned face crops: it needs --dataset, face crops "
            "and --crop aligned"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out) if args.out else Path(args.dataset or DEFAULT_DATASET_DIR) / ARRAYS_NAME
    class_names = find_classes(args.dataset) if args.dataset else list(SCENES_ONLY_CLASSES)
    if args.painted_masks and not {WITH_MASK, WITHOUT_MASK} <= set(class_names):
        raise DatasetError(
            f"--painted-masks needs class folders {WITH_MASK} and {WITHOUT_MASK}, found {', '.join(class_names)}"
        )
    if args.dataset:
        check_arrays_output(out, args.dataset, class_names)
    else:
        check_writable(out)
    for scenes_dir in args.scenes:
        scene_folders(scenes_dir)  # a missing folder fails now, not after the class folders are read
    started = time.monotonic()
    parts: list[dict] = []
    reports: list[str] = []
    skipped: list[str] = []
    if args.dataset:
        parts += _read_folders(args, reports, skipped)
    if args.scenes:
        parts += _read_scenes(args, class_names, reports, skipped)
    arrays = _combine(parts, reports) if args.scenes or args.painted_masks else parts[0]
    size = save_arrays(out, arrays)
    elapsed = time.monotonic() - started
    cli.say("\n\n".join(reports))
    cli.say(f"wrote {display_path(out)} ({len(arrays['labels'])} pictures, {size / 1e6:.1f} MB) in {elapsed:.1f} s")
    if skipped:
        # The arrays file is usable, but some pictures are not in it: the exit status says so to scripts.
        cli.say(f"{'; '.join(skipped)} (see the warnings)", file=sys.stderr)
        return cli.EXIT_PARTIAL
    return cli.EXIT_OK


def _read_folders(args: argparse.Namespace, reports: list[str], skipped: list[str]) -> list[dict]:
    """The class folders' arrays (and their painted copies, with --painted-masks); their summary and what was
    skipped are added to ``reports`` and ``skipped``."""
    detector = load_detector(score_threshold=args.face_confidence) if args.face_crop else None
    arrays, summary = build_arrays(
        args.dataset,
        detector=detector,
        progress=not args.quiet,
        warn=cli.warn_above_progress,
        crop=args.crop,
        size=args.input_size,
    )
    reports.append(format_summary(summary))
    if summary.skipped_paths:
        skipped.append(f"{len(summary.skipped_paths)} file(s) skipped as undecodable or unreadable")
    if not args.painted_masks:
        return [arrays]
    names = list(arrays["class_names"])
    bare = names.index(WITHOUT_MASK)
    painted = painted_source(arrays, summary.kept_whole, names.index(WITH_MASK), bare)
    whole = sum(str(digest) in summary.kept_whole for digest in arrays["hashes"][arrays["labels"] == bare])
    reports.append(
        f"painted masks: {len(painted['labels'])} bare face(s) copied with a mask ({whole} bare picture(s) "
        "kept whole, no face found, left out)"
    )
    return [arrays, painted]


def _read_scenes(args: argparse.Namespace, class_names: list[str], reports: list[str], skipped: list[str]) -> list:
    """The arrays of each --scenes folder; their summaries and what was skipped are added to ``reports`` and
    ``skipped``."""
    # The detection scale of photos in the pipeline, so that the matched boxes are those detection produces.
    detector = (
        load_detector(score_threshold=args.face_confidence, upscale=SMALL_PHOTO_UPSCALE) if args.face_crop else None
    )
    parts, broken = [], 0
    for scenes_dir in args.scenes:
        arrays, summary = build_scene_arrays(
            scenes_dir,
            class_names,
            detector,
            progress=not args.quiet,
            warn=cli.warn_above_progress,
            crop=args.crop,
            size=args.input_size,
        )
        parts.append(arrays)
        reports.append(format_scene_summary(summary))
        broken += summary.broken
    if broken:
        skipped.append(f"{broken} scene face(s) or file(s) skipped as unusable")
    return parts


def _combine(parts: list[dict], reports: list[str]) -> dict:
    arrays, counts = combine_sources(parts)
    reports.append(format_sources(counts))
    return arrays


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
