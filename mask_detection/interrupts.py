"""Stopping long work cleanly on Ctrl-C, SIGTERM or SIGHUP: the current step finishes, then the work stops.

Raising KeyboardInterrupt in the middle of a native library's step (TensorFlow's training loop, a video writer)
can leave it half-done, or crash it; a flag checked between steps lets every output be finalised instead.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

from .errors import TERMINATING_SIGNALS, Interrupted


class StopFlag:
    """Ctrl-C, SIGTERM and SIGHUP end the loop after the current frame (a second one interrupts at once).

    Finishing the frame keeps the JSON lines, the counts and the written video in step. ``signum`` tells which
    signal stopped the loop (None: none did).
    """

    SIGNALS = (signal.SIGINT, *TERMINATING_SIGNALS)

    def __init__(self) -> None:
        self.set = False
        self.signum: int | None = None

    @contextlib.contextmanager
    def on_signals(self) -> Iterator["StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = {}
        for signum in self.SIGNALS:
            old = signal.getsignal(signum)
            previous[signum] = signal.SIG_DFL if old is None else old  # None: set outside Python

        def handler(signum, frame):
            self.set = True
            if self.signum is None:
                self.signum = signum
            signal.signal(signum, previous[signum])  # the same signal again: the previous behaviour, at once

        for signum in self.SIGNALS:
            if previous[signum] is not signal.SIG_IGN:  # nohup's ignored SIGHUP stays ignored
                signal.signal(signum, handler)
        try:
            yield self
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def raise_if_set(self) -> None:
        """Re-raise the signal that stopped the work, as the command layer expects it (exit 130, 143, 129)."""
        if not self.set:
            return
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(self.signum)
