"""The entrance service put together: a camera (or a fleet's broker), the event store, the alerts, the publishers
and the web server, started and stopped in order.

``serve_camera`` runs one camera through the tracked pipeline and serves its page and API; ``serve_dashboard``
follows every camera of a fleet through the MQTT broker and serves one page and API over them all. Both listen on a
socket bound before anything slow starts (a port in use is one clear error), and stop in order on the way out:
the web server, then the camera (the people in view get their leave events), then the publishers (their backlog
sent or kept in the outbox), then the store.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImageDecodeError, MaskDetectionError
from ..fileio import safe_text
from ..images import decode_photo
from ..pipeline import MaskPipeline, detect_photo
from .alerts import AlertGate
from .app import AppSettings, Classify, create_app
from .camera import CameraConfig, CameraWorker
from .hub import Hub
from .security import check_bind
from .store import EventStore

PRUNE_SECONDS = 3600.0  # how often events older than keep_days are removed while running
SUBSCRIBE_WAIT = 10.0  # seconds the dashboard waits for its subscription before serving without it


@dataclass
class ServiceConfig:
    store: Path  # the folder of the event store (SQLite, snapshots, the MQTT outbox)
    host: str = "127.0.0.1"
    port: int = 8080
    keep_days: float = 7.0
    app: AppSettings = field(default_factory=AppSettings)
    mqtt: Any = None  # mqtt.MqttSettings: publish (camera) or subscribe (dashboard)
    webhook: str | None = None  # POST each alert's event here
    alert_cooldown: float = 30.0  # seconds between two alerts of one camera


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound now: the port is ours before the slow start, or one clear error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise MaskDetectionError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "the port is in use (another server?)" if exc.errno == 98 else exc.strerror or str(exc)
        raise MaskDetectionError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def photo_checker(load: Callable[[], MaskPipeline]) -> Classify:
    """``POST /api/classify``'s work: decode (bounded: size and pixels), then detect and classify with a pipeline
    of its own, loaded on first use and used by one request at a time (a pipeline is not thread-safe)."""
    lock = threading.Lock()
    loaded: list[MaskPipeline] = []

    def classify(data: bytes, name: str, max_pixels: int) -> dict[str, Any]:
        try:
            rgb, full_shape = decode_photo(data, max_pixels=max_pixels)
        except ImageDecodeError as exc:  # named as the client named it, not "<bytes>"
            raise ImageDecodeError(f"cannot decode {safe_text(name)}: {exc.reason}") from None
        with lock:
            if not loaded:
                loaded.append(load())
            return detect_photo(loaded[0], rgb, full_shape).to_json(name)

    return classify


def _run_http(app: Any, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn stops gracefully, then raises the signal again for the caller)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def _pruning(store: EventStore, keep_days: float, warn: Callable[[str], None]) -> Iterator[None]:
    """Events older than ``keep_days`` removed at the start and every hour."""
    stop = threading.Event()

    def prune() -> None:
        while True:
            try:
                store.prune(keep_days)
            except MaskDetectionError as exc:
                warn(str(exc))
            if stop.wait(PRUNE_SECONDS):
                return

    thread = threading.Thread(target=prune, name="prune", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextlib.contextmanager
def _serving(
    config: ServiceConfig, warn: Callable[[str], None], sock: socket.socket | None
) -> Iterator[tuple[contextlib.ExitStack, socket.socket, EventStore, Hub]]:
    """What every server has: the bound socket, the store (pruned hourly) and the hub; closed in reverse order."""
    check_bind(config.host, config.app.token)
    sock = sock if sock is not None else listen(config.host, config.port)
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        store = EventStore(config.store)
        stack.callback(store.close)
        stack.enter_context(_pruning(store, config.keep_days, warn))
        yield stack, sock, store, Hub()


def _camera_publisher(
    stack: contextlib.ExitStack, config: ServiceConfig, camera: str, class_names: list[str], hub: Hub, warn: Any
) -> Any:
    """The camera's MQTT publisher, started, with its outbox beside the store; closed (outbox sent for up to ten
    seconds, the rest kept) on the way out."""
    from .mqtt import CameraPublisher
    from .outbox import OUTBOX_FILE, Outbox

    outbox = Outbox(Path(config.store) / OUTBOX_FILE)
    stack.callback(outbox.close)
    publisher = CameraPublisher(config.mqtt, camera, outbox, class_names, warn, on_error=lambda: hub.error(camera))
    publisher.start()
    stack.callback(publisher.close, 10.0)
    hub.broker = publisher
    return publisher


def serve_camera(
    config: ServiceConfig,
    camera: CameraConfig,
    pipeline: MaskPipeline,
    load_photo_pipeline: Callable[[], MaskPipeline],
    warn: Callable[[str], None],
    on_ready: Callable[[str], None],
    sock: socket.socket | None = None,
) -> None:
    """Serve one camera until a signal; ``on_ready(address)`` once the page can be opened."""
    with _serving(config, warn, sock) as (stack, sock, store, hub):
        worker = CameraWorker(camera, pipeline, hub, store, AlertGate(config.alert_cooldown), warn)
        if config.mqtt is not None:
            publisher = _camera_publisher(stack, config, camera.name, pipeline.class_names, hub, warn)
            worker.on_event.append(publisher.event)
            worker.on_frame.append(publisher.frame)

            def publish_state(state: dict) -> None:
                publisher.state(state)
                publisher.set_available(state["status"] != "offline")

            worker.on_state.append(publish_state)
        if config.webhook is not None:
            from .webhook import WebhookSender

            webhook = WebhookSender(config.webhook, warn)
            stack.callback(webhook.close, 10.0)
            worker.on_alert.append(webhook.send)
        app = create_app(hub, store, config.app, photo_checker(load_photo_pipeline))
        worker.start()
        try:
            on_ready(address_of(sock))
            _run_http(app, sock)
        finally:
            worker.stop()
            worker.join(30)


def serve_dashboard(
    config: ServiceConfig,
    load_photo_pipeline: Callable[[], MaskPipeline],
    warn: Callable[[str], None],
    on_ready: Callable[[str], None],
    sock: socket.socket | None = None,
) -> None:
    """Serve every camera that publishes to the broker until a signal."""
    from .subscriber import DashboardSubscriber

    if config.mqtt is None:
        raise MaskDetectionError("the dashboard needs a broker")
    with _serving(config, warn, sock) as (stack, sock, store, hub):
        subscriber = DashboardSubscriber(config.mqtt, hub, store, warn)
        subscriber.start()
        stack.callback(subscriber.stop)
        hub.broker = subscriber
        # Ready once the broker has confirmed the subscription (what is published from then on reaches the
        # store); a broker that is down is waited for in the background, the page serves meanwhile.
        deadline = time.monotonic() + SUBSCRIBE_WAIT
        while not subscriber.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        if not subscriber.subscribed:
            warn(f"the broker {config.mqtt.broker} does not answer yet; the dashboard keeps trying")
        app = create_app(hub, store, config.app, photo_checker(load_photo_pipeline))
        on_ready(address_of(sock))
        _run_http(app, sock)
