"""Turn a dataset folder (one sub-folder per class) into one arrays file for training.

    python loader.py                                  # dataset/ -> dataset/arrays.npz
    python loader.py --dataset photos --out /tmp/arrays.npz --no-face-crop
"""

import argparse
import sys
import time

from mask_detection import INPUT_SIZE, cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=(
            "Read every picture under DATASET/<class>/ (any two or more class folders, e.g. with_mask and "
            "without_mask; files decoded by content, undecodable ones skipped with a warning), drop exact "
            "duplicates and pictures found under two classes, resize each to "
            f"{INPUT_SIZE}x{INPUT_SIZE} (padded to a square by edge replication) and write one .npz file "
            "for train_model.py."
        ),
        epilog="Exit status: 0 done, 2 bad dataset (missing folder, fewer than two classes, a class with no usable picture).",
    )
    parser.add_argument("--dataset", default="dataset", help="dataset folder with one sub-folder per class (default: %(default)s)")
    parser.add_argument("--out", default=None, help="arrays file to write (default: DATASET/arrays.npz)")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar (warnings and the summary are still printed)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.face_confidence <= 1.0:
        parser.error(f"--face-confidence must be between 0 and 1, got {args.face_confidence}")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help does not load OpenCV and Pillow.
    from pathlib import Path

    from mask_detection.dataset import build_arrays, format_summary, save_arrays

    out = Path(args.out) if args.out else Path(args.dataset) / "arrays.npz"
    started = time.monotonic()
    arrays, summary = build_arrays(
        args.dataset,
        face_crop=args.face_crop,
        face_confidence=args.face_confidence,
        progress=not args.quiet,
    )
    size = save_arrays(out, arrays)
    elapsed = time.monotonic() - started
    print(format_summary(summary))
    print(f"wrote {out} ({len(arrays['labels'])} pictures, {size / 1e6:.1f} MB) in {elapsed:.1f} s")
    sys.stdout.flush()
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main)
