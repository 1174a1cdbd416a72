"""MQTT for a fleet of cameras: each camera process publishes its events, state and availability to a broker
(Mosquitto), Home Assistant discovers it, and a dashboard subscribes to them all.

Topics under ``<prefix>/<camera>/`` (the payloads' JSON Schemas are in ``docs/schemas/``):

- ``events``: person events (QoS 1, not retained), sent from the camera's outbox (``outbox.Outbox``): a broker
  outage loses nothing, and an event may arrive twice (consumers de-duplicate by its ``id``);
- ``snapshot/<event id>``: the event's JPEG snapshot, sent just before the event (QoS 1, not retained);
- ``state``: the camera's latest state (retained);
- ``availability``: ``online`` / ``offline`` (retained; the broker publishes ``offline`` as the last will when
  the camera process dies);
- ``frame``: the annotated video as JPEG frames (QoS 0, not retained: the dashboard's live view).

paho-mqtt is imported where a client is made, so commands that do not use MQTT start without it.
"""

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MaskDetectionError
from .discovery import discovery_messages
from .outbox import Outbox
from .records import Event, State, check_camera_name

if TYPE_CHECKING:
    import paho.mqtt.client as paho

ONLINE = "online"
OFFLINE = "offline"
WINDOW = 20  # outbox messages handed to the client and not yet acknowledged, at most (the rest wait on disk)
FRAMES_WAITING = 2  # video frames queued and not yet written to the network, at most (a newer one replaces them)


@dataclass(frozen=True)
class MqttSettings:
    """Where the broker is and how the topics are named."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # TLS: the certificate authorities to trust (None: the system's)
    prefix: str = "mask_detection"
    discovery_prefix: str = "homeassistant"  # Home Assistant's; its birth message is <discovery_prefix>/status
    keepalive: int = 30
    client_id: str | None = None  # the base of the client ids: <client_id>-<camera>, <client_id>-dashboard

    def __post_init__(self) -> None:
        for name in ("prefix", "discovery_prefix"):
            value = getattr(self, name)
            # Topic names, not filters: a wildcard or an empty level would make every publish fail.
            if not value or any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                raise MaskDetectionError(f"MQTT {name.replace('_', ' ')} {value!r}: use topic levels without + or #")
        if not 0 < self.port < 65536:
            raise MaskDetectionError(f"MQTT broker port {self.port}: use 1 to 65535")

    @property
    def broker(self) -> str:
        """The broker as messages show it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def topic(self, camera: str, leaf: str) -> str:
        """``<prefix>/<camera>/<leaf>``: the one place the topic layout is written."""
        return f"{self.prefix}/{camera}/{leaf}"

    def client_name(self, role: str) -> str:
        return f"{self.client_id or self.prefix}-{role}"


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[ADDRESS]:PORT`` for IPv6; without a port: 1883) as (host, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d*))?|([^\s:/\[\]]+)(?::(\d*))?", text.strip())
    if match is None:
        raise MaskDetectionError(
            f"MQTT broker {text!r}: give it as HOST:PORT, e.g. localhost:1883 ([ADDRESS]:PORT for IPv6)"
        )
    host = match.group(1) or match.group(3)
    port = match.group(2) if match.group(1) else match.group(4)
    if port is None:
        return host, 1883
    if not port or not 0 < int(port) < 65536:
        raise MaskDetectionError(f"MQTT broker {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def make_client(
    settings: MqttSettings, client_id: str, clean_session: bool = True, will_topic: str | None = None
) -> "paho.Client":
    """A paho client for ``settings`` (MQTT 3.1.1), not connected yet: credentials, TLS, the last will, and
    reconnection with back-off (1 s doubling up to 5 s)."""
    import paho.mqtt.client as paho

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, protocol=paho.MQTTv311
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=settings.ca_file)
    if will_topic is not None:
        client.will_set(will_topic, OFFLINE, qos=1, retain=True)
    # Retries at 1, 2, 4 s, then every 5 s: a broker back after an outage is found within seconds.
    client.reconnect_delay_set(1, 5)
    return client


class CameraPublisher:
    """Publishes one camera to the broker; the camera never waits for it.

    ``start`` connects in the background; it reconnects with back-off until ``close`` (a broker that is down at
    start is retried too). ``warn``: one message per outage (lost, back); ``on_error``: called once per outage
    (the service counts it as the camera's error).
    """

    def __init__(
        self,
        settings: MqttSettings,
        camera: str,
        outbox: Outbox,
        class_names: list[str],
        warn: Callable[[str], None],
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.camera = check_camera_name(camera)
        self.outbox = outbox
        self.class_names = list(class_names)
        self.warn = warn
        self.on_error = on_error
        self._availability_topic = settings.topic(camera, "availability")
        self._status_topic = f"{settings.discovery_prefix}/status"
        self._state: State | None = None
        self._available = True
        self._connected = False
        self._outage = False  # warned of the current outage already
        self._closing = False
        # Guards what the sender hands to the client against a reconnection dropping it. Never taken inside the
        # on_publish callback: paho calls that holding its message lock, which publish() takes under ours.
        self._lock = threading.Lock()
        self._generation = 0  # connections so far: an acknowledgement from an older one is stale
        self._handed: dict[int, int] = {}  # message id -> outbox seq, sent on this connection, not acknowledged
        self._cursor = 0  # the last outbox seq handed to the client on this connection
        self._acks: deque[tuple[int, int]] = deque()  # (generation, message id) from on_publish
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._client = make_client(
            settings, settings.client_name(camera), clean_session=True, will_topic=self._availability_topic
        )
        self._client.max_inflight_messages_set(0)  # the window is ours (WINDOW); paho's would queue behind it
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._sender = threading.Thread(target=self._send_loop, name=f"mqtt-{camera}", daemon=True)
        self._frames: list[Any] = []  # the frames' MQTTMessageInfo not yet written (the camera's thread only)
        self.frames_dropped = 0  # frames not sent because the link was still busy with earlier ones

    def start(self) -> None:
        """Connect in the background (and keep reconnecting): returns at once."""
        self._sender.start()
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self._client.loop_start()

    # ------------------------------------------------------------------ what the camera calls (never blocks on I/O)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def backlog(self) -> int:
        """Events and snapshots not yet acknowledged by the broker."""
        return len(self.outbox)

    @property
    def in_flight(self) -> int:
        """Outbox messages sent on this connection and not yet acknowledged (at most ``WINDOW``)."""
        with self._lock:
            return len(self._handed)

    def event(self, event: Event, snapshot: bytes | None = None) -> None:
        """Queue an event (and its snapshot, sent first so it is there when the event arrives)."""
        payload = {key: value for key, value in event.items() if key != "seq"}  # the receiver numbers its own
        payload["has_snapshot"] = snapshot is not None or bool(event.get("has_snapshot"))
        messages = []
        if snapshot is not None:
            messages.append((self.settings.topic(self.camera, f"snapshot/{event['id']}"), snapshot, 1, False))
        messages.append((self.settings.topic(self.camera, "events"), _json(payload), 1, False))
        self.outbox.put_many(messages)
        self._wake.set()

    def state(self, state: State) -> None:
        """The camera's latest state (retained). Not queued: only the latest matters, and it is re-sent on connect."""
        self._state = state
        if self._connected:
            self._client.publish(self.settings.topic(self.camera, "state"), _json(state), qos=1, retain=True)

    def frame(self, jpeg: bytes) -> None:
        """A video frame for the dashboard's live view (QoS 0: a lost frame is replaced by the next)."""
        if not self._connected:
            return
        # A slow link must not pile frames up in memory: while earlier ones still wait, this one is dropped.
        self._frames = [info for info in self._frames if not _written(info)]
        if len(self._frames) >= FRAMES_WAITING:
            self.frames_dropped += 1
            return
        self._frames.append(self._client.publish(self.settings.topic(self.camera, "frame"), jpeg, qos=0))

    def set_available(self, available: bool) -> None:
        """The camera's availability (retained): offline while it delivers no frames."""
        if available == self._available:
            return
        self._available = available
        if self._connected:
            self._publish_availability()

    def close(self, timeout: float = 5.0) -> None:
        """Sends what the outbox holds (up to ``timeout`` seconds), says offline and disconnects. What is not sent
        stays in the outbox for the next start."""
        if not self._sender.is_alive():  # never started
            return
        deadline = time.monotonic() + timeout
        with self._drained:
            self._drained.wait_for(lambda: len(self.outbox) == 0, timeout)
        self._closing = True
        self._wake.set()
        self._sender.join()
        if self._connected:
            # A clean disconnect does not fire the last will: say offline ourselves.
            info = self._client.publish(self._availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):  # the connection went meanwhile: the last will says it
                pass
        self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------------ the sender thread

    def _send_loop(self) -> None:
        while not self._closing:
            self._wake.wait()
            self._wake.clear()
            self._take_acks()
            self._send_more()

    def _take_acks(self) -> None:
        while self._acks:
            generation, mid = self._acks.popleft()
            with self._lock:
                seq = self._handed.pop(mid, None) if generation == self._generation else None
            if seq is not None:
                self.outbox.done(seq)
        with self._drained:
            self._drained.notify_all()

    def _send_more(self) -> None:
        with self._lock:
            if not self._connected or self._closing:
                return
            room = WINDOW - len(self._handed)
            if room <= 0:
                return
            for seq, topic, payload, qos, retain in self.outbox.pending(room, after=self._cursor):
                self._cursor = seq
                try:
                    info = self._client.publish(topic, payload, qos=qos, retain=retain)
                except ValueError as exc:  # a message no broker takes (e.g. too large): sending it again won't help
                    self.warn(f"MQTT message on {topic} dropped: {exc}")
                    self.outbox.done(seq)
                    continue
                if qos > 0:
                    self._handed[info.mid] = seq
                else:
                    self.outbox.done(seq)

    # ------------------------------------------------------------------ paho callbacks (its network thread)

    def _on_connect(self, client: "paho.Client", userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._report(f"MQTT broker {self.settings.broker}: connection refused ({reason_code})")
            return
        with self._lock:
            # Start again from the oldest unacknowledged message, in order: drop what the client would resend
            # by itself (it would interleave with ours), then let the sender go through the outbox again.
            client.drop_out_messages()
            self._generation += 1
            self._handed.clear()
            self._cursor = 0
            self._connected = True
        if self._outage:
            self.warn(
                f"MQTT broker {self.settings.broker}: connected again; sending {len(self.outbox)} queued messages"
            )
        self._outage = False
        # Subscribe before publishing discovery, so a Home Assistant restart from now on is heard.
        client.subscribe(self._status_topic, qos=1)
        self._publish_availability()
        self._publish_discovery()
        if self._state is not None:
            client.publish(self.settings.topic(self.camera, "state"), _json(self._state), qos=1, retain=True)
        self._wake.set()

    def _on_connect_fail(self, client: "paho.Client", userdata: Any) -> None:
        self._report(f"MQTT broker {self.settings.broker}: cannot be reached; retrying")

    def _on_disconnect(
        self, client: "paho.Client", userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected = False
        if not self._closing:
            self._report(f"MQTT broker {self.settings.broker}: connection lost; retrying")

    def _on_publish(self, client: "paho.Client", userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        # Runs holding paho's message lock: no lock of ours here (see _lock); the sender thread takes it from here.
        self._acks.append((self._generation, mid))
        self._wake.set()

    def _on_message(self, client: "paho.Client", userdata: Any, message: Any) -> None:
        # Home Assistant says "online" when it starts: it may have lost the discovery configs.
        if message.topic == self._status_topic and message.payload == ONLINE.encode():
            self._publish_discovery()
            self._publish_availability()
            if self._state is not None:
                client.publish(self.settings.topic(self.camera, "state"), _json(self._state), qos=1, retain=True)

    # ------------------------------------------------------------------ helpers

    def _publish_availability(self) -> None:
        self._client.publish(self._availability_topic, ONLINE if self._available else OFFLINE, qos=1, retain=True)

    def _publish_discovery(self) -> None:
        for topic, config in discovery_messages(self.settings, self.camera, self.class_names):
            self._client.publish(topic, _json(config), qos=1, retain=True)

    def _report(self, message: str) -> None:
        """Warn once per outage."""
        if self._outage:
            return
        self._outage = True
        self.warn(message + "; events are kept in the outbox and sent when it is back")
        if self.on_error is not None:
            self.on_error()


def _written(info: Any) -> bool:
    """Whether a QoS 0 message left (or will never leave: its connection was lost)."""
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return True


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
