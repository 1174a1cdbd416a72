"""dataset.py and loader.py on generated dataset folders: real files, real decoding."""

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask_detection.arrays import load_arrays, save_arrays
from mask_detection.commands import loader
from mask_detection.dataset import build_arrays, format_summary
from mask_detection.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
LOADER = REPO / "loader.py"


def encode(img, fmt, **kwargs):
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def solid(colour, size=(32, 32), mode="RGB"):
    return Image.new(mode, size, colour)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def messy_dataset(tmp_path):
    """Two classes with every awkward kind of file the real data (and users) have."""
    root = tmp_path / "dataset"
    a, b = root / "with_mask", root / "without_mask"
    shared = encode(solid((1, 2, 3)), "PNG")  # the same picture in both classes: a label conflict
    dup = encode(solid((200, 100, 50)), "PNG")  # twice in with_mask: one duplicate
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 20))
    palette = solid((0, 0, 255)).convert("P")
    deep = Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40)

    write(a / "01_png_named.jpg", encode(solid((10, 200, 30)), "PNG"))
    write(a / "02_webp.jpg", encode(solid((200, 20, 20)), "WEBP", lossless=True))
    write(a / "03_rgba.png", encode(rgba, "PNG"))
    write(a / "04_dup_first.png", dup)
    write(a / "05_dup_second.png", dup)
    write(a / "06_corrupt.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13\x37" * 50)
    write(a / "07_text.jpg", b"this is not a picture\n")
    write(a / "08_shared.png", shared)
    write(a / "sub" / "09_nested.jpg", encode(solid((120, 120, 120), (1, 1)), "JPEG"))  # 1x1, in a sub-folder
    write(a / ".hidden.jpg", encode(solid((0, 0, 0)), "PNG"))  # hidden: not even tried
    write(a / ".cache" / "x.jpg", encode(solid((0, 0, 0)), "PNG"))  # hidden folder: not scanned

    write(b / "01_palette.png", encode(palette, "PNG"))
    write(b / "02_gray.png", encode(solid(90, mode="L"), "PNG"))
    write(b / "03_16bit.png", encode(deep, "PNG"))
    write(b / "04_huge.jpg", encode(solid((30, 60, 90), (6000, 400)), "JPEG", quality=70))
    write(b / "05_empty.jpg", b"")
    write(b / "06_shared.jpg", shared)
    write(root / "README.txt", b"files at the top level are not pictures of any class")
    return root


def collect_warnings():
    lines = []
    return lines, lines.append


def test_build_arrays_on_messy_dataset(messy_dataset):
    warnings, warn = collect_warnings()
    arrays, summary = build_arrays(messy_dataset, warn=warn)

    assert list(arrays["class_names"]) == ["with_mask", "without_mask"]
    assert list(arrays["paths"]) == [
        "with_mask/01_png_named.jpg",
        "with_mask/02_webp.jpg",
        "with_mask/03_rgba.png",
        "with_mask/04_dup_first.png",
        "with_mask/sub/09_nested.jpg",
        "without_mask/01_palette.png",
        "without_mask/02_gray.png",
        "without_mask/03_16bit.png",
        "without_mask/04_huge.jpg",
    ]
    assert arrays["labels"].dtype == np.int32
    assert arrays["labels"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    images = arrays["images"]
    assert images.dtype == np.uint8 and images.shape == (9, 224, 224, 3)
    for rel, digest in zip(arrays["paths"], arrays["hashes"], strict=True):
        assert digest == hashlib.sha256((messy_dataset / rel).read_bytes()).hexdigest()

    # Pixels come from the right files, decoded by content.
    assert (images[0] == (10, 200, 30)).all()  # PNG named .jpg
    assert (images[1] == (200, 20, 20)).all()  # lossless WebP named .jpg
    assert (images[2][:, :40] == (255, 0, 0)).all()  # RGBA: opaque red on the left ...
    assert (images[2][:, 190:] == (255, 255, 255)).all()  # ... transparent part white
    assert (images[3] == (200, 100, 50)).all()
    assert (np.abs(images[4].astype(int) - 120) <= 3).all()  # 1x1 JPEG, enlarged
    assert (images[5] == (0, 0, 255)).all()  # palette
    assert (images[6] == 90).all()  # grayscale
    assert images[7].max() > 200 and images[7].min() < 10  # 16-bit scaled, not clipped to white
    assert (np.abs(images[8].astype(int) - (30, 60, 90)) <= 4).all()  # 6000x400 JPEG

    by_name = {item.name: item for item in summary.classes}
    a, b = by_name["with_mask"], by_name["without_mask"]
    assert (a.found, a.decoded, a.skipped, a.duplicates, a.conflicts, a.kept) == (9, 7, 2, 1, 1, 5)
    assert (b.found, b.decoded, b.skipped, b.duplicates, b.conflicts, b.kept) == (6, 5, 1, 0, 1, 4)
    assert summary.conflict_groups == 1
    assert summary.total("kept") == 9

    skipped = [line for line in warnings if line.startswith("skipped ")]
    assert len(skipped) == 3
    assert any("with_mask/06_corrupt.jpg" in line for line in skipped)
    assert any("with_mask/07_text.jpg" in line for line in skipped)
    assert any("without_mask/05_empty.jpg" in line and "empty" in line for line in skipped)
    conflicts = [line for line in warnings if line.startswith("label conflict")]
    assert len(conflicts) == 1
    assert "with_mask/08_shared.png" in conflicts[0] and "without_mask/06_shared.jpg" in conflicts[0]
    assert len(warnings) == 4 and all("\n" not in line for line in warnings)

    table = format_summary(summary)
    assert "with_mask" in table and "total" in table and "no face" not in table


def test_save_and_load_round_trip(messy_dataset, tmp_path):
    arrays, _ = build_arrays(messy_dataset, warn=lambda message: None)
    out = tmp_path / "out" / "arrays.data"  # any ending: np.savez must not append ".npz"
    size = save_arrays(out, arrays)
    assert out.is_file() and out.stat().st_size == size
    assert [p.name for p in out.parent.iterdir()] == ["arrays.data"]  # no temporary left behind
    loaded = load_arrays(out)
    for key in arrays:
        assert loaded[key].dtype == arrays[key].dtype
        np.testing.assert_array_equal(loaded[key], arrays[key])


def test_load_arrays_rejects_bad_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_arrays(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(DatasetError, match="not a valid arrays file"):
        load_arrays(text)
    partial = tmp_path / "partial.npz"
    np.savez(partial, images=np.zeros((1, 224, 224, 3), np.uint8))
    with pytest.raises(DatasetError, match="missing labels"):
        load_arrays(partial)
    wrong = tmp_path / "wrong.npz"
    np.savez(
        wrong,
        images=np.zeros((2, 224, 224, 3), np.float32),
        labels=np.zeros(2, np.int32),
        class_names=np.array(["a", "b"]),
        paths=np.array(["a/1", "b/2"]),
        hashes=np.array(["x", "y"]),
    )
    with pytest.raises(DatasetError, match="images must be uint8"):
        load_arrays(wrong)


def test_more_than_two_classes_and_case_of_names(tmp_path):
    root = tmp_path / "d"
    for index, name in enumerate(["cat", "Bird", "dog"]):
        write(root / name / "x.png", encode(solid((index * 50, 0, 0)), "PNG"))
    arrays, summary = build_arrays(root, warn=lambda message: None)
    assert list(arrays["class_names"]) == ["Bird", "cat", "dog"]  # sorted
    assert arrays["labels"].tolist() == [0, 1, 2]
    assert (arrays["images"][0] == (50, 0, 0)).all()


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "dataset folder not found"),
        ("file", "not a folder"),
        ("no_classes", "no class folders"),
        ("one_class", "only one class folder"),
        ("empty_class", "contains no files"),
        ("unreadable_class", "has no usable image: none of its 2 files could be decoded"),
        ("conflict_only_class", "has no usable image: all its pictures are duplicates"),
    ],
)
def test_bad_datasets(tmp_path, layout, message):
    root = tmp_path / "dataset"
    good = encode(solid((5, 5, 5)), "PNG")
    if layout == "file":
        write(root, b"x")
    elif layout == "no_classes":
        write(root / "loose.jpg", good)
    elif layout == "one_class":
        write(root / "with_mask" / "a.png", good)
    elif layout != "missing":
        write(root / "with_mask" / "a.png", good)
        if layout == "empty_class":
            (root / "without_mask").mkdir()
            write(root / "without_mask" / ".DS_Store", b"hidden files do not count")
        elif layout == "unreadable_class":
            write(root / "without_mask" / "a.jpg", b"text")
            write(root / "without_mask" / "b.jpg", b"")
        elif layout == "conflict_only_class":
            write(root / "with_mask" / "b.png", encode(solid((9, 9, 9)), "PNG"))
            write(root / "without_mask" / "a.png", good)
    with pytest.raises(DatasetError, match=message):
        build_arrays(root, warn=lambda line: None)

    # The command: the same error (one line, shown by common.run with exit 2), no output file.
    out = tmp_path / "arrays.npz"
    with pytest.raises(DatasetError, match=message) as error:
        loader.main(["--dataset", str(root), "--out", str(out), "--quiet"])
    assert "\n" not in str(error.value)
    assert not out.exists()


def test_cli_end_to_end(messy_dataset, tmp_path):
    """The real script, once, end to end."""
    out = tmp_path / "arrays.npz"
    result = subprocess.run(
        [sys.executable, str(LOADER), "--dataset", str(messy_dataset), "--out", str(out), "--no-face-crop"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Some files skipped: the arrays file is written from the rest, and the exit status says so (README contract).
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 4  # 3 undecodable files + 1 conflict group, one line each
    assert "3 file(s) skipped" in result.stderr
    assert "06_corrupt.jpg" in result.stderr and "07_text.jpg" in result.stderr
    lines = result.stdout.splitlines()
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "15", "12", "3", "1", "2", "9"]
    assert f"wrote {out}" in result.stdout
    loaded = load_arrays(out)
    assert loaded["images"].shape == (9, 224, 224, 3)


def test_default_out_is_inside_dataset(messy_dataset, capfd):
    assert loader.main(["--dataset", str(messy_dataset), "--quiet", "--no-face-crop"]) == 1  # undecodable files
    assert "loading" not in capfd.readouterr().err  # --quiet: no progress bar
    assert load_arrays(messy_dataset / "arrays.npz")["labels"].shape == (9,)
    # A second run does not pick up its own output (top level, not in a class folder).
    assert loader.main(["--dataset", str(messy_dataset), "--quiet", "--no-face-crop"]) == 1
    total = next(line for line in capfd.readouterr().out.splitlines() if line.startswith("total"))
    assert total.split()[1] == "15"


def test_face_crop_counts_no_face(tmp_path):
    """Flat colour pictures have no face: kept whole and counted per class."""
    pytest.importorskip("cv2")
    from mask_detection.paths import YUNET_PATH as DEFAULT_DETECTOR_PATH

    if not DEFAULT_DETECTOR_PATH.is_file():
        pytest.skip("YuNet model not present")
    root = tmp_path / "d"
    write(root / "a" / "1.png", encode(solid((10, 10, 10), (300, 200)), "PNG"))
    write(root / "b" / "1.png", encode(solid((20, 20, 20), (64, 64)), "PNG"))
    write(root / "b" / "2.jpg", encode(solid((200, 20, 20), (3000, 2000)), "JPEG"))
    from mask_detection.detector import load_detector

    arrays, summary = build_arrays(root, detector=load_detector(), warn=lambda line: None)
    assert [item.no_face for item in summary.classes] == [1, 2]
    assert (arrays["images"][0] == 10).all()  # whole picture kept
    assert "no face" in format_summary(summary)


def test_help_does_not_import_the_slow_libraries():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(LOADER), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--face-crop" in result.stdout and "--dataset" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "numpy" in imported  # the measurement sees imports at all
    for slow in ("tensorflow", "keras", "sklearn", "matplotlib", "skimage"):
        assert slow not in imported, slow


def test_face_crop_is_the_cli_default_and_crops_like_detection(tmp_path):
    """A real face photo is stored as the same face crop that detection classifies (the square rule by default,
    aligned on the landmarks with --crop aligned), and the arrays record which."""
    import cv2
    from skimage import data

    from mask_detection.crop import face_input, largest_face
    from mask_detection.detector import load_detector
    from mask_detection.images import to_model_input

    astronaut = data.astronaut()
    root = tmp_path / "d"
    write(root / "with_mask" / "a.png", encode(Image.fromarray(astronaut), "PNG"))
    write(root / "without_mask" / "b.png", encode(Image.fromarray(astronaut[:, ::-1].copy()), "PNG"))
    out = tmp_path / "arrays.npz"
    assert loader.main(["--dataset", str(root), "--out", str(out), "--quiet"]) == 0
    arrays = load_arrays(out)
    face = largest_face(load_detector().detect(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)))
    expected = face_input(astronaut, face.xywh)  # what detection feeds the classifier: the square rule by default
    assert np.abs(arrays["images"][0].astype(int) - expected).mean() < 1.0
    assert np.abs(arrays["images"][0].astype(int) - to_model_input(astronaut)).mean() > 20
    assert str(arrays["crop"]) == "square"

    aligned = tmp_path / "aligned.npz"
    assert loader.main(["--dataset", str(root), "--out", str(aligned), "--quiet", "--crop", "aligned"]) == 0
    arrays = load_arrays(aligned)
    expected = face_input(astronaut, face.xywh, landmarks=face.landmarks)
    assert np.abs(arrays["images"][0].astype(int) - expected).mean() < 1.0
    assert str(arrays["crop"]) == "aligned"

    whole = tmp_path / "whole.npz"
    assert loader.main(["--dataset", str(root), "--out", str(whole), "--quiet", "--no-face-crop"]) == 0
    assert np.array_equal(load_arrays(whole)["images"][0], to_model_input(astronaut))


def test_painted_masks_add_a_masked_copy_of_every_bare_face(tmp_path, capfd):
    from conftest import run_command
    from skimage import data

    from mask_detection.painted_masks import PAINTED_SOURCE

    astronaut = data.astronaut()
    root = tmp_path / "d"
    write(root / "with_mask" / "a.png", encode(Image.fromarray(astronaut), "PNG"))
    write(root / "without_mask" / "b.png", encode(Image.fromarray(astronaut[:, ::-1].copy()), "PNG"))
    noise = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    write(root / "without_mask" / "c.png", encode(Image.fromarray(noise), "PNG"))  # no face: kept whole
    out = tmp_path / "arrays.npz"
    # Painting needs aligned crops: refused before any work, with one error line.
    assert run_command(loader, "--dataset", root, "--out", out, "--quiet", "--painted-masks") == 2
    assert "--painted-masks paints on the class folders' aligned face crops" in capfd.readouterr().err
    assert not out.exists()

    args = ("--dataset", root, "--out", out, "--quiet", "--painted-masks", "--crop", "aligned")
    assert run_command(loader, *args) == 0
    printed = capfd.readouterr().out
    assert "painted masks: 1 bare face(s) copied with a mask (1 bare picture(s) kept whole" in printed  # the noise
    arrays = load_arrays(out)
    painted = arrays["sources"] == PAINTED_SOURCE
    assert painted.sum() == 1 and arrays["labels"][painted].tolist() == [0]  # labelled with_mask
    bare = int(np.nonzero(arrays["paths"] == "without_mask/b.png")[0][0])
    assert arrays["paths"][painted][0].startswith("without_mask/b.png#painted-")
    difference = np.abs(arrays["images"][painted][0].astype(int) - arrays["images"][bare]).sum(axis=2) > 30
    assert 0.2 < difference.mean() < 0.6  # the lower face, not the whole picture

    other = tmp_path / "other"
    write(other / "cats" / "a.png", encode(Image.fromarray(astronaut), "PNG"))
    write(other / "dogs" / "b.png", encode(Image.fromarray(astronaut), "PNG"))
    assert (
        run_command(loader, "--dataset", other, "--out", tmp_path / "o.npz", "--crop", "aligned", "--painted-masks")
        == 2
    )
    assert "needs class folders with_mask and without_mask" in capfd.readouterr().err
