"""detect_image.py end to end: the shipped model on a real photo, the JSON Lines schema, annotated output, bad input."""

import io
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from conftest import REPO, run_script
from detect_support import save_tiny_classifier

SHIPPED_MODEL = REPO / "models" / "mask_detector.keras"
FACE_KEYS = {"box", "score", "label", "probability"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with two real photos (one colour PNG, one grayscale JPEG) and one text file named .jpg."""
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "cameraman.jpg"), data.camera())
    (folder / "broken.jpg").write_text("this is not a picture\n")
    return folder


def assert_one_error_line(result):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def check_record(record, class_names):
    assert set(record) == {"image", "width", "height", "faces"}
    assert isinstance(record["width"], int) and isinstance(record["height"], int)
    for face in record["faces"]:
        assert set(face) == FACE_KEYS
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"])
        assert 0 <= x and 0 <= y and w > 0 and h > 0
        assert x + w <= record["width"] and y + h <= record["height"]
        assert 0.0 <= face["score"] <= 1.0
        assert face["label"] in class_names
        assert 0.0 <= face["probability"] <= 1.0


def test_help_is_instant_and_the_package_imports_without_tensorflow():
    result = run_script("detect_image.py", "--help")
    assert result.returncode == 0 and "JSON Lines" in result.stdout
    code = (
        "import sys; sys.path.insert(0, %r); import mask_detection.pipeline, mask_detection.video, "
        "mask_detection.overlay, mask_detection.faces; print('tensorflow' in sys.modules)" % str(REPO)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shipped_model_finds_the_astronaut_without_a_mask(tmp_path):
    """The demo: one real face, no mask, classified by the shipped model."""
    out = tmp_path / "astronaut.jpg"
    result = run_script("detect_image.py", "--demo", "--json", "--output", out)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 1
    check_record(records[0], {"with_mask", "without_mask"})
    faces = records[0]["faces"]
    assert len(faces) == 1
    x, y, w, h = faces[0]["box"]
    assert abs(x + w / 2 - 222) < 20 and abs(y + h / 2 - 120) < 20  # on her face
    assert faces[0]["label"] == "without_mask"
    assert faces[0]["probability"] > 0.5
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_folder_run_writes_json_lines_and_skips_the_bad_file(tmp_path, photos, tiny_model):
    out_dir = tmp_path / "annotated"
    result = run_script(
        "detect_image.py", "--image", photos, "--json", "--model", tiny_model, "--output", out_dir
    )
    assert result.returncode == 1, result.stderr  # one input failed, the rest were processed
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(photos / "astronaut.png"), str(photos / "cameraman.jpg")]
    for record in records:
        check_record(record, {"with_mask", "without_mask"})
        assert (record["width"], record["height"]) == (512, 512)
        assert len(record["faces"]) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["astronaut_annotated.jpg", "cameraman_annotated.jpg"]
    assert cv2.imread(str(out_dir / "astronaut_annotated.jpg")).shape == (512, 512, 3)


def test_readable_lines_and_annotated_picture(tmp_path, photos, tiny_model):
    from mask_detection.overlay import CLASS_STYLE
    from mask_detection.pipeline import detect_images

    out = tmp_path / "result.png"
    text = io.StringIO()
    code = detect_images([photos / "astronaut.png"], model_path=tiny_model, output=out, display=False, out=text)
    assert code == 0
    lines = text.getvalue().splitlines()
    assert lines[0].startswith(f"{photos / 'astronaut.png'}: face 1/1 at x=")
    label = "Mask" if " Mask " in lines[0] else "No mask"
    assert label in lines[0] and "%" in lines[0]
    assert lines[1] == f"saved {out}"
    annotated = cv2.imread(str(out))
    original = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    assert annotated.shape == original.shape
    # The box is drawn in the label's colour around the face.
    colour = dict(CLASS_STYLE.values())[label]
    x, y, w, h = map(int, re.search(r"at x=(\d+) y=(\d+) (\d+)x(\d+)", lines[0]).groups())
    left_edge = annotated[y + h // 2, x]
    assert np.abs(left_edge.astype(int) - colour).max() < 40


def test_mask_threshold_changes_the_decision():
    from mask_detection.pipeline import decide

    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    names = ["with_mask", "without_mask"]
    assert decide(probs, names).tolist() == [0, 0, 1]
    assert decide(probs, names, mask_threshold=0.7).tolist() == [1, 0, 1]
    assert decide(probs, ["cat", "dog"], mask_threshold=0.7).tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["--image", d / "missing.jpg"], "no such file"),
        (lambda d: ["--image", d / "text.jpg"], "cannot decode"),
        (lambda d: ["--image", d / "zero.jpg"], "cannot decode"),
        (lambda d: ["--image", d / "empty"], "no images in folder"),
        (lambda d: ["--image", d / "face.png", "--model", d / "missing.keras"], "does not exist"),
        (lambda d: ["--image", d / "face.png", "--model", d / "nometa.keras"], "metadata"),
        (lambda d: ["--image", d / "face.png", "--output", d / "out.xyz"], "unsupported image type"),
        (lambda d: ["--image", d / "face.png", "--face-confidence", "2"], "face-confidence"),
    ],
    ids=["missing", "text-as-jpg", "zero-bytes", "empty-folder", "missing-model", "no-metadata", "bad-output",
         "bad-confidence"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_args, message):
    (tmp_path / "text.jpg").write_text("hello\n")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "nometa.keras").write_bytes(b"PK\x03\x04 not really")
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    result = run_script("detect_image.py", *make_args(tmp_path), "--no-display")
    if message == "face-confidence":  # argparse's own usage error: exit 2, no traceback
        assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
        return
    assert message in assert_one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["corrupt", "classes-mismatch"])
def test_unusable_model_is_one_line_and_exit_2(tmp_path, tiny_model, kind):
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    if kind == "corrupt":
        model = tmp_path / "corrupt.keras"
        model.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
        (tmp_path / "corrupt.json").write_text(json.dumps({"class_names": ["with_mask", "without_mask"]}))
        expected = "cannot load model"
    else:  # a two-output model whose metadata names three classes
        model = save_tiny_classifier(tmp_path, ("with_mask", "without_mask", "mask_weared_incorrect"), outputs=2)
        expected = "outputs 2 classes"
    result = run_script("detect_image.py", "--image", tmp_path / "face.png", "--model", model, "--no-display")
    assert expected in assert_one_error_line(result)


def test_labels_stay_whole_inside_the_image_at_the_edges():
    from mask_detection.overlay import CLASS_STYLE, _font_scale, draw_detections
    from mask_detection.pipeline import Detection

    image = np.zeros((240, 320, 3), np.uint8)
    # A face in the top-right corner: no room above it, none to the right of its left edge.
    detection = Detection((290, 0, 30, 30), 0.9, "without_mask", 0.987, (0.013, 0.987))
    draw_detections(image, [detection])
    colour = CLASS_STYLE["without_mask"][1]
    ys, xs = np.nonzero(np.all(image == colour, axis=2))
    (text_w, text_h), _ = cv2.getTextSize("No mask 98.7%", cv2.FONT_HERSHEY_SIMPLEX, _font_scale(image), 1)
    assert xs.max() - xs.min() + 1 >= text_w  # the whole label fits, shifted left into the picture
    assert ys.max() >= 30 + text_h  # placed below the box, since there is no room above
