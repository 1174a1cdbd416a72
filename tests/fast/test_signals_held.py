"""fileio.signals_held: a signal during a group of renames waits for the block to end, also in a process with
other threads (TensorFlow, LiteRT and tqdm start some), and an ignored signal stays ignored."""

import os
import signal
import threading

import pytest

from mask_detection.fileio import signals_held


@pytest.fixture
def other_thread():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_ctrl_c_inside_the_block_is_raised_after_it(other_thread):
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # Python would run a pending handler here
                pass
            steps.append("block finished")
    assert steps == ["block finished"]


def test_each_held_signal_reaches_the_handler_that_was_in_place_once(other_thread):
    got = []
    saved = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):
                pass
            assert got == []
        assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_an_ignored_signal_stays_ignored():
    saved = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals_held():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, saved)
