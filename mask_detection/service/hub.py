"""Where the service's producers meet its web server: each camera's latest frame and state, and live events.

Producers (a camera worker, or the dashboard's MQTT subscriber) run on their own threads; the web server runs on
an asyncio loop. ``FrameFeed`` holds one camera's latest annotated frame as JPEG bytes, encoded once and shared by
every viewer; ``EventBus`` hands each stored event to every Server-Sent Events client. Both wake asyncio waiters
from any thread (``loop.call_soon_threadsafe``), so a slow viewer never holds up a camera.
"""

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import Event, State

SSE_QUEUE = 1000  # events a Server-Sent Events client may fall behind by before it is dropped (it reconnects)


class _Waiters:
    """asyncio futures waiting on something a thread will signal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: set[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = set()

    def add(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._futures.add((loop, future))
        return future

    def discard(self, future: asyncio.Future) -> None:
        with self._lock:
            self._futures = {item for item in self._futures if item[1] is not future}

    def wake(self) -> None:
        with self._lock:
            futures, self._futures = self._futures, set()
        for loop, future in futures:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: its waiter went with it
                pass


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class FrameFeed:
    """One camera's latest frame as JPEG bytes, with a sequence number that grows with every frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._waiters = _Waiters()
        self.viewers = 0  # MJPEG clients connected now (the camera encodes only while someone looks)

    def publish(self, jpeg: bytes) -> None:
        with self._lock:
            self._jpeg = jpeg
            self._sequence += 1
        self._waiters.wake()

    def latest(self) -> tuple[int, bytes | None]:
        with self._lock:
            return self._sequence, self._jpeg

    async def next_after(self, sequence: int, timeout: float) -> tuple[int, bytes | None]:
        """The first frame newer than ``sequence``, or the latest one after ``timeout`` seconds without."""
        future = self._waiters.add()
        try:
            current = self.latest()
            if current[0] > sequence:
                return current
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                pass
            return self.latest()
        finally:
            self._waiters.discard(future)


class EventBus:
    """Stored events, handed to every live subscriber (Server-Sent Events) in the order they were stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(SSE_QUEUE)
        with self._lock:
            self._queues.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._queues = {item for item in self._queues if item[1] is not queue}

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._queues)

    def publish(self, event: Event) -> None:
        """Called from any thread, after the event is stored (it carries its store ``seq``)."""
        with self._lock:
            queues = list(self._queues)
        for loop, queue in queues:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:
                pass


def _offer(queue: asyncio.Queue, event: Event | None) -> None:
    """Queue the event; a client that fell a whole queue behind gets None (the server closes its stream, its
    browser reconnects with Last-Event-ID and catches up from the store)."""
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


@dataclass
class CameraView:
    """What the web server knows of one camera."""

    name: str
    state: State
    feed: FrameFeed = field(default_factory=FrameFeed)
    source: str = ""  # what it reads, as shown to people (a stream URL without its password)
    events: dict[str, int] = field(default_factory=dict)  # events stored, by type
    errors: int = 0  # frames or outputs that failed (a lost stream, a failed publish, a failed webhook)
    last_frame: float | None = None  # time.monotonic() of the latest frame
    updated: float = field(default_factory=time.monotonic)


class Hub:
    """Every camera the server shows, and the live event bus. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.bus = EventBus()
        self._lock = threading.Lock()
        self._cameras: dict[str, CameraView] = {}
        self.classified = 0  # photos through POST /api/classify
        self.rejected_uploads = 0
        self.broker: Any = None  # the MQTT link (a publisher or the dashboard's subscriber): .connected, .broker

    def camera(self, name: str) -> CameraView:
        """The camera's view, made on first use (a dashboard learns of cameras from the broker)."""
        with self._lock:
            view = self._cameras.get(name)
            if view is None:
                view = self._cameras[name] = CameraView(name, {"camera": name, "status": "starting"})
            return view

    def find(self, name: str) -> CameraView | None:
        with self._lock:
            return self._cameras.get(name)

    def cameras(self) -> list[CameraView]:
        with self._lock:
            return sorted(self._cameras.values(), key=lambda view: view.name)

    def set_state(self, name: str, state: State) -> None:
        view = self.camera(name)
        view.state = state
        view.updated = self.clock()

    def frame(self, name: str, jpeg: bytes) -> None:
        view = self.camera(name)
        view.last_frame = self.clock()
        view.feed.publish(jpeg)

    def stored(self, event: Event) -> None:
        """An event was stored (once): count it and hand it to the live subscribers."""
        view = self.camera(event["camera"])
        view.events[event["type"]] = view.events.get(event["type"], 0) + 1
        self.bus.publish(event)

    def error(self, name: str) -> None:
        self.camera(name).errors += 1

    def status(self) -> dict[str, Any]:
        return {view.name: view.state.get("status", "starting") for view in self.cameras()}
