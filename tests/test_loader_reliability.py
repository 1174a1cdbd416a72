"""loader.py, second reliability round: exit 1 when pictures were skipped, links that cannot be followed are
reported, --out checked before the scan and never inside a class folder, names with any bytes."""

import os

import pytest
from conftest import run_script
from test_loader import encode, solid, write

from mask_detection.arrays import load_arrays
from mask_detection.commands import loader
from mask_detection.dataset import build_arrays
from mask_detection.errors import OutputError

LATIN1 = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8


def picture(colour):
    return encode(solid(colour), "PNG")


@pytest.fixture
def clean_dataset(tmp_path):
    """Two classes, one exact duplicate and one label conflict, nothing undecodable."""
    root = tmp_path / "dataset"
    shared = picture((1, 2, 3))
    write(root / "with_mask" / "a.png", picture((200, 0, 0)))
    write(root / "with_mask" / "a_copy.png", picture((200, 0, 0)))
    write(root / "with_mask" / "shared.png", shared)
    write(root / "without_mask" / "b.png", picture((0, 0, 200)))
    write(root / "without_mask" / "shared.png", shared)
    return root


def test_duplicates_and_conflicts_exit_0_undecodable_exit_1(clean_dataset, tmp_path, capfd):
    out = tmp_path / "arrays.npz"
    args = ["--dataset", str(clean_dataset), "--out", str(out), "--quiet", "--no-face-crop"]
    assert loader.main(args) == 0  # duplicates and label conflicts are not failures
    write(clean_dataset / "without_mask" / "broken.jpg", b"not a picture")
    capfd.readouterr()
    assert loader.main(args) == 1
    assert "broken.jpg" in capfd.readouterr().err
    assert load_arrays(out)["labels"].tolist() == [0, 1]  # still written: the rest is usable


def test_help_explains_exit_1():
    result = run_script("loader.py", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "1 done, but some files were skipped" in text and "duplicates and label conflicts are not" in text


def test_broken_links_and_loops_warn_once_each_and_count_as_skipped(clean_dataset, tmp_path, capfd):
    with_mask = clean_dataset / "with_mask"
    os.symlink(tmp_path / "gone.png", with_mask / "dangling.png")
    os.symlink("loop.png", with_mask / "loop.png")
    outside = tmp_path / "more"
    write(outside / "c.png", picture((0, 200, 0)))
    os.symlink(outside, with_mask / "linked_folder")
    lines = []
    arrays, summary = build_arrays(clean_dataset, warn=lines.append)
    skipped = sorted(line for line in lines if line.startswith("skipped "))
    assert len(skipped) == 2
    assert "with_mask/dangling.png: broken link" in skipped[0] and "with_mask/loop.png: link loop" in skipped[1]
    followed = [line for line in lines if line.startswith("not followed")]
    assert len(followed) == 1 and "with_mask/linked_folder" in followed[0]
    item = summary.classes[0]
    assert (item.found, item.skipped) == (5, 2)
    assert sorted(summary.skipped_paths) == ["with_mask/dangling.png", "with_mask/loop.png"]
    assert "with_mask/linked_folder/c.png" not in arrays["paths"]  # links to folders are still not followed

    assert (
        loader.main(["--dataset", str(clean_dataset), "--out", str(tmp_path / "a.npz"), "--quiet", "--no-face-crop"])
        == 1
    )
    stderr = capfd.readouterr().err
    assert stderr.count("with_mask/dangling.png") == 1 and stderr.count("with_mask/loop.png") == 1


@pytest.mark.parametrize("where", ["picture", "class_folder", "new_class_folder"])
def test_out_inside_a_class_folder_is_refused_before_any_work(clean_dataset, where, capfd):
    target = {
        "picture": clean_dataset / "with_mask" / "a.png",
        "class_folder": clean_dataset / "with_mask" / "arrays.npz",
        "new_class_folder": clean_dataset / "arrays" / "arrays.npz",
    }[where]
    write(clean_dataset / "without_mask" / "broken.jpg", b"x")  # scanning would warn about it
    before = (clean_dataset / "with_mask" / "a.png").read_bytes()
    with pytest.raises(OutputError, match="^refusing to write"):
        loader.main(["--dataset", str(clean_dataset), "--out", str(target), "--quiet", "--no-face-crop"])
    assert capfd.readouterr().err == ""  # refused before the scan, which would warn about broken.jpg
    assert (clean_dataset / "with_mask" / "a.png").read_bytes() == before
    assert not (clean_dataset / "with_mask" / "arrays.npz").exists()
    assert not (clean_dataset / "arrays").exists()


def test_out_through_a_link_into_a_class_folder_is_refused(clean_dataset, tmp_path):
    os.symlink(clean_dataset / "with_mask", tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="refusing to write"):
        loader.main(
            [
                "--dataset",
                str(clean_dataset),
                "--out",
                str(tmp_path / "elsewhere" / "x.npz"),
                "--quiet",
                "--no-face-crop",
            ]
        )
    assert not (clean_dataset / "with_mask" / "x.npz").exists()


def test_unwritable_out_fails_before_the_scan(clean_dataset, tmp_path, capfd):
    write(clean_dataset / "without_mask" / "broken.jpg", b"x")  # scanning would warn about it
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    with pytest.raises(OutputError, match="^cannot write"):
        loader.main(
            ["--dataset", str(clean_dataset), "--out", str(blocker / "arrays.npz"), "--quiet", "--no-face-crop"]
        )
    assert capfd.readouterr().err == ""


def test_names_with_any_bytes_under_a_strict_utf8_console(tmp_path):
    root = tmp_path / "dataset"
    write(root / LATIN1 / f"{LATIN1}.png", picture((200, 0, 0)))
    write(root / LATIN1 / f"bad_{LATIN1}.jpg", b"not a picture")
    write(root / "without_mask" / "b.png", picture((0, 0, 200)))
    out = tmp_path / f"{LATIN1}.npz"
    result = run_script(
        "loader.py",
        "--dataset",
        root,
        "--out",
        out,
        "--quiet",
        "--no-face-crop",
        env={"PYTHONIOENCODING": "utf-8:strict"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "bad_caf\\xe9.jpg" in result.stderr
    assert "caf\\xe9" in result.stdout and "wrote" in result.stdout
    arrays = load_arrays(out)
    assert list(arrays["class_names"]) == [LATIN1, "without_mask"]
    assert list(arrays["paths"]) == [f"{LATIN1}/{LATIN1}.png", "without_mask/b.png"]
