"""Shared command-line plumbing: one clear line on stderr and an exit code, never a traceback."""

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO

from tqdm import tqdm

from ..detector import SMALL_PHOTO_MAX_SIDE, SMALL_PHOTO_UPSCALE
from ..errors import TERMINATING_SIGNALS, Interrupted, MaskDetectionError
from ..fileio import safe_text
from ..pipeline import DEFAULT_FACE_CONFIDENCE

EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs failed, the rest were processed
EXIT_ERROR = 2  # bad input or nothing could be processed
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def exit_code_for_signal(signum: int) -> int:
    """The shell's convention for a run ended by a signal (TERMINATING_SIGNALS are handled like Ctrl-C: the
    current step finishes or is undone, outputs are finalised or left untouched): 143 for SIGTERM, 129 for
    SIGHUP."""
    return 128 + int(signum)


def say(text: str, file: TextIO | None = None) -> None:
    """Print one line for the user; names with any bytes print safely on any stream encoding."""
    file = sys.stdout if file is None else file
    text = safe_text(text)
    encoding = getattr(file, "encoding", None) or "utf-8"
    try:
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    print(text, file=file, flush=True)


def fail(message: str) -> None:
    """Print one error line to stderr."""
    say(f"error: {message}", file=sys.stderr)


def warn(message: str) -> None:
    """Print one warning line to stderr."""
    say(f"warning: {message}", file=sys.stderr)


def warn_above_progress(message: str) -> None:
    """A warning line on stderr, with a running progress bar (tqdm) cleared first and redrawn below it."""
    with tqdm.external_write_mode(file=sys.stderr):
        warn(message)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise Interrupted (a KeyboardInterrupt), so they unwind like Ctrl-C: temporary files
    are removed, videos finalised, existing outputs kept. A signal the process was started ignoring stays
    ignored: ``nohup`` (SIGHUP) and ``cmd &`` in a script (SIGINT) are how users ask a run to outlive them."""
    for signum in TERMINATING_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_interrupted)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> NoReturn:
    """Run ``main(argv) -> int`` and exit with its code, turning user errors into one stderr line."""
    install_signal_handlers()
    try:
        code = main(argv)
    except MaskDetectionError as exc:
        fail(str(exc))
        code = EXIT_ERROR
    except Interrupted as exc:
        say(f"stopped by signal {signal.Signals(exc.signum).name}", file=sys.stderr)
        code = exit_code_for_signal(exc.signum)
    except KeyboardInterrupt:
        say("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except MemoryError:
        fail("out of memory")
        code = EXIT_ERROR
    except BrokenPipeError:
        # The reader of our output went away (`| head -1`): it has what it wanted, so this is an ordinary end
        # (exit 0, like other tools on a closed pipe), with nothing more to say to anyone.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        code = EXIT_OK
    sys.exit(code or EXIT_OK)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with this project's error convention: one line starting with ``error:``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_ERROR)


# argparse value types shared by the scripts.
def probability(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise _argument_error(f"must be between 0 and 1, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise _argument_error(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise _argument_error(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:  # also refuses nan
        raise _argument_error(f"must be a positive number, got {text}")
    if value == float("inf"):
        raise _argument_error(f"must be finite, got {text}")
    return value


def non_empty_path(text: str) -> str:
    """A path argument: an empty one (an unset shell variable, ``--snapshots ""``) would silently mean the current
    folder, so it is refused."""
    if not text.strip():
        raise _argument_error("must not be empty")
    return text


def upscale_factor(text: str) -> float:
    value = _number(text, float)
    if not 1.0 <= value <= 4.0:
        raise _argument_error(f"must be between 1 and 4, got {text}")
    return value


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise _argument_error(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None


def _argument_error(message):
    return argparse.ArgumentTypeError(message)


MODEL_HELP = (
    "classifier (.keras or .tflite; default: models/mask_detector.int8.tflite, the int8 export of "
    "models/mask_detector.keras, or that .keras file when the export is missing or older)"
)


def add_pipeline_options(parser: argparse.ArgumentParser, photos: bool) -> None:
    """The options of the shared detection pipeline, the same in every script that runs it.

    ``photos``: also ``--upscale`` (enlarging small photos for detection; live video never does).
    """
    parser.add_argument("--model", default=None, metavar="PATH", help=MODEL_HELP)
    parser.add_argument(
        "--face-confidence",
        type=probability,
        default=DEFAULT_FACE_CONFIDENCE,
        metavar="P",
        help="minimum face detector score, 0..1 (default: %(default)s)",
    )
    parser.add_argument(
        "--mask-threshold",
        type=probability,
        default=None,
        metavar="P",
        help="call a face 'with_mask' only when its mask probability is at least P (default: the "
        "most probable class, i.e. 0.5 for two classes)",
    )
    parser.add_argument(
        "--detect-size",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="shrink frames to this longer side for face detection only (faster; faces smaller "
        "than about 10*L/PIXELS px are missed, L the frame's longer side; default: the full "
        "frame)",
    )
    if photos:
        parser.add_argument(
            "--upscale",
            type=upscale_factor,
            default=SMALL_PHOTO_UPSCALE,
            metavar="F",
            help=f"enlarge photos up to {SMALL_PHOTO_MAX_SIDE} px (longer side) by F for face "
            "detection only: finds more small faces (default: %(default)s; 1 = never)",
        )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for a .tflite classifier (LiteRT; default: the number of cores); .keras models ignore it",
    )
