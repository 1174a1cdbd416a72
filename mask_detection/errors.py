"""Errors that the command lines turn into one clear line on stderr and exit code 2."""

import signal


class MaskDetectionError(Exception):
    """A user-facing error: the message is complete and is shown as it is, without a traceback."""


class DatasetError(MaskDetectionError):
    pass


class ImageDecodeError(MaskDetectionError):
    # Set where images.py raises it: the picture as messages show it, and the reason alone.
    path: str
    reason: str


class ModelError(MaskDetectionError):
    pass


class WeightsError(MaskDetectionError):
    pass


class OutputError(MaskDetectionError):
    """An output that cannot be written, or that would replace one of the run's inputs."""


# Handled like Ctrl-C: the current step finishes or is undone, outputs are finalised or left untouched, and the
# exit code is the shell's convention, 128 + the signal number (143 for SIGTERM, 129 for SIGHUP).
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what ``timeout``, ``docker stop`` and systemd send), handled like Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = int(signum)


def exception_line(exc: BaseException, last: bool = False, limit: int = 200) -> str:
    """One line of an exception's message, for a user-facing error: the first (or, for libraries that end with
    the cause, such as OpenCV and Pillow, the ``last``) non-empty line, at most ``limit`` characters; the type's
    name when the message is empty."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:limit]
