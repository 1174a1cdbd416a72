"""evaluate.py: IoU and matching on hand-made boxes, the figures, the VOC reader, and end-to-end runs on generated
scenes (a real face photo pasted onto canvases, with VOC files written for it) and on a labelled folder."""

import json
import time

import numpy as np
import pytest

from conftest import REPO, run_script
from detect_support import face_photo, save_tiny_classifier

from mask_detection import evaluation as ev
from mask_detection.errors import DatasetError
from mask_detection.pipeline import Detection

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLASSES = ["with_mask", "without_mask"]


# ------------------------------------------------------------------------------------------------ IoU, matching


def test_iou_known_values():
    assert ev.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert ev.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert ev.iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges share no area
    assert ev.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert ev.iou((0, 0, 10, 10), (2, 2, 5, 5)) == pytest.approx(25 / 100)  # one inside the other
    assert ev.iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # empty box
    matrix = ev.iou_matrix([(0, 0, 10, 10), (5, 0, 10, 10)], [(0, 0, 10, 10), (100, 100, 1, 1), (5, 0, 10, 10)])
    np.testing.assert_allclose(matrix, [[1, 0, 50 / 150], [50 / 150, 0, 1]])
    assert ev.iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_matching_no_detections_no_faces_no_overlap():
    assert ev.match_detections([], [], [(0, 0, 10, 10)], 0.3) == []
    assert ev.match_detections([(0, 0, 10, 10)], [0.9], [], 0.3) == [None]
    # IoU 25/175 = 0.14: below 0.3, above 0.1
    assert ev.match_detections([(5, 5, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.3) == [None]
    assert ev.match_detections([(5, 5, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.1) == [0]
    assert ev.match_detections([(50, 50, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.0) == [None]  # no overlap never matches


def test_matching_double_detection_counts_once_highest_score_first():
    face = [(0, 0, 10, 10)]
    # The lower-scored detection overlaps the face more, but the higher score is taken first.
    assert ev.match_detections([(0, 0, 10, 10), (1, 0, 10, 10)], [0.6, 0.9], face, 0.3) == [None, 0]


def test_matching_ties_keep_the_given_order_and_the_lower_face_index():
    face = [(0, 0, 10, 10)]
    assert ev.match_detections([(1, 0, 10, 10), (0, 0, 10, 10)], [0.8, 0.8], face, 0.3) == [0, None]
    # One detection exactly between two faces (equal IoU): the lower face index.
    assert ev.match_detections([(5, 0, 10, 10)], [0.9], [(0, 0, 10, 10), (10, 0, 10, 10)], 0.3) == [0]


def test_one_detection_overlapping_two_faces_takes_one_the_other_stays_for_the_next():
    faces = [(0, 0, 10, 10), (8, 0, 10, 10)]
    wide = (0, 0, 18, 10)  # IoU 100/180 with face 0, 100/180 with face 1
    tight = (8, 0, 10, 10)  # exactly face 1
    # The wide box has the higher score: it takes face 0 (tie -> lower index), the tight box gets face 1.
    assert ev.match_detections([wide, tight], [0.9, 0.8], faces, 0.3) == [0, 1]
    # Tight first: face 1 is taken, the wide box falls back to face 0.
    assert ev.match_detections([wide, tight], [0.7, 0.8], faces, 0.3) == [0, 1]
    # Only the wide box: one face found, the other missed.
    assert ev.match_detections([wide], [0.9], faces, 0.3) == [0]
    # Greedy, not optimal: the best detection takes the face the second one needed.
    greedy = ev.match_detections([(0, 0, 14, 10), (0, 0, 10, 10)], [0.9, 0.8], [(0, 0, 12, 10)], 0.3)
    assert greedy == [0, None]


def test_size_buckets_boundaries():
    assert [ev.size_bucket((0, 0, w, 100)) for w in (15.9, 16, 31, 32, 63.5, 64, 500)] == [
        "<16", "16-32", "16-32", "32-64", "32-64", ">=64", ">=64"]
    assert ev.box_size((0, 0, 40, 20)) == 20


# ------------------------------------------------------------------------------------------------ figures


def det(box, score, label, p=0.9):
    probs = (p, 1 - p) if label == "with_mask" else (1 - p, p)
    return Detection(box, score, label, p, probs)


def scene(faces, detections, ignored=(), name="s.png"):
    return ev.SceneResult(name, None, (480, 640), [ev.GroundTruth(b, c) for b, c in faces],
                          [ev.GroundTruth(b, c) for b, c in ignored], detections)


@pytest.fixture
def hand_made():
    """Two photos with known answers (IoU 0.3).

    Photo 1: A with_mask 40 px found+right, B without_mask 50 px found+wrong, C with_mask 20 px missed,
             D mask_weared_incorrect 40 px found -> "without_mask", a double detection of A, a false alarm.
    Photo 2: E without_mask 100 px found+right (box shifted down by 0.2 of its height: IoU 0.67 -> matched at 0.5
             too), F with_mask 36 px found at IoU 0.4 (matched at 0.3 only, right label), a detection on an
             unknown-class face (ignored), no false alarm.
    """
    p1 = scene(
        [((10, 10, 40, 40), "with_mask"), ((100, 10, 50, 50), "without_mask"), ((300, 300, 20, 20), "with_mask"),
         ((200, 200, 40, 40), "mask_weared_incorrect")],
        [det((10, 10, 40, 40), 0.95, "with_mask"), det((12, 10, 40, 40), 0.6, "with_mask"),
         det((100, 10, 50, 50), 0.9, "with_mask"), det((200, 200, 40, 40), 0.8, "without_mask"),
         det((500, 400, 30, 30), 0.7, "without_mask")],
        name="one.png")
    e_box = (300, 100, 100, 100)
    f_box = (10, 300, 36, 36)
    f_det = (10, 300 + 13, 36, 36)  # overlap 36*23 / (2*36*36 - 36*23) = 0.469... check below
    p2 = scene(
        [(e_box, "without_mask"), (f_box, "with_mask")],
        [det((300, 80, 100, 100), 0.9, "without_mask"), det(f_det, 0.8, "with_mask"),
         det((500, 10, 50, 50), 0.85, "with_mask")],
        ignored=[((500, 10, 50, 50), "beard")], name="two.png")
    assert 0.3 <= ev.iou(f_box, f_det) < 0.5
    assert ev.iou(e_box, (300, 80, 100, 100)) >= 0.5
    return [p1, p2]


def test_figures_on_hand_made_scenes(hand_made):
    f = ev.score_scenes(hand_made, CLASSES, 0.3)
    d = f["detector"]
    assert (d["faces"], d["found"]) == (6, 5)
    assert d["recall_by_class"]["with_mask"] == {"faces": 3, "found": 2, "recall": 2 / 3}
    assert d["recall_by_class"]["mask_weared_incorrect"]["recall"] == 1.0
    assert d["recall_by_size"]["16-32"] == {"faces": 1, "found": 0, "recall": 0.0}
    assert d["recall_by_size"]["32-64"]["found"] == 4 and d["recall_by_size"][">=64"]["found"] == 1
    # 8 detections, 1 on the unknown-class face is not counted; 5 of the 7 matched (double + false alarm not).
    assert (d["detections"], d["detections_on_unknown_class"], d["matched_detections"]) == (7, 1, 5)
    assert d["precision"] == pytest.approx(5 / 7)

    c = f["classifier"]
    assert c["faces"] == 4  # A, B, E, F (D's class is not one of the model's)
    assert c["confusion_matrix"] == [[2, 0], [1, 1]]
    assert c["accuracy_by_class"] == {"with_mask": 1.0, "without_mask": 0.5}
    assert c["balanced_accuracy"] == pytest.approx(0.75)
    assert c["labels_given_to_other_classes"] == {"mask_weared_incorrect": {"with_mask": 0, "without_mask": 1}}
    assert c["by_size"]["32-64"] == {"faces": 3, "accuracy": 2 / 3, "balanced_accuracy": 0.5}  # A, F right, B wrong
    assert c["by_size"][">=64"]["accuracy"] == 1.0 and "16-32" not in c["by_size"]

    p = f["pipeline"]
    assert p["outcomes_by_class"]["with_mask"] == {"faces": 3, "correct": 2, "wrong_label": 0, "missed": 1}
    assert p["outcomes_by_class"]["without_mask"] == {"faces": 2, "correct": 1, "wrong_label": 1, "missed": 0}
    assert p["outcomes_by_class"]["mask_weared_incorrect"] == {"faces": 1, "correct": 0, "wrong_label": 0,
                                                               "missed": 0, "found": 1}
    assert p["false_alarms"] == 2 and p["false_alarms_per_image"] == 1.0
    assert p["most_false_alarms"] == [{"image": "one.png", "false_alarms": 2}]

    h = f["headline"]  # >= 32 px, incorrect left out: A, B, E, F -> all found
    assert h["faces"] == 4 and h["detection_recall"] == 1.0
    assert h["unmatched_per_image"] == 1.0
    assert h["balanced_accuracy"] == pytest.approx(0.75)
    assert h["meets_targets"] is False

    o = f["box_offsets"]
    assert o["pairs"] == 5
    assert o["median_height_ratio"] == 1.0
    assert o["median_centre_dy"] == 0.0  # dy of the five pairs: 0, 0, 0, -0.2, +13/36


def test_stricter_iou_and_incorrect_as_without(hand_made):
    strict = ev.score_scenes(hand_made, CLASSES, 0.5)
    assert strict["detector"]["found"] == 4  # F (IoU 0.47) is now missed and its detection a false alarm
    assert strict["pipeline"]["false_alarms"] == 3
    assert strict["headline"]["detection_recall"] == 0.75

    mapped = ev.score_scenes(hand_made, CLASSES, 0.3, incorrect_as_without=True)
    c = mapped["classifier"]
    assert c["faces"] == 5 and c["confusion_matrix"] == [[2, 0], [1, 2]]
    assert mapped["pipeline"]["outcomes_by_class"]["mask_weared_incorrect"] == {
        "faces": 1, "correct": 1, "wrong_label": 0, "missed": 0}
    # The headline slice always leaves mask_weared_incorrect out.
    assert mapped["headline"]["faces"] == 4


def test_targets_met_when_everything_is_right():
    faces = [((i * 60, 0, 50, 50), "with_mask" if i % 2 else "without_mask") for i in range(6)]
    detections = [det(box, 0.9, label) for box, label in faces]
    h = ev.score_scenes([scene(faces, detections)], CLASSES)["headline"]
    assert (h["detection_recall"], h["unmatched_per_image"], h["balanced_accuracy"]) == (1.0, 0.0, 1.0)
    assert h["meets_targets"] is True


# ------------------------------------------------------------------------------------------------ VOC files


def voc(filename="a.png", objects=(("with_mask", (10, 20, 50, 70)),), size=(100, 80), extra=""):
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
        f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects)
    name_xml = f"<filename>{filename}</filename>" if filename is not None else ""
    return f"<annotation><folder>images</folder>{name_xml}{size_xml}{objs}{extra}</annotation>"


def test_parse_valid_voc(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(voc(objects=[("with_mask", (10, 20, 50, 70)), ("without_mask", (60, 40, 101, 81)),
                                 ("hat", (0, 0, 5, 5))]))
    a = ev.parse_voc(path)
    assert (a.filename, a.width, a.height) == ("a.png", 100, 80)
    # width = xmax - xmin; the box reaching a pixel past the edge is clipped to the image.
    assert a.objects == [ev.GroundTruth((10.0, 20.0, 40.0, 50.0), "with_mask"),
                         ev.GroundTruth((60.0, 40.0, 40.0, 40.0), "without_mask")]
    assert a.unknown == [ev.GroundTruth((0.0, 0.0, 5.0, 5.0), "hat")]

    empty = tmp_path / "b.xml"
    empty.write_text(voc(objects=(), size=None, filename=None))
    b = ev.parse_voc(empty)
    assert (b.filename, b.width, b.objects) == ("", 0, [])


@pytest.mark.parametrize("text, reason", [
    ("<annotation><object><name>with_mask</name>", "malformed XML"),
    ("", "malformed XML"),
    ("<svg></svg>", "not a PASCAL VOC file"),
    ('<?xml version="1.0" encoding="no-such-encoding"?><annotation/>', "malformed XML"),
])
def test_parse_rejects_malformed_files(tmp_path, text, reason):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ev.AnnotationError, match=reason) as info:
        ev.parse_voc(path)
    assert "bad.xml" in str(info.value) and "\n" not in str(info.value)


GOOD_OBJECT = "<object><name>without_mask</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>11</xmax><ymax>22</ymax>" \
    "</bndbox></object>"


@pytest.mark.parametrize("bad_object, reason", [
    ("<object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>10</xmax><ymax>70</ymax>"
     "</bndbox></object>", "empty box"),  # xmin == xmax
    ("<object><name>with_mask</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>ten</xmax><ymax>9</ymax></bndbox>"
     "</object>", "not a number"),
    ("<object><name>with_mask</name></object>", "missing <bndbox>"),
    ("<object><name>with_mask</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox></object>",
     "missing <ymax>"),
    ("<object><bndbox><xmin>1</xmin></bndbox></object>", "missing <name>"),
])
def test_one_bad_object_is_left_out_and_the_rest_of_the_file_kept(tmp_path, bad_object, reason):
    """Issue 9: one zero-area box (xmin == xmax) used to drop the whole file, valid faces included."""
    path = tmp_path / "bad.xml"
    path.write_text(f"<annotation><filename>a.png</filename>{bad_object}{GOOD_OBJECT}</annotation>")
    a = ev.parse_voc(path)
    assert a.objects == [ev.GroundTruth((1.0, 2.0, 10.0, 20.0), "without_mask")]
    assert len(a.bad) == 1 and reason in a.bad[0] and "bad.xml object 1" in a.bad[0] and "\n" not in a.bad[0]


def test_scene_set_counts_problems_and_finds_images_by_stem(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for name in ("a.png", "b.jpg", "extra.png"):
        (tmp_path / "images" / name).write_bytes(b"x")
    (tmp_path / "annotations" / "a.xml").write_text(voc("a.png", objects=[("with_mask", (1, 1, 9, 9)),
                                                                          ("beard", (20, 20, 30, 30))]))
    (tmp_path / "annotations" / "b.xml").write_text(voc("b.png"))  # named .png, stored as .jpg
    (tmp_path / "annotations" / "c.xml").write_text(voc("c.png"))  # no such image
    (tmp_path / "annotations" / "d.xml").write_text("<annotation>")
    s = ev.load_scene_set(tmp_path)
    assert [image.name for _, image in s.items] == ["a.png", "b.jpg"]
    assert len(s.problems["malformed"]) == 1 and "d.xml" in s.problems["malformed"][0]
    assert len(s.problems["missing_image"]) == 1 and "c.png" in s.problems["missing_image"][0]
    assert len(s.problems["unknown_class"]) == 1 and "'beard'" in s.problems["unknown_class"][0]
    assert [p.name for p in s.unannotated_images] == ["extra.png"]


def test_scene_set_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        ev.load_scene_set(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no PASCAL VOC annotation files"):
        ev.load_scene_set(tmp_path)
    (tmp_path / "x.xml").write_text("not xml")
    with pytest.raises(DatasetError, match="no usable annotation"):
        ev.load_scene_set(tmp_path)


# ------------------------------------------------------------------------------------------------ end to end

# The face inside detect_support.face_photo() (240 x 210): YuNet's box, x y w h.
FACE_IN_PHOTO = (59, 48, 91, 109)
# RGB multipliers. The tiny classifier of detect_support says with_mask for reddish crops, without_mask for bluish.
RED, BLUE = (1.4, 0.8, 0.6), (0.6, 0.75, 1.35)


def paste_face(canvas, x, y, face_height, tint):
    """Paste the tinted face photo so that its face is face_height px tall; returns the face's box (x, y, w, h)."""
    import cv2

    rgb = face_photo()[:, :, ::-1]
    scale = face_height / FACE_IN_PHOTO[3]
    patch = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    patch = np.clip(patch * np.array(tint), 0, 255).astype(np.uint8)
    canvas[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    fx, fy, fw, fh = FACE_IN_PHOTO
    return (x + fx * scale, y + fy * scale, fw * scale, fh * scale)


def write_scene(folder, name, faces, annotations):
    """faces: (x, y, face_height, tint) pasted; annotations: (label, box or the index of a pasted face)."""
    import cv2

    canvas = np.full((420, 560, 3), 110, np.uint8)
    boxes = [paste_face(canvas, *face) for face in faces]
    cv2.imwrite(str(folder / "images" / f"{name}.png"), canvas[:, :, ::-1])
    objects = []
    for label, where in annotations:
        x, y, w, h = boxes[where] if isinstance(where, int) else where
        objects.append((label, (round(x), round(y), round(x + w), round(y + h))))
    (folder / "annotations" / f"{name}.xml").write_text(voc(f"{name}.png", objects, size=(560, 420)))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three scenes with known answers, one malformed annotation, one annotation without its image.

    a: with_mask (red, 70 px) right, without_mask (blue, 110 px) right.
    b: a blue face annotated with_mask (wrong label), an annotated with_mask face where there is none (missed, 40 px),
       an unannotated red face (false alarm).
    c: a blue face annotated mask_weared_incorrect (said without_mask), a face of unknown class "beard" (neither hit
       nor false alarm).
    """
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    # Also in a: a zero-area box (left out with a warning, the file's faces kept) and a box wholly outside the
    # 560x420 photo (not evaluated, with a warning).
    write_scene(root, "a", [(20, 40, 70, RED), (250, 60, 110, BLUE)],
                [("with_mask", 0), ("without_mask", 1), ("with_mask", (300, 300, 0, 40)),
                 ("without_mask", (600, 10, 30, 30))])
    write_scene(root, "b", [(30, 30, 80, BLUE), (300, 150, 60, RED)],
                [("with_mask", 0), ("with_mask", (400, 30, 40, 44))])
    write_scene(root, "c", [(40, 50, 90, BLUE), (300, 60, 80, RED)],
                [("mask_weared_incorrect", 0), ("beard", 1)])
    (root / "annotations" / "broken.xml").write_text("<annotation><object>")
    (root / "annotations" / "lost.xml").write_text(voc("lost.png"))
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("model"))


def test_scenes_end_to_end(scenes, tiny_model, tmp_path):
    report = tmp_path / "report"
    result = run_script("evaluate.py", "--scenes", scenes, "--model", tiny_model, "--report", report, "--quiet")
    assert result.returncode == 1, result.stderr  # done, with skipped files
    assert "Traceback" not in result.stderr
    assert "broken.xml" in result.stderr and "lost.png" in result.stderr and "'beard'" in result.stderr
    assert "a.xml object 3 (with_mask): empty box" in result.stderr
    assert result.stderr.count("lies wholly outside the 560x420 photo") == 1
    assert "Warning" not in result.stderr  # no sklearn warnings
    assert "detection recall 75.0%" in result.stdout

    data = json.loads((report / "report.json").read_text())
    assert {k: len(v) for k, v in data["data"]["skipped"].items()} == {
        "malformed": 1, "missing_image": 1, "unknown_class": 1, "bad_box": 1, "outside_image": 1, "undecodable": 0}
    assert data["data"]["images"] == 3 and data["data"]["faces"] == 5  # the "beard" face is not evaluated
    outcomes = sorted((f["image"], f["label"], f["outcome"]) for f in data["faces"])
    assert outcomes == [
        ("a.png", "with_mask", "correct"), ("a.png", "without_mask", "correct"),
        ("b.png", "with_mask", "missed"), ("b.png", "with_mask", "wrong_label"),
        ("c.png", "mask_weared_incorrect", "found")]
    assert [(a["image"], a["label"]) for a in data["false_alarms"]] == [("b.png", "with_mask")]

    h = data["headline"]
    assert h["faces"] == 4 and h["detection_recall"] == pytest.approx(3 / 4)
    assert h["unmatched_per_image"] == pytest.approx(1 / 3)
    assert h["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert set(data["by_iou"]) == {"0.3", "0.5"}
    split = data["by_iou"]["0.3"]["classifier"]["labels_given_to_other_classes"]
    assert split == {"mask_weared_incorrect": {"with_mask": 0, "without_mask": 1}}
    offsets = data["by_iou"]["0.3"]["box_offsets"]
    assert offsets["pairs"] == 4 and abs(offsets["median_centre_dy"]) < 0.1  # annotations made from YuNet boxes

    for name in ("summary.md", "confusion_matrix.png", "recall_by_size.png", "gallery.png"):
        assert (report / name).stat().st_size > 0, name
    assert not [p for p in report.iterdir() if p.name.startswith(".")]  # no temporary files left
    summary = (report / "summary.md").read_text()
    assert "| 0.3 | 75.0% | 0.33 | 75.0% | 4 |" in summary
    assert "mask_weared_incorrect faces found were labelled: with_mask 0, without_mask 1" in summary

    mapped = run_script("evaluate.py", "--scenes", scenes, "--model", tiny_model, "--report", tmp_path / "m",
                        "--quiet", "--incorrect-as-without", "--iou", "0.5")
    assert mapped.returncode == 1, mapped.stderr
    c = json.loads((tmp_path / "m" / "report.json").read_text())["by_iou"]["0.5"]["classifier"]
    assert c["faces"] == 4 and c["confusion_matrix"][1] == [0, 2]


def test_folder_end_to_end(tmp_path, tiny_model):
    import cv2

    folder = tmp_path / "faces"
    crops = {"with_mask": RED, "without_mask": BLUE}
    for label, tint in crops.items():
        (folder / label).mkdir(parents=True)
        for i, size in enumerate((60, 100, 180)):
            face = cv2.resize(face_photo(), (size, size))  # BGR
            tinted = np.clip(face * np.array(tint[::-1]), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / label / f"{i}.png"), tinted)
    (folder / "without_mask" / "broken.jpg").write_bytes(b"not a picture")
    (folder / "hats").mkdir()
    (folder / "hats" / "h.png").write_bytes(b"x")
    report = tmp_path / "r"
    result = run_script("evaluate.py", "--folder", folder, "--model", tiny_model, "--report", report, "--quiet")
    assert result.returncode == 1, result.stderr
    assert "broken.jpg" in result.stderr and "hats" in result.stderr
    data = json.loads((report / "report.json").read_text())
    assert data["images"] == 6 and data["accuracy"] == 1.0
    assert data["confusion_matrix"] == [[3, 0], [0, 3]]
    assert data["curves"]["with_mask"]["roc_auc"] == 1.0
    assert data["per_class"]["without_mask"]["f1"] == 1.0
    for name in ("summary.md", "confusion_matrix.png", "roc.png", "precision_recall.png"):
        assert (report / name).stat().st_size > 0, name
    assert "accuracy 100.00%" in result.stdout


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp: ["--scenes", tmp / "missing"], "scenes folder not found"),
    (lambda tmp: ["--scenes", tmp], "no PASCAL VOC annotation files"),
    (lambda tmp: ["--folder", tmp / "missing"], "dataset folder not found"),
    (lambda tmp: ["--folder", tmp], "no class folders"),
    (lambda tmp: ["--scenes", tmp, "--iou", "0"], "--iou"),
])
def test_bad_folders_are_one_line_and_exit_2(tmp_path, make_args, message):
    result = run_script("evaluate.py", *make_args(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert message in lines[-1], result.stderr
    if not message.startswith("--"):  # our own errors: exactly one line (argparse adds its usage first)
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_help_is_instant():
    started = time.perf_counter()
    result = run_script("evaluate.py", "--help")
    assert result.returncode == 0 and "--scenes" in result.stdout and "--incorrect-as-without" in result.stdout
    assert time.perf_counter() - started < 5
    assert (REPO / "evaluate.py").is_file()
