"""detect_webcam.py on generated videos of a real face: every frame out, JSON per frame, Ctrl-C, bad sources."""

import io
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_script
from detect_support import count_frames, make_face_video, save_tiny_classifier


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "faces.mp4"
    make_face_video(path, frames=30, fps=15.0)
    return path


def test_video_file_every_frame_annotated_and_one_json_line_each(tmp_path, face_video, tiny_model):
    out = tmp_path / "annotated.mp4"
    result = run_script(
        "detect_webcam.py", "--video", face_video, "--no-display", "--output", out, "--json", "--model", tiny_model
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(30))
    for i, record in enumerate(records):
        assert set(record) == {"frame", "time", "faces"}
        assert record["time"] == pytest.approx(i / 15.0, abs=1e-3)
        assert len(record["faces"]) == 1
        assert set(record["faces"][0]) == {"box", "score", "label", "probability"}
    # The face moves right across the frames, and so do the boxes.
    xs = [r["faces"][0]["box"][0] for r in records]
    assert xs[-1] - xs[0] > 200
    assert count_frames(out) == 30
    assert "summary: 30 frames, 30 faces seen" in result.stderr
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


def test_ctrl_c_stops_cleanly_and_finalises_the_video(tmp_path, tiny_model):
    video = tmp_path / "long.mp4"
    make_face_video(video, frames=300, fps=25.0)
    out = tmp_path / "partial.mp4"
    cmd = [sys.executable, str(REPO / "detect_webcam.py"), "--video", str(video), "--no-display", "--json",
           "--output", str(out), "--model", str(tiny_model)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines = [proc.stdout.readline() for _ in range(3)]  # processing is under way
    assert all(lines), proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    lines += rest.splitlines()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    n = len([line for line in lines if line.strip()])
    assert 3 <= n < 300
    assert f"summary: {n} frames" in err
    assert count_frames(out) == n  # finalised: readable, exactly the processed frames


def test_max_frames_in_process(tmp_path, face_video, tiny_model):
    from mask_detection.video import detect_stream

    text = io.StringIO()
    code = detect_stream(video=face_video, display=False, max_frames=5, as_json=True, model_path=tiny_model, out=text)
    assert code == 0
    assert [json.loads(line)["frame"] for line in text.getvalue().splitlines()] == [0, 1, 2, 3, 4]


def test_live_reader_hands_out_the_newest_frame(face_video):
    """The camera path's threaded reader (fed by a video file here): a slow consumer skips frames, never lags."""
    import time

    from mask_detection.video import FileSource, LiveSource

    every = FileSource(face_video)
    all_frames = []
    while (item := every.read()) is not None:
        all_frames.append(item[0])
    every.close()
    assert len(all_frames) == 30 and every.failure is None

    live = LiveSource(str(face_video), "test stream")
    got = []
    try:
        while (item := live.read()) is not None:
            got.append(item)
            time.sleep(0.1)  # slower than the reader thread
    finally:
        live.close()
    assert 1 <= len(got) < 30
    assert np.array_equal(got[-1][0], all_frames[-1])  # the newest frame, not a stale one
    assert [t for _, t in got] == sorted(t for _, t in got)
    assert "stopped delivering frames" in live.failure  # the end of a live source is reported


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["--video", d / "missing.mp4"], "no such file"),
        (lambda d: ["--video", d / "text.mp4"], "cannot"),
        (lambda d: ["--camera", "57"], "cannot open camera 57"),
        (lambda d: ["--video", d / "ok.mp4", "--output", d / "out.gif"], "cannot write"),
        (lambda d: ["--video", d / "ok.mp4", "--model", d / "missing.keras"], "does not exist"),
    ],
    ids=["missing-video", "text-as-video", "no-camera", "bad-output", "missing-model"],
)
def test_bad_sources_are_one_line_and_exit_2(tmp_path, make_args, message):
    (tmp_path / "text.mp4").write_text("not a video\n")
    make_face_video(tmp_path / "ok.mp4", frames=2)
    result = run_script("detect_webcam.py", *make_args(tmp_path), "--no-display")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "out.gif").exists()


def test_output_is_finalised_when_the_model_fails(tmp_path, face_video):
    """Nothing processed: no half-written output file is left."""
    out = tmp_path / "out.mp4"
    result = run_script("detect_webcam.py", "--video", face_video, "--no-display", "--output", out,
                        "--model", tmp_path / "missing.keras")
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []
