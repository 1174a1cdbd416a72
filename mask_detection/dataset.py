"""Dataset folder -> the arrays for training (saved by ``arrays.save_arrays``).

Layout: ``<dataset>/<class>/...`` (any two or more class folders, sorted; every regular non-hidden file below a
class folder is tried, decoded by content). Exact duplicates (sha256 of the file bytes) are kept once; a picture
found under two different classes is a label conflict and is dropped from all of them. With a face detector,
each picture is cropped to its largest face by the same rule as detection (``crop.face_input``).

``combine_sources`` joins these arrays with those of annotated scene folders (``scene_crops``) into one arrays
file, each picture's source recorded.
"""

import errno
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import INPUT_SIZE
from .arrays import pixel_hash
from .boxes import clip_box
from .crop import SQUARE, face_input, largest_face, style_landmarks
from .errors import DatasetError, ImageDecodeError, OutputError, exception_line
from .fileio import check_writable, display_path
from .images import decode_image, shrink_to_side, to_model_input
from .interfaces import FaceDetector

Warn = Callable[[str], None]

# With a face detector, large pictures are decoded at reduced JPEG scale (short side still >= this) and faces are
# searched on a copy at most this big: a face that fills less than ~1/4 of such a picture would be upscaled from
# under 224 px anyway, and YuNet on a 20-megapixel frame takes seconds.
FACE_DECODE_SIDE = 4 * INPUT_SIZE
FACE_DETECT_MAX_SIDE = 1280


@dataclass
class ClassSummary:
    name: str
    found: int = 0  # candidate files
    skipped: int = 0  # undecodable
    duplicates: int = 0  # exact copies of an earlier file of the same class
    conflicts: int = 0  # same picture also under another class: dropped
    no_face: int = 0  # with a face detector only: kept as the whole picture
    kept: int = 0

    @property
    def decoded(self) -> int:
        return self.found - self.skipped


@dataclass
class Summary:
    classes: list[ClassSummary]
    face_crop: bool = False
    crop: str = SQUARE  # the crop style of the face crops (crop.CROP_STYLES)
    conflict_groups: int = 0
    skipped_paths: list[str] = field(default_factory=list)
    conflict_paths: list[list[str]] = field(default_factory=list)  # one list of paths per conflict group
    kept_whole: set[str] = field(default_factory=set)  # sha256 of the kept pictures where no face was found

    def total(self, attribute: str) -> int:
        return sum(getattr(item, attribute) for item in self.classes)


@dataclass
class Picture:
    """One distinct picture (files with the same bytes are copies of it)."""

    digest: str  # sha256 of the file bytes
    row: int | None = None  # its row in the images array; None when it cannot be used
    reason: str | None = None  # why it cannot be used (undecodable, out of memory...)
    no_face: bool = False  # a face crop was asked for and no face found: kept whole
    copies: list[tuple[int, str]] = field(default_factory=list)  # (class index, path) of every copy

    @property
    def classes(self) -> set[int]:
        return {class_index for class_index, _ in self.copies}


def _no_warning(message: str) -> None:
    pass


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def find_classes(dataset_dir: Path | str) -> list[str]:
    """Sorted class folder names of ``dataset_dir``; DatasetError unless there are two or more."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.exists():
        raise DatasetError(f"dataset folder not found: {dataset_dir}")
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset path is not a folder: {dataset_dir}")
    try:
        names = sorted(entry.name for entry in dataset_dir.iterdir() if entry.is_dir() and not _is_hidden(entry.name))
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {dataset_dir}: {exc.strerror or exc}") from None
    if not names:
        raise DatasetError(
            f"no class folders in {dataset_dir}: expected one sub-folder per class, e.g. "
            f"{dataset_dir}/with_mask and {dataset_dir}/without_mask"
        )
    if len(names) < 2:
        raise DatasetError(
            f"only one class folder in {dataset_dir} ({names[0]}): at least two classes are needed, "
            f"e.g. with_mask and without_mask"
        )
    return names


def check_arrays_output(out: Path | str, dataset_dir: Path | str, class_names: list[str]) -> None:
    """Refuse, before the slow scan, an arrays file that cannot be written or that would be read as a picture.

    Inside a class folder (or a folder that the next run would take for a new class) the arrays file could
    replace a picture, and would become an input of the next run.
    """
    check_writable(out)
    real = Path(os.path.realpath(out))
    for name in class_names:
        folder = Path(os.path.realpath(Path(dataset_dir) / name))
        if real.is_relative_to(folder):
            raise OutputError(
                f"refusing to write {display_path(out)}: it is inside the class folder "
                f"{display_path(Path(dataset_dir) / name)}, whose files are this run's inputs"
            )
    base = Path(os.path.realpath(dataset_dir))
    if real.is_relative_to(base) and len(real.relative_to(base).parts) > 1:
        first = real.relative_to(base).parts[0]
        if not first.startswith("."):  # hidden folders are not classes
            raise OutputError(
                f"refusing to write {display_path(out)}: {display_path(Path(dataset_dir) / first)} "
                f"would be taken for a class folder by the next run (write beside the class folders, "
                f"e.g. {display_path(Path(dataset_dir) / real.name)})"
            )


def list_class_files(class_dir: Path | str, warn: Warn | None = None) -> list[str]:
    """Regular non-hidden files below ``class_dir`` (recursively), as sorted relative '/'-paths.

    Entries that cannot be used (broken links, link loops, unreadable sub-folders...) get one ``warn`` line each;
    ``scan_class_folder`` also returns them.
    """
    return scan_class_folder(class_dir, warn)[0]


def scan_class_folder(class_dir: Path | str, warn: Warn | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """``(files, skipped)``: the regular non-hidden files below ``class_dir`` (recursively) as sorted relative
    '/'-paths, and ``(relative path, reason)`` for every entry that should have been a picture but cannot be
    read: a broken link, a link loop, a sub-folder that cannot be listed. One ``warn`` line per skipped entry.

    Links to folders are not followed (a link back up the tree would scan forever, and a picture would be read
    twice): each gets one ``warn`` line but is not counted as a failure.
    """
    warn = warn or _no_warning
    class_dir = Path(class_dir)
    found, skipped = [], []

    def rel_of(path):
        return Path(path).relative_to(class_dir).as_posix()

    def walk_error(exc):
        # os.walk passes over folders it cannot list unless told; each is a set of pictures not used.
        where = rel_of(exc.filename) if exc.filename and Path(exc.filename) != class_dir else "."
        reason = f"cannot list folder: {exc.strerror or exc}"
        skipped.append((where, reason))
        warn(f"skipped {display_path(class_dir.name)}/{display_path(where)}: {reason}")

    for top, dirnames, filenames in os.walk(class_dir, followlinks=False, onerror=walk_error):
        root = Path(top)
        kept = []
        for name in dirnames:
            if _is_hidden(name):
                continue
            if (root / name).is_symlink():
                target = display_path(os.readlink(root / name))
                warn(
                    f"not followed: {display_path(class_dir.name)}/{display_path(rel_of(root / name))} is a link "
                    f"to a folder ({target}); put the pictures themselves in the class folder"
                )
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if _is_hidden(name):
                continue
            full = root / name
            if full.is_file():  # regular file (or a link to one)
                found.append(rel_of(full))
                continue
            reason = _unusable_entry(full)
            if reason is not None:
                skipped.append((rel_of(full), reason))
                warn(f"skipped {display_path(class_dir.name)}/{display_path(rel_of(full))}: {reason}")
    return sorted(found), sorted(skipped)


def _unusable_entry(path: Path) -> str | None:
    """Why a non-regular entry is skipped: a broken link or a link loop; None for sockets, fifos, devices
    (never pictures)."""
    if not path.is_symlink():
        return None
    try:
        target = display_path(os.readlink(path))
    except OSError:
        target = "?"
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"link loop ({target})"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"broken link (its target {target} does not exist)"
        return f"cannot read link target {target}: {exc.strerror or exc}"
    return None  # a link to something that is neither a file nor a folder


def face_crop(
    rgb: np.ndarray, detector: FaceDetector, size: int = INPUT_SIZE, style: str = SQUARE
) -> np.ndarray | None:
    """The model input of ``rgb``'s largest face, cut as detection cuts faces in crop ``style``; None when no
    face is found."""
    small = shrink_to_side(rgb, FACE_DETECT_MAX_SIDE)
    scale = min(1.0, FACE_DETECT_MAX_SIDE / max(rgb.shape[:2]))  # what shrink_to_side shrank by
    face = largest_face(detector.detect(np.ascontiguousarray(small[:, :, ::-1])))
    if face is None:
        return None
    x, y, w, h = face.xywh
    box = clip_box(x / scale, y / scale, w / scale, h / scale, rgb.shape)
    if box is None:
        return None
    landmarks = style_landmarks(face, style)
    if landmarks is not None:
        landmarks = tuple((px / scale, py / scale) for px, py in landmarks)
    return face_input(rgb, box, size, landmarks=landmarks)


def build_arrays(
    dataset_dir: Path | str,
    detector: FaceDetector | None = None,
    progress: bool = False,
    warn: Warn | None = None,
    size: int = INPUT_SIZE,
    crop: str = SQUARE,
) -> tuple[dict[str, np.ndarray], Summary]:
    """Scan, decode, deduplicate and resize a dataset folder.

    Returns ``(arrays, summary)``: ``arrays`` has the keys of ``arrays.ARRAY_KEYS`` and ``crop``. ``detector``: when
    given, each picture is cropped to its largest face in ``crop`` style (pictures with none are kept whole; without
    a detector the style is recorded as square, the rule whole pictures meet at detection). ``progress``: a progress bar
    on stderr. Undecodable files are skipped with one ``warn`` line each. Raises DatasetError for a bad layout
    or a class that ends with no usable picture.
    """
    warn = warn or _no_warning
    dataset_dir = Path(dataset_dir)
    class_names = find_classes(dataset_dir)
    crop = crop if detector is not None else SQUARE
    summary = Summary([ClassSummary(name) for name in class_names], face_crop=detector is not None, crop=crop)
    candidates = _scan_candidates(dataset_dir, summary, warn)
    # Filled in place, one row per distinct decodable picture: the uint8 array is the only big allocation
    # (3,832 pictures -> 577 MB), no per-picture lists of arrays.
    images = np.empty((len(candidates), size, size, 3), dtype=np.uint8)
    pictures = _read_pictures(dataset_dir, candidates, images, detector, summary, progress, warn)
    _count_duplicates_and_conflicts(pictures, summary, warn)
    kept = [picture for picture in pictures if picture.copies and len(picture.classes) == 1]
    _check_every_class_kept(summary)
    arrays = {
        "images": _compact(images, [_row(picture) for picture in kept]),
        "labels": np.asarray([picture.copies[0][0] for picture in kept], dtype=np.int32),
        "class_names": np.asarray(class_names, dtype=str),
        "paths": np.asarray([picture.copies[0][1] for picture in kept], dtype=str),
        "hashes": np.asarray([picture.digest for picture in kept], dtype=str),
        "crop": np.asarray(crop),
    }
    return arrays, summary


def _scan_candidates(dataset_dir: Path, summary: Summary, warn: Warn) -> list[tuple[int, str]]:
    """(class index, path relative to the dataset folder) of every file to try, class by class."""
    candidates: list[tuple[int, str]] = []
    for index, item in enumerate(summary.classes):
        files, broken = scan_class_folder(dataset_dir / item.name, warn=warn)
        # Broken links and link loops are pictures the user meant to give: counted as found and skipped.
        item.found = len(files) + len(broken)
        item.skipped = len(broken)
        summary.skipped_paths.extend(f"{item.name}/{rel}" for rel, _ in broken)
        candidates.extend((index, f"{item.name}/{rel}") for rel in files)
    empty = [item.name for item in summary.classes if item.found == 0]
    if empty:
        raise DatasetError(f"class folder {display_path(dataset_dir / empty[0])} contains no files")
    return candidates


def _read_pictures(
    dataset_dir: Path,
    candidates: list[tuple[int, str]],
    images: np.ndarray,
    detector: FaceDetector | None,
    summary: Summary,
    progress: bool,
    warn: Warn,
) -> list[Picture]:
    """Read every candidate file; each distinct decodable picture fills the next row of ``images`` once.

    Returns the distinct pictures in the order they were first seen; unusable files are counted as skipped.
    """
    pictures: dict[str, Picture] = {}
    rows = 0

    def skip(class_index, rel, reason):
        summary.classes[class_index].skipped += 1
        summary.skipped_paths.append(rel)
        warn(f"skipped {rel}: {reason}")

    with tqdm(
        total=len(candidates), desc="loading", unit="img", file=sys.stderr, disable=not progress, leave=False
    ) as bar:
        for class_index, rel in candidates:
            bar.update(1)
            try:
                data = (dataset_dir / rel).read_bytes()
            except OSError as exc:
                skip(class_index, rel, f"cannot read: {exc.strerror or exc}")
                continue
            digest = hashlib.sha256(data).hexdigest()
            picture = pictures.get(digest)
            if picture is None:
                picture = pictures[digest] = _decode_picture(data, digest, images, rows, detector, summary.crop)
                del data
                rows += picture.row is not None
            if picture.reason is not None:
                skip(class_index, rel, picture.reason)
                continue
            picture.copies.append((class_index, rel))
    return list(pictures.values())


def _decode_picture(
    data: bytes, digest: str, images: np.ndarray, row: int, detector: FaceDetector | None, style: str
) -> Picture:
    """Decode a picture's bytes into ``images[row]`` (cropped to its face in crop ``style`` with a detector)."""
    max_side = FACE_DECODE_SIDE if detector is not None else images.shape[1]
    try:
        rgb = decode_image(data, max_side=max_side)
    except ImageDecodeError as exc:
        return Picture(digest, reason=exc.reason)
    try:
        crop = face_crop(rgb, detector, images.shape[1], style) if detector is not None else None
        images[row] = to_model_input(rgb, images.shape[1]) if crop is None else crop
    except MemoryError:
        # One picture too big for memory (or that OpenCV rejects) is one skipped file, not a lost run.
        return Picture(digest, reason="out of memory")
    except cv2.error as exc:
        return Picture(digest, reason=f"OpenCV error: {exception_line(exc, last=True)}")
    return Picture(digest, row=row, no_face=detector is not None and crop is None)


def _count_duplicates_and_conflicts(pictures: list[Picture], summary: Summary, warn: Warn) -> None:
    """Count duplicates per class and drop label conflicts (one warning per conflicting picture)."""
    conflict_groups = []
    for picture in pictures:
        if len(picture.classes) > 1:
            # Every copy of a conflicting picture goes, so all count as conflicts, none as duplicates.
            for class_index, _ in picture.copies:
                summary.classes[class_index].conflicts += 1
            conflict_groups.append([rel for _, rel in picture.copies])
        elif picture.copies:
            item = summary.classes[picture.copies[0][0]]
            item.duplicates += len(picture.copies) - 1
            item.kept += 1
            item.no_face += picture.no_face
            if picture.no_face:
                summary.kept_whole.add(picture.digest)
    conflict_groups.sort()
    for paths in conflict_groups:
        labels = ", ".join(sorted({rel.split("/", 1)[0] for rel in paths}))
        warn(f"label conflict: the same picture is under {labels}: {', '.join(paths)} (dropped from all)")
    summary.conflict_groups = len(conflict_groups)
    summary.conflict_paths = conflict_groups


def _check_every_class_kept(summary: Summary) -> None:
    for item in summary.classes:
        if item.kept == 0:
            if item.decoded == 0:
                reason = f"none of its {item.found} files could be decoded"
            else:
                reason = "all its pictures are duplicates of pictures in other classes (label conflicts)"
            raise DatasetError(f"class {item.name} has no usable image: {reason}")


def _row(picture: Picture) -> int:
    """The row of a picture that has copies: only pictures that decoded into a row get copies."""
    assert picture.row is not None
    return picture.row


def _compact(images: np.ndarray, rows: list[int]) -> np.ndarray:
    """The kept rows moved to the front in order; rows only ever move down, so in place is safe."""
    for new_row, old_row in enumerate(rows):
        if new_row != old_row:
            images[new_row] = images[old_row]
    return images[: len(rows)]


FOLDERS_SOURCE = "folders"  # the ``sources`` value of the class folders' pictures


@dataclass
class SourceCount:
    """What one source brought to the combined arrays."""

    source: str
    given: int  # pictures the source gave
    duplicates: int = 0  # the same pixels as an earlier picture (of any source, same class): dropped
    conflicts: int = 0  # the same pixels as a picture of another source under another class: all copies dropped
    kept: int = 0


def combine_sources(parts: Sequence[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[SourceCount]]:
    """Several sources' arrays (same classes, same image size) as one, with a ``sources`` array.

    A part without ``sources`` is the class folders' (``FOLDERS_SOURCE``). Pictures are compared by the sha256
    of their model-input pixels, because a scene crop is not a file: the first copy is kept; a picture found
    under two classes is dropped from all of them, as in the class folders. Raises DatasetError when a class
    ends with no picture.
    """
    class_names = [str(name) for name in parts[0]["class_names"]]
    styles = sorted({str(part.get("crop", SQUARE)) for part in parts})
    if len(styles) > 1:
        raise DatasetError(f"the sources' faces are cut in different crop styles ({', '.join(styles)})")
    sources = [part.get("sources", np.full(len(part["labels"]), FOLDERS_SOURCE)) for part in parts]
    counts = [SourceCount(str(names[0]) if len(names) else FOLDERS_SOURCE, len(names)) for names in sources]
    first: dict[str, tuple[int, int, int]] = {}  # pixel sha256 -> (part, row, label) of its first copy
    dropped: set[str] = set()  # label conflicts
    candidates: list[tuple[int, int, str]] = []  # (part, row, pixel sha256) of each first copy
    for p, part in enumerate(parts):
        for row, label in enumerate(part["labels"].tolist()):
            digest = pixel_hash(part["images"][row])
            seen = first.get(digest)
            if seen is None:
                first[digest] = (p, row, label)
                candidates.append((p, row, digest))
            elif seen[2] == label:
                counts[p].duplicates += 1
            else:
                counts[p].conflicts += 1
                if digest not in dropped:
                    dropped.add(digest)
                    counts[seen[0]].conflicts += 1
    keep = [(p, row) for p, row, digest in candidates if digest not in dropped]
    for p, _ in keep:
        counts[p].kept += 1
    combined = {
        "images": np.stack([parts[p]["images"][row] for p, row in keep]) if keep else parts[0]["images"][:0],
        "labels": np.asarray([parts[p]["labels"][row] for p, row in keep], dtype=np.int32),
        "class_names": np.asarray(class_names, dtype=str),
    }
    for key, values in (("paths", [part["paths"] for part in parts]), ("hashes", [part["hashes"] for part in parts])):
        combined[key] = np.asarray([str(values[p][row]) for p, row in keep], dtype=str).reshape(len(keep))
    combined["sources"] = np.asarray([str(sources[p][row]) for p, row in keep], dtype=str).reshape(len(keep))
    combined["crop"] = np.asarray(styles[0])
    kept_classes = set(combined["labels"].tolist())
    for index, name in enumerate(class_names):
        if index not in kept_classes:
            raise DatasetError(f"class {name} has no usable picture in any source")
    return combined, counts


def format_table(headers: list[str], rows: list[list[str]], total: list[str] | None = None) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned, a total row below a rule."""
    everything = rows + ([total] if total else [])
    name_width = max(len(headers[0]), *(len(row[0]) for row in everything))
    widths = [max(len(header), *(len(row[i + 1]) for row in everything)) for i, header in enumerate(headers[1:])]

    def line(cells):
        return "  ".join(
            [cells[0].ljust(name_width)] + [cell.rjust(w) for cell, w in zip(cells[1:], widths, strict=True)]
        )

    out = [line(headers)]
    out.append("-" * len(out[0]))
    out.extend(line(row) for row in rows)
    if total:
        out.append("-" * len(out[0]))
        out.append(line(total))
    return "\n".join(out)


def format_sources(counts: Sequence[SourceCount]) -> str:
    """The table of what each source brought to the combined arrays."""
    columns = ["given", "duplicates", "conflicts", "kept"]
    rows = [[count.source] + [str(getattr(count, column)) for column in columns] for count in counts]
    total = ["total"] + [str(sum(getattr(count, column) for count in counts)) for column in columns]
    return format_table(["source", *columns], rows, total)


def format_summary(summary: Summary) -> str:
    """The per-class table the loader prints at the end."""
    columns = ["found", "decoded", "skipped", "duplicates", "conflicts"]
    if summary.face_crop:
        columns.append("no_face")
    columns.append("kept")
    headers = [column.replace("_", " ") for column in columns]
    rows = [[item.name] + [str(getattr(item, column)) for column in columns] for item in summary.classes]
    total = ["total"] + [str(summary.total(column)) for column in columns]
    out = format_table(["class", *headers], rows, total).split("\n")
    if summary.conflict_groups:
        out.append(f"label conflicts: {summary.conflict_groups} picture(s) found under more than one class, dropped")
    return "\n".join(out)
