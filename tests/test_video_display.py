"""The display check asks the X server itself: a DISPLAY that names no live server (a closed SSH session, a stale
variable) means no window and one warning, instead of Qt aborting the process (exit 134) and losing the video."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, run_script
from detect_support import count_frames, make_face_video

X11_SETUP_LENGTH = 12


def free_display_number(start=90):
    """A display number with no X server: no socket file, no abstract socket, no TCP listener."""
    for n in range(start, start + 100):
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            continue
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(f"\0/tmp/.X11-unix/X{n}")
            continue
        except OSError:
            pass
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 6000 + n)) == 0:
                continue
        return n
    pytest.skip("no free X display number")


def fake_x_server(reply):
    """A TCP listener on 127.0.0.1:6000+N that reads the 12-byte X11 setup and answers ``reply`` (None: never
    answers). Returns (display number, thread, received setup bytes)."""
    for n in range(150, 250):
        server = socket.socket()
        try:
            server.bind(("127.0.0.1", 6000 + n))
            break
        except OSError:
            server.close()
    else:
        pytest.skip("no free port for a fake X server")
    server.listen(1)
    received = []

    def serve():
        server.settimeout(10)
        try:
            conn, _ = server.accept()
        except OSError:
            server.close()
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while len(data) < X11_SETUP_LENGTH:
                chunk = conn.recv(X11_SETUP_LENGTH - len(data))
                if not chunk:
                    break
                data += chunk
            received.append(data)
            if reply is not None:
                conn.sendall(reply)
            else:
                time.sleep(1.5)  # silent: longer than the check waits (1 s)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return n, thread, received


def test_dead_display_runs_without_a_window_and_keeps_the_video(tmp_path):
    """Before: DISPLAY=:N with nothing behind it aborted in Qt (exit 134), leaving a 44-byte temporary file."""
    n = free_display_number()
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=8, fps=8.0, size=(320, 280))
    out = tmp_path / "o.mp4"
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "DISPLAY")}
    env["DISPLAY"] = f":{n}"
    result = subprocess.run(
        [sys.executable, str(REPO / "detect_webcam.py"), "--video", str(video), "--output", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"DISPLAY=:{n} does not answer" in warnings[0], result.stderr
    assert count_frames(out) == 8


@pytest.mark.parametrize(
    "form", [":{n}", ":{n}.0", "unix:{n}", "localhost:{n}", "127.0.0.1:{n}.0", "tcp/localhost:{n}", "not-a-display"]
)
def test_display_forms_that_name_no_server(monkeypatch, form):
    from mask_detection.video_io import display_available

    value = form.format(n=free_display_number())
    monkeypatch.setenv("DISPLAY", value)
    started = time.monotonic()
    available, why = display_available()
    assert not available and why == f"DISPLAY={value} does not answer"
    assert time.monotonic() - started < 3


def test_wayland_alone_is_not_enough(monkeypatch):
    """opencv-python's Qt opens windows through xcb (X11), so a Wayland session without Xwayland has none."""
    from mask_detection.video_io import display_available

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    available, why = display_available()
    assert not available and "DISPLAY" in why


@pytest.mark.parametrize(
    "reply, expected", [(b"\x01", True), (b"\x00", True), (None, False)], ids=["accepted", "auth-refused", "silent"]
)
def test_x11_handshake_against_a_listening_server(monkeypatch, reply, expected):
    """Any reply to the X11 setup is a live server (Qt brings the auth cookie itself); one that accepts the
    connection but never answers (a hung forwarder) is not, and the check gives up after about a second."""
    from mask_detection.video_io import display_available

    n, thread, received = fake_x_server(reply)
    monkeypatch.setenv("DISPLAY", f"127.0.0.1:{n}")
    started = time.monotonic()
    available, why = display_available()
    elapsed = time.monotonic() - started
    thread.join(timeout=10)
    assert available is expected, why
    assert elapsed < 2.5
    assert received and len(received[0]) == X11_SETUP_LENGTH
    assert received[0][:1] in (b"l", b"B") and received[0][2:4] in (b"\x0b\x00", b"\x00\x0b")  # protocol 11


@pytest.fixture
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    n = free_display_number(start=57)
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-nolisten", "tcp", "-screen", "0", "640x480x24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from mask_detection.video_io import x_server_answers

    # The socket appears before the server answers; on a loaded machine the first answer can take seconds.
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline and not x_server_answers(f":{n}"):
        time.sleep(0.1)
    if proc.poll() is not None or not x_server_answers(f":{n}", timeout=5.0):
        proc.kill()
        pytest.skip("Xvfb did not start")
    yield n
    proc.terminate()
    proc.wait(timeout=10)


def test_live_x_server_is_available_and_gets_a_window(tmp_path, monkeypatch, xvfb):
    from mask_detection.video_io import display_available

    monkeypatch.setenv("DISPLAY", f":{xvfb}")
    assert display_available() == (True, "")
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=4, fps=8.0, size=(320, 280))
    result = run_script(
        "detect_webcam.py",
        "--video",
        video,
        "--output",
        tmp_path / "o.mp4",
        env={"DISPLAY": f":{xvfb}", "QT_QPA_PLATFORM": "xcb"},
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # a window was opened, no fallback
    assert count_frames(tmp_path / "o.mp4") == 4
