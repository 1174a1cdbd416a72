"""The --output video: VideoOutput reads back what OpenCV's writer wrote (the writer reports no write error)
before it replaces anything, so a full disk keeps the previous video and fails; a stream target (a FIFO, a
character device) gets the video written into it and is never replaced. Real files, a real full disk (tmpfs),
a real FIFO and a real device node."""

import contextlib
import os
import select
import stat
import tempfile
import threading

import cv2
import numpy as np
import pytest
from conftest import run_command, small_disk
from detect_support import count_frames, make_face_video, save_tiny_classifier

from mask_detection.commands import detect_webcam
from mask_detection.errors import OutputError
from mask_detection.video_io import VideoError, VideoOutput, check_output

FPS = 10.0


def noise(count, seed=0):
    """Frames that do not compress (about 50 KB each in mp4v), to fill a disk quickly."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240, 320, 3), np.uint8) for _ in range(count)]


def write_video(target, frames):
    """A VideoOutput of ``frames`` into ``target``, closed; returns it (``close()``'s VideoError as it is)."""
    writer = VideoOutput(target, FPS)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()
    return writer


def previous_video(folder):
    """A good 10-frame video (about 18 KB) where the next one is to be written."""
    path = folder / "out.mp4"
    make_face_video(path, frames=10, fps=FPS, size=(320, 280))
    return path, path.read_bytes()


def fill(path, leave=0):
    """Take every byte left on the disk holding ``path`` but ``leave``."""
    with open(path, "wb", buffering=0) as filler, contextlib.suppress(OSError):  # ENOSPC: full
        while True:
            filler.write(b"\0" * 4096)
    os.truncate(path, os.path.getsize(path) - leave)


@pytest.fixture
def temp_folder(tmp_path, monkeypatch):
    """The system temporary folder, as VideoOutput sees it, private to the test (to see what is left there)."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@contextlib.contextmanager
def fifo_reader(fifo):
    """Collect everything written into ``fifo`` on a thread; yields the list that receives the bytes.

    The test holds a write end of its own until the block ends (O_RDWR does not wait for a partner on Linux),
    so the reader is connected at once and sees the end only then: whatever became of the FIFO's name, the
    test never waits for ever."""
    keep = os.open(fifo, os.O_RDWR)
    read_end = os.open(fifo, os.O_RDONLY)
    received = []

    def read():
        with open(read_end, "rb") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield received
    finally:
        os.close(keep)
        reader.join()


# --- a full disk ---------------------------------------------------------------------------------------------


def test_a_full_disk_keeps_the_previous_video_and_fails(tmp_path):
    with small_disk(tmp_path / "disk", "400k") as disk:
        out, before = previous_video(disk)
        with pytest.raises(VideoError) as failure:
            write_video(out, noise(20))  # about 1 MB
        message = str(failure.value)
        assert "could not be completed (the disk is full)" in message
        assert "the previous" in message and "unchanged" in message
        assert out.read_bytes() == before and count_frames(out) == 10
        assert [p.name for p in disk.iterdir()] == ["out.mp4"]  # the broken temporary is gone


def test_a_failed_video_is_not_saved_and_a_second_close_does_nothing(tmp_path):
    with small_disk(tmp_path / "disk", "400k") as disk:
        out, before = previous_video(disk)
        writer = VideoOutput(out, FPS)
        for frame in noise(20):
            writer.write(frame)
        with pytest.raises(VideoError):
            writer.close()
        assert not writer.saved
        writer.close()  # the command's clean-up may close it again
        assert out.read_bytes() == before


@pytest.mark.parametrize("frames", [1, 2, 25])
def test_a_video_that_fits_replaces_the_previous_one(tmp_path, frames):
    """The check must not refuse a good video, whatever its length (one frame: the first is also the last)."""
    with small_disk(tmp_path / "disk", "2m") as disk:
        out, _ = previous_video(disk)
        writer = write_video(out, noise(frames, seed=frames))
        assert writer.saved
        assert count_frames(out) == frames
        assert [p.name for p in disk.iterdir()] == ["out.mp4"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


def test_the_command_on_a_full_disk_fails_without_saying_saved(tmp_path, tiny_model, capfd):
    video = tmp_path / "faces.mp4"
    make_face_video(video, frames=30, fps=FPS, size=(320, 280))
    with small_disk(tmp_path / "disk", "256k") as disk:
        out, before = previous_video(disk)
        fill(disk / "filler", leave=16384)  # the writer starts, the annotated frames (50 KB) do not fit
        code = run_command(detect_webcam, "--video", video, "--output", out, "--no-display", "--model", tiny_model)
        stdout, stderr = capfd.readouterr()
        assert code == 2
        assert "saved" not in stdout + stderr
        assert "summary: 30 frames" in stdout  # the run itself is reported, then why the video is not saved
        assert stderr.strip().splitlines()[-1].startswith("error: cannot write") and "unchanged" in stderr
        assert "Traceback" not in stderr
        assert out.read_bytes() == before and count_frames(out) == 10
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "out.mp4"]


# --- stream targets ------------------------------------------------------------------------------------------


def test_a_fifo_named_mp4_gets_the_video_as_a_stream(tmp_path, temp_folder):
    fifo = tmp_path / "out.mp4"
    os.mkfifo(fifo)
    with fifo_reader(fifo) as received:
        writer = write_video(fifo, noise(7))
    assert writer.saved
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not replaced by a file
    copy = tmp_path / "received.mp4"
    copy.write_bytes(received[0])
    assert count_frames(copy) == 7
    assert not list(temp_folder.iterdir())  # the temporary video is removed once sent


def test_a_stream_target_whose_video_cannot_be_completed_gets_nothing(tmp_path, monkeypatch):
    """The temporary video of a stream target lives in the temporary folder: when that disk fills up, nothing
    is sent, the reader is not left waiting and the FIFO stays."""
    fifo = tmp_path / "out.mp4"
    os.mkfifo(fifo)
    with small_disk(tmp_path / "disk", "400k") as disk:
        monkeypatch.setattr(tempfile, "tempdir", str(disk))
        with fifo_reader(fifo) as received, pytest.raises(VideoError) as failure:
            write_video(fifo, noise(20))
        assert f"the disk of the temporary folder {disk} is full" in str(failure.value)
        assert "nothing was written to" in str(failure.value)
        assert not list(disk.iterdir())
    assert received == [b""]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_reader_waiting_on_a_fifo_gets_the_end_when_no_frame_was_written(tmp_path, temp_folder):
    fifo = tmp_path / "out.mp4"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader already there, before any writer
    try:
        poll = select.poll()
        poll.register(reader, select.POLLIN)
        assert poll.poll(0) == []  # Linux: no hang-up before a writer has come and gone
        writer = write_video(fifo, [])
        assert poll.poll(0) == [(reader, select.POLLHUP)]  # the reader sees the end instead of waiting
        assert os.read(reader, 100) == b""
    finally:
        os.close(reader)
    assert not writer.saved
    assert not list(temp_folder.iterdir())


@pytest.mark.parametrize("name", ["out.mp4", "null"])
def test_a_character_device_stays_a_device(tmp_path, temp_folder, name):
    """A null device of the test's own (``/dev/null`` itself would be destroyed, for every process, if this
    broke), named like a video or not at all."""
    device = tmp_path / name
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    assert check_output(device) == device  # any name: the container is mp4
    writer = write_video(device, noise(3))
    assert writer.saved
    info = os.lstat(device)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)
    assert not list(temp_folder.iterdir())


def test_check_output_takes_a_stream_of_any_name_but_never_the_input(tmp_path):
    fifo = tmp_path / "video-pipe"
    os.mkfifo(fifo)
    assert check_output(fifo) == fifo
    with pytest.raises(VideoError, match="use one of"):
        check_output(tmp_path / "video-file")  # a file still needs a video suffix
    with pytest.raises(OutputError, match="refusing to write .*one of this run's inputs"):
        check_output(fifo, str(fifo))


@pytest.mark.parametrize("fps", [123.0769230769, 29.97002997])
def test_a_frame_rate_mpeg4_cannot_store_exactly_still_gets_a_video(tmp_path, fps):
    out = tmp_path / "odd.mp4"
    with VideoOutput(out, fps) as video:
        for _ in range(3):
            video.write(np.zeros((48, 64, 3), np.uint8))
    assert video.saved and count_frames(out) == 3
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(fps, rel=1e-3)
