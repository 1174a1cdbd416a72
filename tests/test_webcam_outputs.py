"""Where and how detect_webcam.py writes (issue 16): streams stay streams, logs are appended to, runs never
overwrite each other's snapshots, nohup protects a run, every output clash is refused before the first frame,
and a reader that goes away is an ordinary end."""

import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import threading

import cv2
import pytest
from conftest import REPO, hooked_script, loopback_http_server, on_call, send_signal
from detect_support import count_frames, make_face_video, save_tiny_classifier
from test_detect_video import two_people_video, watch


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def people_video(tmp_path_factory):
    return two_people_video(tmp_path_factory.mktemp("video") / "two.mp4", frames=20)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def script(*args):
    return [sys.executable, str(REPO / "detect_webcam.py"), *map(str, args)]


def test_events_into_a_fifo_reach_its_reader_and_the_fifo_stays(tmp_path, people_video, tiny_model, capfd):
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code, _, err = watch(capfd, "--video", people_video, "--no-display", "--model", tiny_model, "--events", fifo)
    reader.join(timeout=120)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    events = [json.loads(line) for line in received[0].decode().splitlines()]
    assert [e["event"] for e in events].count("leave") == 2
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_events_to_dev_null_leave_dev_null_a_device(people_video, tiny_model, capfd):
    code, _, err = watch(capfd, "--video", people_video, "--no-display", "--model", tiny_model, "--events", "/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_second_run_appends_to_the_log_and_keeps_the_first_runs_snapshots(tmp_path, people_video, tiny_model, capfd):
    log, snaps = tmp_path / "events.jsonl", tmp_path / "snaps"
    args = ["--video", people_video, "--no-display", "--model", tiny_model, "--events", log, "--snapshots", snaps]
    assert watch(capfd, *args)[0] == 0
    first_text = log.read_text()
    first_pictures = {p.name: p.read_bytes() for p in snaps.iterdir()}
    assert watch(capfd, *args)[0] == 0
    assert log.read_text().startswith(first_text)  # the first run's lines, untouched
    events = read_log(log)
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["run"] != starts[1]["run"]
    assert [e["event"] for e in events].count("end") == 2
    for e in events:
        if e["event"] == "verdict":
            assert os.path.basename(e["snapshot"]).startswith(e["run"] + "_")
            assert cv2.imread(e["snapshot"]) is not None
    for name, data in first_pictures.items():
        assert (snaps / name).read_bytes() == data  # never replaced by the second run's people
    assert len(list(snaps.iterdir())) == 2 * len(first_pictures)


def test_sigterm_after_one_frame_keeps_the_old_log(tmp_path, tiny_model):
    """SIGTERM while the second frame is read (a hook in the real process, not a time): the earlier runs' lines
    stay, and this run's lines are whole, from its start to its end line."""
    video = two_people_video(tmp_path / "long.mp4", frames=40, fps=25.0)
    log = tmp_path / "events.jsonl"
    old = '{"event": "start", "run": "earlier"}\n{"event": "end", "run": "earlier", "frames": 3}\n'
    log.write_text(old)
    hook = on_call("mask_detection.video_io:FileSource.read", send_signal(signal.SIGTERM), call=2)
    args = ["--video", video, "--no-display", "--model", tiny_model, "--events", log]
    result = subprocess.run(
        hooked_script("detect_webcam.py", *args, hooks=[hook]), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 143, result.stderr
    text = log.read_text()
    assert text.startswith(old)
    new = [json.loads(line) for line in text[len(old) :].splitlines()]
    assert new[0]["event"] == "start" and new[-1] == {"event": "end", "run": new[0]["run"], "frames": 2}


def test_nohup_keeps_the_run_going_when_the_terminal_hangs_up(tmp_path, tiny_model):
    """`nohup` starts the command with SIGHUP ignored: a hang-up while the third frame is read must not stop it (it
    used to exit 129); every frame is processed."""
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=12, fps=10.0, size=(320, 240))
    hook = on_call("mask_detection.video_io:FileSource.read", send_signal(signal.SIGHUP), call=3)
    args = ["--video", video, "--no-display", "--json", "--model", tiny_model]
    command = hooked_script("detect_webcam.py", *args, hooks=[hook], hang_up_default=False)
    result = subprocess.run(["nohup", *command], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 12  # every frame, not stopped
    assert "stopped by signal" not in result.stderr


def test_without_nohup_a_hang_up_still_stops_the_run(tmp_path, tiny_model):
    """The other side of the nohup rule: a run started with SIGHUP at its default stops on it (exit 129), after
    the frame being read."""
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=12, fps=10.0, size=(320, 240))
    hook = on_call("mask_detection.video_io:FileSource.read", send_signal(signal.SIGHUP), call=3)
    args = ["--video", video, "--no-display", "--json", "--model", tiny_model]
    result = subprocess.run(
        hooked_script("detect_webcam.py", *args, hooks=[hook]), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 129, result.stderr
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output", "{d}/x.mp4", "--snapshots", "{d}/x.mp4"], "both the --output video and the --snapshots folder"),
        (["--events", "{d}/shared", "--snapshots", "{d}/shared"], "both the --events log and the --snapshots folder"),
        (["--events", "/proc/ev.jsonl"], "cannot write /proc/ev.jsonl: no new files can be created in /proc"),
    ],
    ids=["video-is-snapshots", "events-is-snapshots", "proc"],
)
def test_output_clashes_are_refused_before_the_first_frame(tmp_path, capfd, args, message):
    video = tmp_path / "in.mp4"
    make_face_video(video, frames=2)
    args = [a.format(d=tmp_path) for a in args]
    code, out, err = watch(capfd, "--video", video, "--no-display", "--model", tmp_path / "missing.keras", *args)
    assert code == 2, err
    assert err.strip().splitlines() == [f"error: {err.strip().removeprefix('error: ')}"] and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing created, no frame processed


def test_json_redirected_onto_the_output_video_is_refused(tmp_path, tiny_model):
    video, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_face_video(video, frames=2)
    make_face_video(out, frames=3)
    before = out.read_bytes()
    with open(out, "ab") as stdout:  # `>> out.mp4`
        result = subprocess.run(
            script("--video", video, "--no-display", "--json", "--model", tiny_model, "--output", out),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=300,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: refusing to write JSON lines to standard output: it is the --output video"
    assert out.read_bytes() == before


def test_an_input_named_like_a_snapshot_is_never_overwritten(tmp_path, tiny_model, capfd, monkeypatch):
    video = two_people_video(tmp_path / "track-000001.jpg.mp4", frames=12)
    named = tmp_path / "track-000001.jpg"
    video.rename(named)  # a video whose name is what a snapshot used to be called
    before = named.read_bytes()
    monkeypatch.chdir(tmp_path)
    code, _, err = watch(capfd, "--video", named, "--no-display", "--model", tiny_model, "--snapshots", ".")
    assert code == 0, err
    assert named.read_bytes() == before
    assert len([p for p in tmp_path.iterdir() if p.name.endswith("_track-000001.jpg")]) == 1


def test_empty_output_names_are_refused(capfd):
    code, _, err = watch(capfd, "--snapshots", "", "--no-display")
    assert code == 2 and "argument --snapshots: must not be empty" in err


def test_a_reader_that_goes_away_is_an_ordinary_end(tmp_path, tiny_model):
    """`--json | head -1`: the second frame is read only once the reader has closed the pipe (a hook waits for
    that), so printing its line always meets a closed pipe: exit 0, no traceback, the video so far finalised."""
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=20, fps=10.0, size=(320, 240))
    out = tmp_path / "out.mp4"
    closed = tmp_path / "reader-closed"
    setup = (
        "def _wait_for_the_reader():\n"
        "    import time\n"
        f"    while not os.path.exists({str(closed)!r}):\n"
        "        time.sleep(0.01)\n"
    )
    hook = on_call("mask_detection.video_io:FileSource.read", "_wait_for_the_reader", call=2)
    args = ["--video", video, "--no-display", "--json", "--model", tiny_model, "--output", out]
    proc = subprocess.Popen(
        hooked_script("detect_webcam.py", *args, hooks=[hook], setup=setup),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout.readline().startswith(b"{")
        proc.stdout.close()  # `| head -1`
        closed.touch()
        err = proc.stderr.read().decode()
        proc.wait(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "error" not in err, err
    assert 1 <= count_frames(out) < 20  # the video so far is finalised; the run ended at the closed pipe


@pytest.mark.parametrize("frames", [1, 3])
def test_a_still_image_or_a_very_short_video_says_why_nobody_was_counted(tmp_path, tiny_model, capfd, frames):
    if frames == 1:
        source = tmp_path / "photo.jpg"
        cv2.imwrite(str(source), two_people_frame())
    else:
        source = two_people_video(tmp_path / "short.mp4", frames=frames)
    code, out, err = watch(capfd, "--video", source, "--no-display", "--model", tiny_model)
    assert code == 0, err
    assert f"summary: {frames} frame" in out and "0 people" in out
    assert f"warning: only {frames} frame{'s' if frames > 1 else ''} read: a face counts as a person" in err


def two_people_frame():
    from test_people import BLUE, RED, face, frame

    return frame([(face(tint=RED), (60, 150)), (face(mirrored=True, tint=BLUE), (380, 150))])


@pytest.fixture
def http_folder(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    with loopback_http_server(Quiet) as url:
        yield url


def test_a_video_file_over_http_is_read_whole_like_a_local_file(tmp_path, http_folder, tiny_model, capfd):
    make_face_video(tmp_path / "clip.avi", frames=12, fps=10.0, size=(320, 240))
    code, out, err = watch(capfd, "--video", f"{http_folder}/clip.avi", "--no-display", "--json", "--model", tiny_model)
    assert code == 0, err
    assert [json.loads(line)["frame"] for line in out.splitlines()] == list(range(12))  # every frame, in order


def test_stream_urls_are_shown_without_their_password(capfd):
    code, _, err = watch(capfd, "--video", "rtsp://admin:s3cret@127.0.0.1:1/cam", "--no-display")
    assert code == 2
    assert "s3cret" not in err and "rtsp://admin:***@127.0.0.1:1/cam" in err, err


def test_nohup_also_protects_the_start_of_a_run(tmp_path, tiny_model):
    """A hang-up while the model loads (before the frame loop's own handlers): still ignored under nohup."""
    video, out = tmp_path / "v.mp4", tmp_path / "out.mp4"
    make_face_video(video, frames=5, fps=10.0, size=(320, 240))
    code = (
        "import os, signal, sys\n"
        "from mask_detection.commands import common as cli, detect_webcam\n"
        "real = detect_webcam.load_pipeline\n"
        "def hang_up_while_loading(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    return real(*a, **k)\n"
        "detect_webcam.load_pipeline = hang_up_while_loading\n"
        "sys.argv[0] = 'detect_webcam.py'\n"
        f"cli.run(detect_webcam.main, ['--video', {str(video)!r}, '--output', {str(out)!r}, '--no-display', "
        f"'--model', {str(tiny_model)!r}])\n"
    )
    result = subprocess.run(
        ["nohup", sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert count_frames(out) == 5


@pytest.mark.parametrize(
    "command, option",
    [("train_model.py", "--out"), ("evaluate.py", "--report"), ("export_model.py", "--out"), ("loader.py", "--out")],
)
def test_every_command_refuses_an_empty_output_name(command, option):
    from conftest import run_script

    result = run_script(command, option, "", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: argument {option}: must not be empty"), result.stderr
