"""detect_webcam.py never destroys its input, checks its output first, takes any file name, refuses bad camera
indexes in one line, and reads past a damaged middle of a video file. The shipped .tflite model keeps it fast."""

import hashlib
import json
import os
import subprocess
import sys
import typing

import numpy as np
import pytest
from conftest import REPO, run_command, run_script
from detect_support import count_frames, make_face_video

from mask_detection.commands import detect_webcam


class Result(typing.NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def watch(capfd, *args):
    """detect_webcam in-process, its result shaped like a finished process's."""
    code = run_command(detect_webcam, *args)
    return Result(code, *capfd.readouterr())


def one_error_line(result):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden_temporaries(folder):
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "faces.mp4"
    make_face_video(path, frames=12, fps=12.0, size=(320, 280))
    return path


# --- 1. the output is never one of the inputs ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused_before_any_work(tmp_path, small_video, spelling, capfd):
    folder = tmp_path / "dir"
    folder.mkdir()
    video = folder / "in.mp4"
    video.write_bytes(small_video.read_bytes())
    before = digest(video)
    if spelling == "same":
        output = video
    elif spelling == "dotdot":
        output = folder / ".." / "dir" / "in.mp4"
    elif spelling == "symlink":
        output = tmp_path / "link.mp4"
        output.symlink_to(video)
    else:
        output = tmp_path / "hard.mp4"
        os.link(video, output)
    result = watch(capfd, "--video", video, "--output", output, "--max-frames", "3", "--no-display")
    line = one_error_line(result)
    assert "refusing to write" in line and "input" in line
    assert digest(video) == before and count_frames(video) == 12  # the input is untouched
    assert not hidden_temporaries(tmp_path)


# --- 3. names that are not UTF-8 ---------------------------------------------------------------------------


def test_names_that_are_not_utf8_work_for_input_and_output(tmp_path, small_video):
    """Latin-1 names (bytes that are not UTF-8) used to segfault inside OpenCV; now they just work, and the
    summary shows them escaped even on a strict UTF-8 stdout."""
    video = tmp_path / os.fsdecode(b"caf\xe9.mp4")
    video.write_bytes(small_video.read_bytes())
    out_dir = tmp_path / os.fsdecode(b"d\xe9j\xe0")  # the folder too: the temporary file lives beside the target
    output = out_dir / os.fsdecode(b"r\xe9sultat.mp4")
    result = run_script(
        "detect_webcam.py",
        "--video",
        video,
        "--output",
        output,
        "--no-display",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "summary: 12 frames" in result.stdout
    assert "r\\xe9sultat.mp4 (12 frames)" in result.stdout  # printed safely, escaped
    link = tmp_path / "check.mp4"  # the test's own decoder needs an ASCII name too
    link.symlink_to(output)
    assert count_frames(link) == 12
    link.unlink()
    assert not hidden_temporaries(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_json_run_on_a_non_utf8_name_and_a_missing_one(tmp_path, small_video):
    video = tmp_path / os.fsdecode(b"\xff\xfe.mp4")
    video.write_bytes(small_video.read_bytes())
    result = run_script(
        "detect_webcam.py",
        "--video",
        video,
        "--json",
        "--max-frames",
        "2",
        "--no-display",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["frame"] for line in result.stdout.splitlines()] == [0, 1]

    missing = tmp_path / os.fsdecode(b"gone\xe9.mp4")
    line = one_error_line(
        run_script("detect_webcam.py", "--video", missing, "--no-display", env={"PYTHONIOENCODING": "utf-8:strict"})
    )
    assert "gone\\xe9.mp4" in line and "no such file" in line


# --- 4. camera indexes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["-1", "-7", "100", "200", "9999999999", "2147483648", "one"])
def test_bad_camera_index_is_one_argparse_error(index, capfd):
    """-1 used to segfault (exit 139), 9999999999 gave a traceback; OpenCV reads 100 and above as a back-end
    code plus an index (200 = V4L2 camera 0), so they are refused too."""
    line = one_error_line(watch(capfd, f"--camera={index}", "--no-display"))
    assert "--camera" in line


def test_largest_valid_camera_index_is_still_tried(capfd):
    line = one_error_line(watch(capfd, "--camera", "99", "--no-display"))
    assert "cannot open camera 99" in line


# --- 6. unwritable outputs fail first, creating nothing ----------------------------------------------------


def test_output_under_a_regular_file_is_refused_before_the_model_loads(tmp_path, small_video, capfd):
    (tmp_path / "somefile.txt").write_text("x\n")
    result = watch(
        capfd,
        "--video",
        small_video,
        "--output",
        tmp_path / "somefile.txt" / "o.mp4",
        "--model",
        tmp_path / "missing.keras",
        "--no-display",
    )
    line = one_error_line(result)
    assert "somefile.txt is not a folder" in line  # the output is checked first, the model never loads


@pytest.mark.parametrize("problem", ["folder", "no-suffix", "bad-video"])
def test_a_failed_run_creates_no_folders_and_no_files(tmp_path, small_video, problem, capfd):
    output = tmp_path / "new" / "nested" / "o.mp4"
    args = ["--video", small_video, "--output", output]
    if problem == "folder":
        output.mkdir(parents=True)
    elif problem == "no-suffix":
        args[-1] = tmp_path / "new" / "nested" / "annotated"
    else:
        args[1] = tmp_path / "missing.mp4"
    line = one_error_line(watch(capfd, *args, "--no-display"))
    assert "cannot" in line
    expected = {"new", "nested", "o.mp4"} if problem == "folder" else set()
    assert {p.name for p in tmp_path.rglob("*")} == expected  # no folder made for an output never written


# --- 7. permissions ----------------------------------------------------------------------------------------


def test_output_video_gets_the_normal_umask_permissions(tmp_path, small_video):
    output = tmp_path / "o.mp4"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "detect_webcam.py"),
            "--video",
            str(small_video),
            "--output",
            str(output),
            "--no-display",
            "--max-frames",
            "2",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert output.stat().st_mode & 0o777 == 0o644  # as for images; mkstemp's 0600 made it private


# --- 8. a damaged middle ------------------------------------------------------------------------------------


def decodable_frames(path, reads):
    """A plain decode loop that keeps going after failed reads: how many frames OpenCV can give at all."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    results = [cap.read()[0] for _ in range(reads)]
    cap.release()
    return results


@pytest.fixture(scope="module")
def damaged_video(tmp_path_factory):
    """60 mp4v frames with 32 KiB of garbage a third of the way in (a whole group of frames is lost)."""
    path = tmp_path_factory.mktemp("damaged") / "damaged.mp4"
    make_face_video(path, frames=60, fps=15.0)
    data = bytearray(path.read_bytes())
    start = len(data) * 3 // 10
    data[start : start + 32768] = np.random.default_rng(0).integers(0, 256, 32768, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def patient_reader(monkeypatch):
    """Reading past damage is bounded by the frame count the file announces and, for a header that overstates
    it, by DAMAGE_TIMEOUT seconds of failed reads: on a loaded machine that clock could end a read that the count
    would have let go on. These tests are about the count, so the clock is taken out."""
    from mask_detection import video_io

    monkeypatch.setattr(video_io, "DAMAGE_TIMEOUT", float("inf"))


def test_damaged_middle_of_a_file_is_skipped_and_the_rest_processed(tmp_path, damaged_video, capfd, patient_reader):
    decoded = decodable_frames(damaged_video, 100)
    n = sum(decoded)
    first_gap = decoded.index(False)
    assert first_gap < n < 60, "precondition: frames fail mid-way and decoding picks up again"
    output = tmp_path / "annotated.mp4"
    result = watch(capfd, "--video", damaged_video, "--output", output, "--json", "--no-display")
    assert result.returncode == 1, result.stderr  # reported as partial, output kept
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) >= n
    assert [r["frame"] for r in records] == list(range(len(records)))
    # The time is the position in the video: it jumps over the lost frames.
    positions = [i for i, ok in enumerate(decoded) if ok]
    assert [r["time"] for r in records[:n]] == pytest.approx([i / 15.0 for i in positions], abs=1e-3)
    assert count_frames(output) == len(records)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"{60 - len(records)} of 60 frames could not be decoded" in warnings[0]
    assert f"summary: {len(records)} frames" in result.stderr


def test_file_source_reads_every_decodable_frame(damaged_video, patient_reader):
    from mask_detection.video_io import FileSource

    source = FileSource(damaged_video)
    got = 0
    try:
        while source.read() is not None:
            got += 1
    finally:
        source.close()
    assert got == sum(decodable_frames(damaged_video, 100))
    assert "could not be decoded" in source.failure


def test_truncated_file_reports_where_it_broke_off(tmp_path, small_video, capfd, patient_reader):
    video = tmp_path / "cut.mp4"
    make_face_video(video, frames=40, fps=10.0, size=(320, 280))
    data = video.read_bytes()
    # OpenCV's mp4 writer puts the index (moov) last: cut frame data out of the middle of mdat instead, keeping
    # the index, so the file announces 40 frames that are no longer all there.
    moov = data.rfind(b"moov") - 4
    keep = moov // 2
    video.write_bytes(data[:keep] + b"\0" * (moov - keep) + data[moov:])
    result = watch(capfd, "--video", video, "--no-display", "--json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert 0 < len(result.stdout.splitlines()) < 40
    assert "could not be decoded" in result.stderr


@pytest.mark.parametrize("which", ["--video", "--output"])
def test_a_name_too_long_for_the_file_system_is_one_error_line(tmp_path, small_video, which, capfd):
    """os.stat raises ENAMETOOLONG (not 'no such file'): that used to be a traceback for --video."""
    too_long = tmp_path / ("a" * 300 + ".mp4")
    args = {"--video": too_long, "--output": tmp_path / "o.mp4"}
    if which == "--output":
        args = {"--video": small_video, "--output": too_long}
    line = one_error_line(watch(capfd, *[x for kv in args.items() for x in kv], "--no-display"))
    assert "File name too long" in line
    assert list(tmp_path.iterdir()) == []


def test_stream_url_that_is_not_utf8_is_one_error_line():
    """A URL is text: bytes that are not UTF-8 cannot be sent, and OpenCV used to segfault on them."""
    url = os.fsdecode(b"rtsp://cam\xe9ra.invalid/live")
    line = one_error_line(
        run_script("detect_webcam.py", "--video", url, "--no-display", env={"PYTHONIOENCODING": "utf-8:strict"})
    )
    assert "cam\\xe9ra" in line and "not valid UTF-8" in line
