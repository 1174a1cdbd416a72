"""stream.process_stream, the one frame seam: every frame through the processor in order, and ``finish`` called by
the stream itself on every way out (the end, a frame limit, a stop signal, the caller leaving early or failing),
with its events delivered to the sink after the frames' own."""

import contextlib

import numpy as np
import pytest

from mask_detection.interrupts import StopFlag
from mask_detection.results import FrameResult, PersonEvent, Timings
from mask_detection.stream import process_stream


class Frames:
    """A source of ``n`` small frames, 10 per second; frame k is filled with the value k."""

    name, fps, live, failure = "test frames", 10.0, False, None

    def __init__(self, n):
        self.n, self.read_count = n, 0

    def read(self):
        if self.read_count >= self.n:
            return None
        self.read_count += 1
        return np.full((4, 4, 3), self.read_count - 1, np.uint8), (self.read_count - 1) / self.fps

    def close(self):
        pass


class Recorder:
    """A frame processor that reports one event per frame and, at ``finish``, one more per call."""

    class_names = ["with_mask", "without_mask"]

    def __init__(self):
        self.timings, self.people = Timings(), None
        self.seen, self.finished = [], []

    def process(self, bgr, frame_index, time):
        self.seen.append((frame_index, time, int(bgr[0, 0, 0])))
        event = PersonEvent("verdict", 1, frame_index, time, "with_mask", 0.9, xywh=(0, 0, 1, 1))
        return FrameResult(frame_index, time, [], bgr, [event])

    def finish(self, frame_index, time):
        self.finished.append(frame_index)
        return [PersonEvent("leave", 1, frame_index, time, "with_mask", 0.9, first_frame_index=0, frames=1)]


def run(n, **options):
    processor, heard = Recorder(), []
    results = list(process_stream(Frames(n), processor, on_events=heard.extend, **options))
    return processor, heard, results


def test_every_frame_in_order_then_finish_once_at_the_last_frame():
    processor, heard, results = run(5)
    assert processor.seen == [(i, i / 10, i) for i in range(5)]
    assert [r.frame_index for r in results] == list(range(5))
    assert processor.finished == [4]
    assert [(e.kind, e.frame_index) for e in heard] == [("verdict", i) for i in range(5)] + [("leave", 4)]


def test_a_frame_limit_ends_the_stream_and_finishes_it():
    processor, heard, results = run(10, max_frames=3)
    assert len(results) == 3 and processor.finished == [2] and heard[-1].kind == "leave"


def test_a_stop_signal_ends_before_the_next_frame_and_finishes():
    stop, processor, heard = StopFlag(), Recorder(), []
    for result in process_stream(Frames(10), processor, stop=stop, on_events=heard.extend):
        if result.frame_index == 1:
            stop.set = True
    assert [s[0] for s in processor.seen] == [0, 1] and processor.finished == [1]


def test_a_caller_leaving_early_gets_the_leave_events_when_it_closes_the_stream():
    processor, heard = Recorder(), []
    with contextlib.closing(process_stream(Frames(10), processor, on_events=heard.extend)) as frames:
        for result in frames:
            if result.frame_index == 2:
                break
    assert processor.finished == [2] and heard[-1].kind == "leave"


def test_a_caller_that_fails_still_gets_the_stream_finished():
    processor, heard = Recorder(), []
    with pytest.raises(RuntimeError):
        for result in process_stream(Frames(10), processor, on_events=heard.extend):
            if result.frame_index == 1:
                raise RuntimeError("the caller failed")
    assert processor.finished == [1] and heard[-1].kind == "leave"


def test_no_frame_no_finish():
    processor, heard, results = run(0)
    assert results == [] and processor.finished == [] and heard == []


def test_stream_stages_are_timed():
    timings = Timings()
    run(3, timings=timings, draw=True)
    assert set(timings) == {"read", "draw"} and all(seconds >= 0 for seconds in timings.values())
