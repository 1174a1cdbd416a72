"""Turn a dataset folder (one sub-folder per class) into one arrays file for training.

    python loader.py                                  # dataset/ -> dataset/arrays.npz
    python loader.py --dataset photos --out /tmp/arrays.npz --no-face-crop
"""

import argparse
import sys
import time

from mask_detection import INPUT_SIZE, cli


def parse_args(argv=None):
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


def check_out(out, dataset, class_names):
    """Refuse, before the slow scan, an --out that cannot be written or that would be read as a picture.

    Inside a class folder (or a folder that the next run would take for a new class) the arrays file could
    replace a picture, and would become an input of the next run.
    """
    import os
    from pathlib import Path

    from mask_detection.errors import OutputError
    from mask_detection.fileio import check_writable, display_path

    check_writable(out)
    real = Path(os.path.realpath(out))
    for name in class_names:
        folder = Path(os.path.realpath(Path(dataset) / name))
        if real.is_relative_to(folder):
            raise OutputError(f"refusing to write {display_path(out)}: it is inside the class folder "
                              f"{display_path(Path(dataset) / name)}, whose files are this run's inputs")
    base = Path(os.path.realpath(dataset))
    if real.is_relative_to(base) and len(real.relative_to(base).parts) > 1:
        first = real.relative_to(base).parts[0]
        if not first.startswith("."):  # hidden folders are not classes
            raise OutputError(f"refusing to write {display_path(out)}: {display_path(Path(dataset) / first)} would "
                              f"be taken for a class folder by the next run (write beside the class folders, e.g. "
                              f"{display_path(Path(dataset) / real.name)})")


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help does not load OpenCV and Pillow.
    from pathlib import Path

    from mask_detection.dataset import build_arrays, find_classes, format_summary, save_arrays
    from mask_detection.fileio import display_path

    out = Path(args.out) if args.out else Path(args.dataset) / "arrays.npz"
    check_out(out, args.dataset, find_classes(args.dataset))
    started = time.monotonic()
    arrays, summary = build_arrays(
        args.dataset,
        face_crop=args.face_crop,
        face_confidence=args.face_confidence,
        progress=not args.quiet,
    )
    size = save_arrays(out, arrays)
    elapsed = time.monotonic() - started
    cli.say(format_summary(summary))
    cli.say(f"wrote {display_path(out)} ({len(arrays['labels'])} pictures, {size / 1e6:.1f} MB) in {elapsed:.1f} s")
    if summary.skipped_paths:
        # The arrays file is usable, but some pictures are not in it: the exit status says so to scripts.
        cli.say(f"{len(summary.skipped_paths)} file(s) skipped as undecodable or unreadable (see the warnings)",
                file=sys.stderr)
        return cli.EXIT_PARTIAL
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main)
