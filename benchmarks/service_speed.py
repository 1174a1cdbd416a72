#!/usr/bin/env python3
"""The entrance service's figures (issue 19), side by side in one run, on loopback only, with bounded loops.

1. camera: the camera process's FPS with HTTP + MQTT on (a real ``CameraWorker`` with its ``Hub``, an
   ``EventStore`` in a temporary folder, a ``CameraPublisher`` to a real Mosquitto started here, and the FastAPI
   app served by uvicorn on a free loopback port) against the plain tracked loop of ``detect_webcam.py
   --no-display`` (``stream.process_stream(FileSource, PeoplePipeline)``), on the same video, the same number of
   frames, unpaced, with one loaded pipeline. Then the same service with MJPEG viewers connected (each counts the
   frames it received). Each round runs plain, service, service + viewers in turn; the machine is noisy, so each
   run is shown and the medians are compared. Time: from opening the video to the end of the run (the people
   still in view given their leave events), the same span for both.
2. classify: ``POST /api/classify`` with 640x480 JPEG photos of real faces, from several client threads, a bounded
   number of requests: photos per second and the latency's median and 95th percentile.
3. dashboard: a real ``DashboardSubscriber`` + ``EventStore`` + ``Hub`` + the app, fed through the broker by
   simulated cameras (real ``CameraPublisher``s, each with its own ``Outbox``) publishing synthetic events built
   by ``records.EventRecorder`` on hand-made frames (verdicts with a JPEG snapshot, a state per event, video frames
   a few times a second, as a camera sends them), while a Server-Sent Events client on ``/api/events/stream``
   measures each event's delay from its creation (its ``time``, wall clock) to its arrival. Every event produced
   must be stored exactly once.
4. outage: the same run with the broker stopped (SIGKILL by default) for a while in the middle and restarted on
   the same port: events lost, duplicates stored, how long the backlog takes to drain.

The clients (MJPEG viewers, photo senders, the SSE client) and the simulated fleet run in processes of their own
(this script, started again with a hidden role), so their work does not take the service's interpreter lock; they
still share the machine's cores with it. The input video is generated (real faces from scikit-image's photos
crossing a 640x480 frame, a new person every second or so, so events happen), or ``--video``.

    python benchmarks/service_speed.py                              # everything, the issue's figures
    python benchmarks/service_speed.py --seconds 15 --frames 150    # a shorter run
    python benchmarks/service_speed.py --video /tmp/devvideo-small/video.mp4 --only camera
    python benchmarks/service_speed.py --only camera --profile      # where the camera thread's time goes
    python benchmarks/service_speed.py --json                       # the figures as JSON on stdout
    python benchmarks/service_speed.py --only dashboard --only outage --broker-queue stock   # Mosquitto's own limit

The dashboard's broker runs as docs/service.md advises: persistence (saved every second) and no limit on the
messages queued per client. ``--broker-queue stock`` keeps Mosquitto's own limit of 1000: past it, Mosquitto drops
QoS 1 messages for a subscriber that fell behind (its log says "Outgoing messages are being dropped"), which a
camera's outbox cannot see (the broker had acknowledged them).
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WIDTH, HEIGHT = 640, 480
VIDEO_FPS = 30.0
CAMERA = "entrance"
CLASS_NAMES = ["with_mask", "without_mask"]
MOSQUITTO = "/usr/sbin/mosquitto"
SAFETY_NET = 120.0  # seconds: only a broken service waits this long
TARGETS = {
    "camera_ratio": 0.90,
    "viewers_ratio": 0.85,
    "classify_rate": 15.0,
    "classify_p95_ms": 300.0,
    "sse_p95_ms": 250.0,
}
MEASURES = ("camera", "classify", "dashboard", "outage")


def log(message):
    print(message, file=sys.stderr, flush=True)


def load_average():
    return os.getloadavg()[0]


def percentile(values, q):
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def process_cpu(pid):
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_progress(count, target, idle=5.0, timeout=SAFETY_NET):
    """Wait until ``count()`` reaches ``target``, or has not grown for ``idle`` seconds (the rest will not come)."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while last < target and time.monotonic() - since < idle and time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


def wait_until(condition, timeout=SAFETY_NET, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------------ inputs


def face_photos():
    """Head-and-shoulders crops (BGR) from real photos that scikit-image ships (the astronaut: no mask)."""
    import cv2
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 110:340]
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[60:260, 150:310]
    return [astronaut, cameraman, astronaut[:, ::-1].copy(), cameraman[:, ::-1].copy()]


def make_entrance_video(path, frames):
    """A 640x480 mp4v video at 30 FPS: people (real faces) crossing the frame in three lanes, a new one every 33
    frames, each in view for about 100 frames: about three at a time, so people appear, get verdicts and leave."""
    import cv2
    import numpy as np

    photos = face_photos()
    lane_h = HEIGHT // 3
    tiles = []
    for photo in photos:
        scale = 0.9 * lane_h / photo.shape[0]
        tiles.append(cv2.resize(photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale))))
    every, crossing = 33, 100
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), VIDEO_FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    ramp = np.linspace(70, 130, WIDTH, dtype=np.float32)
    background = np.repeat(np.repeat(ramp[None, :, None], HEIGHT, 0), 3, 2).astype(np.uint8)
    for t in range(frames):
        frame = background.copy()
        for person in range(max(0, (t - crossing) // every), t // every + 1):
            age = t - person * every
            if not 0 <= age < crossing:
                continue
            tile = tiles[person % len(tiles)]
            h, w = tile.shape[:2]
            x = int(-w * 0.3 + (WIDTH - w * 0.4) * age / crossing)
            y = (person % 3) * lane_h + (lane_h - h) // 2
            x0, x1 = max(0, x), min(WIDTH, x + w)
            if x1 > x0:
                frame[y : y + h, x0:x1] = tile[:, x0 - x : x1 - x]
        cv2.putText(frame, str(t), (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def make_photos(folder, count=8):
    """``count`` 640x480 JPEG photos (quality 90), each with one or two real faces at various sizes and places."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    photos = face_photos()
    rng = np.random.default_rng(19)
    paths = []
    for i in range(count):
        canvas = np.clip(rng.normal(100 + 10 * i, 12, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
        faces = 1 + i % 2
        for j in range(faces):
            photo = photos[(i + j) % len(photos)]
            scale = (0.7 + 0.15 * (i % 4)) * (HEIGHT * 0.8 / faces) / photo.shape[0]
            tile = cv2.resize(photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale)))
            h, w = tile.shape[:2]
            cell = WIDTH // faces
            x = j * cell + int(rng.integers(0, max(1, cell - w)))
            y = int(rng.integers(0, max(1, HEIGHT - h)))
            canvas[y : y + h, x : x + w] = tile
        path = folder / f"photo{i:02d}.jpg"
        cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------ the broker


class Broker:
    """Mosquitto on 127.0.0.1:``port`` with its own config, log and (``persistence``) database."""

    def __init__(self, folder, persistence, port=None, queue=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process = None
        self.config = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"persistence {str(persistence).lower()}"]
        if persistence:  # saved every second, as docs/service.md advises (saving on every change costs a core)
            lines += [f"persistence_location {self.folder}/", "autosave_interval 1"]
        if queue is not None:  # messages queued per client (QoS 1 and 2) before Mosquitto drops them (default 1000)
            lines.append(f"max_queued_messages {queue}")
        if os.geteuid() == 0:
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n")

    def start(self):
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=out, stderr=out)
        wait_until(self._accepting, 30, f"mosquitto on port {self.port}")
        return self

    def _accepting(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited ({self.process.returncode}): {self.log.read_text()[-1000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self, how="term"):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
            self.process.wait(30)

    def cpu_seconds(self):
        """CPU time of the running broker process (user + system)."""
        return process_cpu(self.process.pid) if self.process is not None and self.process.poll() is None else 0.0

    @property
    def settings(self):
        from mask_detection.service.mqtt import MqttSettings

        return MqttSettings(host="127.0.0.1", port=self.port)


# ------------------------------------------------------------------------------------------------ HTTP server


class HttpServer:
    """The service's app served by uvicorn on a free loopback port, on a thread (as ``server._run_http`` does)."""

    def __init__(self, app):
        import uvicorn

        from mask_detection.service.server import listen

        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "uvicorn to start")

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Child:
    """This script started again in a role (a client or the fleet), in a process of its own."""

    def __init__(self, role, **config):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_child", role, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def line(self, timeout=SAFETY_NET):
        """The child's next line on stdout (its progress and results)."""
        result = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError(f"the child process said nothing (exit code {self.process.poll()})")
        return result[0].strip()

    def finish(self, message="", timeout=SAFETY_NET):
        """Tell it to end (a line on its stdin, then end of file) and return its last line, parsed as JSON."""
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write(message)
            self.process.stdin.close()
        out = self.line(timeout)
        self.process.wait(30)
        return json.loads(out)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------------------------ 1. camera


def plain_run(pipeline, video, frames):
    """The plain tracked loop of ``detect_webcam.py --no-display``: FPS over open + frames + the closing events."""
    from mask_detection.people import PeoplePipeline, TrackingConfig
    from mask_detection.stream import StreamTally, process_stream
    from mask_detection.video_io import open_source

    started, cpu = time.perf_counter(), time.process_time()
    source = open_source(None, str(video))
    tally = StreamTally()
    try:
        processor = PeoplePipeline(pipeline, TrackingConfig(), source.fps)
        results = process_stream(source, processor, None, None, frames)
        with contextlib.closing(results):
            for result in results:
                tally.add(result.detections)
    finally:
        source.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "frames": tally.frames,
        "seconds": seconds,
        "fps": tally.frames / seconds,
        "cpu_ms_per_frame": 1000 * cpu / tally.frames,  # both cores' work: less moved by other processes than FPS
        "people": processor.people.total,
    }


def service_run(pipeline, video, frames, broker, folder, viewers=0, profile=None):
    """A camera of the service (HTTP + MQTT on), ``viewers`` MJPEG clients watching: FPS over the same span."""
    from mask_detection.service.alerts import AlertGate
    from mask_detection.service.app import AppSettings, create_app
    from mask_detection.service.camera import CameraConfig, CameraWorker
    from mask_detection.service.hub import Hub
    from mask_detection.service.mqtt import CameraPublisher
    from mask_detection.service.outbox import Outbox
    from mask_detection.service.server import photo_checker
    from mask_detection.service.store import EventStore

    warnings = []
    folder.mkdir(parents=True)
    store = EventStore(folder)
    outbox = Outbox(folder / "outbox.sqlite3")
    hub = Hub()
    publisher = CameraPublisher(
        broker.settings, CAMERA, outbox, pipeline.class_names, warnings.append, on_error=lambda: hub.error(CAMERA)
    )
    publisher.start()
    server = watchers = None
    try:
        wait_until(lambda: publisher.connected, 30, "the camera's MQTT connection")

        def publish_state(state):  # as server.serve_camera wires it
            publisher.state(state)
            publisher.set_available(state["status"] != "offline")

        worker_class = CameraWorker if profile is None else profiled_worker(profile)
        worker = worker_class(
            CameraConfig(CAMERA, video=str(video), pace=False, max_frames=frames),
            pipeline,
            hub,
            store,
            AlertGate(30.0),
            warnings.append,
            on_event=[publisher.event],
            on_state=[publish_state],
            on_frame=[publisher.frame],
        )
        app = create_app(hub, store, AppSettings(), photo_checker(lambda: pipeline))  # classify: unused here
        server = HttpServer(app)
        if viewers:
            watchers = Child("viewers", url=f"{server.url}/api/cameras/{CAMERA}/stream.mjpeg", count=viewers)
            feed = hub.camera(CAMERA).feed
            wait_until(lambda: feed.viewers >= viewers, 30, "the MJPEG viewers")
        started, cpu = time.perf_counter(), time.process_time()
        worker.start()
        worker._thread.join()  # the camera loop: open, frames, the closing events (not the watchdog's tick)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        worker.stop()
        worker.join(10)
        received = watchers.finish() if watchers is not None else None
        watchers = None
        result = {
            "frames": worker.frames,
            "seconds": seconds,
            "fps": worker.frames / seconds,
            "cpu_ms_per_frame": 1000 * cpu / worker.frames,  # the whole process: camera, HTTP, MQTT threads
            "status": worker.status,
            "events": len(store),
            "errors": hub.camera(CAMERA).errors,
        }
        if received is not None:
            result["viewer_frames"] = received["frames"]
            result["viewer_mbytes"] = round(sum(received["bytes"]) / 1e6, 1)
            result["viewer_client_cpu_s"] = round(received["cpu"], 2)
        publisher.close(10)
        result["mqtt_backlog"] = publisher.backlog
        if warnings:
            result["warnings"] = warnings[:5]
        return result
    finally:
        if watchers is not None:
            watchers.kill()
        if server is not None:
            server.close()
        publisher.close(0)
        outbox.close()
        store.close()


def profiled_worker(stats_path):
    """A CameraWorker whose camera thread runs under cProfile (the profile written to ``stats_path``)."""
    import cProfile

    from mask_detection.service.camera import CameraWorker

    class Profiled(CameraWorker):
        def _run(self):
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                super()._run()
            finally:
                profiler.disable()
                profiler.dump_stats(stats_path)

    return Profiled


def measure_camera(args, pipeline, video, broker, workdir):
    log(f"camera: {args.rounds} rounds of plain / service / service + {args.viewers} viewers, {args.frames} frames")
    plain_run(pipeline, video, 30)  # warm-up: the models, the decoder
    service_run(pipeline, video, 30, broker, workdir / "warmup", viewers=args.viewers)  # imports, first requests
    rounds = []
    runs = {
        "plain": lambda i: plain_run(pipeline, video, args.frames),
        "service": lambda i: service_run(pipeline, video, args.frames, broker, workdir / f"service{i}"),
        "viewers": lambda i: service_run(
            pipeline, video, args.frames, broker, workdir / f"viewers{i}", viewers=args.viewers
        ),
    }
    kinds = list(runs)
    for i in range(args.rounds):
        row = {"load": load_average()}
        order = kinds[i % 3 :] + kinds[: i % 3]  # each kind goes first in turn: a slow spell hits them alike
        for kind in order:
            row[kind] = runs[kind](i)
        row["order"] = order
        log(
            f"  round {i + 1}: plain {row['plain']['fps']:.1f} FPS, service {row['service']['fps']:.1f}, "
            f"with viewers {row['viewers']['fps']:.1f} (load {row['load']:.2f})"
        )
        rounds.append(row)
    medians = {kind: statistics.median(r[kind]["fps"] for r in rounds) for kind in kinds}
    cpu = {kind: statistics.median(r[kind]["cpu_ms_per_frame"] for r in rounds) for kind in kinds}
    out = {
        "video": str(video),
        "frames": args.frames,
        "viewers": args.viewers,
        "rounds": rounds,
        "median_fps": medians,
        "median_cpu_ms_per_frame": cpu,
        "service_ratio": medians["service"] / medians["plain"],
        "viewers_ratio": medians["viewers"] / medians["plain"],
        "round_ratios": [
            {"service": r["service"]["fps"] / r["plain"]["fps"], "viewers": r["viewers"]["fps"] / r["plain"]["fps"]}
            for r in rounds
        ],
    }
    if args.profile:
        out["profile"] = profile_camera(args, pipeline, video, broker, workdir)
    return out


def profile_camera(args, pipeline, video, broker, workdir):
    """cProfile of the camera thread, with and without viewers: the service's own per-frame steps."""
    import pstats

    report = {}
    for viewers in (0, args.viewers):
        path = workdir / f"camera-{viewers}.prof"
        service_run(pipeline, video, args.frames, broker, workdir / f"profile{viewers}", viewers, profile=path)
        stats = pstats.Stats(str(path))
        rows = {}
        for (filename, _line, name), (_, calls, _, cumulative, _) in stats.stats.items():
            short = f"{Path(filename).name}:{name}"
            interesting = "service" in filename or name in ("process", "read", "process_stream", "_follow")
            if interesting and cumulative > 0.005:
                rows[short] = (round(cumulative * 1000 / max(1, args.frames), 2), calls)
        report[f"{viewers} viewers"] = dict(sorted(rows.items(), key=lambda item: -item[1][0])[:25])
    return report


# ------------------------------------------------------------------------------------------------ 2. classify


def measure_classify(args, workdir):
    from mask_detection.pipeline import load_pipeline
    from mask_detection.service.app import AppSettings, create_app
    from mask_detection.service.hub import Hub
    from mask_detection.service.server import photo_checker
    from mask_detection.service.store import EventStore

    photos = make_photos(workdir / "photos")
    log(f"classify: {args.requests} requests of {len(photos)} 640x480 photos from {args.clients} clients")
    store = EventStore(workdir / "classify-store")
    hub = Hub()
    server = HttpServer(create_app(hub, store, AppSettings(), photo_checker(lambda: load_pipeline(warn=log))))
    try:
        load = load_average()
        result = Child(
            "classify",
            url=f"{server.url}/api/classify",
            photos=[str(p) for p in photos],
            clients=args.clients,
            requests=args.requests,
            warmup=8,
        ).finish(timeout=600)
    finally:
        server.close()
        store.close()
    latencies = result.pop("latencies")
    result.update(
        load=load,
        rate=result["ok"] / result["seconds"],
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        max_ms=max(latencies) * 1000,
    )
    log(f"  {result['rate']:.1f} photos/s, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms")
    return result


# ------------------------------------------------------------------------------------------------ 3/4. dashboard


def measure_dashboard(args, workdir, outage):
    """The dashboard fed by the simulated fleet; with ``outage``, the broker stopped and restarted mid-run."""
    from mask_detection.service.app import AppSettings, create_app
    from mask_detection.service.hub import Hub
    from mask_detection.service.store import EventStore
    from mask_detection.service.subscriber import DashboardSubscriber

    name = "outage" if outage else "dashboard"
    folder = workdir / name
    log(
        f"{name}: {args.cameras} cameras x {args.rate:g} events/s for {args.seconds:g} s"
        + (f", broker down ({args.broker_stop}) for {args.outage:g} s in the middle" if outage else "")
    )
    queue = None if args.broker_queue == "stock" else int(args.broker_queue)
    broker = Broker(folder / "broker", persistence=args.broker_persistence == "on", queue=queue).start()
    warnings = []
    store = EventStore(folder / "store")
    hub = Hub()
    subscriber = DashboardSubscriber(broker.settings, hub, store, warnings.append)
    subscriber.start()
    server = sse = fleet = None
    timeline = {}
    try:
        wait_until(lambda: subscriber.subscribed, 30, "the dashboard's subscription")
        server = HttpServer(create_app(hub, store, AppSettings(dashboard=True), None))
        sse = Child("sse", url=f"{server.url}/api/events/stream")
        if sse.line() != "ready":
            raise RuntimeError("the SSE client did not start")
        load = load_average()
        cpu_start = time.process_time()
        broker_cpu = broker.cpu_seconds()
        fleet = Child(
            "fleet",
            port=broker.port,
            folder=str(folder / "fleet"),
            cameras=args.cameras,
            rate=args.rate,
            seconds=args.seconds,
            frame_rate=args.frame_rate,
            ids=str(folder / "ids.json"),
            drain_timeout=SAFETY_NET,
        )
        started = fleet.line(60).split()
        if started[0] != "started":
            raise RuntimeError(f"the fleet did not start: {started}")
        start_wall = float(started[1])
        if outage:
            stop_at = start_wall + max(1.0, (args.seconds - args.outage) / 2)
            time.sleep(max(0.0, stop_at - time.time()))
            timeline["broker_stopped"] = time.time()
            broker_cpu = broker.cpu_seconds() - broker_cpu
            broker.stop(args.broker_stop)
            time.sleep(args.outage)  # the outage's length: the experiment, not a wait for a result
            broker.start()
            broker_cpu = -broker_cpu  # the restarted process counts from 0 again
            timeline["broker_restarted"] = time.time()
            wait_until(lambda: subscriber.subscribed, SAFETY_NET, "the dashboard to subscribe again")
            timeline["dashboard_resubscribed"] = time.time()
        produced_line = fleet.line(args.seconds + SAFETY_NET).split()
        timeline["production_ended"] = float(produced_line[2])
        fleet_result = json.loads(fleet.line(2 * SAFETY_NET))
        cpu = {
            "dashboard": time.process_time() - cpu_start,
            "broker": broker.cpu_seconds() - broker_cpu,
            "fleet": fleet_result["cpu"],
        }
        fleet.process.wait(30)
        fleet = None
        made = dict(json.loads((folder / "ids.json").read_text()))  # id -> the time it was made
        ids = list(made)
        produced = len(ids)
        wait_progress(lambda: len(store), produced)
        timeline["all_stored_or_given_up"] = time.time()
        sse_records = sse.finish(f"{produced}\n", timeout=60)
        sse = None
        cpu["sse client"] = sse_records["cpu"]
        wall = timeline["production_ended"] - start_wall
        import sqlite3

        with contextlib.closing(sqlite3.connect(store.path)) as db:
            rows, distinct = db.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
            stored_ids = {row[0] for row in db.execute("SELECT id FROM events")}
        lost = sorted(set(ids) - stored_ids)
        result = {
            "load": load,
            "cameras": args.cameras,
            "rate": args.rate,
            "seconds": args.seconds,
            "produced": produced,
            "produced_rate": fleet_result["produced_rate"],
            "fleet_max_lag_ms": fleet_result["max_lag_ms"],
            "stored_rows": rows,
            "stored_distinct": distinct,
            "lost": len(lost),
            "lost_ids": lost[:10],
            "unexpected": len(stored_ids - set(ids)),
            "lost_by_time": lost_by_time(lost, made, timeline),
            "duplicates_stored": rows - distinct,
            "duplicates_received": subscriber.duplicates,
            "fleet_backlog_after_close": fleet_result["backlog_after_close"],
            "fleet_warnings": fleet_result["warnings"][:4],
            "dashboard_warnings": warnings[:4],
            "errors": sum(view.errors for view in hub.cameras()),
            "cpu_share": {k: round(v / wall, 2) for k, v in cpu.items()},  # cores used, over the production time
        }
        result.update(sse_figures(sse_records, timeline, outage))
        if outage:
            stopped, restarted = timeline["broker_stopped"], timeline["broker_restarted"]
            result["backlog_events"] = sum(stopped <= t <= restarted for t in made.values())  # made while down
            result["broker_stop"] = args.broker_stop
            result["persistence"] = args.broker_persistence
            result["broker_queue"] = args.broker_queue
            result["reconnected_after_s"] = [
                round(t - timeline["broker_restarted"], 2) for t in fleet_result["reconnected"] if t is not None
            ]
            result["dashboard_resubscribed_after_s"] = round(
                timeline["dashboard_resubscribed"] - timeline["broker_restarted"], 2
            )
            result["peak_backlog"] = fleet_result["peak_backlog"]
        log(
            f"  produced {produced}, stored {rows} ({distinct} distinct), lost {len(lost)}, "
            f"SSE p95 {_ms(result.get('sse_p95_ms'))}"
            + (f", drained {result.get('drain_s')} s after the restart" if outage else "")
        )
        return result
    finally:
        for child in (fleet, sse):
            if child is not None:
                child.kill()
        if server is not None:
            server.close()
        subscriber.stop()
        store.close()
        broker.stop("term")


def lost_by_time(lost, made, timeline):
    """Lost events by when they were made: before the outage, during it, in the 30 s after it, later."""
    stopped, restarted = timeline.get("broker_stopped"), timeline.get("broker_restarted")
    if stopped is None:
        return {"all": len(lost)} if lost else {}
    counts = {}
    for event_id in lost:
        t = made[event_id]
        when = (
            "before" if t < stopped else "during" if t <= restarted else "after<30s" if t < restarted + 30 else "later"
        )
        counts[when] = counts.get(when, 0) + 1
    return counts


def _ms(value):
    return "-" if value is None else f"{value:.0f} ms"


def sse_figures(records, timeline, outage):
    """Delays from each event's creation to its arrival over SSE (the first arrival of each id)."""
    first = {}
    for event_id, created, arrived in records["events"]:
        if event_id not in first:
            first[event_id] = (created, arrived)
    delays = [arrived - created for created, arrived in first.values()]
    out = {
        "sse_events": len(first),
        "sse_received": len(records["events"]),
        "sse_reconnects": records["reconnects"],
        "sse_state_messages": records["states"],
        "sse_mbytes": round(records["bytes"] / 1e6, 1),
        "sse_p50_ms": None if not delays else percentile(delays, 50) * 1000,
        "sse_p95_ms": None if not delays else percentile(delays, 95) * 1000,
        "sse_max_ms": None if not delays else max(delays) * 1000,
    }
    if outage and "broker_stopped" in timeline:
        stopped, restarted = timeline["broker_stopped"], timeline["broker_restarted"]
        # Events away from the outage: the delay the page shows in normal running.
        steady = [a - c for c, a in first.values() if c < stopped - 1 or c > restarted + 30]
        out["sse_p95_ms_outside_outage"] = None if not steady else percentile(steady, 95) * 1000
        backlog = [(c, a) for c, a in first.values() if stopped - 1 <= c <= restarted]
        out["backlog_events"] = len(backlog)
        if backlog:
            # The backlog is drained when the last event made before the restart has reached the page.
            out["drain_s"] = round(max(a for _, a in backlog) - restarted, 2)
        # When the page is live again: the first event after which every later-made event arrives within 1 s.
        late = [c for c, a in first.values() if c > restarted and a - c > 1.0]
        out["live_again_s"] = round((max(late) if late else restarted) - restarted, 2)
    return out


# ------------------------------------------------------------------------------------------------ child roles


def child_viewers(config):
    """MJPEG viewers: ``count`` threads reading the stream, counting frames and bytes, until stdin ends."""
    from urllib.parse import urlsplit

    url = urlsplit(config["url"])
    count = config["count"]
    frames, sizes = [0] * count, [0] * count
    marker = b"--frame\r\nContent-Type: image/jpeg"

    def watch(i):
        sock = socket.create_connection((url.hostname, url.port))
        sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        tail = b""
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return
            sizes[i] += len(data)
            window = tail + data
            frames[i] += window.count(marker)
            tail = window[-(len(marker) - 1) :]

    for i in range(count):
        threading.Thread(target=watch, args=(i,), daemon=True).start()
    sys.stdin.read()
    print(json.dumps({"frames": frames, "bytes": sizes, "cpu": time.process_time()}), flush=True)
    os._exit(0)


def child_classify(config):
    """Photo senders: ``clients`` threads posting the photos in turn, ``requests`` in all (after a warm-up)."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(config["url"])
    photos = [Path(p).read_bytes() for p in config["photos"]]
    lock = threading.Lock()
    counter = iter(range(config["requests"]))
    latencies, failures, faces = [], [], []

    def post(conn, i):
        conn.request("POST", url.path + f"?name=photo{i}.jpg", photos[i % len(photos)], {"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        return response.status, response.read()

    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for i in range(config["warmup"]):  # the photo pipeline loads on first use
        post(conn, i)
    conn.close()

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            status, body = post(conn, i)
            elapsed = time.perf_counter() - started
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                    faces.append(len(json.loads(body)["faces"]))
                else:
                    failures.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(config["clients"])]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    sys.stdin.read()
    print(
        json.dumps(
            {
                "requests": config["requests"],
                "clients": config["clients"],
                "ok": len(latencies),
                "failed": len(failures),
                "seconds": seconds,
                "faces_per_photo": sum(faces) / max(1, len(faces)),
                "latencies": latencies,
            }
        ),
        flush=True,
    )


def child_sse(config):
    """An SSE client on /api/events/stream: the arrival time of every event; reconnects with Last-Event-ID (as a
    browser does). Ends when told how many distinct events to expect and it has them (or after 30 s more)."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(config["url"])
    events = []  # (id, created, arrived)
    seen = set()
    state = {"last": None, "reconnects": -1, "ready": False, "states": 0, "bytes": 0}
    have = threading.Condition()

    def follow():
        while True:
            state["reconnects"] += 1
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=None)
            headers = {"Accept": "text/event-stream"}
            if state["last"] is not None:
                headers["Last-Event-ID"] = state["last"]
            try:
                conn.request("GET", url.path, headers=headers)
                response = conn.getresponse()
                kind, data, event_id = "message", [], None
                while True:
                    line = response.readline()
                    if not line:
                        break
                    state["bytes"] += len(line)
                    line = line.rstrip(b"\r\n")
                    if not line:  # the end of one message
                        if kind == "state":
                            state["states"] += 1
                            if not state["ready"]:
                                state["ready"] = True
                                print("ready", flush=True)
                        elif kind == "event" and data:
                            arrived = time.time()
                            event = json.loads(b"\n".join(data))
                            with have:
                                events.append((event["id"], event["time"], arrived))
                                seen.add(event["id"])
                                have.notify_all()
                            if event_id is not None:
                                state["last"] = event_id
                        kind, data, event_id = "message", [], None
                    elif line.startswith(b"event:"):
                        kind = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        if kind == "event":  # the cameras' states are not parsed: only events are timed
                            data.append(line[5:].lstrip())
                    elif line.startswith(b"id:"):
                        event_id = line[3:].strip().decode()
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)

    threading.Thread(target=follow, daemon=True).start()
    expected = int(sys.stdin.readline() or 0)
    wait_progress(lambda: len(seen), expected)
    with have:
        records = list(events)
    summary = {
        "events": records,
        "reconnects": state["reconnects"],
        "states": state["states"],
        "bytes": state["bytes"],
        "cpu": time.process_time(),
    }
    print(json.dumps(summary), flush=True)
    os._exit(0)


def camera_events(recorder, snapshot):
    """A camera's endless synthetic events: people passing (new, verdict, leave; every third never judged),
    each event made (and timed) when it is asked for. Yields (event, snapshot or None)."""
    import numpy as np

    from mask_detection.detections import NOT_JUDGED, Detection
    from mask_detection.results import FrameResult, PersonEvent

    image = np.zeros((4, 4, 3), np.uint8)
    index, track = 0, 0
    while True:
        track += 1
        label = None if track % 3 == 0 else ("without_mask" if track % 2 else "with_mask")
        box = (10 * (track % 50), 20, 40, 48)
        if label is None:
            seen = Detection(box, 0.9, None, NOT_JUDGED, float("nan"), (), track_id=track, settled=False, judged=False)
        else:
            k = CLASS_NAMES.index(label)
            probabilities = tuple(0.97 if i == k else 0.03 for i in range(len(CLASS_NAMES)))
            seen = Detection(box, 0.9, k, label, 0.97, probabilities, track_id=track, settled=True)
        frames = [FrameResult(index, index / 20, [seen], image)]
        if label is not None:
            verdict = PersonEvent("verdict", track, index + 1, (index + 1) / 20, label, 0.97, xywh=box)
            frames.append(FrameResult(index + 1, (index + 1) / 20, [seen], image, [verdict]))
        gone = PersonEvent(
            "leave",
            track,
            index + 2,
            (index + 2) / 20,
            label,
            0.97 if label else None,
            first_frame_index=index,
            frames=3,
        )
        frames.append(FrameResult(index + 2, (index + 2) / 20, [], image, [gone]))
        index += 3
        for frame in frames:
            for event in recorder.frame(frame):
                yield event, snapshot if event["type"] == "verdict" else None


def child_fleet(config):
    """Simulated cameras: real publishers with their own outboxes, ``rate`` events/s each for ``seconds``, a state
    with each event, a video frame ``frame_rate`` times a second; then each publisher closes (drains its outbox)."""
    import cv2
    import numpy as np

    from mask_detection.events import new_run_id
    from mask_detection.service.mqtt import CameraPublisher, MqttSettings
    from mask_detection.service.outbox import Outbox
    from mask_detection.service.records import EventRecorder, camera_state

    photo = face_photos()[0]
    snapshot = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    canvas = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
    canvas[100 : 100 + photo.shape[0], 200 : 200 + photo.shape[1]] = photo
    frame_jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()

    settings = MqttSettings(host="127.0.0.1", port=config["port"])
    warnings = []
    cameras = []
    for i in range(config["cameras"]):
        name = f"cam{i + 1:02d}"
        outbox = Outbox(Path(config["folder"]) / name / "outbox.sqlite3")
        publisher = CameraPublisher(settings, name, outbox, CLASS_NAMES, warnings.append)
        publisher.state(camera_state(name, "live", CLASS_NAMES, [], False, None, 20.0, 0.05))
        publisher.start()
        events = camera_events(EventRecorder(name, new_run_id()), snapshot)
        cameras.append((name, publisher, outbox, events))
    wait_until(lambda: all(p.connected for _, p, _, _ in cameras), 30, "the fleet's connections")

    rate, ticks = config["rate"], int(config["seconds"] * config["rate"])
    frame_every = max(1, round(rate / config["frame_rate"])) if config["frame_rate"] > 0 else 0
    ids = []
    reconnected = [None] * len(cameras)  # when each publisher was connected again after losing the broker
    sampling = threading.Event()

    def sample():  # every 20 ms: a connection's loss and return
        was = [True] * len(cameras)
        while not sampling.wait(0.02):
            for c, (_, publisher, _, _) in enumerate(cameras):
                now = publisher.connected
                if now and not was[c]:
                    reconnected[c] = time.time()
                was[c] = now

    threading.Thread(target=sample, daemon=True).start()
    peak_backlog, max_lag = 0, 0.0
    print("started", time.time(), flush=True)
    t0 = time.perf_counter()
    for k in range(ticks):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        for c, (name, publisher, _, events) in enumerate(cameras):
            event, picture = next(events)
            publisher.event(event, picture)
            ids.append((event["id"], event["time"]))
            publisher.state(camera_state(name, "live", CLASS_NAMES, [], False, None, 20.0, 0.05, frames=k))
            if frame_every and k % frame_every == c % frame_every:
                publisher.frame(frame_jpeg)
        if k % max(1, int(rate)) == 0:  # once a second: the largest backlog of any camera
            peak_backlog = max(peak_backlog, max(p.backlog for _, p, _, _ in cameras))
    seconds = time.perf_counter() - t0
    print("produced", len(ids), time.time(), flush=True)
    Path(config["ids"]).write_text(json.dumps(ids))
    deadline = time.monotonic() + config["drain_timeout"]
    for _, publisher, _, _ in cameras:  # closing drains the outbox (once the broker is back)
        with contextlib.suppress(RuntimeError):
            wait_until(lambda p=publisher: p.connected, max(1.0, deadline - time.monotonic()), "reconnection")
        publisher.close(max(1.0, deadline - time.monotonic()))
    sampling.set()
    backlog = [outbox.__len__() for _, _, outbox, _ in cameras]
    for _, _, outbox, _ in cameras:
        outbox.close()
    print(
        json.dumps(
            {
                "produced": len(ids),
                "produced_rate": len(ids) / seconds,
                "max_lag_ms": max_lag * 1000,
                "peak_backlog": peak_backlog,
                "backlog_after_close": backlog,
                "reconnected": reconnected,
                "warnings": warnings,
                "cpu": time.process_time(),
            }
        ),
        flush=True,
    )


CHILDREN = {"viewers": child_viewers, "classify": child_classify, "sse": child_sse, "fleet": child_fleet}


# ------------------------------------------------------------------------------------------------ report


def verdict(ok):
    return "met" if ok else "MISSED"


def table(results):
    """The figures, one row per measure, with the target and whether it is met."""
    rows = []
    camera = results.get("camera")
    if camera is not None:
        m = camera["median_fps"]
        each = lambda kind: " ".join(f"{r[kind]['fps']:.1f}" for r in camera["rounds"])  # noqa: E731
        rows.append(
            (
                "camera FPS, HTTP+MQTT on vs plain",
                f"plain {m['plain']:.1f} [{each('plain')}], service {m['service']:.1f} [{each('service')}]: "
                f"{camera['service_ratio']:.0%}",
                ">= 90%",
                verdict(camera["service_ratio"] >= TARGETS["camera_ratio"]),
            )
        )
        received = [f for r in camera["rounds"] for f in r["viewers"].get("viewer_frames", [])]
        rows.append(
            (
                f"  same, {camera['viewers']} MJPEG viewers",
                f"{m['viewers']:.1f} [{each('viewers')}]: {camera['viewers_ratio']:.0%}; each viewer got "
                f"{min(received, default=0)}-{max(received, default=0)} of {camera['rounds'][0]['viewers']['frames']}"
                " frames",
                ">= 85%",
                verdict(camera["viewers_ratio"] >= TARGETS["viewers_ratio"]),
            )
        )
    classify = results.get("classify")
    if classify is not None:
        ok = classify["rate"] >= TARGETS["classify_rate"] and classify["p95_ms"] < TARGETS["classify_p95_ms"]
        rows.append(
            (
                f"POST /api/classify, {classify['clients']} clients",
                f"{classify['rate']:.1f} photos/s, p50 {classify['p50_ms']:.0f} ms, p95 {classify['p95_ms']:.0f} ms "
                f"({classify['ok']} ok, {classify['failed']} failed)",
                ">= 15/s, p95 < 300 ms",
                verdict(ok),
            )
        )
    dashboard = results.get("dashboard")
    if dashboard is not None:
        once = dashboard["lost"] == 0 and dashboard["duplicates_stored"] == 0 and dashboard["unexpected"] == 0
        p95 = dashboard["sse_p95_ms"]
        rows.append(
            (
                f"dashboard, {dashboard['cameras']} cameras x {dashboard['rate']:g}/s x {dashboard['seconds']:g} s",
                f"produced {dashboard['produced']}, stored {dashboard['stored_rows']} rows / "
                f"{dashboard['stored_distinct']} ids, lost {dashboard['lost']}; SSE p50 "
                f"{_ms(dashboard['sse_p50_ms'])}, p95 {_ms(p95)}",
                "all once; p95 < 250 ms",
                verdict(once and p95 is not None and p95 < TARGETS["sse_p95_ms"]),
            )
        )
    outage = results.get("outage")
    if outage is not None:
        rows.append(
            (
                f"  broker down {outage['outage']:g} s ({outage['broker_stop']}, persistence "
                f"{outage['persistence']}, queue {outage['broker_queue']})",
                f"produced {outage['produced']}, lost {outage['lost']}, duplicates stored "
                f"{outage['duplicates_stored']} (received twice {outage['duplicates_received']}), backlog "
                f"{outage.get('backlog_events', '-')} events drained {outage.get('drain_s', '-')} s after restart",
                "0 lost",
                verdict(outage["lost"] == 0 and outage["duplicates_stored"] == 0),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)] if rows else [0] * 4
    header = ("measure", "figures", "target", "")
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def details(results):
    lines = []
    camera = results.get("camera")
    if camera is not None:
        lines.append(f"camera: video {camera['video']}, {camera['frames']} frames, unpaced")
        c = camera["median_cpu_ms_per_frame"]
        lines.append(
            f"  CPU per frame (median, the whole process): plain {c['plain']:.1f} ms, service {c['service']:.1f} ms "
            f"({c['service'] / c['plain'] - 1:+.0%}), with viewers {c['viewers']:.1f} ms "
            f"({c['viewers'] / c['plain'] - 1:+.0%}; the viewers' own process not counted)"
        )
        for i, r in enumerate(camera["rounds"]):
            lines.append(
                f"  round {i + 1} (load {r['load']:.2f}, order {'/'.join(r['order'])}): plain {r['plain']['fps']:.1f} "
                f"FPS ({r['plain']['people']} people), service {r['service']['fps']:.1f} ({r['service']['events']} "
                f"events stored, MQTT backlog {r['service']['mqtt_backlog']}), viewers {r['viewers']['fps']:.1f} "
                f"(received {r['viewers'].get('viewer_frames')}, {r['viewers'].get('viewer_mbytes')} MB, viewer "
                f"process {r['viewers'].get('viewer_client_cpu_s')} s CPU)"
            )
        for name, rows in camera.get("profile", {}).items():
            lines.append(f"  camera thread profile, {name} (ms per frame, cumulative; calls):")
            lines += [f"    {ms:8.2f}  {calls:7d}  {where}" for where, (ms, calls) in rows.items()]
    classify = results.get("classify")
    if classify is not None:
        lines.append(
            f"classify: {classify['requests']} requests, {classify['seconds']:.1f} s, max {classify['max_ms']:.0f} ms, "
            f"{classify['faces_per_photo']:.2f} faces found per photo (load {classify['load']:.2f})"
        )
    for name in ("dashboard", "outage"):
        r = results.get(name)
        if r is None:
            continue
        keys = [
            "load",
            "produced_rate",
            "fleet_max_lag_ms",
            "cpu_share",
            "sse_events",
            "sse_received",
            "sse_reconnects",
            "sse_state_messages",
            "sse_mbytes",
            "sse_max_ms",
            "duplicates_received",
            "errors",
            "fleet_backlog_after_close",
            "sse_p95_ms_outside_outage",
            "backlog_events",
            "drain_s",
            "live_again_s",
            "peak_backlog",
            "reconnected_after_s",
            "dashboard_resubscribed_after_s",
            "lost_by_time",
            "lost_ids",
            "fleet_warnings",
            "dashboard_warnings",
        ]
        shown = ", ".join(f"{k} {_short(r[k])}" for k in keys if k in r and r[k] not in (None, [], ""))
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


def _short(value):
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# ------------------------------------------------------------------------------------------------ main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="input video for the camera measures (default: a generated one)")
    p.add_argument("--frames", type=int, default=300, help="frames per camera run (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of plain / service / viewers (default: %(default)s)")
    p.add_argument("--viewers", type=int, default=5, help="MJPEG viewers (default: %(default)s)")
    p.add_argument("--requests", type=int, default=200, help="POST /api/classify requests (default: %(default)s)")
    p.add_argument("--clients", type=int, default=4, help="classify client threads (default: %(default)s)")
    p.add_argument("--cameras", type=int, default=8, help="simulated cameras (default: %(default)s)")
    p.add_argument("--rate", type=float, default=20.0, help="events per second per camera (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each dashboard run (default: %(default)s)")
    p.add_argument(
        "--frame-rate", type=float, default=2.0, help="video frames per second each simulated camera publishes"
    )
    p.add_argument("--outage", type=float, default=10.0, help="seconds the broker is down (default: %(default)s)")
    p.add_argument(
        "--broker-stop", choices=("kill", "term"), default="kill", help="how the broker is stopped (default: SIGKILL)"
    )
    p.add_argument(
        "--broker-persistence",
        choices=("on", "off"),
        default="on",
        help="the dashboard's broker saves its state every second (default: %(default)s)",
    )
    p.add_argument(
        "--broker-queue",
        default="0",
        help="the dashboard's broker: max_queued_messages per client (default: %(default)s, no limit, as "
        "docs/service.md advises; stock: Mosquitto's own, 1000)",
    )
    p.add_argument("--only", action="append", choices=MEASURES, help="run only this measure (repeatable)")
    p.add_argument("--profile", action="store_true", help="also profile the camera thread (cProfile)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--keep", action="store_true", help="keep the working folder (stores, logs, profiles)")
    return p.parse_args()


def main():
    args = parse_args()
    measures = args.only or list(MEASURES)
    workdir = Path(tempfile.mkdtemp(prefix="service_speed-"))
    results = {
        "machine": {"cores": os.cpu_count(), "load_start": load_average(), "uptime": _uptime()},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    broker_missing = not os.access(MOSQUITTO, os.X_OK)
    if broker_missing:
        log(
            f"MOSQUITTO MISSING: {MOSQUITTO} not found (Debian: apt-get install mosquitto); the camera, dashboard "
            "and outage measures need a real broker and are skipped"
        )
        results["skipped"] = [m for m in measures if m != "classify"]
        measures = [m for m in measures if m == "classify"]
    try:
        if "camera" in measures:
            from mask_detection.pipeline import load_pipeline

            video = Path(args.video) if args.video else make_entrance_video(workdir / "entrance.mp4", args.frames + 30)
            pipeline = load_pipeline(upscale=1.0, warn=log)  # as detect_webcam.py and serve.py load it for video
            broker = Broker(workdir / "camera-broker", persistence=False).start()
            try:
                results["camera"] = measure_camera(args, pipeline, video, broker, workdir)
            finally:
                broker.stop()
        if "classify" in measures:
            results["classify"] = measure_classify(args, workdir)
        if "dashboard" in measures:
            results["dashboard"] = measure_dashboard(args, workdir, outage=False)
        if "outage" in measures:
            results["outage"] = measure_dashboard(args, workdir, outage=True)
            results["outage"]["outage"] = args.outage
    finally:
        if args.keep:
            log(f"working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_end"] = load_average()
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        m = results["machine"]
        print(
            f"{m['cores']} cores; load average {m['load_start']:.2f} at the start, {m['load_end']:.2f} at the end "
            f"({m['uptime']})"
        )
        print(table(results))
        print(details(results))
    return 0


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    if sys.argv[1:2] == ["_child"]:
        CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
