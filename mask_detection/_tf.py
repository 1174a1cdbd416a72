"""Quiet TensorFlow import.

TensorFlow's C++ start-up prints oneDNN, CUDA-stub and cpu_feature_guard lines straight to file
descriptor 2, before any Python logging setting can act, so the import runs with fd 2 pointed at
/dev/null. Real errors during the import still raise a Python exception.
"""

import os
import sys
import contextlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


@contextlib.contextmanager
def _silence_fds(*fds):
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
        for fd, copy in zip(fds, saved):
            if streams.get(fd) is not None:
                try:
                    streams[fd].flush()  # Python-buffered output written inside goes to /dev/null too
                except (OSError, ValueError):
                    pass
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def silence_stderr():
    """Point fd 2 at /dev/null for the duration (C++ libraries write there directly)."""
    return _silence_fds(2)


def silence_output():
    """Point fd 1 and fd 2 at /dev/null for the duration (TFLite's converter prints hundreds of lines)."""
    return _silence_fds(1, 2)


def tf():
    """Return the tensorflow module, imported without its start-up noise."""
    if "tensorflow" not in sys.modules:
        with silence_stderr():
            import tensorflow  # noqa: F401
            tensorflow.get_logger().setLevel("ERROR")
    return sys.modules["tensorflow"]


def keras():
    """Return the keras module (Keras 3 on the TensorFlow backend), imported quietly."""
    tf()
    if "keras" not in sys.modules:
        with silence_stderr():
            import keras  # noqa: F401
    return sys.modules["keras"]
