"""Turn a dataset folder (one sub-folder per class) into one arrays file for training.

python loader.py                                  # dataset/ -> dataset/arrays.npz
python loader.py --dataset photos --out /tmp/arrays.npz --no-face-crop
"""

import argparse
import sys
import time
from pathlib import Path

from .. import INPUT_SIZE
from ..arrays import ARRAYS_NAME, DEFAULT_DATASET_DIR, save_arrays
from ..dataset import build_arrays, check_arrays_output, find_classes, format_summary
from ..detector import load_detector
from ..fileio import display_path
from . import common as cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=(
            "Read every picture under DATASET/<class>/ (any two or more class folders, e.g. with_mask and "
            "without_mask; files decoded by content, undecodable ones skipped with a warning), drop exact "
            "duplicates and pictures found under two classes, resize each to "
            f"{INPUT_SIZE}x{INPUT_SIZE} (padded to a square by edge replication) and write one .npz file "
            "for train_model.py."
        ),
        epilog=(
            "Exit status: 0 done; 1 done, but some files were skipped as undecodable or unreadable (listed as "
            "warnings; the arrays file is written from the rest, but some of your pictures are not in it, and "
            "scripts can tell); 2 nothing written: bad dataset (missing folder, fewer than two classes, a class "
            "with no usable picture) or an --out that cannot be written or lies inside a class folder. Exact "
            "duplicates and label conflicts are not failures. Links to folders inside a class folder are not "
            "followed (a warning says so)."
        ),
    )
    parser.add_argument(
        "--dataset",
        default=str(DEFAULT_DATASET_DIR),
        help="dataset folder with one sub-folder per class (default: %(default)s)",
    )
    parser.add_argument("--out", default=None, help=f"arrays file to write (default: DATASET/{ARRAYS_NAME})")
    parser.add_argument(
        "--face-crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop each picture to its largest detected face (YuNet, same margin as detection), so training "
        "sees what detection feeds the classifier; pictures with no face found are kept whole and counted as "
        "'no face'. On by default: measured on real scenes it labels faces better than whole pictures "
        "(see README). --no-face-crop keeps whole pictures",
    )
    parser.add_argument(
        "--face-confidence",
        type=float,
        default=0.5,
        metavar="P",
        help="minimum face detector score for the face crop, 0..1 (default: %(default)s)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (warnings and the summary are still printed)"
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.face_confidence <= 1.0:
        parser.error(f"--face-confidence must be between 0 and 1, got {args.face_confidence}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out) if args.out else Path(args.dataset) / ARRAYS_NAME
    check_arrays_output(out, args.dataset, find_classes(args.dataset))
    started = time.monotonic()
    detector = load_detector(score_threshold=args.face_confidence) if args.face_crop else None
    arrays, summary = build_arrays(
        args.dataset, detector=detector, progress=not args.quiet, warn=cli.warn_above_progress
    )
    size = save_arrays(out, arrays)
    elapsed = time.monotonic() - started
    cli.say(format_summary(summary))
    cli.say(f"wrote {display_path(out)} ({len(arrays['labels'])} pictures, {size / 1e6:.1f} MB) in {elapsed:.1f} s")
    if summary.skipped_paths:
        # The arrays file is usable, but some pictures are not in it: the exit status says so to scripts.
        cli.say(
            f"{len(summary.skipped_paths)} file(s) skipped as undecodable or unreadable (see the warnings)",
            file=sys.stderr,
        )
        return cli.EXIT_PARTIAL
    return cli.EXIT_OK


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
