"""Quiet TensorFlow import.

TensorFlow's C++ start-up prints oneDNN, CUDA-stub and cpu_feature_guard lines straight to file
descriptor 2, before any Python logging setting can act, so the import runs with fd 2 pointed at
/dev/null. Real errors during the import still raise a Python exception.
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

# Set before TensorFlow starts (its C++ logging reads them once). GPUs stay visible: training uses one when
# TensorFlow sees it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _silence_fds(*fds: int) -> Iterator[None]:
    """Point the given file descriptors at /dev/null for the duration (C++ libraries write there directly)."""
    streams = {1: sys.stdout, 2: sys.stderr}
    try:
        for fd in fds:
            if streams.get(fd) is not None:
                streams[fd].flush()
        saved = [os.dup(fd) for fd in fds]
    except (OSError, ValueError):  # no real descriptors (e.g. embedded interpreters): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            if streams.get(fd) is not None:
                try:
                    streams[fd].flush()  # Python-buffered output written inside goes to /dev/null too
                except (OSError, ValueError):
                    pass
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def silence_stderr() -> contextlib.AbstractContextManager[None]:
    """Point fd 2 at /dev/null for the duration (C++ libraries write there directly)."""
    return _silence_fds(2)


def silence_output() -> contextlib.AbstractContextManager[None]:
    """Point fd 1 and fd 2 at /dev/null for the duration (TFLite's converter prints hundreds of lines)."""
    return _silence_fds(1, 2)


def tf() -> ModuleType:
    """Return the tensorflow module, imported without its start-up noise."""
    if "tensorflow" not in sys.modules:
        with silence_stderr():
            import tensorflow  # noqa: F401

            tensorflow.get_logger().setLevel("ERROR")
    return sys.modules["tensorflow"]


def keras() -> ModuleType:
    """Return the keras module (Keras 3 on the TensorFlow backend), imported quietly."""
    tf()
    if "keras" not in sys.modules:
        with silence_stderr():
            import keras  # noqa: F401
    return sys.modules["keras"]
