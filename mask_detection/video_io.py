"""Video in and out: sources (camera, file, stream URL), the annotated-video writer, windows and the FPS meter
(whether a window can be opened at all: ``display``).

A camera (and a network stream) is read on its own thread and the loop always takes the newest frame, so a
slow frame never stalls capture. A video file is read frame by frame without dropping any, so the annotated
video has exactly the input's frames.
"""

import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import MaskDetectionError
from .fileio import (
    check_writable,
    display_path,
    is_stream_target,
    refuse_overwriting_inputs,
    replaced_path,
    signals_held,
    temporary_for,
    write_to_stream,
)
from .images import quiet_opencv_logs

# Handled like Ctrl-C: the current step finishes or is undone, outputs are finalised or left untouched, and the
# exit code is the shell's convention, 128 + the signal number (143 for SIGTERM, 129 for SIGHUP).

READ_RETRIES = 5  # failed reads in a row before a stream counts as broken
RETRY_DELAY = 0.05  # seconds between retries on a live source
FIRST_FRAME_TIMEOUT = 10.0  # seconds to wait for a camera's or stream's first frame
FRAME_TIMEOUT = 5.0  # seconds without a new live frame before giving up
DAMAGE_TIMEOUT = 30.0  # seconds of failed reads in a row before a damaged video file counts as broken off
MAX_CAMERA_INDEX = 99  # OpenCV reads 100 and more as a back-end code plus an index (200 = V4L2 camera 0)
DEFAULT_FPS = 30.0  # when a source does not say its frame rate
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".m4v", ".mkv")
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc


class VideoError(MaskDetectionError):
    pass


def _sane_fps(value: float) -> float:
    return float(value) if value and 0.5 <= value <= 1000 else DEFAULT_FPS


def is_url(text: object) -> bool:
    return "://" in str(text)


def display_url(url: str | os.PathLike) -> str:
    """A stream URL as messages and logs show it: without the password (``rtsp://admin:***@camera/``)."""
    return display_path(re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/]*@", r"\1:***@", str(url)))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class _OpenCVName:
    """A name OpenCV can be given for ``path``: the path itself, or, for names holding bytes that are not UTF-8
    (OpenCV segfaults on them), an ASCII-named symbolic link to it in a private temporary folder.

    ``close()`` removes the link; OpenCV keeps its own handle on the file once opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        self._folder: str | None = None
        if _utf8(name):
            self.name = name
            return
        suffix = Path(name).suffix
        self._folder = tempfile.mkdtemp(prefix="mask-detection-")
        self.name = os.path.join(self._folder, "video" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]+", suffix) else ""))
        os.symlink(os.path.abspath(name), self.name)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class FileSource:
    """A video file, every frame in order. ``read()`` -> (frame, seconds into the video) or None at the end.

    A damaged part is read past: the frames that cannot be decoded are skipped and counted, and reading goes on
    with the next frame that decodes. ``failure`` then says how many were lost.
    """

    live = False

    def __init__(self, path: str | os.PathLike, capture: "cv2.VideoCapture | None" = None) -> None:
        """``capture``: an opened capture of ``path`` to read (a video file served over HTTP, a URL)."""
        quiet_opencv_logs()
        if capture is not None:
            self.name = display_url(path)
            self._cap = capture
        else:
            self.name = display_path(path)
            self._cap = self._open_file(path)
        self.fps = _sane_fps(self._cap.get(cv2.CAP_PROP_FPS))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frames_read = 0
        self.skipped = 0  # frames of the file that could not be decoded
        self._position = 0  # frames of the file passed so far, decoded or not
        self._first_bad: int | None = None  # position of the first frame that could not be decoded
        self.failure: str | None = None  # set when frames of the file could not be decoded
        self._pending = self._next()
        if self._pending is None:
            self._cap.release()
            raise VideoError(f"cannot decode video {self.name}: no frame could be read")

    def _open_file(self, path: str | os.PathLike) -> cv2.VideoCapture:
        try:
            info = os.stat(path)
        except OSError as exc:  # missing, a name too long, a loop of links...
            reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            raise VideoError(f"cannot open video {self.name}: {reason}") from None
        if not stat.S_ISREG(info.st_mode):
            raise VideoError(f"cannot open video {self.name}: not a file")
        link = _OpenCVName(path)
        try:
            cap = cv2.VideoCapture(link.name)
        finally:
            link.close()  # opened (or not): FFmpeg holds the file itself now
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"cannot open video {self.name}: not a video OpenCV can decode")
        return cap

    def _next(self) -> tuple[np.ndarray, float] | None:
        """(frame, timestamp) of the next frame that decodes, or None at the end."""
        failed_since: float | None = None
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                timestamp = self._position / self.fps
                self._position += 1
                return frame, timestamp
            if self._position >= self.frame_count:
                return None  # the announced end: no retries
            # A damaged part: FFmpeg drops one packet per failed read and picks up again at the next key frame,
            # so reading on recovers what follows. Bounded by the announced length and, for a header that
            # overstates it, by time.
            now = time.monotonic()
            failed_since = failed_since or now
            if now - failed_since > DAMAGE_TIMEOUT:
                self._note_lost(self.frame_count - self._position)
                return None
            self._note_lost(1)
            self._position += 1

    def _note_lost(self, frames: int) -> None:
        if self._first_bad is None:
            self._first_bad = self._position
        self.skipped += frames
        self.failure = (
            f"video {self.name}: {self.skipped} of {self.frame_count} frames could not be decoded "
            f"(the first at {self._first_bad / self.fps:.2f} s)"
        )

    def read(self) -> tuple[np.ndarray, float] | None:
        item: tuple[np.ndarray, float] | None
        if self._pending is not None:
            item, self._pending = self._pending, None
        else:
            item = self._next()
            if item is None:
                return None
        self.frames_read += 1
        return item

    def close(self) -> None:
        self._cap.release()


class LiveSource:
    """A camera or stream URL read on a background thread; ``read()`` returns the newest frame not yet returned."""

    live = True

    def __init__(self, target: int | str, name: str, capture: "cv2.VideoCapture | None" = None) -> None:
        """``capture``: ``target`` already opened."""
        quiet_opencv_logs()
        self.name = name
        self._cap = capture if capture is not None else cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoError(f"cannot open {name}")
        self.fps = _sane_fps(self._cap.get(cv2.CAP_PROP_FPS))
        self.failure: str | None = None
        self.frames_read = 0
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._seq = 0
        self._taken = 0
        self._ended = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._capture, name="frame-capture", daemon=True)
        self._thread.start()
        if not self._wait(FIRST_FRAME_TIMEOUT):
            self.close()
            raise VideoError(f"cannot read from {name}: {self.failure or 'no frame arrived'}")

    def _capture(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, frame = self._cap.read()  # blocks until the next frame; releases the GIL
            if not ok or frame is None:
                failures += 1
                if failures >= READ_RETRIES:
                    self.failure = f"{self.name} stopped delivering frames ({failures} failed reads in a row)"
                    break
                time.sleep(RETRY_DELAY)
                continue
            failures = 0
            with self._cond:
                self._frame = frame
                self._stamp = time.monotonic() - self._start
                self._seq += 1
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._seq != self._taken or self._ended, timeout) and (
                self._seq != self._taken
            )

    def read(self) -> tuple[np.ndarray, float] | None:
        if not self._wait(FRAME_TIMEOUT):
            if self.failure is None and not self._stop.is_set():
                self.failure = f"no frame from {self.name} for {FRAME_TIMEOUT:.0f} s"
            return None
        with self._cond:
            self._taken = self._seq
            self.frames_read += 1
            # The capture thread sets the frame before it counts it, and _wait saw a frame counted.
            assert self._frame is not None
            # The capture thread replaces self._frame rather than writing into it, so no copy is needed.
            return self._frame, self._stamp

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._cap.release()


def open_source(camera: int | None = None, video: str | None = None) -> "FileSource | LiveSource":
    """A FileSource for a video file, a LiveSource for a camera index (default 0) or a stream URL."""
    if camera is not None and not 0 <= int(camera) <= MAX_CAMERA_INDEX:
        raise VideoError(f"camera index must be between 0 and {MAX_CAMERA_INDEX}, got {camera}")
    if video is not None:
        if is_url(video):
            if not _utf8(str(video)):  # OpenCV segfaults on such text, and a URL is text
                raise VideoError(f"cannot open stream {display_path(video)}: the URL is not valid UTF-8")
            quiet_opencv_logs()
            capture = cv2.VideoCapture(str(video))
            # A video file served over the network (HTTP, FTP, a recorded HLS playlist) announces its length;
            # a live stream (RTSP, MJPEG, live HLS) does not. A file is read like a local one: every frame, in
            # order, at decoding speed (read as live, all but the last frame would be skipped).
            if capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
                return FileSource(str(video), capture)
            return LiveSource(str(video), f"stream {display_url(video)}", capture)
        return FileSource(video)
    index = 0 if camera is None else int(camera)
    return LiveSource(index, f"camera {index}")


def check_output(path: str | os.PathLike, video: str | None = None) -> Path:
    """Refuse an output video path at once, before any slow work: a name without a video suffix, the input
    video itself (under any spelling), a place that cannot be written. Creates nothing.

    A stream target (``fileio.is_stream_target``: a FIFO, ``/dev/null``, a pipe) may have any name: the video
    written into it is an mp4, or the container its suffix names."""
    path = Path(path)
    if not is_stream_target(path) and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"cannot write {display_path(path)}: use one of {', '.join(VIDEO_SUFFIXES)}")
    try:
        if video is not None and not is_url(video):
            refuse_overwriting_inputs([path], [video])
        check_writable(path)
    except OSError as exc:  # e.g. a name too long for the file system
        raise VideoError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
    return path


class VideoOutput:
    """Annotated video (mp4v, the input's frame rate), written to a temporary file and put in place on close.

    ``close()`` finalises the file on every way out (end, q, Ctrl-C, SIGTERM, a broken stream, an error); a run
    that wrote no frame leaves nothing behind. Not ``fileio.atomic_path``: that one discards the file when the
    block fails, while the frames of an interrupted or failed run are worth keeping.

    OpenCV's writer reports no write error, so the finished file is read back before it replaces anything: one
    that is not the complete video (a full disk) is removed, the previous video is kept and ``close()`` raises
    VideoError. ``saved`` tells whether the video is in place. A stream target (a FIFO, ``/dev/null``) is never
    replaced: the video is written in the system's temporary folder (an mp4 needs a file it can seek in), then
    its bytes are copied into the stream.
    """

    LOW_SPACE = 1 << 20  # bytes free under which a failed video is put down to a full disk

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        quiet_opencv_logs()  # a full disk would otherwise print one FFmpeg warning per frame
        self.path = check_output(path)
        self.fps = fps
        self.frames = 0
        self.saved = False  # the complete video is in place (renamed onto the target or copied into the stream)
        self._writer: cv2.VideoWriter | None = None
        self._name: _OpenCVName | None = None
        self._tmp: Path | None = None
        self._stream = is_stream_target(self.path)
        self._target = replaced_path(self.path)
        try:
            if self._stream:
                # The container cannot be told from a device's name.
                suffix = self.path.suffix if self.path.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
                self._tmp = temporary_for(self.path, suffix)
            else:
                self._target.parent.mkdir(parents=True, exist_ok=True)
                self._tmp = temporary_for(self._target)
        except OSError as exc:
            raise VideoError(f"cannot write {display_path(self.path)}: {exc.strerror or exc}") from None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            height, width = frame.shape[:2]
            assert self._tmp is not None  # made by __init__; only close() clears it, and nothing is written after
            self._name = _OpenCVName(self._tmp)  # the folder may hold bytes that are not UTF-8
            # MPEG-4 caps the time base's denominator at 65535, so a rate such as 123.0769 cannot be stored
            # exactly: the nearest rate with fewer decimals plays at the same speed to within 0.01%.
            for fps in dict.fromkeys((self.fps, round(self.fps, 2), float(round(self.fps)))):
                self._writer = cv2.VideoWriter(self._name.name, cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
                if self._writer.isOpened():
                    break
            if self._writer is None or not self._writer.isOpened():  # (never None: the loop runs at least once)
                self._writer = None
                why = " (the disk is full)" if self._disk_full() else ""
                raise VideoError(f"cannot write {display_path(self.path)}: OpenCV could not open an mp4v writer{why}")
            self._size = (width, height)
        if (frame.shape[1], frame.shape[0]) != self._size:  # a stream that changes size mid-way
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the video and put it in place; VideoError when it cannot be (the previous file is then kept).

        Calling it again does nothing."""
        finished = None  # a verified video to copy into the stream target
        # Interrupts wait until the file is complete and in place: a second Ctrl-C or SIGTERM during the
        # finalisation would otherwise lose every frame written.
        with signals_held():
            try:
                if self._writer is not None:
                    self._writer.release()
                    self._writer = None
                if self._name is not None:
                    self._name.close()
                    self._name = None
                if self.frames and self._tmp is not None:
                    problem = self._incomplete()
                    if problem is not None:
                        raise VideoError(self._not_completed(problem))  # the finally removes the temporary
                    if self._stream:
                        finished, self._tmp = self._tmp, None
                    else:
                        try:
                            os.replace(self._tmp, self._target)
                            self._tmp = None
                            self.saved = True
                        except OSError as exc:
                            kept, self._tmp = self._tmp, None  # the frames are kept where they are
                            raise VideoError(
                                f"cannot write {display_path(self.path)}: {exc.strerror or exc}; the "
                                f"video is in {display_path(kept)}"
                            ) from None
            finally:
                if self._tmp is not None:
                    with contextlib.suppress(OSError):
                        self._tmp.unlink()
                    self._tmp = None
                    self._release_reader()
        if finished is not None:
            # Outside signals_held: opening a FIFO waits for its reader, and a second Ctrl-C must end that wait.
            self._copy_to_stream(finished)

    def _incomplete(self) -> str | None:
        """Why the finished temporary file is not the video written, or None when it is.

        A full disk leaves a file without its index ("moov atom not found") or with part of it. Cheap whatever
        the length: the index must announce every frame written, and the first and the last frame must decode
        (the last through a seek to its key frame, not by decoding the whole video).
        """
        assert self._tmp is not None  # close() calls this only while the temporary file is there
        if not self._stream:
            try:  # write errors the file system reports only when the data reaches the disk (NFS, quotas)
                fd = os.open(self._tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                return f"write error: {exc.strerror or exc}"
        name = _OpenCVName(self._tmp)
        try:
            cap = cv2.VideoCapture(name.name)
        finally:
            name.close()
        try:
            if not cap.isOpened():
                return "the file written is not a complete video"
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if count != self.frames:
                return f"the file written holds {max(count, 0)} of the {self.frames} frames"
            if not cap.read()[0]:
                return "the first frame written cannot be decoded"
            if self.frames > 1:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
                if not cap.read()[0]:
                    return "the last frame written cannot be decoded"
        finally:
            cap.release()
        return None

    def _disk_full(self) -> bool:
        """Whether the disk of the temporary file is (nearly) full: the likely reason a write failed."""
        assert self._tmp is not None  # called (by write and close) only while the temporary file is there
        try:
            info = os.statvfs(self._tmp.parent)
        except OSError:
            return False
        return info.f_bavail * info.f_frsize < self.LOW_SPACE

    def _not_completed(self, problem: str) -> str:
        shown = display_path(self.path)
        if self._disk_full():  # before the temporary is removed, which frees its space
            assert self._tmp is not None  # close() calls this only while the temporary file is there
            folder = f" of the temporary folder {display_path(self._tmp.parent)}" if self._stream else ""
            reason = f"the disk{folder} is full"
        else:
            reason = problem
        if self._stream:
            kept = f"nothing was written to {shown}"
        elif os.path.lexists(self._target):
            kept = f"the previous {display_path(self.path.name)} is unchanged"
        else:
            kept = "no file was made"
        return f"cannot write {shown}: the video could not be completed ({reason}); {kept}"

    def _copy_to_stream(self, finished: Path) -> None:
        try:
            write_to_stream(self.path, finished)
        except OSError as exc:  # the reader went away, the device refused...
            raise VideoError(
                f"cannot write {display_path(self.path)}: {exc.strerror or exc}; the video is in "
                f"{display_path(finished)}"
            ) from None
        except BaseException:  # an interrupt while waiting for the reader: the user gave up on this video
            with contextlib.suppress(OSError):
                finished.unlink()
            raise
        with contextlib.suppress(OSError):
            finished.unlink()
        self.saved = True

    def _release_reader(self) -> None:
        """A reader already waiting on a FIFO target gets an end of file when there is no video to send, instead
        of waiting forever. Never blocks: without a reader there is nothing to release."""
        if not self._stream:
            return
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.stat(self.path).st_mode):
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))

    def __enter__(self) -> "VideoOutput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FpsMeter:
    """Frames per second over the last frames (exponential average), for the overlay."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self.value: float | None = None
        self._last: float | None = None

    def tick(self) -> float | None:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            current = 1.0 / (now - self._last)
            self.value = current if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * current
        self._last = now
        return self.value


def show_frame(frame: np.ndarray) -> bool:
    """Show one video frame in the window; False when the user pressed q or Esc (stop)."""
    cv2.imshow("Mask detection (q or Esc quits)", frame)
    return (cv2.waitKey(1) & 0xFF) not in QUIT_KEYS


def show_until_key(title: str, bgr: np.ndarray) -> bool:
    """Show one picture until a key: any key goes on, q or Esc stops showing. Returns whether to keep showing."""
    window = "Mask detection"
    cv2.imshow(window, bgr)
    cv2.setWindowTitle(window, f"Mask detection - {title} (any key: next, q: stop)")
    key = cv2.waitKey(0) & 0xFF
    if key in (ord("q"), 27):
        cv2.destroyAllWindows()
        return False
    return True


def close_windows() -> None:
    cv2.destroyAllWindows()
