"""evaluate.py --video: the MOT ground-truth reader, the video figures on hand-made tracks, the dev video generator
(benchmarks/make_dev_video.py) on a tiny scenes folder of real face photos, and end-to-end runs in both modes."""

import json

import numpy as np
import pytest
from conftest import run_command, run_script
from detect_support import count_frames, face_photo

from mask_detection.annotations.mot import GroundTruthError, read_video_truth
from mask_detection.commands import evaluate
from mask_detection.detections import Detection
from mask_detection.evaluation.video_scoring import VideoRun, score_video

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLASSES = ["with_mask", "without_mask"]
# The astronaut's face in detect_support.face_photo(), as an annotator would box it.
FACE_IN_PHOTO = (59, 48, 91, 109)


def write_truth(folder, rows, classes=("with_mask", "without_mask"), segments=None):
    """gt.txt (+ classes.txt, segments.txt) in ``folder``; rows are MOT lines without the newline."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.txt").write_text("".join(f"{row}\n" for row in rows))
    if classes is not None:
        (folder / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    if segments is not None:
        (folder / "segments.txt").write_text("".join(f"{a},{b},{name}\n" for a, b, name in segments))
    return folder / "gt.txt"


def det(box, track=None, label="with_mask", score=0.9):
    index = CLASSES.index(label)
    probabilities = (0.9, 0.1) if index == 0 else (0.1, 0.9)
    return Detection(box, score, index, label, 0.9, probabilities, track_id=track, settled=track is not None)


A, B = (10, 10, 60, 60), (200, 10, 60, 60)  # two people, far apart


def two_people_rows(frames, classes=(1, 2)):
    return [
        f"{f},{p},{box[0]},{box[1]},{box[2]},{box[3]},1,{c},1"
        for f in frames
        for p, box, c in ((1, A, classes[0]), (2, B, classes[1]))
    ]


# ------------------------------------------------------------------------------------------------ ground truth


def test_reads_mot_ground_truth_with_aliases_ignored_rows_and_segments(tmp_path):
    gt = write_truth(
        tmp_path,
        ["1,7,10,10,50,50,1,1,0.8", "1,8,100,10,50,50,0,-1,1", "2,7,12,10,50,50,1,2"],
        classes=("mask", "no_mask"),  # dataset aliases, as some CVAT projects name them
        segments=[(1, 1, "a.png"), (2, 5, "b.png")],
    )
    truth = read_video_truth(gt)
    assert truth.class_names == ("with_mask", "without_mask")
    first = truth.frames[1]
    assert (first[0].person, first[0].label, first[0].visibility, first[0].considered) == (7, "with_mask", 0.8, True)
    assert first[1].considered is False  # conf 0: a region to ignore, its class not needed
    assert truth.frames[2][0].visibility == 1.0  # 8 columns: no visibility given
    assert truth.person_labels() == {7: "with_mask"}  # ties: the class seen first
    assert [s.name for s in truth.segments] == ["a.png", "b.png"]
    assert (truth.segment_of(1), truth.segment_of(4), truth.segment_of(9)) == (0, 1, None)


def test_without_class_file_ids_follow_the_registry(tmp_path):
    truth = read_video_truth(write_truth(tmp_path, ["1,1,0,0,40,40,1,3,1"], classes=None))
    assert truth.classes_path is None
    assert truth.frames[1][0].label == "mask_weared_incorrect"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1,1,10,10,50", "line 2: 5 fields, expected frame, id"),
        ("1,1,10,10,50,50,1,3,1", "line 2: class 3 is not in"),
        ("0,1,10,10,50,50,1,1,1", "line 2: frame 0 (MOT frames start at 1)"),
        ("1,x,10,10,50,50,1,1,1", "line 2: id is not a number ('x')"),
        ("1,1,10,10,0,50,1,1,1", "line 2: empty box"),
        ("1,1,10,10,nan,50,1,1,1", "line 2: w is not a finite number"),
        ("1,2,10,10,50,50,1,1,1", "line 2: person 2 appears twice in frame 1"),
    ],
)
def test_bad_ground_truth_lines_name_the_line(tmp_path, line, expected):
    gt = write_truth(tmp_path, ["1,2,0,0,40,40,1,1,1", line])
    with pytest.raises(GroundTruthError, match="gt.txt " + expected.replace("(", r"\(").replace(")", r"\)")):
        read_video_truth(gt)


def test_bad_side_files(tmp_path):
    gt = write_truth(tmp_path, ["1,1,0,0,40,40,1,1,1"])
    (tmp_path / "classes.txt").write_text("with_mask\n\nwithout_mask\n")
    with pytest.raises(GroundTruthError, match="classes.txt line 2: empty name"):
        read_video_truth(gt)
    (tmp_path / "classes.txt").write_text("with_mask\n")
    (tmp_path / "segments.txt").write_text("1,10,a\n5,20,b\n")
    with pytest.raises(GroundTruthError, match="segments.txt line 2: overlaps"):
        read_video_truth(gt)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(GroundTruthError, match="no ground-truth rows"):
        read_video_truth(tmp_path / "empty.txt", tmp_path / "classes.txt", tmp_path / "none.txt")
    with pytest.raises(GroundTruthError, match="ground-truth file not found"):
        read_video_truth(tmp_path / "none.txt", tmp_path / "classes.txt")


# ------------------------------------------------------------------------------------------------ figures


def score(run, truth, iou=0.3):
    return score_video(run, truth, CLASSES, iou)


def test_a_perfect_tracker_scores_perfectly(tmp_path):
    truth = read_video_truth(write_truth(tmp_path, two_people_rows(range(1, 11))))
    frames = [(f, [det(A, 1, "with_mask"), det(B, 2, "without_mask")]) for f in range(1, 11)]
    scores = score(VideoRun(frames, True, {1: "with_mask", 2: "without_mask"}, 2, {}), truth)
    h = scores.headline
    assert h["detection_recall"] == 1.0 and h["false_alarms_per_frame"] == 0.0
    assert (h["IDF1"], h["MOTA"], h["identity_switches"]) == (1.0, 1.0, 0)
    assert h["HOTA"] > 0.99
    assert (h["tracks_per_person"], h["identity_purity"], h["flicker_per_100_steps"]) == (1.0, 1.0, 0.0)
    assert (h["person_balanced_accuracy"], h["per_frame_balanced_accuracy"]) == (1.0, 1.0)
    assert (h["people_counted"], h["true_people"]) == (2, 2)
    assert h["tracks_across_cut"] is None  # no segments: not known
    assert h["met"]["tracks_per_person"] and h["met"]["verdict_gain"] is False  # nothing to gain over perfect


def test_identity_switch_fragmentation_purity_and_scene_cut(tmp_path):
    # Person 1 in frames 1-10 (segment 1), person 3 in frames 11-20 (segment 2), at the same place. Track 5
    # follows person 1 for 5 frames, then track 6 takes over and is carried across the cut onto person 3.
    rows = [f"{f},{1 if f <= 10 else 3},{A[0]},{A[1]},{A[2]},{A[3]},1,1,1" for f in range(1, 21)]
    truth = read_video_truth(write_truth(tmp_path, rows, segments=[(1, 10, "a"), (11, 20, "b")]))
    frames = [(f, [det(A, 5 if f <= 5 else 6)]) for f in range(1, 21)]
    figures = score(VideoRun(frames, True, {5: "with_mask", 6: "with_mask"}, 2, {}), truth).figures
    tracks = figures["tracks"]
    assert tracks["tracks_per_person"] == 1.5  # person 1: tracks 5 and 6; person 3: track 6
    assert tracks["identity_purity"] == pytest.approx((1.0 + 10 / 15) / 2)  # track 6: 5 frames of 1, 10 of 3
    assert (tracks["tracks_across_cut"], tracks["tracks_across_cut_ids"], tracks["tracks_spanning_segments"]) == (
        1,
        [6],
        1,
    )
    assert figures["identity"]["IDSW"] == 1  # 5 -> 6 on person 1; person 3's first match is no switch
    assert figures["identity"]["IDF1"] < 1.0


def test_flicker_and_verdicts_against_per_frame_labels(tmp_path):
    truth = read_video_truth(write_truth(tmp_path, two_people_rows(range(1, 11))))
    # Person 1 (with_mask): labels flip at frames 4 and 5 (2 changes); person 2 (without_mask): steady, wrong.
    frames = [(f, [det(A, 1, "without_mask" if f == 4 else "with_mask"), det(B, 2, "with_mask")]) for f in range(1, 11)]
    figures = score(VideoRun(frames, True, {1: "with_mask", 2: "without_mask"}, 2, {}), truth).figures
    flicker = figures["flicker"]
    assert (flicker["steps"], flicker["label_changes"], flicker["per_100_steps"]) == (
        18,
        2,
        pytest.approx(100 * 2 / 18),
    )
    assert (flicker["people_with_change"], flicker["people_with_change_share"]) == (1, 0.5)
    verdicts = figures["verdicts"]
    # Final verdicts (leave events) are both right; per frame: person 1 right 9 of 10, person 2 never.
    assert verdicts["person_balanced_accuracy"] == 1.0
    assert verdicts["per_frame_balanced_accuracy"] == pytest.approx((0.9 + 0.0) / 2)
    assert verdicts["verdict_gain"] == pytest.approx(0.55)


def test_faces_not_judged_are_counted_apart_and_labels_under_half_are_counted(tmp_path):
    """Person 1 is not judged for 3 frames, then labelled with_mask: no label change (a first label is none), its
    unjudged frames are not scored. Person 2 is never judged: no verdict, counted apart, not scored. Two frames of
    person 1 print a label under 50%: counted (the target is none)."""
    from mask_detection.detections import NOT_JUDGED

    truth = read_video_truth(write_truth(tmp_path, two_people_rows(range(1, 11))))
    unjudged = lambda box, track: Detection(box, 0.9, None, NOT_JUDGED, float("nan"), (), track, False, False)  # noqa: E731
    weak = Detection(A, 0.9, 0, "with_mask", 0.45, (0.45, 0.55), 1, True)  # a label its probability contradicts
    frames = [
        (f, [unjudged(A, 1) if f <= 3 else weak if f in (5, 6) else det(A, 1), unjudged(B, 2)]) for f in range(1, 11)
    ]
    run = VideoRun(frames, True, {1: "with_mask", 2: None}, 2, {"with_mask": 1, "without_mask": 0}, 1)
    scores = score(run, truth)
    figures = scores.figures
    assert figures["flicker"]["label_changes"] == 0
    verdicts = figures["verdicts"]
    assert (verdicts["people_scored"], verdicts["people_not_judged"]) == (1, 1)
    assert (verdicts["face_frames_scored"], verdicts["face_frames_not_judged"]) == (7, 13)
    assert verdicts["label_probability_under_half"] == 2
    assert (
        scores.headline["label_probability_under_half"] == 2
        and scores.headline["met"]["label_probability_under_half"] is False
    )
    assert figures["people"]["people_counted_not_judged"] == 1
    assert [p["verdict"] for p in scores.people] == ["with_mask", None]


def test_per_frame_mode_has_no_identity_figures_and_small_faces_are_neither_hit_nor_false_alarm(tmp_path):
    rows = two_people_rows(range(1, 4)) + [f"{f},9,400,10,20,20,1,1,1" for f in range(1, 4)]  # a 20 px face
    truth = read_video_truth(write_truth(tmp_path, rows))
    frames = [(f, [det(A), det((400, 10, 20, 20)), det((500, 300, 50, 50))]) for f in range(1, 4)]
    scores = score(VideoRun(frames, False), truth)
    h, detector = scores.headline, scores.figures["detector"]
    assert scores.figures["identity"] is None and scores.figures["tracks"] is None
    assert h["IDF1"] is None and h["person_balanced_accuracy"] is None and h["met"]["tracks_per_person"] is None
    assert (detector["face_frames"], detector["found"], detector["false_alarms"]) == (6, 3, 3)  # B missed
    assert h["detection_recall"] == 0.5


# ------------------------------------------------------------------------------------------------ dev video


@pytest.fixture(scope="module")
def dev_video(tmp_path_factory):
    """A dev video of a tiny scenes folder: photo 1 one face, photo 2 two faces (the astronaut, one mirrored)."""
    import cv2

    root = tmp_path_factory.mktemp("dev")
    scenes = root / "scenes"
    (scenes / "images").mkdir(parents=True)
    (scenes / "annotations").mkdir()
    face = face_photo()
    layouts = {"one": [(40, 30, False)], "two": [(10, 40, False), (190, 40, True)]}
    for name, layout in layouts.items():
        canvas = np.full((300, 400, 3), 150, np.uint8)
        objects = []
        for left, top, mirrored in layout:
            canvas[top : top + face.shape[0], left : left + face.shape[1]] = face[:, ::-1] if mirrored else face
            x, y, w, h = FACE_IN_PHOTO
            x = face.shape[1] - x - w if mirrored else x
            objects.append(
                f"<object><name>without_mask</name><bndbox><xmin>{left + x}</xmin><ymin>{top + y}</ymin>"
                f"<xmax>{left + x + w}</xmax><ymax>{top + y + h}</ymax></bndbox></object>"
            )
        cv2.imwrite(str(scenes / "images" / f"{name}.png"), canvas)
        (scenes / "annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.png</filename><size><width>400</width><height>300</height></size>"
            + "".join(objects)
            + "</annotation>"
        )
    out = root / "video"
    done = run_script("benchmarks/make_dev_video.py", out, "--scenes", scenes, "--max-photos", 2)
    assert done.returncode == 0, done.stderr
    assert "2 photos, 72 frames at 12 FPS, 3 people" in done.stdout
    return out


def test_dev_video_frames_boxes_and_segments(dev_video):
    assert count_frames(dev_video / "video.mp4") == 72
    truth = read_video_truth(dev_video / "gt.txt")
    assert truth.classes_path.name == "classes.txt" and truth.segments_path.name == "segments.txt"
    assert [(s.name, s.first_frame, s.last_frame) for s in truth.segments] == [("one.png", 1, 36), ("two.png", 37, 72)]
    assert set(truth.person_labels()) == {1, 2, 3} and set(truth.person_labels().values()) == {"without_mask"}
    assert [b.person for b in truth.frames[1]] == [1] and {b.person for b in truth.frames[37]} == {2, 3}
    boxes = [b for frame in truth.frames.values() for b in frame]
    assert all(b.visibility >= 0.6 for b in boxes)
    assert all(b.xywh[0] >= 0 and b.xywh[1] >= 0 and b.xywh[0] + b.xywh[2] <= 640.01 for b in boxes)
    # The zoom: photo 1's face grows from 1.6x (letterboxed to 640x480) to 1.4-2x more, smoothly.
    widths = [truth.frames[f][0].xywh[2] for f in range(1, 37)]
    assert widths[0] == pytest.approx(91 * 1.6, abs=0.5)
    assert 1.4 * widths[0] - 1 <= widths[-1] <= 2.0 * widths[0] + 1
    assert all(b >= a for a, b in zip(widths, widths[1:], strict=False))


def test_dev_video_is_deterministic(dev_video, tmp_path):
    again = run_script(
        "benchmarks/make_dev_video.py", tmp_path, "--scenes", dev_video.parent / "scenes", "--max-photos", 1
    )
    assert again.returncode == 0, again.stderr
    first_photo = [line for line in (dev_video / "gt.txt").read_text().splitlines() if int(line.split(",")[0]) <= 36]
    assert (tmp_path / "gt.txt").read_text().splitlines() == first_photo


# ------------------------------------------------------------------------------------------------ end to end


def run_video(capfd, dev_video, report, *extra):
    code = run_command(
        evaluate,
        "--video",
        dev_video / "video.mp4",
        "--gt",
        dev_video / "gt.txt",
        "--report",
        report,
        "--quiet",
        *extra,
    )
    out, err = capfd.readouterr()
    return code, out, err


def test_evaluate_video_per_frame(capfd, dev_video, tmp_path):
    code, out, err = run_video(capfd, dev_video, tmp_path / "report", "--per-frame")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    h = report["headline"]
    assert report["settings"]["mode"] == "per-frame" and report["data"]["frames"] == 72
    assert h["detection_recall"] > 0.9
    assert h["IDF1"] is None and h["tracks_per_person"] is None  # no tracks in per-frame mode
    assert h["flicker_per_100_steps"] is not None and h["per_frame_balanced_accuracy"] is not None
    assert "tracks per true person: n/a" in out
    assert "| detector recall per frame |" in (tmp_path / "report" / "summary.md").read_text()


def test_evaluate_video_tracked(capfd, dev_video, tmp_path):
    code, out, err = run_video(capfd, dev_video, tmp_path / "report")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    h, tracks = report["headline"], report["figures"]["tracks"]
    assert report["settings"]["mode"] == "tracked" and report["settings"]["tracking"]
    assert h["detection_recall"] > 0.9
    assert h["tracks_per_person"] >= 1.0 and 0.0 < h["identity_purity"] <= 1.0
    assert h["tracks_across_cut"] == 0 and tracks["tracks_spanning_segments"] == 0  # the tracker reset at the cut
    assert 0.0 <= h["IDF1"] <= 1.0 and h["HOTA"] is not None and h["MOTA"] is not None
    assert h["people_counted"] >= 1 and h["true_people"] == 3
    assert h["person_balanced_accuracy"] is not None
    assert all(p["main_track"] is not None for p in report["people"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1,1,10,10,50,50,1,7,1\n", "gt.txt line 1: class 7 is not in"),
        ("1,1,10,10\n", "gt.txt line 1: 4 fields"),
        ("", "gt.txt: no ground-truth rows"),
    ],
)
def test_bad_ground_truth_is_one_error_line_before_the_model_loads(capfd, dev_video, tmp_path, content, expected):
    (tmp_path / "gt.txt").write_text(content)
    (tmp_path / "classes.txt").write_text("with_mask\nwithout_mask\n")
    code = run_command(
        evaluate,
        "--video",
        dev_video / "video.mp4",
        "--gt",
        tmp_path / "gt.txt",
        "--report",
        tmp_path / "r",
        "--model",
        tmp_path / "no-such-model.keras",
    )
    out, err = capfd.readouterr()
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and expected in err
    assert not (tmp_path / "r").exists()


def test_report_folder_is_checked_before_work(capfd, dev_video, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = run_command(evaluate, "--video", dev_video / "video.mp4", "--gt", dev_video / "gt.txt", "--report", blocker)
    _, err = capfd.readouterr()
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0
    # A report file that is one of the inputs (here the ground truth, linked as report.json) is refused.
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.json").symlink_to(dev_video / "gt.txt")
    code = run_command(evaluate, "--video", dev_video / "video.mp4", "--gt", dev_video / "gt.txt", "--report", report)
    _, err = capfd.readouterr()
    assert code == 2 and "error: " in err and err.strip().count("\n") == 0
    assert (dev_video / "gt.txt").read_text().startswith("1,1,")


def test_video_needs_ground_truth(capfd, dev_video):
    code = run_command(evaluate, "--video", dev_video / "video.mp4")
    _, err = capfd.readouterr()
    assert (
        code == 2
        and err.strip() == "error: --video needs --gt GT.txt, its ground truth in the MOT Challenge text format"
    )
