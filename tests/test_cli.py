"""The command-line contract shared by every script: one `error:` line for bad arguments, signals handled like
Ctrl-C (outputs complete or untouched, exit 128 + signal), a reader that goes away ends the run quietly."""

import importlib
import signal
import subprocess
import sys

import cv2
import pytest
from conftest import REPO, SCRIPT_COMMANDS, hooked_script, on_call, run_command, run_script, send_signal
from skimage import data


@pytest.mark.parametrize(
    "script, args",
    [
        ("detect_image.py", ["--demo", "--face-confidence", "1.5"]),
        ("detect_image.py", ["--demo", "--threads", "0"]),
        ("detect_image.py", []),
        ("detect_webcam.py", ["--max-frames", "zero"]),
        ("train_model.py", ["--epochs", "0"]),
        ("train_model.py", ["--learning-rate", "nan"]),
        ("train_model.py", ["--cache-limit", "2TB"]),
        ("train_model.py", ["--cache-limit", "0"]),
        ("loader.py", ["--face-confidence", "2"]),
        ("evaluate.py", ["--scenes", "x", "--iou", "0"]),
        ("export_model.py", ["--quantize", "bogus"]),
    ],
)
def test_bad_arguments_give_one_error_line_and_exit_2(script, args, capfd, monkeypatch):
    """In-process: each command's main as its script runs it (argparse names the program from sys.argv[0])."""
    monkeypatch.setattr(sys, "argv", [script])
    code = run_command(importlib.import_module(f"mask_detection.commands.{SCRIPT_COMMANDS[script]}"), *args)
    out, err = capfd.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert f"{script} --help" in lines[0]
    assert out == ""


def test_the_top_level_script_gives_the_same_one_line_error():
    result = run_script("detect_webcam.py", "--max-frames", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: argument --max-frames: must be at least 1, got 0 (see detect_webcam.py --help)\n"
    assert result.stdout == ""


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    for i in range(60):
        (folder / f"p{i:02d}.jpg").write_bytes(encoded.tobytes())
    return folder


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_terminating_signal_during_a_folder_run_leaves_only_complete_outputs(tmp_path, photo_folder, signum):
    """The signal comes while the third annotated picture is being written, its temporary file made (a hook in the
    real process: a signal sent from outside after the first picture could come after the last one)."""
    out = tmp_path / "out"
    hook = on_call("mask_detection.fileio:atomic_paths", send_signal(signum), when="inside", match="p02_annotated")
    argv = hooked_script("detect_image.py", "--image", photo_folder, "--output", out, "--no-display", hooks=[hook])
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)
    stdout, stderr = result.stdout, result.stderr
    lines = stdout.splitlines()
    assert "face 1/1" in lines[0] and lines[1].startswith("saved "), stdout + stderr
    assert result.returncode == 128 + signum, stderr
    assert f"stopped by signal {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    written = sorted(out.iterdir())
    assert len(written) == 2  # the two finished pictures; the third, interrupted, is not there at all
    assert not [p for p in written if p.name.startswith(".")]  # no temporary file left behind
    for path in written:
        assert cv2.imread(str(path)).shape == (512, 512, 3)


# In the process below, before its second JSON line: wait until the reader of its output has gone (POLLERR on
# the write end of a pipe), so the line meets a closed pipe whatever the machine's speed; otherwise all 60 lines
# could fit in the pipe before the reader closes it, and nothing would be tested.
WAIT_FOR_THE_READER_TO_GO = """
def _reader_gone():
    import select

    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLERR)
    if not poller.poll(600_000):  # a safety net only: the test closes the pipe right after the first line
        sys.stderr.write("test hook: the reader never went away\\n")
        os._exit(3)
"""


def test_a_reader_that_goes_away_ends_the_run_without_a_traceback(photo_folder):
    hook = on_call("mask_detection.commands.common:say", "_reader_gone", call=2, match='"image": ')
    argv = hooked_script(
        "detect_image.py",
        "--image",
        photo_folder,
        "--json",
        "--no-display",
        hooks=[hook],
        setup=WAIT_FOR_THE_READER_TO_GO,
    )
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        assert process.stdout.readline().startswith(b"{")
        process.stdout.close()  # like `| head -1`
        stderr = process.stderr.read().decode()
        process.wait(timeout=600)
    finally:
        process.kill()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert process.returncode == 0  # the reader has what it wanted: an ordinary end, as for other tools
