"""detect_image.py end to end: the shipped model on a real photo, the JSON Lines schema, annotated output, bad
input, and every detection option the README promises. Run in-process (``main``) unless the test needs a real
process: --help speed, names that once crashed OpenCV, a memory limit."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, run_command, run_script
from detect_support import save_tiny_classifier, small_faces_photo
from skimage import data

from mask_detection.classes import REGISTRY, WITH_MASK, WITHOUT_MASK
from mask_detection.commands import detect_image

SHIPPED_MODEL = REPO / "mask_detection" / "models" / "mask_detector.keras"
SHIPPED_FAST = REPO / "mask_detection" / "models" / "mask_detector.int8.tflite"
FACE_KEYS = {"box", "score", "label", "probability"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def no_mask_model(tmp_path_factory):
    """Answers without_mask (p = 0.9) for every face: tests know the label before they look."""
    return save_tiny_classifier(tmp_path_factory.mktemp("no-mask-model"), constant=(0.1, 0.9), name="nomask")


@pytest.fixture(scope="module")
def leaning_mask_model(tmp_path_factory):
    """Answers p(with_mask) = 0.6 for every face: with_mask by default, without_mask above a 0.7 threshold."""
    return save_tiny_classifier(tmp_path_factory.mktemp("leaning-model"), constant=(0.6, 0.4), name="leaning")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with two real photos (one colour PNG, one grayscale JPEG) and one text file named .jpg."""
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "cameraman.jpg"), data.camera())
    (folder / "broken.jpg").write_text("this is not a picture\n")
    return folder


def detect(capfd, *args):
    """detect_image in-process: (exit code, stdout, stderr)."""
    code = run_command(detect_image, *args)
    out, err = capfd.readouterr()
    return code, out, err


def detect_json(capfd, *args):
    code, out, err = detect(capfd, *args, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def one_error_line(code, out, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
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


def test_help_loads_no_heavy_library_and_the_package_imports_without_tensorflow():
    """--help is quick because it imports none of the slow libraries (TensorFlow alone takes seconds): checked in
    the list of modules the process imports (-X importtime), not with a clock, which a loaded machine slows."""
    result = run_script("detect_image.py", "--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0 and "JSON Lines" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")}
    assert "mask_detection.commands.detect_image" in imported  # the listing is real
    assert not {"tensorflow", "keras", "sklearn", "matplotlib", "scipy", "skimage"} & imported
    modules = [
        "pipeline",
        "stream",
        "video_io",
        "overlay",
        "detector",
        "crop",
        "images",
        "commands.detect_image",
        "commands.detect_webcam",
    ]
    imports = ", ".join(f"mask_detection.{m}" for m in modules)
    code = f"import sys; import {imports}; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "False"


def test_shipped_model_finds_the_astronaut_without_a_mask(tmp_path, capfd):
    """The demo: one real face, no mask, classified by the shipped model (its default, the int8 export)."""
    out = tmp_path / "astronaut.jpg"
    (record,) = detect_json(capfd, "--demo", "--output", out)
    check_record(record, {WITH_MASK, WITHOUT_MASK})
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    assert abs(x + w / 2 - 222) < 20 and abs(y + h / 2 - 120) < 20  # on her face
    assert face["label"] == WITHOUT_MASK
    assert face["probability"] > 0.95  # a clear call, not a coin toss (the chosen class always has >= 0.5)
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_folder_run_writes_json_lines_and_skips_the_bad_file(tmp_path, photos, tiny_model, capfd):
    out_dir = tmp_path / "annotated"
    code, out, err = detect(capfd, "--image", photos, "--json", "--model", tiny_model, "--output", out_dir)
    assert code == 1, err  # one input failed, the rest were processed
    assert "broken.jpg" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in records] == [str(photos / "astronaut.png"), str(photos / "cameraman.jpg")]
    for record in records:
        check_record(record, {WITH_MASK, WITHOUT_MASK})
        assert (record["width"], record["height"]) == (512, 512)
        assert len(record["faces"]) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["astronaut_annotated.jpg", "cameraman_annotated.jpg"]
    assert cv2.imread(str(out_dir / "astronaut_annotated.jpg")).shape == (512, 512, 3)


def test_width_and_height_are_not_swapped_on_a_non_square_photo(tmp_path, no_mask_model, capfd):
    """Every other test photo is square: here 700 wide and 400 high, the face in the right part."""
    photo = np.full((400, 700, 3), 100, np.uint8)
    photo[0:400, 300:700] = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    cv2.imwrite(str(tmp_path / "wide.png"), photo)
    (record,) = detect_json(capfd, "--image", tmp_path / "wide.png", "--model", no_mask_model, "--no-display")
    assert (record["width"], record["height"]) == (700, 400)
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    # The astronaut's face centre (222, 120 of 512) scaled to 400 px and moved 300 px right.
    assert abs(x + w / 2 - (300 + 222 * 400 / 512)) < 15 and abs(y + h / 2 - 120 * 400 / 512) < 15


def test_readable_lines_and_annotated_picture(tmp_path, photos, no_mask_model, capfd):
    out = tmp_path / "result.png"
    code, text, err = detect(
        capfd, "--image", photos / "astronaut.png", "--model", no_mask_model, "--output", out, "--no-display"
    )
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith(f"{photos / 'astronaut.png'}: face 1/1 at x=")
    assert lines[0].endswith(": No mask 90.0% (face score 0.94)")
    assert lines[1] == f"saved {out}"
    annotated = cv2.imread(str(out))
    original = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    assert annotated.shape == original.shape
    # The box is drawn in the no-mask colour around the face.
    colour = REGISTRY[WITHOUT_MASK].colour
    x, y, w, h = map(int, re.search(r"at x=(\d+) y=(\d+) (\d+)x(\d+)", lines[0]).groups())
    left_edge = annotated[y + h // 2, x]
    assert np.abs(left_edge.astype(int) - colour).max() < 40


def test_mask_threshold_changes_the_decision():
    from mask_detection.decision import DecisionRule

    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    names = [WITH_MASK, WITHOUT_MASK]
    assert DecisionRule(names).decide(probs).tolist() == [0, 0, 1]
    assert DecisionRule(names, mask_threshold=0.7).decide(probs).tolist() == [1, 0, 1]
    assert DecisionRule(("cat", "dog"), mask_threshold=0.7).decide(probs).tolist() == [0, 0, 1]


# ------------------------------------------------------------------------- the options the README promises


@pytest.fixture(scope="module")
def face_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_mask_threshold_on_the_command_line(face_file, leaning_mask_model, capfd):
    args = ("--image", face_file, "--model", leaning_mask_model, "--no-display")
    (plain,) = detect_json(capfd, *args)
    (strict,) = detect_json(capfd, *args, "--mask-threshold", "0.7")
    assert [(f["label"], f["probability"]) for f in plain["faces"]] == [(WITH_MASK, 0.6)]
    assert [(f["label"], f["probability"]) for f in strict["faces"]] == [(WITHOUT_MASK, 0.4)]


def test_face_confidence_on_the_command_line_drops_faces(face_file, no_mask_model, capfd):
    args = ("--image", face_file, "--model", no_mask_model, "--no-display")
    (default,) = detect_json(capfd, *args)
    (low,) = detect_json(capfd, *args, "--face-confidence", "0.9")
    (high,) = detect_json(capfd, *args, "--face-confidence", "0.99")
    assert len(default["faces"]) == len(low["faces"]) == 1 and 0.9 < default["faces"][0]["score"] < 0.99
    assert high["faces"] == []


def test_upscale_on_the_command_line_finds_small_faces(tmp_path, no_mask_model, capfd):
    """Four faces of about 10 px: missed at the photo's own size, found in it enlarged 1.5x (the default)."""
    cv2.imwrite(str(tmp_path / "small.png"), small_faces_photo())
    args = ("--image", tmp_path / "small.png", "--model", no_mask_model, "--no-display")
    (default,) = detect_json(capfd, *args)
    (same,) = detect_json(capfd, *args, "--upscale", "1.5")
    (never,) = detect_json(capfd, *args, "--upscale", "1")
    assert len(default["faces"]) == len(same["faces"]) == 4
    assert never["faces"] == []
    # Boxes in the photo's own pixels: on the four faces (centre 222, 120 of 512, pasted 50 px wide).
    centres = sorted((round(x + w / 2), round(y + h / 2)) for x, y, w, h in (f["box"] for f in default["faces"]))
    pasted = sorted((left + 22, top + 12) for left in (30, 230) for top in (20, 160))
    assert all(abs(cx - px) <= 4 and abs(cy - py) <= 4 for (cx, cy), (px, py) in zip(centres, pasted, strict=True))


def test_threads_on_the_command_line_reach_the_litert_interpreter(face_file, capfd, monkeypatch):
    built, real = [], detect_image.load_pipeline

    def load_and_keep(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(detect_image, "load_pipeline", load_and_keep)
    for threads in (1, 2):
        (record,) = detect_json(
            capfd, "--image", face_file, "--model", SHIPPED_FAST, "--threads", threads, "--no-display"
        )
        assert len(record["faces"]) == 1
    assert [p.classifier.threads for p in built] == [1, 2]


def test_without_a_display_annotated_pictures_go_to_the_output_folder(
    tmp_path, face_file, no_mask_model, capfd, monkeypatch
):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = detect(capfd, "--image", face_file, "--model", no_mask_model)
    assert code == 0, err
    assert err.strip() == (
        "warning: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): not showing a window; "
        "annotated images go to output"
    )
    assert out.splitlines()[-1] == "saved output/face_annotated.jpg"
    assert cv2.imread(str(tmp_path / "output" / "face_annotated.jpg")).shape == (512, 512, 3)


# ------------------------------------------------------------------------------------------------ bad input


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
    ids=[
        "missing",
        "text-as-jpg",
        "zero-bytes",
        "empty-folder",
        "missing-model",
        "no-metadata",
        "bad-output",
        "bad-confidence",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capfd, make_args, message):
    (tmp_path / "text.jpg").write_text("hello\n")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "nometa.keras").write_bytes(b"PK\x03\x04 not really")
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    code, out, err = detect(capfd, *make_args(tmp_path), "--no-display")
    assert message in one_error_line(code, out, err)  # argparse's usage errors too: one line, no usage block
    assert out == ""


@pytest.mark.parametrize("kind", ["corrupt", "classes-mismatch"])
def test_unusable_model_is_one_line_and_exit_2(tmp_path, capfd, kind):
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    if kind == "corrupt":
        model = tmp_path / "corrupt.keras"
        model.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
        (tmp_path / "corrupt.json").write_text(json.dumps({"class_names": [WITH_MASK, WITHOUT_MASK]}))
        expected = "cannot load model"
    else:  # a two-output model whose metadata names three classes
        model = save_tiny_classifier(tmp_path, (WITH_MASK, WITHOUT_MASK, "mask_weared_incorrect"), outputs=2)
        expected = "outputs 2 classes"
    code, out, err = detect(capfd, "--image", tmp_path / "face.png", "--model", model, "--no-display")
    assert expected in one_error_line(code, out, err)


def test_labels_stay_whole_inside_the_image_at_the_edges():
    from mask_detection.detections import Detection
    from mask_detection.overlay import _font_scale, draw_detections

    image = np.zeros((240, 320, 3), np.uint8)
    # A face in the top-right corner: no room above it, none to the right of its left edge.
    detection = Detection((290, 0, 30, 30), 0.9, 1, WITHOUT_MASK, 0.987, (0.013, 0.987))
    draw_detections(image, [detection])
    colour = REGISTRY[WITHOUT_MASK].colour
    ys, xs = np.nonzero(np.all(image == colour, axis=2))
    (text_w, text_h), _ = cv2.getTextSize("No mask 98.7%", cv2.FONT_HERSHEY_SIMPLEX, _font_scale(image), 1)
    assert xs.max() - xs.min() + 1 >= text_w  # the whole label fits, shifted left into the picture
    assert ys.max() >= 30 + text_h  # placed below the box, since there is no room above


# ------------------------------------------------------------------------------- outputs never replace inputs


def write_face(path):
    # Encoded in memory: OpenCV's own file functions crash on names that are not valid UTF-8.
    ok, encoded = cv2.imencode(Path(path).suffix, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    Path(path).write_bytes(encoded.tobytes())
    return Path(path).read_bytes()


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused_before_any_work(tmp_path, capfd, spelling):
    folder = tmp_path / "dir"
    folder.mkdir()
    original = write_face(folder / "orig.jpg")
    if spelling == "same":
        output = folder / "orig.jpg"
    elif spelling == "dotdot":
        output = f"{folder}/../dir/orig.jpg"
    elif spelling == "symlink":
        output = tmp_path / "link.jpg"
        output.symlink_to(folder / "orig.jpg")
    else:
        output = tmp_path / "hard.jpg"
        output.hardlink_to(folder / "orig.jpg")
    result = detect(capfd, "--image", folder / "orig.jpg", "--output", output, "--no-display")
    assert "refusing to write" in one_error_line(*result)
    assert (folder / "orig.jpg").read_bytes() == original


def test_output_folder_that_is_an_input_folder_is_refused(tmp_path, capfd):
    folder = tmp_path / "d"
    folder.mkdir()
    write_face(folder / "a.jpg")
    own = write_face(folder / "a_annotated.jpg")  # the user's own picture, not ours
    for output in (folder, f"{folder}/"):
        result = detect(capfd, "--image", folder, "--output", output, "--no-display")
        assert "input folders" in one_error_line(*result)
    assert (folder / "a_annotated.jpg").read_bytes() == own
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "a_annotated.jpg"]


def test_output_names_decide_file_or_folder(tmp_path, no_mask_model, capfd):
    write_face(tmp_path / "a.jpg")
    write_face(tmp_path / "b.jpg")
    # One image, a name ending in /: a folder, created, holding the annotated picture.
    code, out, err = detect(
        capfd, "--image", tmp_path / "a.jpg", "--output", f"{tmp_path}/new/", "--no-display", "--model", no_mask_model
    )
    assert code == 0, err
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["a_annotated.jpg"]
    assert f"saved {tmp_path}/new/a_annotated.jpg" in out
    # Several images and a picture's name: an error, not a folder called out.jpg.
    result = detect(
        capfd, "--image", tmp_path / "a.jpg", tmp_path / "b.jpg", "--output", tmp_path / "out.jpg", "--no-display"
    )
    assert "give a folder" in one_error_line(*result)
    assert not (tmp_path / "out.jpg").exists()


@pytest.mark.parametrize("several", [False, True])
def test_unwritable_output_fails_before_any_work(tmp_path, capfd, several):
    write_face(tmp_path / "a.jpg")
    (tmp_path / "plain").write_text("a regular file\n")
    args = ["--image", tmp_path / "a.jpg"]
    output = f"{tmp_path}/plain/out/" if several else f"{tmp_path}/plain/out.jpg"
    if several:
        write_face(tmp_path / "b.jpg")
        args.append(tmp_path / "b.jpg")
    # A model file that does not exist: the output check must come first, before the model is even looked at.
    code, out, err = detect(capfd, *args, "--output", output, "--model", tmp_path / "none.keras", "--no-display")
    assert "is not a folder" in one_error_line(code, out, err)
    assert out == ""


def test_a_file_that_cannot_be_written_is_reported_and_the_run_goes_on(tmp_path, tiny_model, capfd):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_face(photos / "a.jpg")
    write_face(photos / "b.jpg")
    out = tmp_path / "out"
    (out / "a_annotated.jpg").mkdir(parents=True)  # a folder where the picture should go
    code, stdout, stderr = detect(capfd, "--image", photos, "--output", out, "--model", tiny_model, "--no-display")
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "a_annotated.jpg" in stderr and "saved" in stdout
    assert cv2.imread(str(out / "b_annotated.jpg")).shape == (512, 512, 3)


def test_names_that_are_not_utf8_work_and_print_safely(tmp_path):
    """Linux file names are bytes: a Latin-1 name once crashed OpenCV (segfault) and a strict UTF-8 stdout."""
    folder = tmp_path / "photos"
    folder.mkdir()
    latin1 = os.fsdecode(b"caf\xe9")
    write_face(folder / f"{latin1}.jpg")
    write_face(folder / "plain.jpg")
    out = tmp_path / "out"
    result = run_script(
        "detect_image.py",
        "--image",
        folder,
        "--json",
        "--output",
        out,
        "--no-display",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == [f"{folder}/caf\\xe9.jpg", f"{folder}/plain.jpg"]
    assert all(len(r["faces"]) == 1 for r in records)
    assert sorted(os.listdir(os.fsencode(out))) == [b"caf\xe9_annotated.jpg", b"plain_annotated.jpg"]
    result = run_script(
        "detect_image.py",
        "--image",
        folder / f"{latin1}.jpg",
        "--no-display",
        "--output",
        out / f"{latin1}.png",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 0, result.stderr
    assert "caf\\xe9.jpg: face 1/1" in result.stdout
    assert cv2.imdecode(np.fromfile(os.fsencode(out / f"{latin1}.png"), np.uint8), cv2.IMREAD_COLOR).shape == (
        512,
        512,
        3,
    )


def test_broken_links_and_link_loops_in_a_folder_are_each_warned_about(tmp_path, no_mask_model, capfd):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_face(folder / "a.jpg")
    (folder / "gone.jpg").symlink_to(folder / "missing.jpg")
    (folder / "loop1.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop1.jpg")
    code, out, err = detect(capfd, "--image", folder, "--json", "--no-display", "--model", no_mask_model)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3, err
    assert "gone.jpg: a broken link" in warnings[0]
    assert all("link loop" in line for line in warnings[1:])
    assert len(out.splitlines()) == 1


def test_a_huge_photo_is_detected_within_bounded_memory(tmp_path):
    """12000 x 12000 px took 12.8 GB; under a 3 GB address-space limit it must still work, boxes in full pixels."""
    import resource

    folder = tmp_path / "photos"
    folder.mkdir()
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    huge = np.full((12000, 12000, 3), 120, np.uint8)
    huge[4000:7000, 4000:7000] = cv2.resize(face, (3000, 3000))
    assert cv2.imwrite(str(folder / "huge.jpg"), huge, [cv2.IMWRITE_JPEG_QUALITY, 80])
    del huge
    write_face(folder / "small.jpg")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    result = subprocess.run(
        [sys.executable, str(REPO / "detect_image.py"), "--image", str(folder), "--json", "--no-display"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    records = {Path(r["image"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert (records["huge.jpg"]["width"], records["huge.jpg"]["height"]) == (12000, 12000)
    (found,) = records["huge.jpg"]["faces"]
    x, y, w, h = found["box"]
    # The astronaut's face (centre 222, 120 of 512) scaled into the 3000 px square at (4000, 4000).
    assert abs(x + w / 2 - (4000 + 222 * 3000 / 512)) < 100 and abs(y + h / 2 - (4000 + 120 * 3000 / 512)) < 100
    assert len(records["small.jpg"]["faces"]) == 1


def test_mask_threshold_for_a_model_without_a_mask_class_is_said_to_be_ignored(tmp_path, capfd):
    model = save_tiny_classifier(tmp_path, ("cat", "dog"))
    write_face(tmp_path / "a.jpg")
    code, out, err = detect(
        capfd, "--image", tmp_path / "a.jpg", "--model", model, "--mask-threshold", "0.7", "--no-display", "--json"
    )
    assert code == 0, err
    assert "mask threshold 0.7 is ignored" in err
    code, out, err = detect(capfd, "--image", tmp_path / "a.jpg", "--model", model, "--no-display", "--json")
    assert code == 0 and "ignored" not in err


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_an_output_that_is_a_device_is_written_into_not_replaced(tmp_path, photos, tiny_model, capfd):
    """A character device named like a picture (here a null device the test makes: never the real /dev/null)
    gets the JPEG's bytes and stays a device; a FIFO gets the whole picture."""
    import stat
    import threading

    device = tmp_path / "out.jpg"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    code = run_command(detect_image, "--image", photos / "astronaut.png", "--model", tiny_model, "--output", device)
    assert code == 0, capfd.readouterr().err
    assert stat.S_ISCHR(os.lstat(device).st_mode)

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code = run_command(detect_image, "--image", photos / "astronaut.png", "--model", tiny_model, "--output", fifo)
    reader.join(timeout=120)
    assert code == 0, capfd.readouterr().err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert cv2.imdecode(np.frombuffer(received[0], np.uint8), cv2.IMREAD_COLOR) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.jpg", "out.jpg"]  # no temporary left
