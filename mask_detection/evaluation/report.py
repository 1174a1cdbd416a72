"""The report folder: checked before any slow work, and its files replaced together or not at all."""

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..fileio import atomic_paths, check_writable, display_path, refuse_overwriting_inputs, safe_text

# One report file: its name and the function writing it to a given (temporary) path.
FileWriter = tuple[str, Callable[[Path], None]]


def default_report_dir(source: str | Path) -> Path:
    """output/eval-<name of the evaluated folder>."""
    return Path("output") / f"eval-{Path(source).resolve().name or 'scenes'}"


def check_report_dir(
    report_dir: str | Path,
    input_folders: Iterable[Path] = (),
    inside_forbidden: Iterable[Path] = (),
    input_files: Iterable[Path] = (),
    report_files: Iterable[str] = (),
) -> Path:
    """Fail at once, before the model loads or any photo runs, when the report cannot be written or would touch
    the run's inputs.

    ``input_folders``: folders read (the report folder may not be one of them); ``inside_forbidden``: folders
    read recursively (the report may not go anywhere inside them: its pictures would be inputs of the next
    run); ``input_files``: files read (no report file may be one of them, through links or other spellings).
    """
    report_dir = Path(report_dir)
    check_writable(report_dir, folder=True)
    refuse_overwriting_inputs([report_dir], input_folders)
    real = Path(os.path.realpath(report_dir))
    for folder in inside_forbidden:
        base = Path(os.path.realpath(folder))
        if real == base or real.is_relative_to(base):
            raise OutputError(
                f"refusing to write the report into {display_path(report_dir)}: it is inside "
                f"{display_path(folder)}, whose files are this run's inputs"
            )
    # Only report files that already exist can be an input (a link, a hard link): check those alone, fast.
    existing = [report_dir / name for name in report_files if os.path.lexists(report_dir / name)]
    if existing:
        refuse_overwriting_inputs(existing, input_files)
    return report_dir


def write_report_files(report_dir: str | Path, writers: Sequence[FileWriter]) -> None:
    """The report's files are replaced together or not at all, so an interrupted or failed run leaves the
    previous report whole, never a mix of old and new files; nor an empty report folder that it created."""
    report_dir = Path(report_dir)
    created = missing_folders(report_dir)
    written = False
    try:
        with atomic_paths([report_dir / name for name, _ in writers]) as temporaries:
            for (_, write), tmp in zip(writers, temporaries, strict=True):
                write(Path(tmp))
        written = True
    except OSError as exc:
        raise OutputError(f"cannot write the report in {display_path(report_dir)}: {exc.strerror or exc}") from None
    finally:
        if not written:
            remove_empty_folders(created)


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, deepest first: what writing into it creates."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove each folder that is empty, deepest first; one holding anything (another run's files) stays."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty, or never made (the disk was full before it)
            os.rmdir(folder)


def text_writer(text: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        tmp.write_text(safe_text(text), encoding="utf-8")

    return write


def json_writer(obj: Any) -> Callable[[Path], None]:
    return text_writer(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def percent(value: float | None, digits: int = 1) -> str:
    """98.0%, or n/a for a figure that could not be computed."""
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"
