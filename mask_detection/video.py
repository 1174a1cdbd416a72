"""Video sources (camera, file, stream URL), the annotated-video writer, the display check and the video loop.

A camera (and a network stream) is read on its own thread and the loop always takes the newest frame, so a
slow frame never stalls capture. A video file is read frame by frame without dropping any, so ``--output``
has exactly the input's frames. Everything else is shared by both paths.
"""

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from .errors import MaskDetectionError

READ_RETRIES = 5  # failed reads in a row before a stream counts as broken
RETRY_DELAY = 0.05  # seconds between retries on a live source
FIRST_FRAME_TIMEOUT = 10.0  # seconds to wait for a camera's or stream's first frame
FRAME_TIMEOUT = 5.0  # seconds without a new live frame before giving up
DEFAULT_FPS = 30.0  # when a source does not say its frame rate
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".m4v", ".mkv")
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc


class VideoError(MaskDetectionError):
    pass


def display_available():
    """(available, reason). opencv-python's imshow aborts the process without a display, so ask first."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            return True, ""
        return False, "neither DISPLAY nor WAYLAND_DISPLAY is set"
    return True, ""  # macOS and Windows always have a window system


def _quiet_logs():
    # Camera and FFmpeg back ends print their own lines ("Camera index out of range", "No JPEG data found in
    # image") for failures that we report in one clear line ourselves.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _sane_fps(value):
    return float(value) if value and 0.5 <= value <= 1000 else DEFAULT_FPS


def is_url(text):
    return "://" in str(text)


class FileSource:
    """A video file, every frame in order. ``read()`` -> (frame, seconds into the video) or None at the end."""

    live = False

    def __init__(self, path):
        import cv2

        _quiet_logs()
        self.name = str(path)
        if not Path(path).is_file():
            reason = "not a file" if Path(path).exists() else "no such file"
            raise VideoError(f"cannot open video {path}: {reason}")
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoError(f"cannot open video {path}: not a video OpenCV can decode")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise VideoError(f"cannot decode video {path}: no frame could be read")
        self._pending = frame
        self.fps = _sane_fps(self._cap.get(cv2.CAP_PROP_FPS))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frames_read = 0
        self.failure = None  # set when the video broke off before its announced end

    def read(self):
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            frame = None
            for _ in range(READ_RETRIES):
                ok, frame = self._cap.read()
                if ok and frame is not None:
                    break
                frame = None
                if self.frames_read >= self.frame_count:
                    break  # the normal end: no retries
            if frame is None:
                if self.frames_read < self.frame_count:
                    self.failure = (
                        f"video {self.name} broke off after {self.frames_read} of {self.frame_count} frames"
                    )
                return None
        timestamp = self.frames_read / self.fps
        self.frames_read += 1
        return frame, timestamp

    def close(self):
        self._cap.release()


class LiveSource:
    """A camera or stream URL read on a background thread; ``read()`` returns the newest frame not yet returned."""

    live = True

    def __init__(self, target, name):
        import cv2

        _quiet_logs()
        self.name = name
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoError(f"cannot open {name}")
        self.fps = _sane_fps(self._cap.get(cv2.CAP_PROP_FPS))
        self.failure = None
        self.frames_read = 0
        self._frame = None
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

    def _capture(self):
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

    def _wait(self, timeout):
        with self._cond:
            return self._cond.wait_for(lambda: self._seq != self._taken or self._ended, timeout) and (
                self._seq != self._taken
            )

    def read(self):
        if not self._wait(FRAME_TIMEOUT):
            if self.failure is None and not self._stop.is_set():
                self.failure = f"no frame from {self.name} for {FRAME_TIMEOUT:.0f} s"
            return None
        with self._cond:
            self._taken = self._seq
            self.frames_read += 1
            # The capture thread replaces self._frame rather than writing into it, so no copy is needed.
            return self._frame, self._stamp

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._cap.release()


def open_source(camera=None, video=None):
    """A FileSource for a video file, a LiveSource for a camera index or a stream URL."""
    if video is not None:
        if is_url(video):
            return LiveSource(str(video), f"stream {video}")
        return FileSource(video)
    index = 0 if camera is None else int(camera)
    return LiveSource(index, f"camera {index}")


class VideoOutput:
    """Annotated video (mp4v, the input's frame rate), written to a temporary file and renamed on close.

    ``close()`` finalises the file on every way out (end, q, Ctrl-C, a broken stream); a run that wrote no
    frame leaves nothing behind.
    """

    def __init__(self, path, fps):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise VideoError(f"cannot write {self.path}: use one of {', '.join(VIDEO_SUFFIXES)}")
        if self.path.is_dir():
            raise VideoError(f"cannot write {self.path}: it is a folder")
        self.fps = fps
        self.frames = 0
        self._writer = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.tmp-", suffix=self.path.suffix, dir=self.path.parent)
        except OSError as exc:
            raise VideoError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        os.close(fd)
        self._tmp = Path(tmp)

    def write(self, frame):
        import cv2

        if self._writer is None:
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                self._writer = None
                raise VideoError(f"cannot write {self.path}: OpenCV could not open an mp4v writer")
            self._size = (width, height)
        if (frame.shape[1], frame.shape[0]) != self._size:  # a stream that changes size mid-way
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp.exists():
            if self.frames:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FpsMeter:
    """Frames per second over the last frames (exponential average), for the overlay."""

    def __init__(self, smoothing=0.9):
        self.smoothing = smoothing
        self.value = None
        self._last = None

    def tick(self):
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            current = 1.0 / (now - self._last)
            self.value = current if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * current
        self._last = now
        return self.value


class StopFlag:
    """Ctrl-C ends the loop after the current frame (a second Ctrl-C interrupts at once).

    Finishing the frame keeps the JSON lines, the counts and the written video in step.
    """

    def __init__(self):
        self.set = False

    @contextlib.contextmanager
    def on_ctrl_c(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            self.set = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def summary_line(frames, faces, counts, class_names, seconds):
    from .overlay import class_style

    per_class = ", ".join(f"{class_style(name)[0].lower()} {counts.get(name, 0)}" for name in class_names)
    fps = frames / seconds if seconds > 0 else 0.0
    return f"summary: {frames} frames, {faces} faces seen ({per_class}), mean {fps:.1f} FPS"


def detect_stream(
    camera=None,
    video=None,
    output=None,
    display=None,
    max_frames=None,
    as_json=False,
    model_path=None,
    face_confidence=None,
    mask_threshold=None,
    detect_size=None,
    out=None,
    threads=None,
):
    """The video loop for detect_webcam.py. Returns an exit code."""
    import cv2

    from .cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, fail, warn
    from .overlay import annotate, count_labels
    from .pipeline import DEFAULT_FACE_CONFIDENCE, load_pipeline

    out = out or sys.stdout
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"--max-frames must be at least 1, got {max_frames}")
    if output is not None:
        VideoOutput(output, DEFAULT_FPS).close()  # checks the output path before the slow model load
    show = display is not False
    if show:
        available, why = display_available()
        if not available:
            if display:  # asked for explicitly
                warn(f"no display ({why}): running without a window")
            else:
                warn(f"no display ({why}): running without a window; see --output and --json")
            show = False

    source = open_source(camera, video)
    try:
        pipeline = load_pipeline(
            model_path,
            DEFAULT_FACE_CONFIDENCE if face_confidence is None else face_confidence,
            mask_threshold,
            detect_size=detect_size,
            threads=threads,
            upscale=1.0,  # live frames: no extra detection time
        )
        writer = VideoOutput(output, source.fps) if output is not None else None
    except BaseException:
        source.close()
        raise

    class_names = pipeline.class_names
    meter = FpsMeter()
    totals = {}
    frames = faces = 0
    stopped_by = None
    stop = StopFlag()
    started = time.perf_counter()
    try:
        with stop.on_ctrl_c():
            while (max_frames is None or frames < max_frames) and not stop.set:
                item = source.read()
                if item is None:
                    break
                frame, timestamp = item
                detections = pipeline.process(frame)
                fps = meter.tick()
                if writer is not None or show:
                    annotate(frame, detections, class_names, fps=fps)
                if writer is not None:
                    writer.write(frame)
                frames += 1
                faces += len(detections)
                for label, n in count_labels(detections).items():
                    totals[label] = totals.get(label, 0) + n
                if as_json:
                    record = {
                        "frame": frames - 1,
                        "time": round(timestamp, 3),
                        "faces": [d.to_json() for d in detections],
                    }
                    print(json.dumps(record), file=out, flush=True)
                if show:
                    cv2.imshow("Mask detection (q or Esc quits)", frame)
                    if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
                        stopped_by = "key"
                        break
        if stop.set:
            stopped_by = "interrupt"
    finally:
        seconds = time.perf_counter() - started
        source.close()
        if writer is not None:
            writer.close()
        if show:
            cv2.destroyAllWindows()

    if frames == 0:
        fail(source.failure or f"no frame could be read from {source.name}")
        return EXIT_ERROR
    report = sys.stderr if as_json else out  # stdout stays pure JSON Lines
    print(summary_line(frames, faces, totals, class_names, seconds), file=report, flush=True)
    if writer is not None and writer.frames:
        print(f"saved {writer.path} ({writer.frames} frames)", file=report, flush=True)
    if source.failure and stopped_by is None:
        warn(f"{source.failure}; stopped")
        return EXIT_PARTIAL
    return EXIT_OK
