"""Helpers for the service's tests: a real Mosquitto broker on a free loopback port, an MQTT recorder that keeps
every message it sees, events built from hand-made frames (no model), and waiting on observed state.

Nothing here sleeps a fixed time and then asserts: ``wait_until`` polls a condition every 20 ms and fails only after
a generous safety net, so the tests pass on a loaded machine and fail fast only when something is really wrong.

Run as a script (``python service_support.py publisher PORT FOLDER CAMERA``) it is a camera publisher process,
for the tests that kill one.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mask_detection.service.mqtt import MqttSettings

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
CLASS_NAMES = ["with_mask", "without_mask"]
SAFETY_NET = 60.0  # seconds: only a broken program waits this long
JPEG = b"\xff\xd8\xff\xe0fake jpeg\xff\xd9"  # starts like a JPEG: what the subscriber checks


def wait_until(condition: Callable[[], Any], timeout: float = SAFETY_NET, what: str = "the condition") -> Any:
    """Poll ``condition`` every 20 ms until it is truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """A Mosquitto process on 127.0.0.1:``port`` with its own config, log (and database, with ``persistence``).

    ``persistence``: the broker saves its state (sessions, subscriptions, queued and retained messages) after
    every change and loads it on restart, as a production broker for the dashboard should.
    """

    def __init__(self, folder: Path, persistence: bool = False, port: int | None = None) -> None:
        executable = mosquitto_path()
        if executable is None:
            raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.executable = executable
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.process: subprocess.Popen | None = None
        self.config = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"persistence {str(persistence).lower()}"]
        if persistence:
            lines += [f"persistence_location {self.folder}/", "autosave_interval 1", "autosave_on_changes true"]
        if os.geteuid() == 0:
            lines.append("user root")  # started as root, Mosquitto would switch to its own user: keep our files ours
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> "Broker":
        """Start it (again, on the same port) and return once it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.executable, "-c", str(self.config)], stdout=log, stderr=log)
        wait_until(self._accepting, what=f"mosquitto to listen on port {self.port}")
        return self

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited ({self.process.returncode}):\n{self.log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        """A clean stop (SIGTERM): it saves its database when it has one."""
        self._signal(signal.SIGTERM)
        self._wait()

    def kill(self) -> None:
        """A crash (SIGKILL): nothing saved, no goodbyes; the clients see their connections reset."""
        self._signal(signal.SIGKILL)  # a frozen one too, without running again first
        self._wait()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or acknowledged."""
        self._signal(signal.SIGSTOP)

    def restart(self) -> "Broker":
        self._wait()
        return self.start()

    def _wait(self) -> None:
        if self.process is not None:
            self.process.wait(timeout=SAFETY_NET)

    @property
    def settings(self) -> "MqttSettings":
        """Settings to reach it (a short keepalive: a frozen broker is noticed in seconds)."""
        from mask_detection.service.mqtt import MqttSettings

        return MqttSettings(host="127.0.0.1", port=self.port, keepalive=5)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """An MQTT client that subscribes to ``topic`` (everything by default) and keeps every message, in order.

    Reconnects by itself (and subscribes again) across broker restarts. ``wait_for(predicate)`` waits until the
    messages so far satisfy ``predicate`` and returns them.
    """

    def __init__(self, port: int, topic: str = "#") -> None:
        import paho.mqtt.client as paho

        self.messages: list[Received] = []
        self._condition = threading.Condition()
        self._subscribed = False
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.reconnect_delay_set(1, 2)
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect_async("127.0.0.1", port, keepalive=5)
        self._client.loop_start()
        wait_until(lambda: self._subscribed, what="the recorder's subscription")

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed = True

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._condition:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))
            self._condition.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._condition:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], Any], timeout: float = SAFETY_NET) -> list[Received]:
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.messages), timeout):
                topics = sorted({m.topic for m in self.messages})
                raise AssertionError(f"timed out after {timeout:.0f} s; {len(self.messages)} messages on {topics}")
            return list(self.messages)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(SAFETY_NET)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ---------------------------------------------------------------------------------------- events without a model


def detection(track: int, label: str | None = "without_mask", probability: float = 0.97) -> Any:
    from mask_detection.detections import NOT_JUDGED, Detection

    box = (10 * track, 20, 40, 48)
    if label is None:  # seen, never big enough to judge
        return Detection(box, 0.9, None, NOT_JUDGED, float("nan"), (), track_id=track, settled=False, judged=False)
    index = CLASS_NAMES.index(label)
    probabilities = tuple(probability if i == index else 1 - probability for i in range(len(CLASS_NAMES)))
    return Detection(box, 0.9, index, label, probability, probabilities, track_id=track, settled=True)


def person_frames(people: int, start_frame: int = 0, first_track: int = 1) -> list[Any]:
    """Frames where each person appears, gets a verdict and leaves (every third one is never judged)."""
    from mask_detection.results import FrameResult, PersonEvent

    image = np.zeros((4, 4, 3), np.uint8)
    frames = []
    index = start_frame
    for track in range(first_track, first_track + people):
        label = None if track % 3 == 0 else ("without_mask" if track % 2 else "with_mask")
        seen = detection(track, label)
        frames.append(FrameResult(index, index / 10, [seen], image))
        verdicts = []
        if label is not None:
            verdicts = [PersonEvent("verdict", track, index + 1, (index + 1) / 10, label, 0.97, xywh=seen.xywh)]
        frames.append(FrameResult(index + 1, (index + 1) / 10, [seen], image, verdicts, alert=label == "without_mask"))
        gone = PersonEvent(
            "leave",
            track,
            index + 2,
            (index + 2) / 10,
            label,
            0.97 if label else None,
            first_frame_index=index,
            frames=2,
        )
        frames.append(FrameResult(index + 2, (index + 2) / 10, [], image, [gone]))
        index += 3
    return frames


def make_events(camera: str, people: int, run: str = "20260101T000000Z-abcd", first_track: int = 1) -> list[dict]:
    """The service events of ``people`` people passing ``camera`` (new, verdict when judged, leave)."""
    from mask_detection.service.records import EventRecorder

    recorder = EventRecorder(camera, run)
    events = []
    for frame in person_frames(people, first_track=first_track):
        events.extend(recorder.frame(frame))
    return events


def snapshot_for(event: dict) -> bytes | None:
    """A snapshot for verdict events, as the camera sends them."""
    return JPEG + event["id"].encode() if event["type"] == "verdict" else None


def stored_ids(store: Any) -> list[str]:
    """The store's event ids in the order they were stored."""
    return [event["id"] for event in reversed(store.events(limit=100_000))]


# ---------------------------------------------------------------------------------------- a publisher process


def _publisher_process(port: int, folder: str, camera: str) -> None:
    """A camera publisher that connects, publishes its state and then waits to be killed."""
    from mask_detection.service.mqtt import CameraPublisher, MqttSettings
    from mask_detection.service.outbox import Outbox
    from mask_detection.service.records import camera_state

    settings = MqttSettings(host="127.0.0.1", port=port, keepalive=5)
    publisher = CameraPublisher(settings, camera, Outbox(Path(folder) / "outbox.sqlite3"), CLASS_NAMES, print)
    publisher.state(camera_state(camera, "live", CLASS_NAMES, [], False, None, 10.0, 0.1))
    publisher.start()
    sys.stdin.read()  # until killed (or the test closes our stdin)
    publisher.close(5)


if __name__ == "__main__":
    if sys.argv[1:2] == ["publisher"]:
        _publisher_process(int(sys.argv[2]), sys.argv[3], sys.argv[4])
