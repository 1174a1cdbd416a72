"""Shared command-line plumbing: one clear line on stderr and an exit code, never a traceback."""

import sys

from .errors import MaskDetectionError

EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs failed, the rest were processed
EXIT_ERROR = 2  # bad input or nothing could be processed
EXIT_INTERRUPTED = 130


def fail(message):
    """Print one error line to stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def warn(message):
    """Print one warning line to stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def run(main, argv=None):
    """Run ``main(argv) -> int`` and exit with its code, turning user errors into one stderr line."""
    try:
        code = main(argv)
    except MaskDetectionError as exc:
        fail(str(exc))
        code = EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED
    except MemoryError:
        fail("out of memory")
        code = EXIT_ERROR
    sys.exit(code or EXIT_OK)


# argparse value types shared by the scripts.
def probability(text):
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise _argument_error(f"must be between 0 and 1, got {text}")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise _argument_error(f"must be at least 1, got {text}")
    return value


def upscale_factor(text):
    value = float(text)
    if not 1.0 <= value <= 4.0:
        raise _argument_error(f"must be between 1 and 4, got {text}")
    return value


def _argument_error(message):
    import argparse

    return argparse.ArgumentTypeError(message)


MODEL_HELP = ("classifier (.keras or .tflite; default: models/mask_detector.int8.tflite, the int8 export of "
              "models/mask_detector.keras, or that .keras file when the export is missing or older)")


def add_pipeline_options(parser, photos):
    """The options of the shared detection pipeline, the same in every script that runs it.

    ``photos``: also ``--upscale`` (enlarging small photos for detection; live video never does).
    """
    parser.add_argument("--model", default=None, metavar="PATH", help=MODEL_HELP)
    parser.add_argument("--face-confidence", type=probability, default=0.5, metavar="P",
                        help="minimum face detector score, 0..1 (default: %(default)s)")
    parser.add_argument("--mask-threshold", type=probability, default=None, metavar="P",
                        help="call a face 'with_mask' only when its mask probability is at least P (default: the "
                             "most probable class, i.e. 0.5 for two classes)")
    parser.add_argument("--detect-size", type=positive_int, default=None, metavar="PIXELS",
                        help="shrink frames to this longer side for face detection only (faster; faces smaller "
                             "than about 10*L/PIXELS px are missed, L the frame's longer side; default: the full "
                             "frame)")
    if photos:
        parser.add_argument("--upscale", type=upscale_factor, default=None, metavar="F",
                            help="enlarge photos up to 1000 px (longer side) by F for face detection only: finds "
                                 "more small faces (default: 1.5; 1 = never)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for a .tflite classifier (LiteRT; default: the number of cores); .keras "
                             "models ignore it")
