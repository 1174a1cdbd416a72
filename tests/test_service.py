"""The entrance service as users run it: a real ``serve.py`` on a generated video, spoken to over HTTP.

The page in a real browser and the dashboard are in test_service_page.py, MQTT in test_service_mqtt.py; the store,
the alerts and the webhook on their own in tests/fast/.
"""

import http.client
import http.server
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import zlib

import cv2
import numpy as np
import pytest
from conftest import REPO, loopback_http_server, run_script
from service_process import FACE_AT, serving, write_entrance_video

from mask_detection.service.store import EventStore

TOKEN = "0123456789abcdef0123456789abcdef"


class WebhookRecorder(http.server.BaseHTTPRequestHandler):
    """Records every POSTed body (class-level: the server makes one handler per request)."""

    bodies: list = []
    arrived = threading.Condition()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with WebhookRecorder.arrived:
            WebhookRecorder.bodies.append(json.loads(body))
            WebhookRecorder.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def entrance(tmp_path_factory):
    """One camera server on a looping video of a bare face, alerting a webhook (one alert per 1000 s)."""
    folder = tmp_path_factory.mktemp("entrance")
    video = write_entrance_video(folder / "entrance.mp4")
    WebhookRecorder.bodies = []
    with loopback_http_server(WebhookRecorder) as hook:
        with serving(
            "--video",
            video,
            "--loop",
            "--name",
            "door",
            "--webhook",
            hook + "/alert",
            "--alert-cooldown",
            "1000",
            "--max-upload-mb",
            "1",
            "--max-upload-pixels",
            "1000000",
            store=folder / "store",
        ) as served:
            yield served
            code, _, err = served.stop()
            assert code == 143 and "stopped by signal SIGTERM" in err, err


def no_mask_verdicts(served, at_least):
    found = served.json("/api/events?type=verdict&label=without_mask")["events"]
    return found if len(found) >= at_least else None


def test_health_cameras_and_latest_frame(entrance):
    entrance.wait_for("the camera live", lambda: entrance.json("/api/health")["cameras"].get("door") == "live")
    cameras = entrance.json("/api/cameras")["cameras"]
    assert [c["name"] for c in cameras] == ["door"]
    assert cameras[0]["source"].endswith("entrance.mp4")
    assert set(cameras[0]["state"]["in_view_by_class"]) == {"with_mask", "without_mask"}
    status, headers, body = entrance.get("/api/cameras/door/latest.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    frame = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (480, 640, 3)
    status, _, body = entrance.get("/api/cameras/nowhere/latest.jpg")
    assert status == 404 and "nowhere" in json.loads(body)["error"]


def test_a_bare_face_gives_one_alert_with_its_snapshot_and_a_webhook_post(entrance):
    # The looping video brings the same face back as a new person: two no-mask verdicts, one alert (cooldown).
    verdicts = entrance.wait_for("two no-mask verdicts", lambda: no_mask_verdicts(entrance, 2))
    alerts = [e for e in verdicts if e["alert"]]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["camera"] == "door" and alert["after"]["label"] == "without_mask" and alert["has_snapshot"]
    status, headers, body = entrance.get(alert["snapshot_url"])
    assert status == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) is not None
    with WebhookRecorder.arrived:
        assert WebhookRecorder.arrived.wait_for(lambda: WebhookRecorder.bodies, 60)
    assert [b["id"] for b in WebhookRecorder.bodies] == [alert["id"]]
    assert WebhookRecorder.bodies[0]["alert"] is True


def test_events_page_newest_first_with_cursors(entrance):
    entrance.wait_for("five events", lambda: len(entrance.json("/api/events?limit=5")["events"]) == 5)
    everything = entrance.json("/api/events?limit=500")["events"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(set(e["id"] for e in everything)) == len(everything)
    first = entrance.json("/api/events?limit=2")
    assert len(first["events"]) == 2 and first["next_before"] == first["events"][-1]["seq"]
    older = entrance.json(f"/api/events?limit=2&before={first['next_before']}")["events"]
    assert all(e["seq"] < first["next_before"] for e in older) and older
    newer = entrance.json(f"/api/events?after={seqs[-1]}&limit=500")["events"]
    assert all(e["seq"] > seqs[-1] for e in newer)
    for kind in ("new", "verdict", "leave"):
        typed = entrance.json(f"/api/events?type={kind}")["events"]
        assert all(e["type"] == kind for e in typed)
    status, _, body = entrance.get("/api/events?limit=0")
    assert status == 422 and "limit" in json.loads(body)["error"]


def read_sse(url, headers, wanted, safety_net=60):
    """Server-Sent Events from ``url`` until ``wanted`` of them (event name "event") came: [(id, data)]."""
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port.split("/")[0]), timeout=safety_net)
    connection.request("GET", "/api/events/stream", headers=headers)
    response = connection.getresponse()
    assert response.status == 200 and response.headers["content-type"].startswith("text/event-stream")
    got, fields = [], {}
    try:
        while len(got) < wanted:
            line = response.fp.readline().decode().rstrip("\n")
            if line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
                continue
            if fields.get("event") == "event":
                got.append((fields.get("id"), json.loads(fields["data"])))
            fields = {}
    finally:
        connection.close()
    return got


def test_event_stream_catches_up_from_last_event_id(entrance):
    entrance.wait_for("three events", lambda: len(entrance.json("/api/events?limit=3")["events"]) == 3)
    stored = entrance.json("/api/events?limit=500")["events"][::-1]  # oldest first
    replayed = read_sse(entrance.url, {"Last-Event-ID": str(stored[0]["seq"])}, wanted=2)
    assert [int(i) for i, _ in replayed] == [e["seq"] for e in stored[1:3]]
    assert [d["id"] for _, d in replayed] == [e["id"] for e in stored[1:3]]


def test_live_video_is_a_stream_of_jpegs(entrance):
    connection = http.client.HTTPConnection(entrance.url.split("//")[1], timeout=60)
    connection.request("GET", "/api/cameras/door/stream.mjpeg")
    response = connection.getresponse()
    assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
    frames = []
    while len(frames) < 2:
        line = response.fp.readline()
        if line.lower().startswith(b"content-length:"):
            response.fp.readline()
            frames.append(response.fp.read(int(line.split(b":")[1])))
    connection.close()
    decoded = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    assert all(d is not None and d.shape == (480, 640, 3) for d in decoded)
    assert not np.array_equal(decoded[0], decoded[1])  # two frames, not one twice


def test_classify_answers_like_detect_image(entrance, tmp_path):
    from detect_support import face_photo

    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), face_photo())
    expected = json.loads(run_script("detect_image.py", "--image", photo, "--json").stdout)
    status, _, body = entrance.post("/api/classify?name=face.jpg", photo.read_bytes(), {"Content-Type": "image/jpeg"})
    assert status == 200
    answer = json.loads(body)
    assert answer["faces"] == expected["faces"] and answer["faces"][0]["label"] == "without_mask"
    assert (answer["width"], answer["height"]) == (expected["width"], expected["height"])
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="face.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, body = entrance.post(
        "/api/classify", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 200 and json.loads(body)["faces"] == expected["faces"]
    assert json.loads(body)["image"] == "face.jpg"


def png_bomb(width, height):
    """A small PNG that announces width x height pixels (all black): megabytes of pixels from kilobytes."""
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    raw = zlib.compress(b"\0" * (width + 1) * height, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "body, content_type, status, says",
    [
        (b"not a picture at all", "image/jpeg", 400, "not a recognised image"),
        (b"", "image/jpeg", 400, "empty"),
        (bytes(2 * 1024 * 1024), "image/jpeg", 413, "larger than"),
        (png_bomb(3000, 3000), "image/png", 400, "too many pixels"),
        (
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
            400,
            "no file",
        ),
    ],
    ids=["garbage", "empty", "too-big", "pixel-bomb", "form-without-file"],
)
def test_bad_uploads_get_a_json_error_and_the_server_goes_on(entrance, body, content_type, status, says):
    got, headers, answer = entrance.post("/api/classify", body, {"Content-Type": content_type})
    assert got == status and headers["content-type"] == "application/json"
    assert says in json.loads(answer)["error"]
    assert entrance.json("/api/health")["status"] in ("ok", "degraded")
    metrics = entrance.get("/metrics")[2].decode()
    assert "mask_detection_uploads_rejected_total" in metrics


def test_metrics_in_prometheus_text(entrance):
    entrance.wait_for("an event", lambda: entrance.json("/api/events?limit=1")["events"])
    status, headers, body = entrance.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    for name in (
        'mask_detection_camera_fps{camera="door"}',
        'mask_detection_camera_frame_age_seconds{camera="door"}',
        'mask_detection_people_in_view{camera="door"}',
        'mask_detection_events_total{camera="door",type="new"}',
        'mask_detection_errors_total{camera="door"}',
    ):
        assert name in text, name


def test_no_cors_headers_unless_allowed(entrance):
    _, headers, _ = entrance.get("/api/health", {"Origin": "http://elsewhere.example"})
    assert not any(k.lower().startswith("access-control") for k in headers)


def test_other_addresses_need_a_token_and_the_token_guards_everything(tmp_path):
    refused = run_script("serve.py", "--video", "x.mp4", "--host", "0.0.0.0", "--store", tmp_path / "s")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: listening on 0.0.0.0") and "--token-file" in refused.stderr
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    refused = run_script("serve.py", "--video", "x.mp4", "--token-file", short, "--store", tmp_path / "s")
    assert refused.returncode == 2 and "too short" in refused.stderr

    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    video = write_entrance_video(tmp_path / "v.mp4", frames=20)
    origin = "http://trusted.example:8000"
    with serving(
        "--video", video, "--loop", "--token-file", token_file, "--cors-origin", origin, store=tmp_path / "store"
    ) as served:
        for path in ("/api/health", "/api/cameras", "/api/events", "/metrics", "/api/events/stream"):
            status, headers, body = served.get(path)
            assert status == 401 and "token" in json.loads(body)["error"], path
        for path in ("/", "/entrance"):  # a browser gets a page that says what to do
            status, headers, body = served.get(path)
            assert status == 401 and headers["content-type"].startswith("text/html") and b"/?token=" in body
        assert served.post("/api/classify", b"x", {"Content-Type": "image/jpeg"})[0] == 401
        assert served.get("/api/health", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
        assert served.get("/api/health", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        status, headers, _ = served.get(f"/?token={TOKEN}")
        assert status == 303 and headers["location"] == "/" and TOKEN in headers["set-cookie"]
        assert "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert served.get("/", {"Cookie": cookie})[0] == 200
        assert served.get("/static/app.js", {"Cookie": cookie})[0] == 200
        assert served.get("/api/cameras", {"Cookie": cookie})[0] == 200
        _, headers, _ = served.get("/api/health", {"Authorization": f"Bearer {TOKEN}", "Origin": origin})
        assert headers.get("access-control-allow-origin") == origin
        _, headers, _ = served.get("/api/health", {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in {k.lower() for k in headers}


def test_a_port_in_use_or_a_missing_video_is_one_clear_error_before_anything_is_made(tmp_path):
    import socket

    video = write_entrance_video(tmp_path / "v.mp4", frames=10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script("serve.py", "--video", video, "--port", port, "--store", tmp_path / "s")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: the port is in use (another server?)\n"
    result = run_script("serve.py", "--video", tmp_path / "missing.mp4", "--port", "0", "--store", tmp_path / "s")
    assert (
        result.returncode == 2
        and result.stderr == f"error: cannot open video {tmp_path / 'missing.mp4'}: no such file\n"
    )
    assert not (tmp_path / "s").exists()


def test_a_killed_camera_process_leaves_a_store_that_opens_cleanly(tmp_path):
    video = write_entrance_video(tmp_path / "v.mp4")
    with serving("--video", video, "--loop", "--fast", store=tmp_path / "store") as served:
        served.wait_for("ten events", lambda: len(served.json("/api/events?limit=10")["events"]) == 10)
        seen = {e["id"] for e in served.json("/api/events?limit=500")["events"]}
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait()
    with sqlite3.connect(tmp_path / "store" / "events.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with EventStore(tmp_path / "store") as store:
        kept = store.events(limit=100_000)
        assert seen <= {e["id"] for e in kept}  # every event the API had handed out is still there
        for event in kept:
            if event["has_snapshot"]:
                picture = cv2.imread(str(store.snapshot_path(event["id"])))
                assert picture is not None and picture.size > 0  # whole pictures only
    assert not list((tmp_path / "store" / "snapshots").glob("*.jpg.*"))  # no half-written picture in place


class GatedMjpeg(http.server.BaseHTTPRequestHandler):
    """A camera over HTTP (MJPEG) that delivers frames while ``flowing`` is set and holds the line silent while
    it is not; the connection held silent is dropped once frames flow again (the camera came back)."""

    flowing = threading.Event()
    frames_sent = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        face = cv2.resize(cv2.imread(str(REPO / "docs" / "example.jpg")), (320, 240))
        while True:
            if not GatedMjpeg.flowing.is_set():
                GatedMjpeg.flowing.wait()
                return  # the stalled connection ends; the service reconnects
            ok, jpeg = cv2.imencode(".jpg", face)
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            try:
                self.wfile.write(part + jpeg.tobytes() + b"\r\n")
            except OSError:
                return
            GatedMjpeg.frames_sent += 1
            GatedMjpeg.flowing.wait(0.05)  # about 20 frames a second

    def log_message(self, *args):
        pass


def test_a_stalled_stream_is_reported_stalled_then_offline_and_reconnected(tmp_path):
    GatedMjpeg.flowing.set()
    with loopback_http_server(GatedMjpeg) as camera_url:
        url = camera_url.replace("http://", "http://operator:s3cret-word@") + "/camera.mjpg"
        with serving(
            "--video", url, "--stall-seconds", "1", "--offline-seconds", "3", "--name", "gate", store=tmp_path / "s"
        ) as served:

            def status():
                return served.json("/api/cameras")["cameras"][0]["state"]

            served.wait_for("live", lambda: status()["status"] == "live")
            GatedMjpeg.flowing.clear()
            stalled = served.wait_for("stalled", lambda: (s := status())["status"] == "stalled" and s)
            assert stalled["in_view"] == 0 and stalled["alert"] is False
            offline = served.wait_for("offline", lambda: (s := status())["status"] == "offline" and s)
            assert offline["problem"]
            assert served.json("/api/health")["status"] == "degraded"
            GatedMjpeg.flowing.set()
            served.wait_for("live again", lambda: status()["status"] == "live")
            cameras = served.json("/api/cameras")
            assert cameras["cameras"][0]["source"].startswith("http://operator:***@127.0.0.1:")
            shown = json.dumps(cameras) + served.get("/metrics")[2].decode() + served.get("/api/health")[2].decode()
            code, out, err = served.stop(signal.SIGINT)
        assert code == 0, err
        assert "s3cret-word" not in shown + out + err  # the stream's password is never shown


def test_privacy_mode_stores_no_snapshot_and_blurs_faces(tmp_path):
    from detect_support import face_photo

    video = write_entrance_video(tmp_path / "still.mp4", moving=False)
    with serving("--video", video, "--loop", "--privacy", store=tmp_path / "store") as served:
        verdict = served.wait_for("a verdict", lambda: served.json("/api/events?type=verdict")["events"])[0]
        assert verdict["has_snapshot"] is False and verdict["snapshot_url"] is None
        assert served.get(f"/api/events/{verdict['id']}/snapshot.jpg")[0] == 404
        frame = cv2.imdecode(np.frombuffer(served.get("/api/cameras/camera/latest.jpg")[2], np.uint8), 1)
    assert not list((tmp_path / "store" / "snapshots").glob("*"))
    face = face_photo()
    x, y = FACE_AT
    x0, y0, w, h = verdict["after"]["box"]
    shown = cv2.cvtColor(frame[y0 + h // 4 : y0 + 3 * h // 4, x0 + w // 4 : x0 + 3 * w // 4], cv2.COLOR_BGR2GRAY)
    original = cv2.cvtColor(face[y0 - y + h // 4 : y0 - y + 3 * h // 4, x0 - x + w // 4 : x0 - x + 3 * w // 4], 6)
    # Detail (the Laplacian's variance) inside the face: the blurred picture keeps a small part of it.
    assert cv2.Laplacian(shown, cv2.CV_64F).var() < 0.2 * cv2.Laplacian(original, cv2.CV_64F).var()


def test_help_is_instant_and_names_the_api():
    code = "import sys; sys.argv=['serve.py','--help']; from mask_detection.commands import serve; serve.run()"
    probe = (
        "import runpy, sys\n"
        "try:\n"
        f"    exec({code!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('tensorflow', 'fastapi', 'paho', 'uvicorn', 'keras') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert "HEAVY []" in result.stdout, result.stdout[-300:]
    for words in ("/api/events/stream", "POST /api/classify", "--token-file", "--mqtt", "--privacy", "stalled"):
        assert words in result.stdout.replace("\n", " ")
    dashboard = run_script("serve.py", "dashboard", "--help")
    assert dashboard.returncode == 0 and "PREFIX/+/#" in dashboard.stdout
    missing = run_script("serve.py", "dashboard")
    assert missing.returncode == 2 and missing.stderr.startswith("error: the dashboard needs --mqtt")


def test_store_folder_problems_are_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    video = write_entrance_video(tmp_path / "v.mp4", frames=10)
    result = run_script("serve.py", "--video", video, "--port", "0", "--store", blocker / "store")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
