"""The display check asks the X server itself: a DISPLAY that names no live server (a closed SSH session, a stale
variable) means no window and one warning, instead of Qt aborting the process (exit 134) and losing the video."""

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import types
from functools import partial
from pathlib import Path

import pytest
from conftest import REPO, hooked_script
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


SAFETY_NET = 60  # seconds: only keeps a broken run from hanging the suite, never what a test measures


def fake_x_server(reply):
    """A TCP listener on 127.0.0.1:6000+N that reads the 12-byte X11 setup and answers ``reply`` (None: never
    answers). It keeps the connection open, silent after its answer, until the test releases it: a probe can then
    only decide from the answer, never from the connection ending. Returns (display number, thread, received
    setup bytes, release event)."""
    for n in range(300, 400):  # clear of free_display_number(90)'s range, which another run may be probing
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
    release = threading.Event()

    def serve():
        server.settimeout(SAFETY_NET)
        try:
            conn, _ = server.accept()
        except OSError:
            server.close()
            return
        with conn:
            conn.settimeout(SAFETY_NET)
            data = b""
            while len(data) < X11_SETUP_LENGTH:
                chunk = conn.recv(X11_SETUP_LENGTH - len(data))
                if not chunk:
                    break
                data += chunk
            received.append(data)
            if reply is not None:
                conn.sendall(reply)
            release.wait(SAFETY_NET)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return n, thread, received, release


@pytest.fixture
def probe(monkeypatch):
    """The X server probe's waits, measured without a clock. Every connect, send and receive of a socket the
    probe (``x_server_answers``) makes is recorded with its timeout (None: it could block for ever), and the
    probe's clock moves only by the timeouts its waits ran into (a refused connection takes no time): its
    deadline cannot run out early on a loaded machine, and ``elapsed`` is what the check would take at worst,
    whatever the load. Returns a namespace: ``waits`` [(operation, timeout)], ``elapsed`` (seconds)."""
    from mask_detection import display

    seen = types.SimpleNamespace(waits=[], elapsed=0.0, probing=False)
    tester = threading.get_ident()

    class RecordingSocket(socket.socket):
        def _wait(self, what, operation, *args):
            if not seen.probing or threading.get_ident() != tester:  # not the probe (the fake server, the test)
                return operation(*args)
            timeout = self.gettimeout()
            seen.waits.append((what, timeout))
            try:
                return operation(*args)
            except TimeoutError:
                seen.elapsed += timeout  # it waited its whole timeout
                raise

        def connect(self, address):
            return self._wait("connect", super().connect, address)

        def sendall(self, data, *flags):
            return self._wait("sendall", super().sendall, data, *flags)

        def recv(self, size, *flags):
            return self._wait("recv", super().recv, size, *flags)

    real_probe = display.x_server_answers

    def probing(*args, **kwargs):
        seen.probing = True
        try:
            return real_probe(*args, **kwargs)
        finally:
            seen.probing = False

    monkeypatch.setattr(socket, "socket", RecordingSocket)  # socket.create_connection makes its sockets so too
    monkeypatch.setattr(display, "time", types.SimpleNamespace(monotonic=lambda: seen.elapsed))
    monkeypatch.setattr(display, "x_server_answers", probing)
    return seen


def every_wait_bounded(waits):
    return all(timeout is not None and timeout > 0 for _, timeout in waits)


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
def test_display_forms_that_name_no_server(monkeypatch, probe, form):
    from mask_detection.display import X11_TIMEOUT, display_available

    value = form.format(n=free_display_number())
    monkeypatch.setenv("DISPLAY", value)
    available, why = display_available()
    assert not available and why == f"DISPLAY={value} does not answer"
    # Nothing there can hold the check up: every wait has a timeout, and all of them together stay in the budget.
    assert every_wait_bounded(probe.waits) and probe.elapsed <= X11_TIMEOUT, probe


def test_wayland_alone_is_not_enough(monkeypatch):
    """opencv-python's Qt opens windows through xcb (X11), so a Wayland session without Xwayland has none."""
    from mask_detection.display import display_available

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    available, why = display_available()
    assert not available and "DISPLAY" in why


@pytest.mark.parametrize(
    "reply, expected", [(b"\x01", True), (b"\x00", True), (None, False)], ids=["accepted", "auth-refused", "silent"]
)
def test_x11_handshake_against_a_listening_server(monkeypatch, request, reply, expected):
    """Any reply to the X11 setup is a live server (Qt brings the auth cookie itself); one that accepts the
    connection but never answers (a hung forwarder) is not, and the check gives up after about a second."""
    from mask_detection import display

    n, thread, received, release = fake_x_server(reply)
    monkeypatch.setenv("DISPLAY", f"127.0.0.1:{n}")
    if reply is not None:
        # The fake server is a thread of this process: on a loaded machine it may answer later than a real one
        # would. The probe waits for it (the answer decides, the connection stays open), not for a time.
        monkeypatch.setattr(display, "x_server_answers", partial(display.x_server_answers, timeout=SAFETY_NET))
        available, why = display.display_available()
    else:
        probe = request.getfixturevalue("probe")
        available, why = display.display_available()
        # The server stays silent until released: the probe gave up on its own, once it had waited its budget.
        assert [what for what, _ in probe.waits] == ["connect", "sendall", "recv"], probe
        assert every_wait_bounded(probe.waits) and probe.elapsed == pytest.approx(display.X11_TIMEOUT), probe
    release.set()
    thread.join(timeout=SAFETY_NET)
    assert available is expected, why
    assert received and len(received[0]) == X11_SETUP_LENGTH
    assert received[0][:1] in (b"l", b"B") and received[0][2:4] in (b"\x0b\x00", b"\x00\x0b")  # protocol 11


@pytest.fixture
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    # Xvfb writes its display number there once it serves clients: the wait is for that, not for a time.
    with os.fdopen(read_end) as ready:
        if not select.select([ready], [], [], SAFETY_NET)[0]:
            proc.kill()
            proc.wait()
            pytest.fail(f"Xvfb neither started nor failed in {SAFETY_NET} s")
        number = ready.readline().strip()
    if not number:  # it ended without serving
        proc.wait()
        pytest.skip("Xvfb did not start")
    yield int(number)
    proc.terminate()
    proc.wait(timeout=SAFETY_NET)


# In the process, as in the test: the live server is waited for, however slowly a loaded machine lets it answer.
PATIENT_PROBE = f"""
import functools
from mask_detection import display as _display
_display.x_server_answers = functools.partial(_display.x_server_answers, timeout={SAFETY_NET})
"""


def test_live_x_server_is_available_and_gets_a_window(tmp_path, monkeypatch, xvfb):
    from mask_detection import display

    monkeypatch.setenv("DISPLAY", f":{xvfb}")
    monkeypatch.setattr(display, "x_server_answers", partial(display.x_server_answers, timeout=SAFETY_NET))
    assert display.display_available() == (True, "")
    video = tmp_path / "v.mp4"
    make_face_video(video, frames=8, fps=8.0, size=(320, 280))  # enough for a person (5): no warning about that
    result = subprocess.run(
        hooked_script("detect_webcam.py", "--video", video, "--output", tmp_path / "o.mp4", setup=PATIENT_PROBE),
        capture_output=True,
        text=True,
        env={**os.environ, "DISPLAY": f":{xvfb}", "QT_QPA_PLATFORM": "xcb"},
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # a window was opened, no fallback
    assert count_frames(tmp_path / "o.mp4") == 8
