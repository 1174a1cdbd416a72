"""Tracking people on generated videos with known identities: real face photos (the astronaut, and a mirrored,
recoloured copy as a second person) pasted on a background, found by the real YuNet detector and followed by the
real ByteTrack tracker. The classifier is a small stand-in answering by colour (reddish faces "with_mask", like
``detect_support.save_tiny_classifier``) that counts its calls, so verdicts are known beforehand."""

import cv2
import numpy as np
import pytest
from detect_support import face_photo

from mask_detection.classes import WITH_MASK, WITHOUT_MASK
from mask_detection.detector import load_detector
from mask_detection.people import PeoplePipeline, TrackingConfig
from mask_detection.pipeline import MaskPipeline

FPS = 15.0
SIZE = (640, 480)


class ColourClassifier:
    """Reddish faces lean to the first class (red minus blue, as the tiny Keras test model); counts its work."""

    class_names = [WITH_MASK, WITHOUT_MASK]
    input_size = 224
    crop = "square"
    path = None

    def __init__(self) -> None:
        self.faces = 0
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.faces += len(batch)
        mean = batch.reshape(len(batch), -1, 3).mean(axis=1) / 255.0
        logit = 12.0 * (mean[:, 0] - mean[:, 2])
        first = 1.0 / (1.0 + np.exp(-logit))
        return np.stack([first, 1.0 - first], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def detector():
    return load_detector(upscale=1.0)


def people_pipeline(detector, config=None, fps=FPS):
    classifier = ColourClassifier()
    return PeoplePipeline(MaskPipeline(detector, classifier), config, fps=fps), classifier


def face(scale=0.6, mirrored=False, tint=None):
    """A real face photo (BGR), resized; ``tint`` (B, G, R) multiplies the colours: (0.6, 0.8, 1.4) reddens."""
    image = face_photo()
    if mirrored:
        image = image[:, ::-1]
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if tint is not None:
        image = np.clip(image * np.array(tint), 0, 255).astype(np.uint8)
    return image


RED = (0.55, 0.8, 1.5)  # with_mask for the stand-in
BLUE = (1.5, 0.8, 0.55)  # without_mask


def frame(placed, background=None):
    """A 640x480 frame: ``placed`` is [(face image, (x, y) of its top-left corner)], pasted in order (later ones
    in front), clipped at the edges."""
    width, height = SIZE
    canvas = np.full((height, width, 3), 90, np.uint8) if background is None else background.copy()
    for image, (x, y) in placed:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = image[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def run(people, frames):
    """Every frame through ``people``: (the FrameResults, every event including those of ``finish``)."""
    results = [people.process(f, i, i / FPS) for i, f in enumerate(frames)]
    events = [e for r in results for e in r.events] + people.finish(len(frames) - 1, (len(frames) - 1) / FPS)
    return results, events


def tracks_by_identity(results, truth):
    """{true identity: set of track ids}, matching each reported face to the identity whose true position is
    nearest. ``truth(i)`` gives [(identity, (cx, cy))] for frame i."""
    found = {}
    for i, result in enumerate(results):
        for d in result.detections:
            x, y, w, h = d.xywh
            centre = np.array([x + w / 2, y + h / 2])
            identity = min(truth(i), key=lambda t: np.linalg.norm(centre - np.array(t[1])))[0]
            found.setdefault(identity, set()).add(d.track_id)
    return found


def centre_of(image, x, y):
    h, w = image.shape[:2]
    return (x + w / 2, y + h / 2)


def test_two_faces_crossing_keep_their_ids(detector):
    """Two people walk past each other, one in front of the other for a few frames: each keeps one track."""
    a, b = face(), face(mirrored=True, tint=BLUE)
    n = 50

    def positions(i):
        return {"a": (20 + 10 * i, 150), "b": (500 - 10 * i, 180)}

    frames = [frame([(a, positions(i)["a"]), (b, positions(i)["b"])]) for i in range(n)]
    people, _ = people_pipeline(detector)
    results, events = run(people, frames)

    def truth(i):
        return [(k, centre_of(a, *p)) for k, p in positions(i).items()]

    found = tracks_by_identity(results, truth)
    assert len(found["a"]) == 1 and len(found["b"]) == 1, found
    assert found["a"] != found["b"]  # never the same track on both people
    assert people.people.total == 2
    assert sorted(e.kind for e in events) == ["leave", "leave", "verdict", "verdict"]
    # They really crossed: the faces swapped sides.
    first = {d.track_id: d.xywh[0] for d in results[5].detections}
    last = {d.track_id: d.xywh[0] for d in results[-1].detections}
    assert all((first[t] < 300) != (last[t] < 300) for t in first), (first, last)


@pytest.mark.parametrize("hidden, same_person", [(8, True), (25, False)], ids=["0.5s-same", "1.7s-new"])
def test_a_face_that_vanishes_keeps_its_track_up_to_max_missing_seconds(detector, hidden, same_person):
    """Hidden for 8 frames at 15 FPS (0.53 s, under the default 1 s) the face keeps its id; for 25 frames (1.7 s)
    its track ends (a leave event) and it comes back as a new one."""
    a = face()
    shown = 20
    frames = [frame([(a, (200 + 2 * i, 150))]) for i in range(shown)]
    frames += [frame([])] * hidden
    frames += [frame([(a, (200 + 2 * (shown + hidden + i), 150))]) for i in range(shown)]
    people, _ = people_pipeline(detector)
    results, events = run(people, frames)

    ids = {d.track_id for r in results for d in r.detections}
    leaves = [e for e in events if e.kind == "leave"]
    if same_person:
        assert len(ids) == 1 and people.people.total == 1
        assert len(leaves) == 1 and leaves[0].frame_index == len(frames) - 1  # at the end of the run
        assert leaves[0].frames == 2 * shown - 1  # seen in every shown frame but the first (confirmation)
    else:
        first, second = sorted(ids)
        assert people.people.total == 2
        assert [e.track_id for e in leaves] == [first, second]
        # The first track ended once the face had been missing for longer than max_missing_seconds.
        assert leaves[0].frame_index == shown + people.max_missing_frames
        assert people.max_missing_frames == 15


def coffee_background():
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), SIZE, interpolation=cv2.INTER_AREA)


def test_a_scene_cut_ends_every_track(detector):
    """Two faces stay where they are while the scene cuts from one background to another: without cut detection
    the boxes would continue the old tracks; the cut ends both (leave events at the cut) and starts new ones."""
    a, b = face(), face(mirrored=True, tint=BLUE)
    placed = [(a, (80, 150)), (b, (380, 150))]
    frames = [frame(placed)] * 20 + [frame(placed, coffee_background())] * 20
    people, _ = people_pipeline(detector)
    results, events = run(people, frames)

    before = {d.track_id for r in results[:20] for d in r.detections}
    after = {d.track_id for r in results[20:] for d in r.detections}
    assert len(before) == 2 and len(after) == 2 and not before & after
    assert sorted(e.track_id for e in results[20].events if e.kind == "leave") == sorted(before)
    assert all(e.frame_index == 20 for e in results[20].events)
    assert people.people.total == 4


def test_a_camera_panning_over_one_scene_is_no_cut(detector):
    """The camera pans 8 px a frame across a photo with a face in it: one scene, one track."""
    wide = cv2.resize(coffee_background(), (1040, 480), interpolation=cv2.INTER_LINEAR)
    a = face()
    frames = []
    for i in range(50):
        view = wide[:, 8 * i : 8 * i + SIZE[0]]
        frames.append(frame([(a, (500 - 8 * i, 150))], view))
    people, _ = people_pipeline(detector)
    results, events = run(people, frames)
    assert {d.track_id for r in results for d in r.detections} == {1}
    assert [e.kind for e in events] == ["verdict", "leave"]


def test_lowering_the_mask_changes_the_verdict_once_and_single_frames_never(detector):
    """The face is "masked" (reddish, with_mask for the stand-in) for 40 frames, then "unmasked" (bluish) for 40;
    single frames of the other colour are mixed into both halves. Every frame is classified here, so each noisy
    frame is evidence: the verdict is settled with_mask, changes once to without_mask shortly after the switch,
    and no single frame flips it."""
    noisy = {10, 17, 24, 31, 50, 57, 64, 71}
    frames = []
    for i in range(80):
        masked = (i < 40) != (i in noisy)
        frames.append(frame([(face(tint=RED if masked else BLUE), (200, 150))]))
    config = TrackingConfig(reclassify_every=1, unsettled_every=1)
    people, classifier = people_pipeline(detector, config)
    results, events = run(people, frames)

    assert classifier.faces == 79  # every frame but the first (the track is confirmed at its second)
    verdicts = [e for e in events if e.kind == "verdict"]
    assert [e.class_name for e in verdicts] == [WITH_MASK, WITHOUT_MASK]
    assert 40 < verdicts[1].frame_index <= 58  # strong evidence held over several classifications, not one frame
    labels = [r.detections[0].class_name for r in results[1:]]
    settled = [r.detections[0].settled for r in results[1:]]
    assert sum(a != b for a, b in zip(labels, labels[1:], strict=False)) == 1  # changed once, never flickered
    assert settled.index(True) == verdicts[0].frame_index - 1
    leave = events[-1]
    assert (leave.kind, leave.class_name) == ("leave", WITHOUT_MASK)
    assert people.people.by_class == {WITH_MASK: 0, WITHOUT_MASK: 1}


def test_a_tracked_face_is_classified_only_when_it_adds_evidence(detector):
    """60 frames of one face: classified when its track is new, every 2 frames until the verdict is settled, then
    every 10 frames; a face that comes much closer (1.3x the area) is classified at once."""
    a = face()
    people, classifier = people_pipeline(detector)
    results, _ = run(people, [frame([(a, (200, 150))])] * 60)
    assert all(len(r.detections) == 1 for r in results[1:])
    assert classifier.faces == 8  # frames 1, 3, 5 (settled), 15, 25, 35, 45, 55
    assert classifier.calls == 8

    people, classifier = people_pipeline(detector)
    close = face(scale=0.8)
    run(people, [frame([(a, (200, 150))])] * 10 + [frame([(close, (180, 120))])] * 3)
    assert classifier.faces == 4  # frames 1, 3, 5, then the closer view at once (10; else 15), not at 11, 12


def test_a_short_detection_is_nobody(detector):
    """A face seen for 3 frames (under min_frames) is reported with its track, unsettled, but never counts as a
    person and sends no event."""
    a = face()
    people, _ = people_pipeline(detector)
    results, events = run(people, [frame([(a, (200, 150))])] * 3 + [frame([])] * 20)
    reported = [d for r in results for d in r.detections]
    assert len(reported) == 2 and all(d.track_id == 1 and d.settled is False for d in reported)
    assert people.people.total == 0 and events == []


def test_people_counts_and_the_alert(detector):
    """A masked and an unmasked person side by side: counted by verdict; the alert is on while the unmasked one
    (settled) is in view and goes off when their track ends."""
    masked, unmasked = face(tint=RED), face(mirrored=True, tint=BLUE)
    frames = [frame([(masked, (60, 150)), (unmasked, (380, 150))])] * 20 + [frame([(masked, (60, 150))])] * 30
    people, _ = people_pipeline(detector)
    results, _ = run(people, frames)
    alerts = [r.alert for r in results]
    settled_at = next(i for i, r in enumerate(results) if any(d.settled for d in r.detections))
    assert not any(alerts[:settled_at]) and all(alerts[settled_at:20])
    assert not any(alerts[20 + people.max_missing_frames + 1 :])
    assert people.people.by_class == {WITH_MASK: 1, WITHOUT_MASK: 1}
    assert [d.class_name for d in results[10].detections] == [WITH_MASK, WITHOUT_MASK] or [
        d.class_name for d in results[10].detections
    ] == [WITHOUT_MASK, WITH_MASK]
