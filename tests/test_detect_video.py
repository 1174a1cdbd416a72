"""detect_webcam.py on generated videos of real faces: every frame out at the input's frame rate with the overlay
drawn, JSON per frame, tracked people (JSON schema, events, snapshots, the people summary, the alert banner),
--per-frame, Ctrl-C and SIGTERM, a live stream that ends, bad sources. In-process (``main``) except for signals."""

import http.server
import json
import signal
import subprocess
import threading
from unittest.mock import ANY

import cv2
import numpy as np
import pytest
from conftest import REPO, hooked_script, loopback_http_server, on_call, run_command, send_signal
from detect_support import count_frames, make_face_video, save_tiny_classifier
from test_people import BLUE, RED, face, frame

from mask_detection.classes import REGISTRY, WITHOUT_MASK
from mask_detection.commands import detect_webcam


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def no_mask_model(tmp_path_factory):
    """Answers without_mask for every face, so the box colour is known beforehand."""
    return save_tiny_classifier(tmp_path_factory.mktemp("no-mask-model"), constant=(0.1, 0.9), name="nomask")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "faces.mp4"
    make_face_video(path, frames=30, fps=7.5)  # not a common rate: a writer falling back to 30 or 25 shows
    return path


def watch(capfd, *args):
    """detect_webcam in-process: (exit code, stdout, stderr)."""
    code = run_command(detect_webcam, *args)
    out, err = capfd.readouterr()
    return code, out, err


def read_frames(path):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return fps, frames


def near(image, colour, tolerance=40):
    return np.abs(image.astype(int) - colour).max(axis=-1) < tolerance


def test_per_frame_mode_every_frame_annotated_and_one_json_line_each(tmp_path, face_video, no_mask_model, capfd):
    """--per-frame: today's behaviour, every face of every frame on its own, the JSON without track keys."""
    out = tmp_path / "annotated.mp4"
    code, stdout, stderr = watch(
        capfd, "--video", face_video, "--no-display", "--output", out, "--json", "--model", no_mask_model, "--per-frame"
    )
    assert code == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(30))
    for i, record in enumerate(records):
        assert set(record) == {"frame", "time", "faces"}
        assert record["time"] == pytest.approx(i / 7.5, abs=1e-3)
        assert len(record["faces"]) == 1
        assert set(record["faces"][0]) == {"box", "score", "label", "probability"}
    # The face moves right across the frames, and so do the boxes.
    xs = [r["faces"][0]["box"][0] for r in records]
    assert xs[-1] - xs[0] > 200
    assert "summary: 30 frames, 30 faces seen (mask 0, no mask 30)" in stderr
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"

    fps, frames = read_frames(out)
    assert fps == pytest.approx(7.5)  # the input's frame rate, so the output plays at the same speed
    assert len(frames) == 30
    _, originals = read_frames(face_video)
    colour = REGISTRY[WITHOUT_MASK].colour
    for i in (0, 14, 29):
        x, y, w, h = records[i]["faces"][0]["box"]
        # The box's left side, in the no-mask colour: drawn on the written frame, absent from the input.
        side = (slice(y + 5, y + h - 5), slice(max(0, x - 2), x + 3))
        assert near(frames[i][side], colour).any(axis=1).mean() > 0.9, i  # a line down every row
        assert not near(originals[i][side], colour).any()
        # The status panel darkens the top-left corner (background 90 -> about 52).
        assert np.median(frames[i][0:3, 0:60]) < 70 < np.median(originals[i][0:3, 0:60])  # above the text


def test_ctrl_c_stops_cleanly_and_finalises_the_video(tmp_path, tiny_model):
    """Ctrl-C while the fourth frame is read (a hook in the real process): that frame is finished, the video
    finalised with the four frames, exit 0."""
    video = tmp_path / "long.mp4"
    make_face_video(video, frames=60, fps=25.0)
    out = tmp_path / "partial.mp4"
    hook = on_call("mask_detection.video_io:FileSource.read", send_signal(signal.SIGINT), call=4)
    args = ["--video", video, "--no-display", "--json", "--output", out, "--model", tiny_model]
    result = subprocess.run(
        hooked_script("detect_webcam.py", *args, hooks=[hook]), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    n = len([line for line in result.stdout.splitlines() if line.strip()])
    assert n == 4
    assert f"summary: {n} frames" in result.stderr
    assert count_frames(out) == n  # finalised: readable, exactly the processed frames


def test_max_frames(face_video, tiny_model, capfd):
    code, out, err = watch(
        capfd, "--video", face_video, "--no-display", "--max-frames", 5, "--json", "--model", tiny_model
    )
    assert code == 0, err
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [0, 1, 2, 3, 4]
    assert "summary: 5 frames" in err


class SteppedCamera:
    """A capture (OpenCV's VideoCapture interface) whose frames are released one at a time by the test: the
    reader thread's pace is the test's, not the machine's. After the last frame it reports the end."""

    def __init__(self, frames):
        self._frames = list(frames)
        self._released = threading.Semaphore(0)
        self._state = threading.Condition()
        self.taken = 0  # frames handed to the reader
        self.waiting = False  # the reader is back, waiting for the next frame: it has stored the last one

    def release_next(self):
        self._released.release()

    def wait_until_reader_waits_after(self, frames):
        """Until the reader has taken ``frames`` frames and come back for the next (an event, not a duration)."""
        with self._state:
            self._state.wait_for(lambda: self.taken >= frames and self.waiting)

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return True

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.taken >= len(self._frames):
            return False, None
        with self._state:
            self.waiting = True
            self._state.notify_all()
        self._released.acquire()
        with self._state:
            self.waiting = False
            self.taken += 1
            return True, self._frames[self.taken - 1]

    def release(self):
        self._released.release()  # a reader waiting for a frame is let go


def test_live_reader_hands_out_the_newest_frame(face_video):
    """The camera path's threaded reader: a consumer slower than the camera gets the newest frame, never a stale
    one, and frames in between are dropped; the end of a live source is reported."""
    from mask_detection.video_io import FileSource, LiveSource

    every = FileSource(face_video)
    all_frames = []
    while (item := every.read()) is not None:
        all_frames.append(item[0])
    every.close()
    assert len(all_frames) == 30 and every.failure is None

    camera = SteppedCamera(all_frames[:6])
    camera.release_next()  # the first frame, which the source waits for when it opens
    live = LiveSource("stepped", "test stream", capture=camera)
    try:
        first = live.read()
        for _ in range(3):  # the camera delivers frames 2, 3 and 4 while the consumer is busy
            camera.release_next()
        camera.wait_until_reader_waits_after(4)
        newest = live.read()
        for _ in range(2):  # frames 5 and 6, then the camera ends
            camera.release_next()
        rest = []
        while (item := live.read()) is not None:
            rest.append(item)
    finally:
        live.close()
    assert np.array_equal(first[0], all_frames[0])
    assert np.array_equal(newest[0], all_frames[3])  # the newest frame: 2 and 3 were dropped
    assert np.array_equal(rest[-1][0], all_frames[5])
    assert [t for _, t in [first, newest, *rest]] == sorted(t for _, t in [first, newest, *rest])
    assert "stopped delivering frames" in live.failure  # the end of a live source is reported


@pytest.fixture
def mjpeg_camera():
    """An IP camera on 127.0.0.1: an HTTP MJPEG stream (what such cameras send) of 12 frames of a moving face,
    then the connection ends; yields its URL."""
    from detect_support import face_photo

    face = cv2.resize(face_photo(), (150, 170))
    frames = []
    for i in range(12):
        canvas = np.full((240, 320, 3), 90, np.uint8)
        canvas[35:205, 20 + i * 8 : 170 + i * 8] = face
        frames.append(cv2.imencode(".jpg", canvas)[1].tobytes())

    class Camera(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for data in frames:
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                self.wfile.write(head + data + b"\r\n")

    with loopback_http_server(Camera) as url:
        yield f"{url}/video.mjpg"


def test_a_stream_that_stops_sending_is_retried_then_stopped_with_exit_1(
    tmp_path, mjpeg_camera, tiny_model, capfd, monkeypatch
):
    """A live network stream (an MJPEG camera over HTTP): when it stops delivering, the reads are retried a few
    times, then the run ends cleanly with what it has, a warning and exit status 1."""
    from mask_detection import video_io

    # The waits for a frame are the patience of a live source, not what is tested: on a starved machine they
    # could run out before the failed reads, and the run would end with another warning.
    monkeypatch.setattr(video_io, "FIRST_FRAME_TIMEOUT", 600.0)
    monkeypatch.setattr(video_io, "FRAME_TIMEOUT", 600.0)
    out = tmp_path / "out" / "saved.mp4"
    code, stdout, stderr = watch(
        capfd, "--video", mjpeg_camera, "--no-display", "--json", "--output", out, "--model", tiny_model
    )
    assert code == 1, stderr
    frames = [json.loads(line)["frame"] for line in stdout.splitlines()]
    assert 1 <= len(frames) <= 12 and frames == list(range(len(frames)))
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: stream {mjpeg_camera} stopped delivering frames (5 failed reads in a row); stopped"]
    assert f"summary: {len(frames)} frames" in stderr
    assert count_frames(out) == len(frames)  # the output is kept, finalised


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["--video", d / "missing.mp4"], "no such file"),
        (lambda d: ["--video", d / "text.mp4"], "cannot"),
        (lambda d: ["--camera", "57"], "cannot open camera 57"),
        (lambda d: ["--video", d / "ok.mp4", "--output", d / "out.gif"], "cannot write"),
        (lambda d: ["--video", d / "ok.mp4", "--model", d / "missing.keras"], "does not exist"),
    ],
    ids=["missing-video", "text-as-video", "no-camera", "bad-output", "missing-model"],
)
def test_bad_sources_are_one_line_and_exit_2(tmp_path, capfd, make_args, message):
    (tmp_path / "text.mp4").write_text("not a video\n")
    make_face_video(tmp_path / "ok.mp4", frames=2)
    code, out, err = watch(capfd, *make_args(tmp_path), "--no-display")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "out.gif").exists()


def test_output_is_finalised_when_the_model_fails(tmp_path, face_video, capfd):
    """Nothing processed: no half-written output file is left."""
    out = tmp_path / "out.mp4"
    code, _, err = watch(
        capfd, "--video", face_video, "--no-display", "--output", out, "--model", tmp_path / "missing.keras"
    )
    assert code == 2, err
    assert list(tmp_path.iterdir()) == []


def write_video(path, frames, fps):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened()
    for image in frames:
        writer.write(image)
    writer.release()
    return path


def two_people_video(path, frames=40, fps=10.0):
    """A masked person (reddish: with_mask for the tiny model) on the left, an unmasked one (bluish) on the right,
    both in view for the whole video."""
    masked, unmasked = face(tint=RED), face(mirrored=True, tint=BLUE)
    images = [frame([(masked, (60 + i, 150)), (unmasked, (380 - i, 150))]) for i in range(frames)]
    return write_video(path, images, fps)


VERDICT_KEYS = {"event", "run", "track", "frame", "time", "label", "probability", "box", "snapshot"}
LEAVE_KEYS = {"event", "run", "track", "frame", "time", "label", "probability", "first_frame", "frames", "judged"}


def person_events(events):
    """The verdict and leave events of a log, without the run's start and end lines."""
    return [e for e in events if e["event"] in ("verdict", "leave")]


def test_tracked_mode_json_events_snapshots_and_people(tmp_path, tiny_model, capfd):
    """The default mode: one track per person in the JSON (track, settled; the label is the person's verdict),
    a verdict and a leave event per person with a snapshot JPEG, the summary counting people, and the overlay's
    track numbers and alert banner."""
    video = two_people_video(tmp_path / "two.mp4")
    out, events_path, snapshots = tmp_path / "out.mp4", tmp_path / "ev" / "events.jsonl", tmp_path / "snaps"
    code, stdout, stderr = watch(
        capfd, "--video", video, "--no-display", "--json", "--model", tiny_model, "--output", out,
        "--events", events_path, "--snapshots", snapshots,
    )  # fmt: skip
    assert code == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(40))
    faces = [f for r in records for f in r["faces"]]
    assert records[0]["faces"] == []  # a track is confirmed at its second frame
    assert all(set(f) == {"box", "score", "label", "probability", "track", "settled", "judged"} for f in faces)
    assert all(f["judged"] and f["probability"] >= 0.5 for f in faces)  # the label's own probability
    by_track = {}
    for f in faces:
        by_track.setdefault(f["track"], []).append(f)
    assert sorted(by_track) == [1, 2]
    for track in by_track.values():
        assert len({f["label"] for f in track}) == 1  # one verdict per person, no flicker
        assert [f["settled"] for f in track] == sorted(f["settled"] for f in track)  # settled once, for good
        assert track[-1]["settled"]
    left = min(by_track, key=lambda t: by_track[t][0]["box"][0])
    assert by_track[left][0]["label"] == "with_mask"
    assert "summary: 40 frames, 2 people: 2 judged (mask 1, no mask 1), 0 too small to judge, mean" in stderr

    log = [json.loads(line) for line in events_path.read_text().splitlines()]
    start, end, events = log[0], log[-1], log[1:-1]
    run = start["run"]
    assert start == {"event": "start", "run": run, "started": start["started"], "source": f"{video}"}
    assert end == {"event": "end", "run": run, "frames": 40}
    assert sorted((e["event"], e["track"]) for e in events) == [
        ("leave", 1),
        ("leave", 2),
        ("verdict", 1),
        ("verdict", 2),
    ]
    for e in events:
        assert set(e) == (VERDICT_KEYS if e["event"] == "verdict" else LEAVE_KEYS)
        assert e["run"] == run
        assert e["label"] == by_track[e["track"]][-1]["label"]
        if e["event"] == "verdict":
            assert e["snapshot"] == str(snapshots / f"{run}_track-{e['track']:06d}.jpg")
            picture = cv2.imread(e["snapshot"])
            assert picture is not None and min(picture.shape[:2]) >= e["box"][2]  # the face, with margin
            verdict_frame = records[e["frame"]]
            assert [f["settled"] for f in verdict_frame["faces"] if f["track"] == e["track"]] == [True]
        else:
            assert (e["frame"], e["first_frame"], e["frames"]) == (39, 1, 39)
    assert sorted(p.name for p in snapshots.iterdir()) == [f"{run}_track-000001.jpg", f"{run}_track-000002.jpg"]

    # The overlay: the alert banner (no-mask colour along the bottom) once the unmasked person is settled.
    _, written = read_frames(out)
    colour = REGISTRY[WITHOUT_MASK].colour
    first_alert = min(e["frame"] for e in events if e["event"] == "verdict" and e["label"] == WITHOUT_MASK)
    assert near(written[first_alert + 1][-4:, :], colour).mean() > 0.6
    assert not near(written[0][-4:, :], colour).any()


def test_events_on_stdout(tmp_path, tiny_model, capfd):
    """--events -: the events are stdout's only lines; the summary goes to stderr."""
    video = two_people_video(tmp_path / "two.mp4", frames=20)
    code, stdout, stderr = watch(capfd, "--video", video, "--no-display", "--model", tiny_model, "--events", "-")
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "end"
    assert [e["event"] for e in events].count("leave") == 2
    assert all("snapshot" not in e for e in events)  # no --snapshots
    assert "summary: 20 frames, 2 people" in stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--events", "-", "--json"], "--events - and --json both write to stdout"),
        (["--per-frame", "--events", "e.jsonl"], "need tracked mode"),
        (["--per-frame", "--snapshots", "snaps"], "need tracked mode"),
        (["--events", "{video}"], "refusing to write"),
        (["--events", "{out}", "--output", "{out}"], "both the --output video and the --events log"),
        (["--snapshots", "{video}/snaps"], "cannot write"),
    ],
    ids=["stdout-twice", "events-per-frame", "snapshots-per-frame", "events-over-input", "events-is-output",
         "snapshots-under-a-file"],
)  # fmt: skip
def test_bad_event_outputs_are_refused_before_any_work(tmp_path, capfd, args, message):
    video = tmp_path / "in.mp4"
    make_face_video(video, frames=2)
    before = video.read_bytes()
    args = [str(a).format(video=video, out=tmp_path / "out.mp4") for a in args]
    code, out, err = watch(capfd, "--video", video, "--no-display", "--model", tmp_path / "missing.keras", *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == ""
    assert video.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing created


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_events_and_snapshots_are_complete_after_a_signal(tmp_path, signum, exit_code):
    """A real process stopped mid-video: every person who got a verdict also gets a leave event, every line is
    whole, every snapshot named is a picture, and the summary counts the people."""
    video = two_people_video(tmp_path / "long.mp4", frames=300, fps=25.0)
    events_path, snapshots = tmp_path / "events.jsonl", tmp_path / "snaps"
    args = ["--video", video, "--no-display", "--events", events_path, "--snapshots", snapshots]
    # The signal comes as soon as the second verdict is written (a hook in the real process, not a time).
    hook = on_call(
        "mask_detection.events:EventWriter.write", send_signal(signum), call=2, when="after", match="verdict"
    )
    proc = subprocess.run(
        hooked_script("detect_webcam.py", *args, hooks=[hook]), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == exit_code, err
    assert "Traceback" not in err
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1] == {"event": "end", "run": events[0]["run"], "frames": ANY}
    verdicts = {e["track"] for e in events if e["event"] == "verdict"}
    leaves = [e for e in events if e["event"] == "leave"]
    assert verdicts == {e["track"] for e in leaves} == {1, 2}
    last_frame = max(e["frame"] for e in leaves)
    assert last_frame == max(e["frame"] for e in events if e["event"] == "verdict")  # stopped after that frame
    for e in events:
        if e["event"] == "verdict":
            assert cv2.imread(e["snapshot"]) is not None
    assert f"summary: {last_frame + 1} frames, 2 people" in out


def test_the_summary_counts_people_judged_apart_from_those_too_small_to_judge():
    from mask_detection.commands.detect_webcam import summary_line
    from mask_detection.results import PeopleCounts
    from mask_detection.stream import StreamTally

    tally = StreamTally(frames=100)
    people = PeopleCounts({"with_mask": 50, "without_mask": 15}, unjudged=60)
    assert summary_line(tally, ["with_mask", "without_mask"], 4.0, people) == (
        "summary: 100 frames, 125 people: 65 judged (mask 50, no mask 15), 60 too small to judge, mean 25.0 FPS"
    )


def test_judge_size_flag_sets_the_tracked_judging_size(capsys):
    from mask_detection.commands.detect_webcam import parse_args, tracking_config
    from mask_detection.people import TrackingConfig

    assert tracking_config(parse_args(["--video", "x.mp4", "--judge-size", "40"])).judge_size == 40
    assert tracking_config(parse_args(["--video", "x.mp4"])) == TrackingConfig()
    with pytest.raises(SystemExit):
        parse_args(["--video", "x.mp4", "--per-frame", "--judge-size", "40"])
    assert "--judge-size needs tracked mode" in capsys.readouterr().err
