"""evaluate.py, second reliability round: the report folder checked before any work and never one of the inputs,
sklearn warnings kept off stderr, a mask threshold without a with_mask class said, names with any bytes (real
processes on a strict UTF-8 console), one photo out of memory is one failed photo, --help without TensorFlow."""

import json
import os
import warnings

import numpy as np
import pytest
from conftest import REPO, run_command, run_script
from detect_support import face_photo, save_tiny_classifier
from test_evaluate import BLUE, RED, det, paste_face, scene, voc_xml, write_scene

from mask_detection.annotations.scene_set import load_scene_set
from mask_detection.commands import evaluate
from mask_detection.evaluation import scenes, scoring

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LATIN1 = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8
NO_MODEL = "no-such-model.keras"  # loading it would fail: the checks below must come first


def make_scenes(root, flat=False):
    import cv2

    images = root if flat else root / "images"
    notes = root if flat else root / "annotations"
    images.mkdir(parents=True, exist_ok=True)
    notes.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(images / "a.png"), np.full((80, 100, 3), 100, np.uint8))
    (notes / "a.xml").write_text(voc_xml("a.png"))
    return root


def one_error(code, capfd, starts):
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(starts), err


def test_unwritable_report_fails_before_the_model_loads(tmp_path, capfd):
    scene_dir = make_scenes(tmp_path / "scenes")
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    code = run_command(evaluate, "--scenes", scene_dir, "--model", NO_MODEL, "--report", blocker / "r")
    one_error(code, capfd, "error: cannot write")
    faces = tmp_path / "faces"
    for name in ("with_mask", "without_mask"):
        (faces / name).mkdir(parents=True)
        (faces / name / "x.png").write_bytes(b"x")
    code = run_command(evaluate, "--folder", faces, "--model", NO_MODEL, "--report", blocker)
    one_error(code, capfd, "error: cannot write")


@pytest.mark.parametrize(
    "layout, report",
    [
        ("split", "images"),
        ("split", "annotations"),
        ("flat", "."),
        ("flat", "link"),
    ],
)
def test_report_folder_that_is_an_input_folder_is_refused(tmp_path, layout, report, capfd):
    scene_dir = make_scenes(tmp_path / "scenes", flat=layout == "flat")
    os.symlink(scene_dir, tmp_path / "link")
    target = tmp_path / "link" if report == "link" else scene_dir / report
    code = run_command(evaluate, "--scenes", scene_dir, "--model", NO_MODEL, "--report", target)
    one_error(code, capfd, "error: refusing to write")
    assert not (scene_dir / "report.json").exists()


def test_report_file_that_is_an_input_file_is_refused(tmp_path, capfd):
    scene_dir = make_scenes(tmp_path / "scenes")
    report = tmp_path / "report"
    report.mkdir()
    os.link(scene_dir / "annotations" / "a.xml", report / "summary.md")  # a hard link: the same file
    code = run_command(evaluate, "--scenes", scene_dir, "--model", NO_MODEL, "--report", report)
    one_error(code, capfd, "error: refusing to write")


@pytest.mark.parametrize("inside", ["with_mask", "with_mask/sub"])
def test_report_inside_a_class_folder_is_refused(tmp_path, inside, capfd):
    faces = tmp_path / "faces"
    for name in ("with_mask", "without_mask"):
        (faces / name).mkdir(parents=True)
        (faces / name / "x.png").write_bytes(b"x")
    code = run_command(evaluate, "--folder", faces, "--model", NO_MODEL, "--report", faces / inside)
    one_error(code, capfd, "error: refusing to write the report")
    assert not (faces / "with_mask" / "sub").exists()


def test_no_sklearn_warnings_when_a_slice_holds_one_class():
    # Every annotated face is with_mask, one is called without_mask: "y_pred contains classes not in y_true".
    faces = [((i * 60, 0, 50, 50), "with_mask") for i in range(3)]
    detections = [det(box, 0.9, "with_mask" if i else "without_mask") for i, (box, _) in enumerate(faces)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = scoring.score_scenes([scene(faces, detections)], ["with_mask", "without_mask"])
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert figures.classifier["balanced_accuracy"] == pytest.approx(2 / 3)


def test_one_photo_out_of_memory_is_one_failed_photo(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    write_scene(tmp_path, "big", [(20, 40, 70, RED)], [("with_mask", 0)])
    write_scene(tmp_path, "small", [(20, 40, 70, BLUE)], [("without_mask", 0)])
    scene_set = load_scene_set(tmp_path)

    class Pipeline:  # stands in for the detector on a photo too big for this machine's memory
        def process(self, bgr):
            if bgr[60, 40, 2] > bgr[60, 40, 0]:  # the red face
                raise MemoryError
            return []

    lines = []
    run = scenes.run_scenes(Pipeline(), scene_set, progress=False, warn=lines.append)
    assert [r.name for r in run.results] == ["small.png"]
    assert len(run.failed) == 1 and "big.xml" in run.failed[0] and "out of memory" in run.failed[0]
    assert len(lines) == 1 and "big.png: out of memory" in lines[0]


@pytest.fixture(scope="module")
def pets_model(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("pets"), class_names=("cat", "dog"))


def test_folder_run_names_mask_threshold_links_and_bytes(tmp_path, pets_model):
    """A model without with_mask, a broken link, Latin-1 names, one class only, a strict UTF-8 console."""
    import cv2

    faces = tmp_path / f"faces-{LATIN1}"
    (faces / "cat").mkdir(parents=True)
    (faces / "hats").mkdir()  # not a class of the model
    (faces / "hats" / "h.png").write_bytes(b"x")
    for i, tint in enumerate((RED, BLUE)):  # the blue one is called "dog": a class not in y_true
        crop = np.clip(cv2.resize(face_photo(), (96, 96)) * np.array(tint[::-1]), 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".png", crop)
        (faces / "cat" / f"{LATIN1}{i}.png").write_bytes(data.tobytes())
    os.symlink(tmp_path / "gone.png", faces / "cat" / "dangling.png")
    report = tmp_path / f"report-{LATIN1}"
    result = run_script(
        "evaluate.py",
        "--folder",
        faces,
        "--model",
        pets_model,
        "--report",
        report,
        "--quiet",
        "--mask-threshold",
        "0.7",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 1, result.stderr  # the broken link and the unknown class folder
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    assert "the mask threshold 0.7 is ignored: the model has no with_mask class" in result.stderr
    assert result.stderr.count("cat/dangling.png: broken link") == 1
    assert "report-caf\\xe9/" in result.stdout
    data = json.loads((report / "report.json").read_text())
    assert data["images"] == 2 and data["confusion_matrix"] == [[1, 1], [0, 0]]
    assert len(data["skipped"]["unreadable"]) == 1
    assert "# Folder evaluation: " in (report / "summary.md").read_text(encoding="utf-8")
    assert "faces-caf\\xe9" in (report / "summary.md").read_text(encoding="utf-8")


def test_scenes_with_latin1_names_on_a_strict_utf8_console(tmp_path, pets_model):
    import cv2

    scene_dir = tmp_path / LATIN1
    scene_dir.mkdir()
    canvas = np.full((420, 560, 3), 110, np.uint8)
    box = paste_face(canvas, 20, 40, 90, RED)
    ok, data = cv2.imencode(".png", canvas[:, :, ::-1])
    (scene_dir / f"{LATIN1}.png").write_bytes(data.tobytes())
    x, y, w, h = (round(v) for v in box)
    # No <filename>: the image is found by the XML's stem (a Latin-1 byte is not valid inside UTF-8 XML).
    (scene_dir / f"{LATIN1}.xml").write_text(
        voc_xml(None, [("with_mask", (x, y, x + w, y + h)), ("with_mask", (5, 5, 5, 30))], size=(560, 420))
    )
    report = tmp_path / "report"
    result = run_script(
        "evaluate.py",
        "--scenes",
        scene_dir,
        "--model",
        pets_model,
        "--report",
        report,
        "--quiet",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 1, result.stderr  # the empty box
    assert "Traceback" not in result.stderr
    assert "caf\\xe9.xml object 2 (with_mask): empty box" in result.stderr
    data = json.loads((report / "report.json").read_text())
    assert data["data"]["images"] == 1 and data["data"]["faces"] == 1
    assert data["faces"][0]["image"] == "caf\\xe9.png"
    assert "caf\\xe9" in (report / "summary.md").read_text(encoding="utf-8")


def test_help_loads_no_heavy_library():
    """--help through the top-level script: the options listed, and neither TensorFlow nor scikit-learn nor
    matplotlib imported (-X importtime lists every module a process imports)."""
    result = run_script("evaluate.py", "--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0 and "--scenes" in result.stdout and "--incorrect-as-without" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")}
    assert "mask_detection.commands.evaluate" in imported  # the listing is real
    assert not {"tensorflow", "keras", "sklearn", "matplotlib"} & imported
    assert (REPO / "evaluate.py").is_file()
