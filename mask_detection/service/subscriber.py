"""The dashboard's side of MQTT: every camera's events, snapshots, state, availability and frames, from the broker
into the dashboard's own event store and hub.

The subscription is a persistent session (a fixed client id, clean session off), so QoS 1 events published while
the dashboard was away are delivered when it is back (the broker keeps them: run it with persistence on, or a
broker restart loses them). Events can arrive twice (the camera resends what the broker had not acknowledged):
the store keeps each id once. A malformed message is counted as the camera's error and warned of once per camera;
it never stops the others.
"""

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MaskDetectionError
from .hub import Hub
from .mqtt import OFFLINE, ONLINE, MqttSettings, make_client
from .records import EVENT_TYPES, SCHEMA_VERSION, check_camera_name
from .store import EventStore, plain_id

if TYPE_CHECKING:
    import paho.mqtt.client as paho

JPEG_START = b"\xff\xd8"


class Malformed(ValueError):
    """A message that does not follow the published format."""


class DashboardSubscriber:
    """Subscribes ``<prefix>/+/#`` and feeds ``store`` and ``hub``; ``start`` connects (and reconnects) in the
    background."""

    def __init__(self, settings: MqttSettings, hub: Hub, store: EventStore, warn: Callable[[str], None]) -> None:
        self.settings = settings
        self.hub = hub
        self.store = store
        self.warn = warn
        self._prefix = settings.prefix + "/"
        self._warned: set[str] = set()  # cameras warned of a malformed message
        self._warned_lock = threading.Lock()
        self._connected = False
        self._subscribed = False
        self._outage = False
        self._closing = False
        self.duplicates = 0  # events received again (already stored)
        self._client = make_client(settings, settings.client_name("dashboard"), clean_session=False)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        """Connect in the background (and keep reconnecting): returns at once."""
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Connected, and the broker confirmed the subscription: from now on every camera's messages arrive."""
        return self._connected and self._subscribed

    def stop(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------------ paho callbacks (its network thread)

    def _on_connect(self, client: "paho.Client", userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._lost(f"connection refused ({reason_code})")
            return
        # Subscribe again on every connection: a broker restarted without persistence forgot the session.
        client.subscribe(self._prefix + "+/#", qos=1)
        self._connected = True
        if self._outage:
            self.warn(f"MQTT broker {self.settings.broker}: connected again")
        self._outage = False

    def _on_subscribe(
        self, client: "paho.Client", userdata: Any, mid: int, reason_codes: list[Any], properties: Any
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            self._lost(f"subscription to {self._prefix}+/# refused ({reason_codes[0]})")
        else:
            self._subscribed = True

    def _on_connect_fail(self, client: "paho.Client", userdata: Any) -> None:
        self._lost("cannot be reached; retrying")

    def _on_disconnect(
        self, client: "paho.Client", userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected = self._subscribed = False
        if not self._closing:
            self._lost("connection lost; retrying")
            # Without the broker no camera can be vouched for; the retained states and availabilities come back
            # with the subscription once it is reachable again.
            for view in self.hub.cameras():
                self._unvouched(view.name, f"the MQTT broker {self.settings.broker} is unreachable")

    def _lost(self, what: str) -> None:
        if not self._outage:
            self._outage = True
            self.warn(f"MQTT broker {self.settings.broker}: {what}")

    def _on_message(self, client: "paho.Client", userdata: Any, message: Any) -> None:
        topic = str(message.topic)
        if not topic.startswith(self._prefix):
            return
        camera, _, leaf = topic[len(self._prefix) :].partition("/")
        try:
            check_camera_name(camera)
        except MaskDetectionError:
            self._warn_once(camera, f"MQTT: messages on {topic} ignored: {camera!r} is not a camera name")
            return
        try:
            self._handle(camera, leaf, bytes(message.payload))
        # Whatever one message holds, the others go on (an exception here would stop paho's network thread).
        except Exception as exc:  # noqa: BLE001
            self.hub.error(camera)
            what = "malformed" if isinstance(exc, Malformed) else "failed"
            self._warn_once(
                camera,
                f"MQTT: {what} {leaf or 'message'} from camera {camera} ignored ({exc}); "
                "further ones from it are counted as its errors, not shown",
            )

    # ------------------------------------------------------------------ one message

    def _handle(self, camera: str, leaf: str, payload: bytes) -> None:
        if leaf == "events":
            event = _record(payload, camera)
            if event.get("type") not in EVENT_TYPES or not plain_id(event.get("id")):
                raise Malformed("an event needs a known type and a plain id")
            stored = self.store.add(event)
            if stored is None:
                self.duplicates += 1
            else:
                self.hub.stored(stored)
        elif leaf.startswith("snapshot/"):
            event_id = leaf.removeprefix("snapshot/")
            if not plain_id(event_id) or not payload.startswith(JPEG_START):
                raise Malformed("a snapshot is a JPEG on snapshot/<event id>")
            self.store.put_snapshot(event_id, payload)
        elif leaf == "state":
            self.hub.set_state(camera, _record(payload, camera))
        elif leaf == "availability":
            if payload == OFFLINE.encode():
                # The camera (or its process, by the last will) went: nothing in view can be vouched for.
                self._unvouched(camera, "the camera is offline")
            elif payload != ONLINE.encode():
                raise Malformed(f"availability is {ONLINE!r} or {OFFLINE!r}")
        elif leaf == "frame":
            if not payload.startswith(JPEG_START):
                raise Malformed("a frame is a JPEG")
            self.hub.frame(camera, payload)
        # Other topics under the camera are for other consumers (or later versions): not ours to judge.

    def _unvouched(self, camera: str, problem: str) -> None:
        """The camera's state as far as the dashboard can tell: offline, nobody in view, no alert."""
        state = dict(self.hub.camera(camera).state, status="offline", problem=problem, alert=False, in_view=0)
        state["in_view_by_class"] = dict.fromkeys(state.get("in_view_by_class") or {}, 0)
        state["in_view_unjudged"] = 0
        self.hub.set_state(camera, state)

    def _warn_once(self, camera: str, message: str) -> None:
        with self._warned_lock:
            if camera in self._warned:
                return
            self._warned.add(camera)
        self.warn(message)


def _record(payload: bytes, camera: str) -> dict[str, Any]:
    """A JSON event or state of ``camera``, of the schema version this dashboard reads."""
    try:
        record = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise Malformed("not a JSON object")
    if record.get("schema") != SCHEMA_VERSION:
        raise Malformed(f"schema {record.get('schema')!r}; this dashboard reads schema {SCHEMA_VERSION}")
    if record.get("camera") != camera:
        raise Malformed(f"camera {record.get('camera')!r} on the topic of camera {camera!r}")
    return record
