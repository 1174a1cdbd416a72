"""Issue 16, evaluation and training: MOT whole numbers checked when read, no empty report folder left on a full
disk, a lone or damaged .tflite described as what it is, Ctrl-C right after training saved its model says so, and
int8 export finding (or naming) the arrays it calibrates on."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import REPO, run_command, small_disk
from detect_support import make_face_video
from test_training import OUTPUT_NAMES, TINY_RUN, make_arrays

from mask_detection.commands import detect_image, evaluate
from mask_detection.commands import export as export_command
from mask_detection.paths import SHIPPED_DIR

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LARGEST = 2**63 - 1
SHIPPED_TFLITE = SHIPPED_DIR / "mask_detector.int8.tflite"


def one_error_line(code, err):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def write_gt(folder, rows, classes=("with_mask", "without_mask"), segments=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.txt").write_text("".join(f"{row}\n" for row in rows))
    (folder / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    if segments is not None:
        (folder / "segments.txt").write_text("".join(f"{row}\n" for row in segments))
    return folder / "gt.txt"


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "faces.mp4"
    make_face_video(path, frames=4, fps=10.0, size=(320, 240))
    return path


# ------------------------------------------------------------------ 1. MOT whole numbers, checked when read


@pytest.mark.parametrize(
    ("rows", "segments", "expected"),
    [
        (["1,99999999999999999999,0,0,40,40,1,1"], None, "gt.txt line 1: id 99999999999999999999 does not fit"),
        (["1,-99999999999999999999,0,0,40,40,1,1"], None, "gt.txt line 1: id -99999999999999999999 does not fit"),
        (["1,1e999999999,0,0,40,40,1,1"], None, "gt.txt line 1: id 1e999999999 does not fit"),
        (["99999999999999999999,1,0,0,40,40,1,1"], None, "gt.txt line 1: frame 99999999999999999999 does not fit"),
        (["1,1,0,0,40,40,1,99999999999999999999"], None, "gt.txt line 1: class 99999999999999999999 does not fit"),
        (["1,1,0,0,40,40,1,1"], ["1,99999999999999999999,a"], "segments.txt line 1: last_frame 9999"),
        (["1,1.5,0,0,40,40,1,1"], None, "gt.txt line 1: id is not a whole number ('1.5')"),
    ],
)
def test_mot_whole_numbers_that_do_not_fit_64_bits_are_refused_when_read(tmp_path, rows, segments, expected):
    from mask_detection.annotations.mot import GroundTruthError, read_video_truth

    gt = write_gt(tmp_path, rows, segments=segments)
    with pytest.raises(GroundTruthError) as error:
        read_video_truth(gt)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_mot_ids_are_read_exactly_up_to_64_bits_and_scored(tmp_path):
    """Two ids a float cannot tell apart (2**63-1 and 2**63-2) stay two people, and the identity figures (int64
    arrays in trackers.eval) take the largest and smallest ids."""
    from mask_detection.annotations.mot import read_video_truth
    from mask_detection.detections import Detection
    from mask_detection.evaluation.video_scoring import VideoRun, score_video

    low = -(2**63)
    rows = [f"1,{LARGEST},10,10,60,60,1,1", f"1,{LARGEST - 1},200,10,60,60,1,1", f"2,{low},10,10,60,60,1,2"]
    truth = read_video_truth(write_gt(tmp_path, rows))
    assert [b.person for b in truth.frames[1]] == [LARGEST, LARGEST - 1] and truth.frames[2][0].person == low

    def det(box, track, label):
        probabilities = (0.9, 0.1) if label == "with_mask" else (0.1, 0.9)
        return Detection(box, 0.9, 0, label, 0.9, probabilities, track_id=track, settled=True)

    run = VideoRun(
        [
            (1, [det((10, 10, 60, 60), 1, "with_mask"), det((200, 10, 60, 60), 2, "with_mask")]),
            (2, [det((10, 10, 60, 60), 3, "without_mask")]),
        ],
        tracked=True,
    )
    scores = score_video(run, truth, ["with_mask", "without_mask"], 0.3)
    assert scores.headline["IDF1"] == 1.0 and scores.figures["identity"]["IDSW"] == 0


def test_evaluate_video_with_an_id_too_large_stops_before_the_model_and_the_video(tmp_path, face_video, capfd):
    gt = write_gt(tmp_path / "gt", ["1,1,10,10,50,50,1,1", "2,99999999999999999999,10,10,50,50,1,1"])
    code = run_command(
        evaluate,
        "--video",
        face_video,
        "--gt",
        gt,
        "--report",
        tmp_path / "report",
        "--model",
        tmp_path / "no-such-model.keras",  # loading it would fail: the ground truth must be read first
        "--quiet",
    )
    line = one_error_line(code, capfd.readouterr().err)
    assert line == (
        f"error: {gt} line 2: id 99999999999999999999 does not fit in 64 bits "
        f"(-9223372036854775808 to 9223372036854775807)"
    )
    assert not (tmp_path / "report").exists()


# ------------------------------------------------------------------ 2. a full disk leaves no empty report folder


def fill(disk):
    """Fill the file system of ``disk`` up (a file of zeros until it is full)."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


@pytest.mark.parametrize("existing", [False, True], ids=["created", "pre-existing"])
def test_report_on_a_full_disk_leaves_no_folder_it_created(tmp_path, face_video, capfd, existing):
    """A real 1 MB tmpfs, full: the report cannot be written. The folders this run made for it are removed; a
    folder that was there before stays."""
    gt = write_gt(tmp_path / "gt", ["1,1,10,10,50,50,1,1"])
    with small_disk(tmp_path / "disk", "1m") as disk:
        if existing:
            (disk / "kept").mkdir()
        report = disk / "kept" if existing else disk / "new" / "report"
        fill(disk)
        code = run_command(
            evaluate,
            "--video",
            face_video,
            "--gt",
            gt,
            "--report",
            report,
            "--per-frame",
            "--quiet",
            "--model",
            SHIPPED_TFLITE,
        )
        line = one_error_line(code, capfd.readouterr().err)
        assert line == f"error: cannot write the report in {report}: No space left on device"
        assert sorted(os.listdir(disk)) == (["filler", "kept"] if existing else ["filler"])
        if existing:
            assert os.listdir(disk / "kept") == []


def test_a_report_folder_that_another_run_filled_meanwhile_is_kept(tmp_path):
    from mask_detection.errors import OutputError
    from mask_detection.evaluation.report import write_report_files

    report = tmp_path / "a" / "b"

    def write_and_fail(tmp):
        (tmp_path / "a" / "other.txt").write_text("another run's file")  # appears while this run writes
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_report_files(report, [("report.json", write_and_fail)])
    assert not report.exists()  # made by this run, empty: removed
    assert os.listdir(tmp_path / "a") == ["other.txt"]  # made by this run, but no longer empty: kept


# ------------------------------------------------------------------ 3. a lone or damaged .tflite said as it is


def test_a_lone_tflite_is_said_to_miss_its_metadata_from_export(tmp_path):
    from mask_detection.classifier import load_classifier
    from mask_detection.errors import ModelError

    lone = tmp_path / "x.tflite"
    shutil.copy(SHIPPED_TFLITE, lone)
    with pytest.raises(ModelError) as error:
        load_classifier(lone)
    message = str(error.value)
    assert message == (
        f"model {lone} has no metadata file x.json beside it (export_model.py writes both: copy the .json with "
        "the .tflite)"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"not a model at all, just some text", "not a TFLite flatbuffer"),
        (SHIPPED_TFLITE.read_bytes()[:5000], "The model is not a valid Flatbuffer buffer"),
    ],
    ids=["empty", "text", "truncated"],
)
@pytest.mark.parametrize("with_metadata", [False, True], ids=["lone", "with-json"])
def test_a_broken_tflite_is_said_to_be_damaged(tmp_path, capfd, content, reason, with_metadata):
    from mask_detection.classifier import load_classifier
    from mask_detection.errors import ModelError

    model = tmp_path / "x.tflite"
    model.write_bytes(content)
    if with_metadata:
        shutil.copy(SHIPPED_TFLITE.with_suffix(".json"), tmp_path / "x.json")
    expected = f"cannot load model {model}: the file is damaged or not a TFLite model ({reason})"
    with pytest.raises(ModelError) as error:
        load_classifier(model)
    assert str(error.value) == expected
    if not with_metadata:
        return
    code = run_command(detect_image, "--demo", "--model", model, "--no-display", "--json")
    assert one_error_line(code, capfd.readouterr().err) == f"error: {expected}"


# ------------------------------------------------------------------ 4. interrupted right after the save


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "arrays.npz"
    make_arrays(path)
    return path


@pytest.mark.parametrize(
    ("when", "signum", "code", "last_line"),
    [
        ("renamed", signal.SIGINT, 130, "interrupted"),
        ("summary", signal.SIGTERM, 143, "stopped by signal SIGTERM"),
    ],
)
def test_a_signal_right_after_the_save_says_the_new_model_is_in_place(
    tmp_path, tiny_data, when, signum, code, last_line
):
    """The signal is sent from inside the run: as the model file is renamed into place (it waits, held back,
    until the other four files are renamed too), or as the summary starts. The run stops with the signal's exit
    code, and says first that the new model is saved."""
    out = tmp_path / "models" / "m.keras"
    args = ["--data", str(tiny_data), *TINY_RUN, "--out", str(out)]
    if when == "summary":
        args.remove("--quiet")
    script = (
        "import os, sys\n"
        "from mask_detection.commands import common as cli, train\n"
        f"target, signum = {str(out)!r}, {int(signum)}\n"
        "real_replace, real_report = os.replace, train.report\n"
        "def replace(src, dst, *a, **k):\n"
        "    real_replace(src, dst, *a, **k)\n"
        f"    if {when == 'renamed'} and os.fspath(dst) == target:\n"
        "        os.kill(os.getpid(), signum)\n"
        "def report(result):\n"
        "    os.kill(os.getpid(), signum)\n"
        "    real_report(result)\n"
        "os.replace, train.report = replace, report\n"
        "sys.argv[0] = 'train_model.py'\n"
        f"cli.run(train.main, {args!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-2:] == [f"the new model is saved: {out} (with its metadata, split and plots)", last_line]
    assert sorted(os.listdir(out.parent)) == sorted(OUTPUT_NAMES)  # all five, no temporary file
    assert json.loads((out.parent / "m.json").read_text())["class_names"] == ["with_mask", "without_mask"]


# ------------------------------------------------------------------ 5. int8 export: its calibration arrays


def fake_trained_model(folder, data_file="dataset/arrays.npz", made_by=None):
    """A model's files as training leaves them, enough for the checks before the model loads."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "m.keras"
    model.write_bytes(b"a .keras model (never loaded here)")
    data = {"file": data_file, **({"made_by": made_by} if made_by else {})}
    meta = {"class_names": ["with_mask", "without_mask"], "input_size": 224, "data": data}
    (folder / "m.json").write_text(json.dumps(meta))
    return model


def test_the_training_arrays_are_found_from_another_working_folder(tmp_path, monkeypatch):
    """Trained in project/ with --data dataset/arrays.npz (models/ written there): exported from elsewhere, the
    arrays named in the metadata are still found, from the folder above the model's."""
    from mask_detection.export import default_calibration_path

    model = fake_trained_model(tmp_path / "project" / "models")
    arrays = tmp_path / "project" / "dataset" / "arrays.npz"
    arrays.parent.mkdir()
    arrays.write_bytes(b"arrays")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert default_calibration_path(model) == arrays
    (elsewhere / "dataset").mkdir()
    (elsewhere / "dataset" / "arrays.npz").write_bytes(b"arrays here")
    assert default_calibration_path(model) == arrays.relative_to(tmp_path / "project")  # as named, from here first


def test_int8_without_arrays_names_what_was_looked_for(tmp_path, monkeypatch, capfd):
    model = fake_trained_model(tmp_path / "models", made_by="python loader.py --dataset faces --out dataset/arrays.npz")
    monkeypatch.chdir(tmp_path)
    code = run_command(export_command, "--model", model, "--quantize", "none", "int8")
    line = one_error_line(code, capfd.readouterr().err)
    assert line == (
        f"error: full-integer int8 export calibrates on training pictures, and none were found: {model} was "
        "trained on dataset/arrays.npz (not found; made by: python loader.py --dataset faces --out "
        "dataset/arrays.npz); make the arrays with loader.py, or name an arrays file with --calibration ARRAYS.npz"
    )
    assert sorted(os.listdir(tmp_path / "models")) == ["m.json", "m.keras"]


def test_int8_export_of_the_shipped_model_in_a_fresh_folder_says_how_to_get_arrays(tmp_path, monkeypatch, capfd):
    """The README's `export_model.py --quantize int8` in a checkout without dataset/arrays.npz: the shipped
    model's metadata says how its arrays were made."""
    monkeypatch.chdir(tmp_path)
    code = run_command(export_command, "--quantize", "int8")
    line = one_error_line(code, capfd.readouterr().err)
    assert f"{SHIPPED_DIR / 'mask_detector.keras'} was trained on dataset/arrays.npz (not found; made by: " in line
    assert line.endswith("or name an arrays file with --calibration ARRAYS.npz")
    assert os.listdir(tmp_path) == []


def test_int8_export_of_a_missing_model_says_the_model_is_missing(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    code = run_command(export_command, "--model", "missing.keras", "--quantize", "int8")
    line = one_error_line(code, capfd.readouterr().err)
    assert line == "error: model file missing.keras does not exist (train one with train_model.py)"
