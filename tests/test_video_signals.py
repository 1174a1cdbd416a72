"""SIGTERM and SIGHUP (timeout, docker stop, systemd, a closed terminal) stop a video run like Ctrl-C: the current
frame finishes, the video is finalised, the summary is printed, and the exit code is 128 + the signal."""

import json
import signal
import subprocess
import sys

import pytest
from conftest import REPO, hooked_script, on_call, send_signal
from detect_support import count_frames, make_face_video


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    make_face_video(path, frames=300, fps=25.0, size=(320, 280))
    return path


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"])
def test_terminating_signal_finalises_the_video(tmp_path, long_video, signum, code):
    """The signal comes while the third frame is read (a hook in the real process: sent from outside after the
    first line, it could come after the 300th frame on a loaded machine); that frame is the current one."""
    out = tmp_path / "partial.mp4"
    args = ["--video", long_video, "--no-display", "--json", "--output", out]
    hook = on_call("mask_detection.video_io:FileSource.read", send_signal(signum), call=3)
    result = subprocess.run(
        hooked_script("detect_webcam.py", *args, hooks=[hook]), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    err = result.stderr
    assert result.returncode == code, err
    assert "Traceback" not in err
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    n = len(records)
    assert n == 3  # the frames before the signal, and the current one finished
    assert [r["frame"] for r in records] == list(range(n))
    assert f"summary: {n} frames" in err
    assert f"stopped by signal {signal.Signals(signum).name}" in err
    assert count_frames(out) == n  # finalised, decodable, exactly the frames reported
    assert [p.name for p in tmp_path.iterdir()] == ["partial.mp4"]  # no hidden temporary file left


def test_a_signal_before_the_loop_leaves_nothing(tmp_path, long_video):
    """A SIGTERM while the model is still loading: no output, no temporary file, exit 143."""
    out = tmp_path / "o.mp4"
    code = (
        "import os, signal, sys\n"
        "from mask_detection.commands import common as cli, detect_webcam\n"
        "real = detect_webcam.load_pipeline\n"
        "def slow(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*a, **k)\n"
        "detect_webcam.load_pipeline = slow\n"
        "sys.argv[0] = 'detect_webcam.py'\n"
        f"cli.run(detect_webcam.main, ['--video', {str(long_video)!r}, '--output', {str(out)!r}, '--no-display'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 143, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
