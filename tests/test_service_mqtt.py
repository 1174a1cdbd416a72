"""MQTT end to end through a real Mosquitto: camera publishers -> broker -> the dashboard's subscriber, its SQLite
event store and hub; Home Assistant discovery; the last will; a broker crash; the outbox across restarts.

Events are built from hand-made frames (no model): these tests need no TensorFlow and take seconds. They wait on
what they observe (a message received, an event stored), never on a fixed time.
"""

import json
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from service_support import (
    CLASS_NAMES,
    JPEG,
    SCHEMAS,
    Broker,
    Recorder,
    detection,
    free_port,
    make_events,
    snapshot_for,
    stored_ids,
    wait_until,
)

from mask_detection.errors import MaskDetectionError, OutputError
from mask_detection.results import PeopleCounts
from mask_detection.service.discovery import discovery_messages
from mask_detection.service.hub import Hub
from mask_detection.service.mqtt import FRAMES_WAITING, WINDOW, CameraPublisher, MqttSettings, parse_broker
from mask_detection.service.outbox import OUTBOX_FILE, Outbox
from mask_detection.service.records import camera_state
from mask_detection.service.store import EventStore
from mask_detection.service.subscriber import DashboardSubscriber

CAMERA = "door"
EVENT_SCHEMA = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "event.schema.json").read_text()))
STATE_SCHEMA = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "state.schema.json").read_text()))
jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA.schema)
jsonschema.Draft202012Validator.check_schema(STATE_SCHEMA.schema)


@dataclass
class Dashboard:
    subscriber: DashboardSubscriber
    hub: Hub
    store: EventStore
    warnings: list[str]


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.kill()


def start_dashboard(broker: Broker, folder: Path) -> Dashboard:
    store, hub, warnings = EventStore(folder), Hub(), list[str]()
    subscriber = DashboardSubscriber(broker.settings, hub, store, warnings.append)
    subscriber.start()
    wait_until(lambda: subscriber.subscribed, what="the dashboard's subscription")
    return Dashboard(subscriber, hub, store, warnings)


@pytest.fixture
def dashboard(broker, tmp_path):
    dashboard = start_dashboard(broker, tmp_path / "dashboard")
    yield dashboard
    dashboard.subscriber.stop()
    dashboard.store.close()


@pytest.fixture
def publishers():
    """Makes camera publishers (their outbox in ``folder``); closes them at the end."""
    made = []

    def make(settings, folder, warnings=None, camera=CAMERA):
        warn = (warnings if warnings is not None else []).append
        publisher = CameraPublisher(settings, camera, Outbox(Path(folder) / OUTBOX_FILE), CLASS_NAMES, warn)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close(0)
        publisher.outbox.close()


def topic(leaf: str, camera: str = CAMERA) -> str:
    return f"mask_detection/{camera}/{leaf}"


def live_state() -> dict:
    """A camera's state with people in view: one judged without a mask (the alert), one not judged yet."""
    in_view = [detection(1, "without_mask"), detection(2, None)]
    people = PeopleCounts({"with_mask": 3, "without_mask": 1}, unjudged=1)
    return camera_state(CAMERA, "live", CLASS_NAMES, in_view, True, people, 12.5, 0.04, frames=70)


def sent_form(event: dict) -> dict:
    """The event as the publisher sends it: saying whether its snapshot comes with it."""
    return dict(event, has_snapshot=snapshot_for(event) is not None)


# ---------------------------------------------------------------------------------------- payload checks

HA_COMMON = {"name", "unique_id", "state_topic", "availability_topic", "device", "value_template"}


def template_paths(template: str) -> list[list[str]]:
    """The value_json paths a Home Assistant template reads: value_json.a.b and value_json.a['b']."""
    paths = []
    for match in re.finditer(r"value_json((?:\.\w+|\[\'[^']+\'\])+)", template):
        paths.append(re.findall(r"\.(\w+)|\['([^']+)'\]", match.group(1)))
    return [[a or b for a, b in path] for path in paths]


def check_discovery(topic_name: str, config: dict, state: dict, event: dict) -> str:
    """A Home Assistant discovery config: where it goes, the keys Home Assistant needs, and templates that read
    fields the payloads have. Returns its component."""
    match = re.fullmatch(
        r"homeassistant/(binary_sensor|sensor|event)/mask_detection_door/([A-Za-z0-9_-]+)/config", topic_name
    )
    assert match, topic_name
    component = match.group(1)
    assert HA_COMMON <= set(config), (topic_name, HA_COMMON - set(config))
    assert config["availability_topic"] == topic("availability")
    assert (config.get("payload_available", "online"), config.get("payload_not_available", "offline")) == (
        "online",
        "offline",
    )  # Home Assistant's defaults: what the publisher sends
    assert config["device"]["identifiers"] == ["mask_detection_door"] and config["device"]["name"]
    assert config["unique_id"].startswith("mask_detection_door_")
    sample = event if component == "event" else state
    for path in template_paths(config["value_template"]):
        value = sample
        for key in path:
            assert key in value, (topic_name, path)
            value = value[key]
    if component == "binary_sensor":
        assert config["device_class"] == "problem" and config["state_topic"] == topic("state")
        assert {config["payload_on"], config["payload_off"]} == {"ON", "OFF"}
    elif component == "sensor":
        assert config["state_topic"] == topic("state") and config["state_class"] == "measurement"
    else:
        assert config["state_topic"] == topic("events") and config["event_types"] == ["new", "verdict", "leave"]
        assert "event_type" in config["value_template"]
    return component


def check_payloads(messages, state: dict, event: dict) -> dict[str, int]:
    """Every payload seen against its format (events and state by the JSON Schemas); counts by kind."""
    kinds: dict[str, int] = {}
    for message in messages:
        leaf = message.topic.removeprefix(f"mask_detection/{CAMERA}/")
        if leaf == "events":
            EVENT_SCHEMA.validate(message.json())
            kind = "event"
        elif leaf == "state":
            STATE_SCHEMA.validate(message.json())
            kind = "state"
        elif leaf == "availability":
            assert message.payload in (b"online", b"offline")
            kind = "availability"
        elif leaf.startswith("snapshot/") or leaf == "frame":
            assert message.payload.startswith(b"\xff\xd8")
            kind = "picture"
        elif message.topic == "homeassistant/status":
            kind = "home assistant"
        else:
            kind = "discovery " + check_discovery(message.topic, message.json(), state, event)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# ---------------------------------------------------------------------------------------- end to end


def test_events_reach_the_dashboard_once_in_order_and_every_payload_follows_the_schemas(
    broker, dashboard, publishers, tmp_path
):
    recorder = Recorder(broker.port)
    events = make_events(CAMERA, 6)
    events[1]["alert"] = True  # the first person's verdict (without a mask) raised the alert
    assert {e["type"] for e in events} == {"new", "verdict", "leave"}
    state = live_state()
    warnings: list[str] = []
    publisher = publishers(broker.settings, tmp_path / "camera", warnings)
    publisher.state(state)  # before the connection: sent when it is made
    publisher.start()
    for event in events:
        publisher.event(event, snapshot_for(event))

    wait_until(lambda: len(stored_ids(dashboard.store)) >= len(events), what="the events stored")
    assert stored_ids(dashboard.store) == [e["id"] for e in events]  # in order, each once
    for event in events:
        stored = dashboard.store.get(event["id"])
        assert stored is not None and stored["has_snapshot"] == (snapshot_for(event) is not None)
        assert {k: v for k, v in stored.items() if k != "seq"} == sent_form(event)
        path = dashboard.store.snapshot_path(event["id"])
        assert (path.read_bytes() if path else None) == snapshot_for(event)
    view = dashboard.hub.find(CAMERA)
    assert view is not None
    assert view.events == {kind: sum(e["type"] == kind for e in events) for kind in ("new", "verdict", "leave")}
    wait_until(lambda: view.state == state, what="the camera's state on the dashboard")

    wait_until(lambda: publisher.connected)
    publisher.frame(JPEG)
    wait_until(lambda: view.feed.latest()[1] == JPEG, what="the frame on the dashboard")
    wait_until(lambda: publisher.backlog == 0, what="the outbox emptied")

    # Everything published, as any subscriber sees it.
    seen = recorder.wait_for(lambda ms: sum(m.topic == topic("events") for m in ms) >= len(events))
    assert [m.json() for m in seen if m.topic == topic("events")] == [sent_form(e) for e in events]
    kinds = check_payloads(seen, state, events[0])
    discovery = discovery_messages(broker.settings, CAMERA, CLASS_NAMES)
    assert kinds["discovery binary_sensor"] == kinds["discovery event"] == 1
    assert kinds["discovery sensor"] == 1 + len(CLASS_NAMES) == len(discovery) - 2  # in view, and by class
    assert kinds["state"] >= 1 and kinds["availability"] >= 1 and kinds["picture"] >= 2
    assert [m.payload for m in recorder.on(topic("availability"))] == [b"online"]
    assert all(m.retain is False for m in seen)  # live deliveries; retained ones are checked by the will test

    # A clean close says offline itself (a clean disconnect fires no last will).
    publisher.close(10)
    recorder.wait_for(lambda ms: [m.payload for m in ms if m.topic == topic("availability")][-1] == b"offline")
    wait_until(lambda: view.state["status"] == "offline" and view.state["alert"] is False)
    assert warnings == [] and dashboard.warnings == [] and view.errors == 0
    recorder.close()


def test_an_event_received_twice_is_stored_and_announced_once(broker, dashboard, publishers, tmp_path):
    events = make_events(CAMERA, 2)
    publisher = publishers(broker.settings, tmp_path / "camera")
    publisher.start()
    for event in events[:3]:
        publisher.event(event, snapshot_for(event))
    publisher.event(events[1], snapshot_for(events[1]))  # sent again, as after a lost acknowledgement
    for event in events[3:]:
        publisher.event(event, snapshot_for(event))

    wait_until(lambda: len(stored_ids(dashboard.store)) >= len(events), what="the events stored")
    wait_until(lambda: publisher.backlog == 0)  # the duplicate reached the dashboard before the last event did
    assert stored_ids(dashboard.store) == [e["id"] for e in events]
    assert dashboard.subscriber.duplicates == 1
    view = dashboard.hub.find(CAMERA)
    assert view is not None and sum(view.events.values()) == len(events) and view.errors == 0
    assert dashboard.warnings == []


def test_availability_is_retained_online_and_the_last_will_says_offline_when_the_process_is_killed(
    broker, dashboard, tmp_path
):
    availability = topic("availability")
    recorder = Recorder(broker.port)
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("service_support.py")),
            "publisher",
            str(broker.port),
            str(tmp_path / "camera"),
            CAMERA,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        recorder.wait_for(lambda ms: any(m.topic == availability and m.payload == b"online" for m in ms))
        # Retained: a client that subscribes later is told at once.
        late = Recorder(broker.port, availability)
        late.wait_for(lambda ms: ms and ms[0].retain and ms[0].payload == b"online")
        late.close()
        wait_until(lambda: dashboard.hub.camera(CAMERA).state["status"] == "live")

        child.send_signal(signal.SIGKILL)
        child.wait()
        recorder.wait_for(lambda ms: [m.payload for m in ms if m.topic == availability][-1] == b"offline")
        late = Recorder(broker.port, availability)
        late.wait_for(lambda ms: ms and ms[0].retain and ms[0].payload == b"offline")
        late.close()
        view = dashboard.hub.camera(CAMERA)
        wait_until(lambda: view.state["status"] == "offline", what="the dashboard showing the camera offline")
        assert view.state["alert"] is False and dashboard.warnings == []
    finally:
        child.kill()
        child.wait()
        recorder.close()


def test_home_assistant_coming_online_gets_the_discovery_configs_again(broker, publishers, tmp_path):
    recorder = Recorder(broker.port, "homeassistant/#")
    publisher = publishers(broker.settings, tmp_path / "camera")
    publisher.start()
    expected = discovery_messages(broker.settings, CAMERA, CLASS_NAMES)

    def configs(messages):
        return [(m.topic, m.json()) for m in messages if m.topic.endswith("/config")]

    first = configs(recorder.wait_for(lambda ms: len(configs(ms)) >= len(expected)))
    assert first == expected
    recorder.publish("homeassistant/status", "online")  # Home Assistant's birth message: it (re)started
    again = configs(recorder.wait_for(lambda ms: len(configs(ms)) >= 2 * len(expected)))
    assert again == expected + expected
    recorder.close()


@pytest.mark.parametrize("dashboard_away", [False, True], ids=["dashboard-reconnects", "dashboard-restarts-later"])
def test_a_broker_killed_and_restarted_mid_run_loses_no_event_and_stores_none_twice(
    publishers, tmp_path, dashboard_away
):
    # A broker that keeps its state (persistence): the dashboard's session (its subscription, and the events
    # queued for it while it is away) outlives the broker's restart.
    broker = Broker(tmp_path / "broker", persistence=True).start()
    dashboard = start_dashboard(broker, tmp_path / "dashboard")
    subscriber = dashboard.subscriber
    try:
        events = make_events(CAMERA, 15)
        batches = [events[:10], events[10:20], events[20:27], events[27:]]
        assert all(batches)
        warnings: list[str] = []
        publisher = publishers(broker.settings, tmp_path / "camera", warnings)
        publisher.start()
        publisher.state(camera_state(CAMERA, "live", ["with_mask", "without_mask"], [], False, None, 10.0, 0.0))
        for event in batches[0]:
            publisher.event(event, snapshot_for(event))
        wait_until(lambda: len(stored_ids(dashboard.store)) == len(batches[0]), what="the first events stored")

        def dashboard_says():
            view = dashboard.hub.find(CAMERA)
            return None if view is None else view.state.get("status")

        wait_until(lambda: dashboard_says() == "live", what="the camera live on the dashboard")

        # The broker freezes: events go out, and no acknowledgement comes back; then it dies with them.
        broker.freeze()
        for event in batches[1]:
            publisher.event(event, snapshot_for(event))
        messages = sum(1 + (snapshot_for(e) is not None) for e in batches[1])
        wait_until(lambda: publisher.in_flight == min(WINDOW, messages), what="the messages sent, unacknowledged")
        broker.kill()
        wait_until(lambda: not publisher.connected, what="the publisher noticing the broker is gone")
        if dashboard_away:
            subscriber.stop()
        else:  # without a broker the dashboard cannot vouch for the camera
            wait_until(lambda: dashboard_says() == "offline", what="the camera offline on the dashboard")
            assert "unreachable" in dashboard.hub.find(CAMERA).state["problem"]
        for event in batches[2]:  # while there is no broker
            publisher.event(event, snapshot_for(event))
        assert publisher.backlog >= messages
        broker.restart()
        for event in batches[3]:  # while the publisher reconnects
            publisher.event(event, snapshot_for(event))
        wait_until(lambda: publisher.connected and publisher.backlog == 0, what="the backlog sent")
        if dashboard_away:  # it comes back only now: the broker kept every event for it
            subscriber = DashboardSubscriber(broker.settings, dashboard.hub, dashboard.store, dashboard.warnings.append)
            subscriber.start()

        wait_until(lambda: len(stored_ids(dashboard.store)) >= len(events), what="every event stored")
        assert stored_ids(dashboard.store) == [e["id"] for e in events]  # none lost, none twice, in order
        view = dashboard.hub.find(CAMERA)
        assert view is not None and sum(view.events.values()) == len(events) and view.errors == 0
        # One warning when the connection went, one when it came back.
        assert len(warnings) == 2 and "connection lost" in warnings[0] and "connected again" in warnings[1]
        wait_until(lambda: subscriber.subscribed)
        wait_until(lambda: dashboard_says() == "live", what="the camera live again (its retained state)")
        if not dashboard_away:
            assert len(dashboard.warnings) == 2 and "connected again" in dashboard.warnings[1], dashboard.warnings
    finally:
        subscriber.stop()
        dashboard.store.close()
        broker.kill()


def test_frames_do_not_pile_up_in_memory_while_the_link_is_stuck(broker, publishers, tmp_path):
    publisher = publishers(broker.settings, tmp_path / "camera")
    publisher.start()
    wait_until(lambda: publisher.connected)
    broker.freeze()  # the connection stays open and nothing is read: the socket buffers fill, then paho's queue
    frame = JPEG + bytes(1 << 20)
    for _ in range(60):  # 60 MB: far more than any socket buffer holds
        publisher.frame(frame)
    # What fits in the loopback socket buffers (a few MB) went out; of the rest, at most FRAMES_WAITING wait.
    assert publisher.frames_dropped >= 60 - 20 - FRAMES_WAITING


def test_events_queued_while_no_broker_is_reachable_are_sent_on_the_next_start(broker, dashboard, publishers, tmp_path):
    events = make_events(CAMERA, 3)
    folder = tmp_path / "camera"
    warnings: list[str] = []
    errors: list[int] = []
    nowhere = MqttSettings("127.0.0.1", free_port())  # nothing listens there
    first = CameraPublisher(
        nowhere, CAMERA, Outbox(folder / OUTBOX_FILE), CLASS_NAMES, warnings.append, on_error=lambda: errors.append(1)
    )
    first.start()
    for event in events:
        first.event(event, snapshot_for(event))
    wait_until(lambda: warnings and errors, what="a warning that the broker cannot be reached")
    first.close(0)
    first.outbox.close()
    assert len(warnings) == 1 and "cannot be reached" in warnings[0] and errors == [1]
    messages = sum(1 + (snapshot_for(e) is not None) for e in events)
    reopened = Outbox(folder / OUTBOX_FILE)
    assert len(reopened) == messages
    reopened.close()

    second = publishers(broker.settings, folder)
    second.start()
    wait_until(lambda: len(stored_ids(dashboard.store)) >= len(events), what="the queued events stored")
    assert stored_ids(dashboard.store) == [e["id"] for e in events]
    wait_until(lambda: second.backlog == 0)
    assert all(dashboard.store.snapshot_path(e["id"]) for e in events if snapshot_for(e))


def test_malformed_messages_are_counted_warned_once_per_camera_and_never_stop_the_dashboard(broker, dashboard):
    good = make_events(CAMERA, 1)
    recorder = Recorder(broker.port, "nothing/here")
    hall_event = make_events("hall", 1)[0]
    bad: list[tuple[str, bytes | str]] = [
        (topic("events"), b"not json"),
        (topic("events"), json.dumps(dict(good[0], schema=2))),
        (topic("events"), json.dumps(hall_event)),  # another camera's event on this camera's topic
        (topic("events"), json.dumps(dict(good[0], id="../../etc/passwd"))),
        (topic("state"), b"[]"),
        (topic("snapshot/x"), b"GIF89a"),
        (topic("availability"), b"maybe"),
        (topic("frame"), b"not a picture"),
        ("mask_detection/Bad Camera/events", json.dumps(good[0])),
    ]
    for name, payload in bad:
        recorder.publish(name, payload)
    recorder.publish(topic("events"), json.dumps(good[0]))
    recorder.publish(topic("something_new"), b"for another consumer")  # not an error: ignored
    wait_until(lambda: stored_ids(dashboard.store), what="the good event stored")
    assert stored_ids(dashboard.store) == [good[0]["id"]]
    view = dashboard.hub.find(CAMERA)
    assert view is not None and view.errors == 8 and view.state["status"] == "starting"
    assert dashboard.hub.find("Bad Camera") is None
    assert len(dashboard.warnings) == 2, dashboard.warnings  # one for this camera, one for the bad name
    assert "malformed events from camera door" in dashboard.warnings[0] and "not JSON" in dashboard.warnings[0]
    recorder.close()


# ---------------------------------------------------------------------------------------- no broker needed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("localhost:1883", ("localhost", 1883)),
        ("broker.example.org:8883", ("broker.example.org", 8883)),
        ("10.0.0.5", ("10.0.0.5", 1883)),
        ("[::1]:1884", ("::1", 1884)),
        (" mqtt:1 ", ("mqtt", 1)),
    ],
)
def test_parse_broker_reads_host_and_port(text, expected):
    assert parse_broker(text) == expected


@pytest.mark.parametrize("text", ["", ":1883", "host:", "host:port", "host:0", "host:65536", "a:b:c", "[::1", "h/x:1"])
def test_parse_broker_refuses_what_is_not_host_and_port(text):
    with pytest.raises(MaskDetectionError, match="MQTT broker"):
        parse_broker(text)


@pytest.mark.parametrize("prefix", ["", "cams/#", "a/+/b", "/cams", "cams/"])
def test_a_topic_prefix_that_is_no_topic_name_is_refused(prefix):
    with pytest.raises(MaskDetectionError, match="MQTT prefix"):
        MqttSettings("localhost", prefix=prefix)


def test_the_outbox_keeps_messages_in_order_until_done_across_reopening(tmp_path):
    path = tmp_path / "deep" / OUTBOX_FILE
    outbox = Outbox(path)
    seqs = [outbox.put(f"t/{i}", bytes([i]) * 3, qos=i % 2, retain=i == 2) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    outbox.done(seqs[1])
    outbox.done(seqs[1])  # again: nothing happens
    outbox.close()
    outbox = Outbox(path)
    assert len(outbox) == 4
    pending = outbox.pending(10)
    assert [(s, t, p, q, r) for s, t, p, q, r in pending] == [
        (seqs[i], f"t/{i}", bytes([i]) * 3, i % 2, i == 2) for i in (0, 2, 3, 4)
    ]
    assert outbox.pending(2, after=seqs[2]) == pending[2:4]
    for seq in seqs:
        outbox.done(seq)
    assert len(outbox) == 0 and outbox.put("t/new", b"x") > seqs[-1]  # a number is never given twice
    outbox.close()


def test_an_unreadable_outbox_is_refused_with_its_name(tmp_path):
    path = tmp_path / OUTBOX_FILE
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutputError, match=re.escape(str(path))):
        Outbox(path)
