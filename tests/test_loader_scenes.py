"""loader.py --scenes on generated PASCAL VOC scenes made of real face photos: real decoding, real detection."""

import hashlib

import cv2
import numpy as np
import pytest
from conftest import run_command

from mask_detection.arrays import load_arrays
from mask_detection.commands import loader
from mask_detection.crop import face_input
from mask_detection.detector import SMALL_PHOTO_UPSCALE, load_detector


def voc(filename, objects, width=480, height=360):
    """A labelImg-style VOC file: ``objects`` are (name, xmin, ymin, xmax, ymax)."""
    parts = [
        f"<annotation><folder>images</folder><filename>{filename}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for name, x0, y0, x1, y1 in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def scene_photo():
    """A 480x360 RGB street-like photo: the astronaut's face (a real face the detector finds) and a textured patch
    where no face is (an annotated face the detector misses)."""
    from skimage import data

    rng = np.random.default_rng(0)
    photo = np.full((360, 480, 3), 90, np.uint8)
    photo[20:260, 40:250] = data.astronaut()[20:260, 120:330]
    photo[250:330, 330:410] = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    return photo


def detector_face(photo):
    """The detector's face for the astronaut, at the detection scale of photos (what the loader must cut around)."""
    faces = load_detector(upscale=SMALL_PHOTO_UPSCALE).detect(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    assert faces, "the test photo must have a detectable face"
    return faces[0]


def make_scenes(root, photo, face_box, broken=True):
    """DIR/images + DIR/annotations. The face's annotated box sits lower than the detector's (as annotators draw
    them); ``broken`` adds every kind of unusable annotation."""
    x, y, w, h = face_box
    face = ("mask", x, y + h // 5, x + w, y + h + h // 5)  # an alias of with_mask, IoU with the detection >= 0.3
    patch = ("without_mask", 330, 250, 410, 330)
    objects = [face, patch]
    if broken:
        objects += [
            ("with_mask", 500, 10, 540, 50),  # wholly outside the 480x360 photo
            ("with_mask", 100, 300, 100, 340),  # zero area
            ("person", 300, 20, 340, 60),  # unknown class name
            ("mask_weared_incorrect", 300, 100, 340, 140),  # registered, but not a class of these arrays
            ("without_mask", 420, 20, 425, 25),  # 5 px: too small to be useful
        ]
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    cv2.imwrite(str(root / "images" / "street.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (root / "annotations" / "street.xml").write_text(voc("street.png", objects))
    if broken:
        (root / "annotations" / "gone.xml").write_text(voc("gone.jpg", [patch]))  # its photo is missing
    return root


@pytest.fixture(scope="module")
def photo_and_face():
    photo = scene_photo()
    return photo, detector_face(photo)


def test_scenes_alone_cut_like_detection_and_count_what_is_left_out(tmp_path, photo_and_face, capfd):
    photo, det_face = photo_and_face
    det_box = det_face.xywh
    scenes = make_scenes(tmp_path / "scenes", photo, det_box)
    out = tmp_path / "arrays.npz"
    assert run_command(loader, "--scenes", scenes, "--out", out, "--quiet") == 1  # broken annotations: status 1
    printed = capfd.readouterr()

    arrays = load_arrays(out)  # what train_model.py reads
    assert list(arrays["class_names"]) == ["with_mask", "without_mask"]
    assert arrays["labels"].tolist() == [0, 1]
    assert list(arrays["sources"]) == [f"scenes:{scenes.as_posix()}"] * 2
    assert list(arrays["paths"]) == ["images/street.png#0", "images/street.png#1"]
    # The face: cut around the detector's box (not the lower annotated one), by detection's own rule (the square
    # crop style by default, which the arrays record).
    annotated = (det_box[0], det_box[1] + det_box[3] // 5, det_box[2], det_box[3])
    assert np.array_equal(arrays["images"][0], face_input(photo, det_box))
    assert not np.array_equal(arrays["images"][0], face_input(photo, annotated))
    assert str(arrays["crop"]) == "square"
    # The patch: no detection matches it, so it is cut around its annotated box.
    assert np.array_equal(arrays["images"][1], face_input(photo, (330, 250, 80, 80)))
    assert list(arrays["hashes"]) == [hashlib.sha256(image.tobytes()).hexdigest() for image in arrays["images"]]

    table = printed.out
    assert "1 photo(s), cut around the matched detector box" in table
    assert [line.split()[1:] for line in table.splitlines() if line.startswith(("with_mask", "without_mask"))] == [
        ["1", "0", "0", "0", "1"],  # with_mask: detector box, annotated box, under 8 px, duplicates, kept
        ["0", "1", "1", "0", "1"],
    ]
    for counted in (
        "1 mask_weared_incorrect (not a class of these arrays)",
        "1 of unknown class 'person'",
        "1 box(es) outside the photo",
        "1 unusable box(es) (zero area or bad coordinates)",
        "1 annotation file(s) without their photo",
    ):
        assert counted in table, counted
    warnings = printed.err
    assert "gone.jpg not found" in warnings and "unknown class 'person'" in warnings
    assert "lies wholly outside the 480x360 photo" in warnings and "empty box" in warnings
    assert "4 scene face(s) or file(s) skipped as unusable" in warnings  # unknown, outside, zero area, missing photo


def test_clean_scenes_exit_0_and_no_face_crop_uses_annotated_boxes(tmp_path, photo_and_face, capfd):
    photo, det_face = photo_and_face
    det_box = det_face.xywh
    scenes = make_scenes(tmp_path / "scenes", photo, det_box, broken=False)
    out = tmp_path / "arrays.npz"
    assert run_command(loader, "--scenes", scenes, "--out", out, "--quiet", "--no-face-crop") == 0
    assert "annotated boxes" in capfd.readouterr().out
    annotated = (det_box[0], det_box[1] + det_box[3] // 5, det_box[2], det_box[3])
    arrays = load_arrays(out)
    assert np.array_equal(arrays["images"][0], face_input(photo, annotated))
    assert str(arrays["crop"]) == "square"  # boxes without landmarks: the square rule, and the file says so


def test_aligned_crop_style_cuts_on_the_detections_landmarks_and_is_recorded(tmp_path, photo_and_face):
    photo, det_face = photo_and_face
    scenes = make_scenes(tmp_path / "scenes", photo, det_face.xywh, broken=False)
    out = tmp_path / "arrays.npz"
    assert run_command(loader, "--scenes", scenes, "--out", out, "--quiet", "--crop", "aligned") == 0
    arrays = load_arrays(out)
    assert np.array_equal(arrays["images"][0], face_input(photo, det_face.xywh, landmarks=det_face.landmarks))
    assert not np.array_equal(arrays["images"][0], face_input(photo, det_face.xywh))
    # The patch no detection matches has no landmarks: cut around its annotated box by the square rule.
    assert np.array_equal(arrays["images"][1], face_input(photo, (330, 250, 80, 80)))
    assert str(arrays["crop"]) == "aligned"


def test_folders_and_scenes_combine_with_sources_and_duplicates_removed(tmp_path, photo_and_face, capfd):
    photo, det_face = photo_and_face
    det_box = det_face.xywh
    scenes = make_scenes(tmp_path / "scenes", photo, det_box, broken=False)
    dataset = tmp_path / "dataset"
    (dataset / "with_mask").mkdir(parents=True)
    (dataset / "without_mask").mkdir()
    cv2.imwrite(str(dataset / "with_mask" / "grey.png"), np.full((40, 30, 3), 200, np.uint8))
    cv2.imwrite(str(dataset / "without_mask" / "dark.png"), np.full((30, 40, 3), 20, np.uint8))
    # A scene crop that was also saved into a class folder: the same picture from two sources.
    patch_crop = face_input(photo, (330, 250, 80, 80))
    cv2.imwrite(str(dataset / "without_mask" / "patch.png"), cv2.cvtColor(patch_crop, cv2.COLOR_RGB2BGR))
    out = tmp_path / "arrays.npz"
    args = ["--dataset", dataset, "--scenes", scenes, "--scenes", scenes, "--out", out, "--quiet", "--no-face-crop"]
    assert run_command(loader, *args) == 0  # duplicates are not failures
    printed = capfd.readouterr().out

    arrays = load_arrays(out)
    source = f"scenes:{scenes.as_posix()}"
    assert list(arrays["sources"]) == ["folders", "folders", "folders", source]
    assert list(arrays["paths"]) == ["with_mask/grey.png", "without_mask/dark.png", "without_mask/patch.png"] + [
        "images/street.png#0"
    ]
    assert arrays["labels"].tolist() == [0, 1, 1, 0]
    assert len(set(arrays["hashes"])) == 4  # training's split record names pictures by hash
    folders_line = [line.split()[1:] for line in printed.splitlines() if line.startswith("folders ")]
    assert folders_line == [["3", "0", "0", "3"]]  # given, duplicates, conflicts, kept
    # The patch is in the class folders already; the second --scenes of the same folder is all copies.
    source_lines = [line.split()[1:] for line in printed.splitlines() if line.startswith(source + " ")]
    assert source_lines == [["2", "1", "0", "1"], ["2", "2", "0", "0"]]
    assert "total" in printed and "4 pictures" in printed


def test_a_missing_scenes_folder_fails_before_reading_anything(tmp_path, capfd):
    out = tmp_path / "arrays.npz"
    assert run_command(loader, "--scenes", tmp_path / "nowhere", "--out", out) == 2
    assert "error: scenes folder not found" in capfd.readouterr().err
    assert not out.exists()


def test_matching_is_one_to_one_best_overlap_first(tmp_path, photo_and_face):
    """Two annotations on one detected face: the better-fitting one (listed second) takes the detection, the other
    falls back to its annotated box."""
    from mask_detection.scene_crops import build_scene_arrays

    photo, det_face = photo_and_face
    det_box = det_face.xywh
    x, y, w, h = det_box
    scenes = tmp_path / "scenes"
    (scenes / "images").mkdir(parents=True)
    (scenes / "annotations").mkdir()
    cv2.imwrite(str(scenes / "images" / "a.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    lower = ("with_mask", x, y + h // 4, x + w, y + h + h // 4)
    exact = ("without_mask", x, y, x + w, y + h)
    (scenes / "annotations" / "a.xml").write_text(voc("a.png", [lower, exact]))
    detector = load_detector(upscale=SMALL_PHOTO_UPSCALE)
    arrays, summary = build_scene_arrays(scenes, detector=detector)
    assert np.array_equal(arrays["images"][1], face_input(photo, det_box))  # the exact box took the detection
    assert np.array_equal(arrays["images"][0], face_input(photo, (x, y + h // 4, w, h)))
    assert [(c.matched, c.annotated) for c in summary.classes] == [(0, 1), (1, 0)]


def test_same_picture_under_two_classes_across_sources_is_dropped(tmp_path, photo_and_face, capfd):
    photo, det_face = photo_and_face
    det_box = det_face.xywh
    scenes = make_scenes(tmp_path / "scenes", photo, det_box, broken=False)
    dataset = tmp_path / "dataset"
    (dataset / "with_mask").mkdir(parents=True)
    (dataset / "without_mask").mkdir()
    cv2.imwrite(str(dataset / "without_mask" / "dark.png"), np.full((30, 40, 3), 20, np.uint8))
    patch_crop = face_input(photo, (330, 250, 80, 80))  # the scenes call it without_mask
    cv2.imwrite(str(dataset / "with_mask" / "patch.png"), cv2.cvtColor(patch_crop, cv2.COLOR_RGB2BGR))
    out = tmp_path / "arrays.npz"
    args = ["--dataset", dataset, "--scenes", scenes, "--out", out, "--quiet", "--no-face-crop"]
    assert run_command(loader, *args) == 0
    printed = capfd.readouterr().out
    arrays = load_arrays(out)
    assert list(arrays["paths"]) == ["without_mask/dark.png", "images/street.png#0"]
    assert [line.split()[1:] for line in printed.splitlines() if line.startswith("folders ")] == [["2", "0", "1", "1"]]
