"""Dataset folder -> one arrays file for training.

Layout: ``<dataset>/<class>/...`` (any two or more class folders, sorted; every regular non-hidden
file below a class folder is tried, decoded by content). Exact duplicates (sha256 of the file bytes)
are kept once; a picture found under two different classes is a label conflict and is dropped from
all of them. The arrays file (uncompressed .npz) holds:

- ``images`` uint8 (N, 224, 224, 3) RGB, made by ``images.to_model_input``
- ``labels`` int32 (N,), indices into ``class_names``
- ``class_names`` str (n_classes,)
- ``paths`` str (N,), relative to the dataset folder, '/'-separated
- ``hashes`` str (N,), sha256 hex of the file bytes
"""

import errno
import hashlib
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import INPUT_SIZE
from .errors import DatasetError, ImageDecodeError
from .fileio import atomic_path, display_path

ARRAY_KEYS = ("images", "labels", "class_names", "paths", "hashes")

# With --face-crop, large pictures are decoded at reduced JPEG scale (short side still >= this) and
# faces are searched on a copy at most this big: a face that fills less than ~1/4 of such a picture
# would be upscaled from under 224 px anyway, and YuNet on a 20-megapixel frame takes seconds.
FACE_DECODE_SIDE = 4 * INPUT_SIZE
FACE_DETECT_MAX_SIDE = 1280


@dataclass
class ClassSummary:
    name: str
    found: int = 0  # candidate files
    skipped: int = 0  # undecodable
    duplicates: int = 0  # exact copies of an earlier file of the same class
    conflicts: int = 0  # same picture also under another class: dropped
    no_face: int = 0  # --face-crop only: kept as the whole picture
    kept: int = 0

    @property
    def decoded(self):
        return self.found - self.skipped


@dataclass
class Summary:
    classes: list
    face_crop: bool = False
    conflict_groups: int = 0
    skipped_paths: list = field(default_factory=list)
    conflict_paths: list = field(default_factory=list)  # one list of paths per conflict group

    def total(self, attribute):
        return sum(getattr(item, attribute) for item in self.classes)


def _default_warn(message):
    from tqdm import tqdm

    from .fileio import safe_text

    # tqdm.write prints above a running progress bar instead of through it. File names may hold any bytes
    # (Linux names are bytes) and stderr any encoding: the line is made printable first.
    stream = sys.stderr
    text = safe_text(f"warning: {message}")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    tqdm.write(text, file=stream)


def _is_hidden(name):
    return name.startswith(".")


def find_classes(dataset_dir):
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


def list_class_files(class_dir, warn=None):
    """Regular non-hidden files below ``class_dir`` (recursively), as sorted relative '/'-paths.

    Entries that cannot be used (broken links, link loops, unreadable sub-folders...) get one ``warn`` line each;
    ``scan_class_folder`` also returns them.
    """
    return scan_class_folder(class_dir, warn)[0]


def scan_class_folder(class_dir, warn=None):
    """``(files, skipped)``: the regular non-hidden files below ``class_dir`` (recursively) as sorted relative
    '/'-paths, and ``(relative path, reason)`` for every entry that should have been a picture but cannot be
    read: a broken link, a link loop, a sub-folder that cannot be listed. One ``warn`` line per skipped entry.

    Links to folders are not followed (a link back up the tree would scan forever, and a picture would be read
    twice): each gets one ``warn`` line but is not counted as a failure.
    """
    from .fileio import display_path

    warn = warn or _default_warn
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

    for root, dirnames, filenames in os.walk(class_dir, followlinks=False, onerror=walk_error):
        root = Path(root)
        kept = []
        for name in dirnames:
            if _is_hidden(name):
                continue
            if (root / name).is_symlink():
                target = display_path(os.readlink(root / name))
                warn(f"not followed: {display_path(class_dir.name)}/{display_path(rel_of(root / name))} is a link "
                     f"to a folder ({target}); put the pictures themselves in the class folder")
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


def _unusable_entry(path):
    """Why a non-regular entry is skipped: a broken link or a link loop; None for sockets, fifos, devices
    (never pictures)."""
    from .fileio import display_path

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


def _last_line(exc):
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _face_crop(rgb, detector):
    """Crop ``rgb`` to its largest face; None when no face is found."""
    import cv2

    from .faces import clip_box, crop_face, largest_face

    height, width = rgb.shape[:2]
    scale = min(1.0, FACE_DETECT_MAX_SIDE / max(height, width))
    if scale < 1.0:
        small = cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    else:
        small = rgb
    faces = detector.detect(np.ascontiguousarray(small[:, :, ::-1]))
    face = largest_face(faces)
    if face is None:
        return None
    x, y, w, h = face.box
    box = clip_box(x / scale, y / scale, w / scale, h / scale, rgb.shape)
    if box is None:
        return None
    return crop_face(rgb, box)


def build_arrays(
    dataset_dir,
    face_crop=False,
    detector=None,
    face_confidence=0.5,
    progress=True,
    warn=None,
    size=INPUT_SIZE,
):
    """Scan, decode, deduplicate and resize a dataset folder.

    Returns ``(arrays, summary)``: ``arrays`` has the keys of ARRAY_KEYS, ``summary`` is a Summary.
    Undecodable files are skipped with one ``warn`` line each. Raises DatasetError for a bad layout or
    a class that ends with no usable picture.
    """
    import cv2
    from tqdm import tqdm

    from .images import decode_image, to_model_input

    warn = warn or _default_warn
    dataset_dir = Path(dataset_dir)
    class_names = find_classes(dataset_dir)
    summaries = [ClassSummary(name) for name in class_names]

    candidates = []  # (class index, path relative to dataset_dir)
    skipped_paths = []
    for index, name in enumerate(class_names):
        files, broken = scan_class_folder(dataset_dir / name, warn=warn)
        # Broken links and link loops are pictures the user meant to give: counted as found and skipped.
        summaries[index].found = len(files) + len(broken)
        summaries[index].skipped = len(broken)
        skipped_paths.extend(f"{name}/{rel}" for rel, _ in broken)
        candidates.extend((index, f"{name}/{rel}") for rel in files)
    empty = [name for name, item in zip(class_names, summaries) if item.found == 0]
    if empty:
        raise DatasetError(f"class folder {display_path(dataset_dir / empty[0])} contains no files")

    if face_crop and detector is None:
        from .faces import FaceDetector

        detector = FaceDetector(score_threshold=face_confidence)

    # Filled in place, one row per first copy of each decodable picture: the uint8 array is the only
    # big allocation (3,832 pictures -> 577 MB), no per-picture lists of arrays.
    images = np.empty((len(candidates), size, size, 3), dtype=np.uint8)
    row_of_hash = {}  # sha256 -> row in images (decodable content, first copy)
    bad_hash = {}  # sha256 -> reason (undecodable content)
    classes_of_hash = {}  # sha256 -> set of class indices where it was found decodable
    entries = []  # (class index, rel path, sha256) for first copies within their class, in row order
    seen_in_class = set()  # (class index, sha256)
    hash_paths = {}  # sha256 -> [(class index, rel path)] of every decodable copy
    no_face_rows = set()
    max_side = FACE_DECODE_SIDE if face_crop else size

    bar = tqdm(total=len(candidates), desc="loading", unit="img", file=sys.stderr, disable=not progress, leave=False)
    try:
        for class_index, rel in candidates:
            bar.update(1)
            item = summaries[class_index]
            full = dataset_dir / rel
            try:
                data = full.read_bytes()
            except OSError as exc:
                item.skipped += 1
                skipped_paths.append(rel)
                warn(f"skipped {rel}: cannot read: {exc.strerror or exc}")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in bad_hash:
                item.skipped += 1
                skipped_paths.append(rel)
                warn(f"skipped {rel}: {bad_hash[digest]}")
                continue
            if digest not in row_of_hash:
                try:
                    rgb = decode_image(data, max_side=max_side)
                except ImageDecodeError as exc:
                    bad_hash[digest] = exc.reason
                    item.skipped += 1
                    skipped_paths.append(rel)
                    warn(f"skipped {rel}: {exc.reason}")
                    continue
                del data
                row = len(row_of_hash)
                try:
                    crop = _face_crop(rgb, detector) if face_crop else None
                    images[row] = to_model_input(rgb if crop is None else crop, size)
                except (MemoryError, cv2.error) as exc:
                    # One picture too big for memory (or that OpenCV rejects) is one skipped file, not a lost run.
                    reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {_last_line(exc)}"
                    bad_hash[digest] = reason
                    item.skipped += 1
                    skipped_paths.append(rel)
                    warn(f"skipped {rel}: {reason}")
                    continue
                finally:
                    del rgb
                if face_crop and crop is None:
                    no_face_rows.add(row)
                row_of_hash[digest] = row
            hash_paths.setdefault(digest, []).append((class_index, rel))
            classes_of_hash.setdefault(digest, set()).add(class_index)
            if (class_index, digest) not in seen_in_class:
                seen_in_class.add((class_index, digest))
                entries.append((class_index, rel, digest))
    finally:
        bar.close()

    conflict_groups = []
    for digest, found in hash_paths.items():
        if len(classes_of_hash[digest]) > 1:
            # Every copy of a conflicting picture goes, so all count as conflicts, none as duplicates.
            for class_index, _ in found:
                summaries[class_index].conflicts += 1
            conflict_groups.append([rel for _, rel in found])
        else:
            summaries[found[0][0]].duplicates += len(found) - 1
    conflict_hashes = {digest for digest in hash_paths if len(classes_of_hash[digest]) > 1}
    conflict_groups.sort()
    for paths in conflict_groups:
        labels = ", ".join(sorted({rel.split("/", 1)[0] for rel in paths}))
        warn(f"label conflict: the same picture is under {labels}: {', '.join(paths)} (dropped from all)")

    # Compact the kept rows to the front, in scan order; rows only ever move down, so in place is safe.
    kept_rows, labels, paths, hashes = [], [], [], []
    for class_index, rel, digest in entries:
        if digest in conflict_hashes:
            continue
        kept_rows.append(row_of_hash[digest])
        labels.append(class_index)
        paths.append(rel)
        hashes.append(digest)
        summaries[class_index].kept += 1
        if row_of_hash[digest] in no_face_rows:
            summaries[class_index].no_face += 1
    for new_row, old_row in enumerate(kept_rows):
        if new_row != old_row:
            images[new_row] = images[old_row]
    images = images[: len(kept_rows)]

    summary = Summary(
        classes=summaries,
        face_crop=bool(face_crop),
        conflict_groups=len(conflict_groups),
        skipped_paths=skipped_paths,
        conflict_paths=conflict_groups,
    )
    for item in summaries:
        if item.kept == 0:
            if item.decoded == 0:
                reason = f"none of its {item.found} files could be decoded"
            else:
                reason = "all its pictures are duplicates of pictures in other classes (label conflicts)"
            raise DatasetError(f"class {item.name} has no usable image: {reason}")

    arrays = {
        "images": images,
        "labels": np.asarray(labels, dtype=np.int32),
        "class_names": np.asarray(class_names, dtype=str),
        "paths": np.asarray(paths, dtype=str),
        "hashes": np.asarray(hashes, dtype=str),
    }
    return arrays, summary


def save_arrays(path, arrays):
    """Write the arrays file (uncompressed .npz) atomically; returns its size in bytes."""
    path = Path(path)
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"arrays lack keys {missing}")
    try:
        with atomic_path(path) as tmp:
            # A file object, not a name: np.savez would append ".npz" to any other ending.
            with open(tmp, "wb") as stream:
                np.savez(stream, **{key: arrays[key] for key in ARRAY_KEYS})
    except OSError as exc:
        raise DatasetError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path.stat().st_size


def load_arrays(path):
    """Read and validate an arrays file written by ``loader.py``; DatasetError when unusable."""
    path = Path(path)
    hint = "(run loader.py to create it)"
    if not path.exists():
        raise DatasetError(f"arrays file not found: {path} {hint}")
    if not path.is_file():
        raise DatasetError(f"arrays path is not a file: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ARRAY_KEYS if key not in archive.files]
            if missing:
                raise DatasetError(f"{path} is not a loader arrays file: missing {', '.join(missing)} {hint}")
            arrays = {key: archive[key] for key in ARRAY_KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path} is not a valid arrays file: {reason} {hint}") from None

    images, labels = arrays["images"], arrays["labels"]
    class_names = arrays["class_names"]

    def bad(reason):
        return DatasetError(f"{path} is not a valid arrays file: {reason} {hint}")

    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise bad(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise bad(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if class_names.ndim != 1 or class_names.dtype.kind != "U" or len(class_names) < 2:
        raise bad(f"class_names must be 2 or more strings, got {class_names.dtype} {class_names.shape}")
    count = images.shape[0]
    for key in ("labels", "paths", "hashes"):
        if arrays[key].shape != (count,):
            raise bad(f"{key} has shape {arrays[key].shape}, expected ({count},)")
    for key in ("paths", "hashes"):
        if arrays[key].dtype.kind != "U":
            raise bad(f"{key} must be strings, got {arrays[key].dtype}")
    if count and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise bad(f"labels outside 0..{len(class_names) - 1}")
    arrays["labels"] = labels.astype(np.int32, copy=False)
    return arrays


def format_summary(summary):
    """The per-class table printed at the end of loader.py."""
    columns = ["found", "decoded", "skipped", "duplicates", "conflicts"]
    if summary.face_crop:
        columns.append("no_face")
    columns.append("kept")
    headers = [column.replace("_", " ") for column in columns]
    rows = [[item.name] + [str(getattr(item, column)) for column in columns] for item in summary.classes]
    rows.append(["total"] + [str(summary.total(column)) for column in columns])
    name_width = max(len("class"), *(len(row[0]) for row in rows))
    widths = [max(len(header), *(len(row[i + 1]) for row in rows)) for i, header in enumerate(headers)]

    def line(cells):
        return "  ".join([cells[0].ljust(name_width)] + [cell.rjust(w) for cell, w in zip(cells[1:], widths)])

    out = [line(["class"] + headers)]
    out.append("-" * len(out[0]))
    out.extend(line(row) for row in rows[:-1])
    out.append("-" * len(out[0]))
    out.append(line(rows[-1]))
    if summary.conflict_groups:
        out.append(f"label conflicts: {summary.conflict_groups} picture(s) found under more than one class, dropped")
    return "\n".join(out)
