"""evaluate.py: IoU and matching on hand-made boxes, the figures, the VOC reader, and end-to-end runs (in-process)
on generated scenes (a real face photo pasted onto canvases, with VOC files written for it) and on a labelled
folder."""

import json

import numpy as np
import pytest
from conftest import run_command
from detect_support import face_photo, save_tiny_classifier

from mask_detection import boxes, matching
from mask_detection.annotations import voc
from mask_detection.annotations.scene_set import load_scene_set
from mask_detection.annotations.voc import GroundTruth
from mask_detection.commands import evaluate
from mask_detection.detections import Detection
from mask_detection.errors import DatasetError, MaskDetectionError
from mask_detection.evaluation import evaluate_scenes, scenes, scoring

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLASSES = ["with_mask", "without_mask"]
THREE_CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def one_iou(a, b):
    return float(boxes.iou_matrix([a], [b])[0, 0])


# ------------------------------------------------------------------------------------------------ IoU, matching


def test_iou_known_values():
    assert one_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert one_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert one_iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges share no area
    assert one_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert one_iou((0, 0, 10, 10), (2, 2, 5, 5)) == pytest.approx(25 / 100)  # one inside the other
    assert one_iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # empty box
    assert one_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # two empty boxes: no division by zero
    matrix = boxes.iou_matrix([(0, 0, 10, 10), (5, 0, 10, 10)], [(0, 0, 10, 10), (100, 100, 1, 1), (5, 0, 10, 10)])
    np.testing.assert_allclose(matrix, [[1, 0, 50 / 150], [50 / 150, 0, 1]])
    assert boxes.iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_matching_no_detections_no_faces_no_overlap():
    match = matching.match_detections
    assert match([], [], [(0, 0, 10, 10)], 0.3) == []
    assert match([(0, 0, 10, 10)], [0.9], [], 0.3) == [None]
    # IoU 25/175 = 0.14: below 0.3, above 0.1
    assert match([(5, 5, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.3) == [None]
    assert match([(5, 5, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.1) == [0]
    assert match([(50, 50, 10, 10)], [0.9], [(0, 0, 10, 10)], 0.0) == [None]  # no overlap never matches


def test_matching_double_detection_counts_once_highest_score_first():
    face = [(0, 0, 10, 10)]
    # The lower-scored detection overlaps the face more, but the higher score is taken first.
    assert matching.match_detections([(0, 0, 10, 10), (1, 0, 10, 10)], [0.6, 0.9], face, 0.3) == [None, 0]


def test_matching_ties_keep_the_given_order_and_the_lower_face_index():
    face = [(0, 0, 10, 10)]
    assert matching.match_detections([(1, 0, 10, 10), (0, 0, 10, 10)], [0.8, 0.8], face, 0.3) == [0, None]
    # One detection exactly between two faces (equal IoU): the lower face index.
    assert matching.match_detections([(5, 0, 10, 10)], [0.9], [(0, 0, 10, 10), (10, 0, 10, 10)], 0.3) == [0]


def test_one_detection_overlapping_two_faces_takes_one_the_other_stays_for_the_next():
    match = matching.match_detections
    faces = [(0, 0, 10, 10), (8, 0, 10, 10)]
    wide = (0, 0, 18, 10)  # IoU 100/180 with face 0, 100/180 with face 1
    tight = (8, 0, 10, 10)  # exactly face 1
    # The wide box has the higher score: it takes face 0 (tie -> lower index), the tight box gets face 1.
    assert match([wide, tight], [0.9, 0.8], faces, 0.3) == [0, 1]
    # Tight first: face 1 is taken, the wide box falls back to face 0.
    assert match([wide, tight], [0.7, 0.8], faces, 0.3) == [0, 1]
    # Only the wide box: one face found, the other missed.
    assert match([wide], [0.9], faces, 0.3) == [0]
    # Greedy, not optimal: the best detection takes the face the second one needed.
    assert match([(0, 0, 14, 10), (0, 0, 10, 10)], [0.9, 0.8], [(0, 0, 12, 10)], 0.3) == [0, None]


def test_size_buckets_boundaries():
    assert [boxes.size_bucket((0, 0, w, 100)) for w in (15.9, 16, 31, 32, 63.5, 64, 500)] == [
        "<16",
        "16-32",
        "16-32",
        "32-64",
        "32-64",
        ">=64",
        ">=64",
    ]
    assert boxes.box_size((0, 0, 40, 20)) == 20


# ------------------------------------------------------------------------------------------------ figures


def det(box, score, label, p=0.9, class_names=CLASSES):
    """A detection saying ``label`` with probability ``p``, the rest shared by the other classes."""
    index = class_names.index(label)
    rest = (1 - p) / (len(class_names) - 1)
    probs = tuple(p if i == index else rest for i in range(len(class_names)))
    return Detection(box, score, index, label, p, probs)


def scene(faces, detections, ignored=(), name="s.png"):
    return scenes.SceneResult(
        name,
        None,
        (480, 640),
        [GroundTruth(b, c) for b, c in faces],
        [GroundTruth(b, c) for b, c in ignored],
        detections,
    )


def hand_made_scenes(class_names=CLASSES, incorrect_said="without_mask"):
    """Two photos with known answers (IoU 0.3).

    Photo 1: A with_mask 40 px found+right, B without_mask 50 px found+wrong, C with_mask 20 px missed,
             D mask_weared_incorrect 40 px found -> ``incorrect_said``, a double detection of A, a false alarm.
    Photo 2: E without_mask 100 px found+right (box shifted down by 0.2 of its height: IoU 0.67 -> matched at 0.5
             too), F with_mask 36 px found at IoU 0.47 (matched at 0.3 only, right label), a detection on an
             unknown-class face (ignored), no false alarm.
    """

    def d(box, score, label):
        return det(box, score, label, class_names=class_names)

    p1 = scene(
        [
            ((10, 10, 40, 40), "with_mask"),
            ((100, 10, 50, 50), "without_mask"),
            ((300, 300, 20, 20), "with_mask"),
            ((200, 200, 40, 40), "mask_weared_incorrect"),
        ],
        [
            d((10, 10, 40, 40), 0.95, "with_mask"),
            d((12, 10, 40, 40), 0.6, "with_mask"),
            d((100, 10, 50, 50), 0.9, "with_mask"),
            d((200, 200, 40, 40), 0.8, incorrect_said),
            d((500, 400, 30, 30), 0.7, "without_mask"),
        ],
        name="one.png",
    )
    e_box = (300, 100, 100, 100)
    f_box = (10, 300, 36, 36)
    f_det = (10, 300 + 13, 36, 36)
    p2 = scene(
        [(e_box, "without_mask"), (f_box, "with_mask")],
        [
            d((300, 80, 100, 100), 0.9, "without_mask"),
            d(f_det, 0.8, "with_mask"),
            d((500, 10, 50, 50), 0.85, "with_mask"),
        ],
        ignored=[((500, 10, 50, 50), "beard")],
        name="two.png",
    )
    assert 0.3 <= one_iou(f_box, f_det) < 0.5
    assert one_iou(e_box, (300, 80, 100, 100)) >= 0.5
    return [p1, p2]


@pytest.fixture
def hand_made():
    return hand_made_scenes()


def test_figures_on_hand_made_scenes(hand_made):
    f = scoring.score_scenes(hand_made, CLASSES, 0.3)
    d = f.detector
    assert (d["faces"], d["found"]) == (6, 5)
    assert d["recall_by_class"]["with_mask"] == {"faces": 3, "found": 2, "recall": 2 / 3}
    assert d["recall_by_class"]["mask_weared_incorrect"]["recall"] == 1.0
    assert d["recall_by_size"]["16-32"] == {"faces": 1, "found": 0, "recall": 0.0}
    assert d["recall_by_size"]["32-64"]["found"] == 4 and d["recall_by_size"][">=64"]["found"] == 1
    # 8 detections, 1 on the unknown-class face is not counted; 5 of the 7 matched (double + false alarm not).
    assert (d["detections"], d["detections_on_unknown_class"], d["matched_detections"]) == (7, 1, 5)
    assert d["precision"] == pytest.approx(5 / 7)

    c = f.classifier
    assert c["faces"] == 4  # A, B, E, F (D's class is not one of the model's)
    assert c["confusion_matrix"] == [[2, 0], [1, 1]]
    assert c["accuracy_by_class"] == {"with_mask": 1.0, "without_mask": 0.5}
    assert c["balanced_accuracy"] == pytest.approx(0.75)
    assert c["labels_given_to_other_classes"] == {"mask_weared_incorrect": {"with_mask": 0, "without_mask": 1}}
    assert c["by_size"]["32-64"] == {  # A, F right, B wrong; every probability 0.9, right 2 times of 3
        "faces": 3,
        "accuracy": 2 / 3,
        "balanced_accuracy": 0.5,
        "without_mask_found": 1,
        "without_mask_caught": 0,
        "violations_caught": 0.0,
        "with_mask_found": 2,
        "with_mask_recognised": 2,
        "with_mask_recall": 1.0,
        "ece": pytest.approx(0.9 - 2 / 3),
    }
    assert c["by_size"][">=64"]["violations_caught"] == 1.0 and c["by_size"][">=64"]["ece"] == pytest.approx(0.1)
    assert (c["violations_caught"], c["ece"]) == (0.5, pytest.approx(0.9 - 0.75))
    assert c["by_size"][">=64"]["accuracy"] == 1.0 and "16-32" not in c["by_size"]

    p = f.pipeline
    assert p["outcomes_by_class"]["with_mask"] == {"faces": 3, "correct": 2, "wrong_label": 0, "missed": 1}
    assert p["outcomes_by_class"]["without_mask"] == {"faces": 2, "correct": 1, "wrong_label": 1, "missed": 0}
    assert p["outcomes_by_class"]["mask_weared_incorrect"] == {
        "faces": 1,
        "correct": 0,
        "wrong_label": 0,
        "missed": 0,
        "found": 1,
    }
    assert p["false_alarms"] == 2 and p["false_alarms_per_image"] == 1.0
    assert p["most_false_alarms"] == [{"image": "one.png", "false_alarms": 2}]

    h = f.headline  # >= 32 px, incorrect left out: A, B, E, F -> all found
    assert h["slice"] == "faces >= 32 px on the short side, mask_weared_incorrect left out"
    assert h["faces"] == 4 and h["detection_recall"] == 1.0
    assert h["unmatched_per_image"] == 1.0
    assert h["balanced_accuracy"] == pytest.approx(0.75)
    assert h["meets_targets"] is False
    assert (h["without_mask_found"], h["without_mask_caught"], h["violations_caught"]) == (2, 1, 0.5)
    assert h["ece"] == pytest.approx(0.15)

    o = f.box_offsets
    assert o["pairs"] == 5
    assert o["median_height_ratio"] == 1.0
    assert o["median_centre_dy"] == 0.0  # dy of the five pairs: 0, 0, 0, -0.2, +13/36


def test_stricter_iou_and_incorrect_as_without(hand_made):
    strict = scoring.score_scenes(hand_made, CLASSES, 0.5)
    assert strict.detector["found"] == 4  # F (IoU 0.47) is now missed and its detection a false alarm
    assert strict.pipeline["false_alarms"] == 3
    assert strict.headline["detection_recall"] == 0.75

    mapped = scoring.score_scenes(hand_made, CLASSES, 0.3, incorrect_as_without=True)
    c = mapped.classifier
    assert c["faces"] == 5 and c["confusion_matrix"] == [[2, 0], [1, 2]]
    assert c["labels_given_to_other_classes"] == {
        "mask_weared_incorrect (scored as without_mask)": {"with_mask": 0, "without_mask": 1}
    }
    assert mapped.pipeline["outcomes_by_class"]["mask_weared_incorrect"] == {
        "faces": 1,
        "correct": 1,
        "wrong_label": 0,
        "missed": 0,
    }
    # A model without the class: the headline slice leaves mask_weared_incorrect out, mapped or not.
    assert mapped.headline["faces"] == 4


def test_a_model_that_names_the_third_class_gets_it_scored():
    """The same scenes, a model that can say mask_weared_incorrect (and says it for D): D is a class of its own in
    the classifier's figures, the outcomes and the headline; asking to map it to without_mask changes nothing."""
    three = hand_made_scenes(THREE_CLASSES, incorrect_said="mask_weared_incorrect")
    for incorrect_as_without in (False, True):
        f = scoring.score_scenes(three, THREE_CLASSES, 0.3, incorrect_as_without=incorrect_as_without)
        c = f.classifier
        assert c["faces"] == 5  # A, B, D, E, F
        assert c["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 0, 1]]
        assert c["accuracy_by_class"] == {"with_mask": 1.0, "without_mask": 0.5, "mask_weared_incorrect": 1.0}
        assert c["labels_given_to_other_classes"] == {}
        assert f.pipeline["outcomes_by_class"]["mask_weared_incorrect"] == {
            "faces": 1,
            "correct": 1,
            "wrong_label": 0,
            "missed": 0,
        }
        h = f.headline  # >= 32 px, every class: A, B, D, E, F
        assert h["slice"] == "faces >= 32 px on the short side"
        assert h["faces"] == 5 and h["detection_recall"] == 1.0
        assert h["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
        assert h["pipeline_correct"] == pytest.approx(4 / 5)


def test_violations_caught_and_calibration_per_size():
    """40 px: 4 bare faces, 3 said without_mask (p 0.9, 0.9, 0.7), 1 said with_mask (p 0.62), 2 masked faces right
    (p 0.95). 12 px: 2 bare faces both said with_mask (p 0.8). ECE over 15 bins of width 1/15 by hand: 40 px:
    bins {0.9, 0.9} all right, {0.7} right, {0.62} wrong, {0.95, 0.95} right ->
    (2 * 0.1 + 0.3 + 0.62 + 2 * 0.05) / 6; 12 px: one bin {0.8, 0.8}, none right -> 0.8."""
    said = [("without_mask", 0.9), ("without_mask", 0.9), ("without_mask", 0.7), ("with_mask", 0.62)]
    said += [("with_mask", 0.95), ("with_mask", 0.95)]
    truths = ["without_mask"] * 4 + ["with_mask"] * 2
    boxes = [(i * 60, 0, 40, 40) for i in range(6)]
    faces = list(zip(boxes, truths, strict=True)) + [((i * 60, 200, 12, 12), "without_mask") for i in range(2)]
    detections = [det(box, 0.9, label, p) for box, (label, p) in zip(boxes, said, strict=True)]
    detections += [det((i * 60, 200, 12, 12), 0.9, "with_mask", 0.8) for i in range(2)]
    f = scoring.score_scenes([scene(faces, detections)], CLASSES)
    big, small = f.classifier["by_size"]["32-64"], f.classifier["by_size"]["<16"]
    assert (big["without_mask_found"], big["without_mask_caught"], big["violations_caught"]) == (4, 3, 0.75)
    assert big["ece"] == pytest.approx(1.22 / 6)
    assert (small["without_mask_found"], small["without_mask_caught"], small["violations_caught"]) == (2, 0, 0.0)
    assert small["ece"] == pytest.approx(0.8)
    assert f.classifier["violations_caught"] == pytest.approx(3 / 6)
    assert f.classifier["ece"] == pytest.approx((1.22 + 2 * 0.8) / 8)  # the 12 px bin 0.8 is apart from the rest
    h = f.headline  # >= 32 px: the 40 px faces only
    assert (h["violations_caught"], h["ece"]) == (0.75, pytest.approx(1.22 / 6))
    assert (h["with_mask_found"], h["with_mask_recognised"], h["with_mask_recall"]) == (2, 2, 1.0)


def test_masks_recognised_counts_masked_faces_called_bare():
    """3 masked faces of 40 px: 2 said with_mask, 1 said without_mask (a false alarm at the door); 1 bare face."""
    truths = ["with_mask"] * 3 + ["without_mask"]
    said = ["with_mask", "with_mask", "without_mask", "without_mask"]
    boxes = [(i * 60, 0, 40, 40) for i in range(4)]
    detections = [det(box, 0.9, label) for box, label in zip(boxes, said, strict=True)]
    f = scoring.score_scenes([scene(list(zip(boxes, truths, strict=True)), detections)], CLASSES)
    for figures in (f.headline, f.classifier, f.classifier["by_size"]["32-64"]):
        assert (figures["with_mask_found"], figures["with_mask_recognised"]) == (3, 2)
        assert figures["with_mask_recall"] == pytest.approx(2 / 3)
        assert (figures["without_mask_found"], figures["without_mask_caught"]) == (1, 1)


def test_targets_met_when_everything_is_right():
    faces = [((i * 60, 0, 50, 50), "with_mask" if i % 2 else "without_mask") for i in range(6)]
    detections = [det(box, 0.9, label) for box, label in faces]
    h = scoring.score_scenes([scene(faces, detections)], CLASSES).headline
    assert (h["detection_recall"], h["unmatched_per_image"], h["balanced_accuracy"]) == (1.0, 0.0, 1.0)
    assert h["meets_targets"] is True


# ------------------------------------------------------------------------------------------------ VOC files


def voc_xml(filename="a.png", objects=(("with_mask", (10, 20, 50, 70)),), size=(100, 80), extra=""):
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
        f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    name_xml = f"<filename>{filename}</filename>" if filename is not None else ""
    return f"<annotation><folder>images</folder>{name_xml}{size_xml}{objs}{extra}</annotation>"


def test_parse_valid_voc(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(
        voc_xml(objects=[("with_mask", (10, 20, 50, 70)), ("without_mask", (60, 40, 101, 81)), ("hat", (0, 0, 5, 5))])
    )
    a = voc.parse_voc(path)
    assert (a.filename, a.width, a.height) == ("a.png", 100, 80)
    # width = xmax - xmin; the box reaching a pixel past the edge is clipped to the image.
    assert a.objects == [
        GroundTruth((10.0, 20.0, 40.0, 50.0), "with_mask"),
        GroundTruth((60.0, 40.0, 40.0, 40.0), "without_mask"),
    ]
    assert a.unknown == [GroundTruth((0.0, 0.0, 5.0, 5.0), "hat")]

    empty = tmp_path / "b.xml"
    empty.write_text(voc_xml(objects=(), size=None, filename=None))
    b = voc.parse_voc(empty)
    assert (b.filename, b.width, b.objects) == ("", 0, [])


def test_dataset_aliases_count_as_the_registered_classes(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(
        voc_xml(
            objects=[
                ("mask", (1, 1, 11, 11)),
                ("No_Mask", (20, 1, 30, 11)),
                ("mask_worn_incorrectly", (40, 1, 50, 11)),
                ("hat", (60, 1, 70, 11)),
            ]
        )
    )
    a = voc.parse_voc(path)
    assert [g.label for g in a.objects] == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert [g.label for g in a.unknown] == ["hat"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("<annotation><object><name>with_mask</name>", "malformed XML"),
        ("", "malformed XML"),
        ("<svg></svg>", "not a PASCAL VOC file"),
        ('<?xml version="1.0" encoding="no-such-encoding"?><annotation/>', "malformed XML"),
        # Entity expansion ("billion laughs") is refused by defusedxml, not expanded.
        (
            '<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;">]>'
            "<annotation><filename>&y;</filename></annotation>",
            "refused, XML with entities",
        ),
    ],
)
def test_parse_rejects_malformed_files(tmp_path, text, reason):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(voc.AnnotationError, match=reason) as info:
        voc.parse_voc(path)
    assert "bad.xml" in str(info.value) and "\n" not in str(info.value)


GOOD_OBJECT = (
    "<object><name>without_mask</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>11</xmax><ymax>22</ymax>"
    "</bndbox></object>"
)


@pytest.mark.parametrize(
    "bad_object, reason",
    [
        (
            "<object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>10</xmax><ymax>70</ymax>"
            "</bndbox></object>",
            "empty box",
        ),  # xmin == xmax
        (
            "<object><name>with_mask</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>ten</xmax><ymax>9</ymax></bndbox>"
            "</object>",
            "not a number",
        ),
        ("<object><name>with_mask</name></object>", "missing <bndbox>"),
        (
            "<object><name>with_mask</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox></object>",
            "missing <ymax>",
        ),
        ("<object><bndbox><xmin>1</xmin></bndbox></object>", "missing <name>"),
    ],
)
def test_one_bad_object_is_left_out_and_the_rest_of_the_file_kept(tmp_path, bad_object, reason):
    """Issue 9: one zero-area box (xmin == xmax) used to drop the whole file, valid faces included."""
    path = tmp_path / "bad.xml"
    path.write_text(f"<annotation><filename>a.png</filename>{bad_object}{GOOD_OBJECT}</annotation>")
    a = voc.parse_voc(path)
    assert a.objects == [GroundTruth((1.0, 2.0, 10.0, 20.0), "without_mask")]
    assert len(a.bad) == 1 and reason in a.bad[0] and "bad.xml object 1" in a.bad[0] and "\n" not in a.bad[0]


def test_scene_set_counts_problems_and_finds_images_by_stem(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for name in ("a.png", "b.jpg", "extra.png"):
        (tmp_path / "images" / name).write_bytes(b"x")
    (tmp_path / "annotations" / "a.xml").write_text(
        voc_xml("a.png", objects=[("with_mask", (1, 1, 9, 9)), ("beard", (20, 20, 30, 30))])
    )
    (tmp_path / "annotations" / "b.xml").write_text(voc_xml("b.png"))  # named .png, stored as .jpg
    (tmp_path / "annotations" / "c.xml").write_text(voc_xml("c.png"))  # no such image
    (tmp_path / "annotations" / "d.xml").write_text("<annotation>")
    s = load_scene_set(tmp_path)
    assert [image.name for _, image in s.items] == ["a.png", "b.jpg"]
    assert len(s.problems["malformed"]) == 1 and "d.xml" in s.problems["malformed"][0]
    assert len(s.problems["missing_image"]) == 1 and "c.png" in s.problems["missing_image"][0]
    assert len(s.problems["unknown_class"]) == 1 and "'beard'" in s.problems["unknown_class"][0]
    assert [p.name for p in s.unannotated_images] == ["extra.png"]


def test_scene_set_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_scene_set(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no PASCAL VOC annotation files"):
        load_scene_set(tmp_path)
    (tmp_path / "x.xml").write_text("not xml")
    with pytest.raises(DatasetError, match="no usable annotation"):
        load_scene_set(tmp_path)


def test_library_messages_name_no_flags(tmp_path):
    with pytest.raises(MaskDetectionError) as info:
        evaluate_scenes(tmp_path, iou_threshold=0)
    assert str(info.value) == "the IoU threshold must be above 0 and at most 1, got 0"


# ------------------------------------------------------------------------------------------------ end to end

# The face inside detect_support.face_photo() (240 x 210): YuNet's box, x y w h.
FACE_IN_PHOTO = (59, 48, 91, 109)
# RGB multipliers. The tiny classifier of detect_support says its first class for reddish crops; for bluish ones,
# its second (all other outputs tie and the first maximum wins).
RED, BLUE = (1.4, 0.8, 0.6), (0.6, 0.75, 1.35)


def paste_face(canvas, x, y, face_height, tint):
    """Paste the tinted face photo so that its face is face_height px tall; returns the face's box (x, y, w, h)."""
    import cv2

    rgb = face_photo()[:, :, ::-1]
    scale = face_height / FACE_IN_PHOTO[3]
    patch = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    patch = np.clip(patch * np.array(tint), 0, 255).astype(np.uint8)
    canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
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
    (folder / "annotations" / f"{name}.xml").write_text(voc_xml(f"{name}.png", objects, size=(560, 420)))


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
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
    write_scene(
        root,
        "a",
        [(20, 40, 70, RED), (250, 60, 110, BLUE)],
        [("with_mask", 0), ("without_mask", 1), ("with_mask", (300, 300, 0, 40)), ("without_mask", (600, 10, 30, 30))],
    )
    write_scene(
        root, "b", [(30, 30, 80, BLUE), (300, 150, 60, RED)], [("with_mask", 0), ("with_mask", (400, 30, 40, 44))]
    )
    write_scene(root, "c", [(40, 50, 90, BLUE), (300, 60, 80, RED)], [("mask_weared_incorrect", 0), ("beard", 1)])
    (root / "annotations" / "broken.xml").write_text("<annotation><object>")
    (root / "annotations" / "lost.xml").write_text(voc_xml("lost.png"))
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("model"))


def test_scenes_end_to_end(scene_dir, tiny_model, tmp_path, capfd, recwarn):
    report = tmp_path / "report"
    code = run_command(evaluate, "--scenes", scene_dir, "--model", tiny_model, "--report", report, "--quiet")
    out, err = capfd.readouterr()
    assert code == 1, err  # done, with skipped files
    assert "Traceback" not in err
    assert "broken.xml" in err and "lost.png" in err and "'beard'" in err
    assert "a.xml object 3 (with_mask): empty box" in err
    assert err.count("lies wholly outside the 560x420 photo") == 1
    assert [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)] == []  # no sklearn warnings
    lines = out.splitlines()
    assert lines == [
        "3 photos, 5 annotated faces; slice (faces >= 32 px on the short side, mask_weared_incorrect left out, IoU "
        "0.3): detection recall 75.0%, unmatched detections per photo 0.33, balanced accuracy 75.0% -> targets not met",
        f"report written to {report}/ (summary.md, report.json, confusion_matrix.png, recall_by_size.png, gallery.png)",
    ]

    data = json.loads((report / "report.json").read_text())
    assert {k: len(v) for k, v in data["data"]["skipped"].items()} == {
        "malformed": 1,
        "missing_image": 1,
        "unknown_class": 1,
        "bad_box": 1,
        "outside_image": 1,
        "undecodable": 0,
    }
    assert data["data"]["images"] == 3 and data["data"]["faces"] == 5  # the "beard" face is not evaluated
    outcomes = sorted((f["image"], f["label"], f["outcome"]) for f in data["faces"])
    assert outcomes == [
        ("a.png", "with_mask", "correct"),
        ("a.png", "without_mask", "correct"),
        ("b.png", "with_mask", "missed"),
        ("b.png", "with_mask", "wrong_label"),
        ("c.png", "mask_weared_incorrect", "found"),
    ]
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
    assert "| 0.3 | 75.0% | 0.33 | 75.0% | 4 | " in summary
    h03 = data["by_iou"]["0.3"]["headline"]
    assert h03["violations_caught"] == 1.0 and 0 <= h03["ece"] <= 1  # a.png's bare face found and said so
    masks = f"{h03['with_mask_recall']:.1%} ({h03['with_mask_recognised']}/{h03['with_mask_found']})"
    assert f"| 4 | 100.0% (1/1) | {masks} | {h03['ece']:.3f} |" in summary
    assert "violations caught" in summary and "ECE" in summary
    assert "mask_weared_incorrect faces found were labelled: with_mask 0, without_mask 1" in summary


def test_scenes_incorrect_as_without_at_a_stricter_iou(scene_dir, tiny_model, tmp_path, capfd):
    code = run_command(
        evaluate,
        "--scenes",
        scene_dir,
        "--model",
        tiny_model,
        "--report",
        tmp_path / "m",
        "--quiet",
        "--incorrect-as-without",
        "--iou",
        "0.5",
    )
    assert code == 1, capfd.readouterr().err
    data = json.loads((tmp_path / "m" / "report.json").read_text())
    assert data["settings"]["iou"] == 0.5 and data["settings"]["incorrect_as_without"] is True
    c = data["by_iou"]["0.5"]["classifier"]
    assert c["faces"] == 4 and c["confusion_matrix"][1] == [0, 2]


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    # Bluish faces get the second class: mask_weared_incorrect.
    return save_tiny_classifier(
        tmp_path_factory.mktemp("three"), class_names=("with_mask", "mask_weared_incorrect", "without_mask")
    )


def test_scenes_with_a_model_that_names_the_third_class(scene_dir, three_class_model, tmp_path, capfd):
    """c's blue face, annotated mask_weared_incorrect, is said mask_weared_incorrect: a correct answer of a class of
    its own, in the headline too; the blue without_mask face of a is now a wrong label."""
    report = tmp_path / "r"
    code = run_command(
        evaluate,
        "--scenes",
        scene_dir,
        "--model",
        three_class_model,
        "--report",
        report,
        "--quiet",
        "--incorrect-as-without",
    )
    out, err = capfd.readouterr()
    assert code == 1, err
    assert "mask_weared_incorrect faces are scored as a class of their own: the model names it" in err
    assert "slice (faces >= 32 px on the short side, IoU 0.3)" in out
    data = json.loads((report / "report.json").read_text())
    assert data["settings"]["incorrect_as_without"] is False  # not applied: the model names the class
    outcomes = sorted((f["image"], f["label"], f["outcome"]) for f in data["faces"])
    assert outcomes == [
        ("a.png", "with_mask", "correct"),
        ("a.png", "without_mask", "wrong_label"),
        ("b.png", "with_mask", "missed"),
        ("b.png", "with_mask", "wrong_label"),
        ("c.png", "mask_weared_incorrect", "correct"),
    ]
    c = data["by_iou"]["0.3"]["classifier"]
    assert c["faces"] == 4 and c["labels_given_to_other_classes"] == {}
    # rows and columns in the model's order: with_mask, mask_weared_incorrect, without_mask
    assert c["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    h = data["headline"]
    assert h["faces"] == 5 and h["detection_recall"] == pytest.approx(4 / 5)
    assert h["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    summary = (report / "summary.md").read_text()
    assert "| mask_weared_incorrect | 1 | 1 | 0 | 0 |" in summary


def test_folder_end_to_end(tmp_path, tiny_model, capfd):
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
    code = run_command(
        evaluate, "--folder", folder, "--model", tiny_model, "--report", report, "--quiet", "--iou", "0.5"
    )
    out, err = capfd.readouterr()
    assert code == 1, err
    assert "broken.jpg" in err and "hats" in err
    assert "warning: --iou applies to --scenes only; ignored" in err
    data = json.loads((report / "report.json").read_text())
    assert data["images"] == 6 and data["accuracy"] == 1.0
    assert data["confusion_matrix"] == [[3, 0], [0, 3]]
    assert data["curves"]["with_mask"]["roc_auc"] == 1.0
    assert data["per_class"]["without_mask"]["f1"] == 1.0
    assert [len(v) for v in data["skipped"].values()] == [1, 0, 1]  # undecodable, unreadable, unknown folders
    for name in ("summary.md", "confusion_matrix.png", "roc.png", "precision_recall.png"):
        assert (report / name).stat().st_size > 0, name
    assert "accuracy 100.00%, balanced accuracy 100.00% on 6 images" in out
    assert out.rstrip().endswith(
        f"report written to {report}/ (summary.md, report.json, confusion_matrix.png, roc.png, precision_recall.png)"
    )


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp: ["--scenes", tmp / "missing"], "scenes folder not found"),
        (lambda tmp: ["--scenes", tmp], "no PASCAL VOC annotation files"),
        (lambda tmp: ["--folder", tmp / "missing"], "dataset folder not found"),
        (lambda tmp: ["--folder", tmp], "no class folders"),
        (lambda tmp: ["--scenes", tmp, "--iou", "0"], "--iou"),
    ],
)
def test_bad_folders_are_one_line_and_exit_2(tmp_path, make_args, message, capfd):
    code = run_command(evaluate, *make_args(tmp_path))
    err = capfd.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert message in lines[-1], err
    if not message.startswith("--"):  # our own errors: exactly one line (argparse adds its usage first)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
