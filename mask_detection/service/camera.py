"""One camera of the service: its frames through the tracked pipeline, out to the web page, the store, MQTT and
the webhook.

``CameraWorker`` runs on its own thread. It drives ``stream.process_stream`` (the frame seam) with a
``people.PeoplePipeline`` and, for every frame: turns the results into service events (``records.EventRecorder``),
stores each event once (snapshot first), alerts once per person, hands the events to the live page and the
publishers, and keeps the camera's state. The annotated frame is drawn and encoded as JPEG once, only when someone
watches (or a few times a second for ``latest.jpg`` and the dashboard), and shared by every viewer.

Camera health: a stream that stops delivering frames is reported ``stalled``, then ``offline``, and reopened until
it delivers again. A video file is played at its own frame rate, like a camera (or as fast as it decodes with
``pace=False``), and ends (``ended``) unless it loops.
"""

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from ..errors import MaskDetectionError
from ..events import new_run_id
from ..interfaces import VideoSource
from ..interrupts import StopFlag
from ..overlay import draw_result
from ..people import PeoplePipeline, TrackingConfig
from ..pipeline import MaskPipeline
from ..results import FrameResult, PersonEvent
from ..stream import process_stream
from ..video_io import FpsMeter, VideoError, display_url, open_source
from .alerts import AlertGate
from .hub import Hub
from .records import Event, EventRecorder, camera_state
from .store import EventStore

# Frames are encoded for latest.jpg and the dashboard at least this often when nobody watches the live stream.
IDLE_ENCODE_SECONDS = 0.5
# The live video is encoded at most this often: smooth to the eye, and a camera processed faster (a video file
# with --fast) spends its spare time on people, not on pictures nobody can tell apart.
MAX_STREAM_FPS = 30.0
JPEG_QUALITY = 80
PRIVACY_BLUR_KERNEL = 51  # pixels at 640 px wide: faces become unrecognisable, people still visible


@dataclass
class CameraConfig:
    name: str
    camera: int | None = None  # a camera index
    video: str | None = None  # a video file or stream URL
    loop: bool = False  # a video file starts again at its end
    pace: bool = True  # a video file plays at its frame rate (False: as fast as it decodes)
    stall_seconds: float = 3.0  # no frame for this long: "stalled"
    offline_seconds: float = 15.0  # no frame for this long (or cannot be opened): "offline"
    retry_seconds: float = 2.0  # between attempts to reopen a lost stream
    privacy: bool = False  # no snapshots, faces blurred in every picture that leaves the process
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    max_frames: int | None = None  # stop after this many frames (tests, benchmarks)

    @property
    def source_text(self) -> str:
        """The source as people may see it: a stream URL without its password."""
        if self.video is not None:
            return display_url(self.video)
        return f"camera {0 if self.camera is None else self.camera}"


EventSink = Callable[[Event, bytes | None], None]  # a stored event and its snapshot JPEG (MQTT)
StateSink = Callable[[dict], None]
FrameSink = Callable[[bytes], None]


class PacedSource:
    """A video file read like a camera: each frame handed out at its time (``pace``), the file started again at
    its end (``loop``), times running on across loops."""

    live = False

    def __init__(self, path: str, pace: bool, loop: bool, stop: threading.Event) -> None:
        self._path = path
        self._pace = pace
        self._loop = loop
        self._stop = stop
        self._source = open_source(video=path)
        self.name = self._source.name
        self.fps = self._source.fps
        self.failure: str | None = None
        self._offset = 0.0  # seconds of the loops before this one
        self._last = 0.0
        self._started = time.monotonic()

    def read(self) -> tuple[np.ndarray, float] | None:
        item = self._source.read()
        if item is None and self._loop and self._source.failure is None and self._last > 0:
            self._source.close()
            self._source = open_source(video=self._path)
            self._offset = self._last + 1.0 / self.fps
            item = self._source.read()
        if item is None:
            self.failure = self._source.failure
            return None
        frame, seconds = item
        seconds += self._offset
        self._last = seconds
        if self._pace:
            delay = self._started + seconds - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return None
            if delay < -1.0 / self.fps:  # fell behind (a slow start): go on from now, never faster than the video
                self._started -= delay
        return frame, seconds

    def close(self) -> None:
        self._source.close()


def blur_faces(bgr: np.ndarray, result: FrameResult) -> None:
    """Blur every face found in the frame, in place (privacy mode)."""
    height, width = bgr.shape[:2]
    boxes = [face.xywh for face in result.faces] or [d.xywh for d in result.detections]
    for x, y, w, h in boxes:
        # A margin: hair and chin identify people too.
        x0, y0 = max(0, int(x - 0.2 * w)), max(0, int(y - 0.2 * h))
        x1, y1 = min(width, int(x + 1.2 * w)), min(height, int(y + 1.2 * h))
        if x1 > x0 and y1 > y0:
            region = bgr[y0:y1, x0:x1]
            small = cv2.resize(region, (max(1, (x1 - x0) // 16), max(1, (y1 - y0) // 16)), interpolation=cv2.INTER_AREA)
            bgr[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)


def encode_jpeg(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MaskDetectionError("cannot encode a frame as JPEG")
    return data.tobytes()


@dataclass
class _ToEncode:
    result: FrameResult  # its image is the encoder's from now on: nothing else draws on it or reads it
    class_names: list[str]
    fps: float
    for_sinks: bool


class LatestOnly:
    """A thread that works on the newest item handed to it: an item not started when a newer one comes is
    dropped, so the producer (the camera) never waits, and a slow consumer only sees fewer frames. Drawing and
    JPEG encoding release the GIL, so they run beside the pipeline on another core."""

    def __init__(self, work: Callable[[Any], None], name: str, warn: Callable[[str], None]) -> None:
        self._work = work
        self._warn = warn
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        with self._cond:
            self._item = item
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._item is not None or self._closed)
                item, self._item = self._item, None
                if item is None:
                    return
            try:
                self._work(item)
            except Exception as exc:  # one bad frame must not end the video for every viewer
                if not self._failed:
                    self._warn(f"cannot share a frame: {exc}")
                self._failed = True


class CameraWorker:
    """One camera's loop, on its own thread: ``start()``, ``stop()`` (the people in view get their leave events,
    every event is stored and handed on), ``join()``."""

    def __init__(
        self,
        config: CameraConfig,
        pipeline: MaskPipeline,
        hub: Hub,
        store: EventStore,
        alerts: AlertGate,
        warn: Callable[[str], None],
        on_event: list[EventSink] | None = None,
        on_alert: list[Callable[[Event], None]] | None = None,
        on_state: list[StateSink] | None = None,
        on_frame: list[FrameSink] | None = None,
        frame_sink_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.hub = hub
        self.store = store
        self.alerts = alerts
        self.warn = warn
        self.on_event = on_event or []
        self.on_alert = on_alert or []
        self.on_state = on_state or []
        self.on_frame = on_frame or []
        self.frame_sink_seconds = frame_sink_seconds
        self.clock = clock
        self.name = config.name
        self.status = "starting"
        self.frames = 0
        self.fps = 0.0
        self.failure: str | None = None  # why the camera is not live, as said to the user
        self._stopping = threading.Event()
        self._stop_flag = StopFlag()
        self._last_frame: float | None = None
        self._down_since = clock()  # when frames stopped coming (or the start)
        self._last_result: FrameResult | None = None
        self._last_encode = -1e9
        self._last_sink = -1e9
        self._published_state: tuple | None = None  # what the publishers last heard, and when
        self._published_at = -1e9
        self._store_failed = False
        self._lock = threading.Lock()
        self._encoder = LatestOnly(self._encode, f"encoder-{config.name}", warn)
        self._thread = threading.Thread(target=self._run, name=f"camera-{config.name}", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{config.name}", daemon=True)
        hub.camera(self.name).source = config.source_text
        self._set_state()

    # ------------------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._thread.start()
        self._watchdog.start()

    def stop(self) -> None:
        self._stopping.set()
        self._stop_flag.set = True

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        self._watchdog.join(timeout)
        self._encoder.close(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                source = self._open()
                if source is None:
                    continue
                try:
                    ended = self._follow(source)
                finally:
                    source.close()
                if ended or (self.config.max_frames is not None and self.frames >= self.config.max_frames):
                    self._set_status("ended")
                    break
                if not self._stopping.is_set():
                    self.failure = source.failure or f"{source.name} stopped delivering frames"
                    self._stopping.wait(self.config.retry_seconds)
        except Exception as exc:  # a bug or a broken model must not leave a silent, frozen page
            self.failure = f"camera {self.name} stopped: {exc}"
            self.warn(self.failure)
            self.hub.error(self.name)
            self._set_status("offline")
        finally:
            self._stopping.set()

    def _open(self) -> VideoSource | None:
        config = self.config
        try:
            if config.video is not None and "://" not in config.video:
                return PacedSource(config.video, config.pace, config.loop, self._stopping)
            return open_source(config.camera, config.video)
        except VideoError as exc:
            if self.failure != str(exc):
                self.warn(f"{exc}; retrying every {config.retry_seconds:g} s")
            self.failure = str(exc)
            self.hub.error(self.name)
            if config.video is not None and "://" not in config.video and self.frames == 0:
                self._set_status("offline")
                self._stopping.set()  # a file that cannot be opened will not open later
                return None
            self._stopping.wait(config.retry_seconds)
            return None

    def _follow(self, source: VideoSource) -> bool:
        """Process the source until it ends; True when a video file ended (not a stream that broke off, nor a stop)."""
        processor = PeoplePipeline(self.pipeline, self.config.tracking, source.fps)
        recorder = EventRecorder(self.name, new_run_id())
        heard: list[PersonEvent] = []  # events from the stream's own callback: each frame's, then the closing ones
        meter = FpsMeter()
        remaining = None if self.config.max_frames is None else max(1, self.config.max_frames - self.frames)
        frames = process_stream(source, processor, stop=self._stop_flag, max_frames=remaining, on_events=heard.extend)
        with contextlib.closing(frames):
            for result in frames:
                heard.clear()  # this frame's events are in result.events
                self.frames += 1
                self.fps = meter.tick() or 0.0
                self._last_frame = self.clock()
                self._last_result = result
                for event in recorder.frame(result):
                    self._handle(event, self._snapshot_for(event, result.events))
                self._share_frame(result, processor.class_names)
                if self.status != "live":  # once the first frame can be seen
                    self.failure = None
                    self._set_status("live")
                else:
                    self._set_state()
        # The people still in view when the source ended or the worker stopped: their leave events.
        for event in recorder.person_events(heard):
            self._handle(event, None)
        if self._last_result is not None:  # nobody is in view any more; the counts so far still stand
            self._last_result = replace(self._last_result, detections=[], faces=[], alert=False, events=[])
        self._set_state()
        # A video file is over at its end (its damaged frames skipped); a camera or stream that ends is reopened.
        return not source.live and not self._stopping.is_set()

    # ------------------------------------------------------------------------------------------ per frame
    def _snapshot_for(self, event: Event, person_events: list[PersonEvent]) -> bytes | None:
        if self.config.privacy or event["type"] != "verdict":
            return None
        for item in person_events:
            if item.kind == "verdict" and item.track_id == event["track"] and item.snapshot is not None:
                return encode_jpeg(item.snapshot, 90)
        return None

    def _handle(self, event: Event, snapshot: bytes | None) -> None:
        """Alert, store (snapshot first), then tell the page, the publishers and the webhook."""
        if self.alerts.check(event):
            event["alert"] = True
        try:
            stored = self.store.add(event, snapshot)
        except MaskDetectionError as exc:
            if not self._store_failed:
                self.warn(f"{exc}; events are still shown and published, but not stored")
            self._store_failed = True
            self.hub.error(self.name)
            stored = dict(event, seq=None)
        if stored is None:
            return  # already stored (cannot happen for a camera's own fresh ids)
        self.hub.stored(stored)
        for sink in self.on_event:
            sink(stored, snapshot)
        if stored["alert"]:
            for alert in self.on_alert:
                alert(stored)

    def _share_frame(self, result: FrameResult, class_names: list[str]) -> None:
        """Hand the frame to the encoder when anyone will see it: every frame while someone watches the live video,
        else a few a second (latest.jpg, the dashboard's frames)."""
        now = self.clock()
        watched = self.hub.camera(self.name).feed.viewers > 0 and now - self._last_encode >= 1.0 / MAX_STREAM_FPS
        for_sinks = bool(self.on_frame) and now - self._last_sink >= self.frame_sink_seconds
        if not (watched or for_sinks or now - self._last_encode >= IDLE_ENCODE_SECONDS):
            return
        self._last_encode = now
        if for_sinks:
            self._last_sink = now
        item = _ToEncode(result, class_names, self.fps, for_sinks)
        if self.hub.camera(self.name).feed.latest()[1] is None:
            self._encode(item)  # the very first frame at once: a camera reported live has a picture to show
        else:
            self._encoder.put(item)

    def _encode(self, item: "_ToEncode") -> None:
        """On the encoder's thread: blur (privacy), draw, encode once, share with every viewer and sink."""
        if self.config.privacy:
            blur_faces(item.result.image, item.result)
        draw_result(item.result, item.class_names, item.fps)
        jpeg = encode_jpeg(item.result.image)
        self.hub.frame(self.name, jpeg)
        if item.for_sinks:
            for sink in self.on_frame:
                sink(jpeg)

    # ------------------------------------------------------------------------------------------ health
    def _watch(self) -> None:
        """Stalled and offline are said by the clock, not by a frame: a dead stream delivers none."""
        while not self._stopping.wait(0.25):
            if self.status in ("live", "stalled", "starting"):
                last = self._last_frame if self._last_frame is not None else self._down_since
                idle = self.clock() - last
                source = self.config.source_text
                if idle >= self.config.offline_seconds:
                    self.failure = self.failure or f"no frame from {source} for {self.config.offline_seconds:g} s"
                    self._set_status("offline")
                elif idle >= self.config.stall_seconds and self.status == "live":
                    self.failure = f"no frame from {source} for {self.config.stall_seconds:g} s"
                    self._set_status("stalled")
            self._set_state()

    def _set_status(self, status: str) -> None:
        with self._lock:
            if status == self.status:
                return
            self.status = status
        self._set_state(force=True)

    def _set_state(self, force: bool = False) -> None:
        frame_age = None if self._last_frame is None else self.clock() - self._last_frame
        live = self.status == "live" and self._last_result is not None
        shown = self._last_result if live else None
        state = camera_state(
            self.name,
            self.status,
            self.pipeline.class_names,
            in_view=[] if shown is None else shown.detections,
            alert=shown is not None and shown.alert,
            people=None if self._last_result is None else self._last_result.people,  # the counts so far still stand
            fps=self.fps if live else 0.0,
            frame_age=frame_age,
            frames=self.frames,
            problem=None if self.status in ("live", "starting") else self.failure,
        )
        self.hub.set_state(self.name, state)
        # Publishers hear a change of who is in view, the alert or the health at once, the rest every 10 s.
        key = (state["status"], state["in_view"], tuple(state["in_view_by_class"].items()), state["alert"])
        with self._lock:
            changed = force or key != self._published_state or self.clock() - self._published_at >= 10.0
            if changed:
                self._published_state = key
                self._published_at = self.clock()
        if changed:
            for sink in self.on_state:
                sink(state)
