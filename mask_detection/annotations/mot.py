"""Ground truth of a video in the MOT Challenge text format (as CVAT and the MOT benchmarks export it).

``gt.txt``: one face per line, ``frame, id, x, y, w, h, conf, class[, visibility]``; frames 1-based, boxes in
pixels, ``conf`` 0 marks a region to ignore (a detection on it is neither a hit nor a false alarm). Class names
come from a side file, one name per line, class id = line number from 1 (``classes.txt``, or CVAT's
``labels.txt``); names may be dataset aliases (``mask``, ``no_mask``). Without one, class ids follow the class
registry (1 with_mask, 2 without_mask, 3 mask_weared_incorrect). Scene segments (optional, ``segments.txt``):
``first_frame, last_frame, name`` per line, so a track carried over a scene cut can be found.

trackers.io.mot.load_mot_file is not used: it drops the visibility column, keeps no line numbers for errors and
scores class 1 (pedestrian) only.
"""

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..boxes import XYWH
from ..classes import REGISTRY, canonical_name
from ..errors import DatasetError
from ..fileio import display_path, safe_text
from .voc import finite_number

CLASS_FILES = ("classes.txt", "labels.txt")  # looked for beside gt.txt, in this order
SEGMENTS_FILE = "segments.txt"
DEFAULT_CLASSES: tuple[str, ...] = tuple(REGISTRY)
# Ids go into int64 arrays for trackers.eval (a larger one overflowed there, after the whole video had played);
# frames and class ids are held to the same bound, so every whole number of the files fits anywhere it goes.
LARGEST_WHOLE = 2**63 - 1


class GroundTruthError(DatasetError):
    """A ground-truth, class or segment file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TruthBox:
    """One annotated face in one frame."""

    person: int  # the MOT id: one person across frames
    xywh: XYWH
    label: str  # registered class name (aliases mapped); "" for an ignored region
    visibility: float  # 0..1, 1 when the file gives none
    considered: bool  # False: conf 0, a region to ignore


@dataclass(frozen=True)
class Segment:
    """One scene of the video (between hard cuts), frames inclusive and 1-based."""

    name: str
    first_frame: int
    last_frame: int


@dataclass(frozen=True)
class VideoTruth:
    """A video's ground truth."""

    path: Path
    frames: dict[int, list[TruthBox]]  # 1-based frame number -> its faces
    class_names: tuple[str, ...]  # by class id - 1
    classes_path: Path | None  # None: the registry order
    segments: tuple[Segment, ...]  # () when no segment file was given or found
    segments_path: Path | None

    @property
    def last_frame(self) -> int:
        return max(self.frames, default=0)

    def person_labels(self) -> dict[int, str]:
        """Each considered person's class: the one it has in most of its frames."""
        votes: dict[int, Counter] = {}
        for boxes in self.frames.values():
            for box in boxes:
                if box.considered:
                    votes.setdefault(box.person, Counter())[box.label] += 1
        return {person: counter.most_common(1)[0][0] for person, counter in sorted(votes.items())}

    def segment_of(self, frame: int) -> int | None:
        """Index of the segment holding ``frame`` (1-based), None outside every segment."""
        for index, segment in enumerate(self.segments):
            if segment.first_frame <= frame <= segment.last_frame:
                return index
        return None

    def input_files(self) -> list[Path]:
        return [p for p in (self.path, self.classes_path, self.segments_path) if p is not None]


def side_file(gt_path: str | Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that exists beside ``gt_path``."""
    for name in names:
        candidate = Path(gt_path).parent / name
        if candidate.is_file():
            return candidate
    return None


def read_video_truth(
    gt_path: str | Path, classes_path: str | Path | None = None, segments_path: str | Path | None = None
) -> VideoTruth:
    """Read gt.txt with its class names and scene segments (given, or found beside it).

    Raises GroundTruthError (one line: the file, the line, what is wrong) for any unusable file.
    """
    gt_path = Path(gt_path)
    classes_path = Path(classes_path) if classes_path is not None else side_file(gt_path, CLASS_FILES)
    segments_path = Path(segments_path) if segments_path is not None else side_file(gt_path, (SEGMENTS_FILE,))
    class_names = read_class_names(classes_path) if classes_path is not None else DEFAULT_CLASSES
    frames = _read_gt_rows(gt_path, class_names, classes_path)
    segments = read_segments(segments_path) if segments_path is not None else ()
    return VideoTruth(gt_path, frames, class_names, classes_path, segments, segments_path)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names by id (line 1 = class 1); names go through the registry's aliases."""
    lines = _lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise GroundTruthError(f"{display_path(path)}: no class names (expected one name per line)")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise GroundTruthError(f"{display_path(path)} line {number}: empty name (class ids are line numbers)")
    return tuple(canonical_name(line.strip()) for line in lines)


def read_segments(path: str | Path) -> tuple[Segment, ...]:
    """Scene segments: ``first_frame, last_frame, name`` per line, in order, not overlapping."""
    segments: list[Segment] = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = f"{display_path(path)} line {number}"
        fields = [f.strip() for f in line.split(",", 2)]
        if len(fields) < 2:
            raise GroundTruthError(f"{where}: expected first_frame, last_frame, name")
        first, last = (
            _whole(text, name, where) for text, name in zip(fields[:2], ("first_frame", "last_frame"), strict=True)
        )
        if not 1 <= first <= last:
            raise GroundTruthError(f"{where}: frames {first}..{last} (1-based, first <= last expected)")
        if segments and first <= segments[-1].last_frame:
            raise GroundTruthError(f"{where}: overlaps or precedes the segment before it")
        segments.append(Segment(safe_text(fields[2]) if len(fields) > 2 else str(len(segments) + 1), first, last))
    if not segments:
        raise GroundTruthError(f"{display_path(path)}: no segments")
    return tuple(segments)


def _read_gt_rows(path: Path, class_names: tuple[str, ...], classes_path: Path | None) -> dict[int, list[TruthBox]]:
    frames: dict[int, list[TruthBox]] = {}
    seen: set[tuple[int, int]] = set()
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = f"{display_path(path)} line {number}"
        frame, box = _parse_row(line, where, class_names, classes_path)
        if (frame, box.person) in seen:
            raise GroundTruthError(f"{where}: person {box.person} appears twice in frame {frame}")
        seen.add((frame, box.person))
        frames.setdefault(frame, []).append(box)
    if not frames:
        raise GroundTruthError(f"{display_path(path)}: no ground-truth rows")
    return dict(sorted(frames.items()))


def _parse_row(line: str, where: str, class_names: tuple[str, ...], classes_path: Path | None) -> tuple[int, TruthBox]:
    """(frame, box) of one gt.txt line."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) < 8:
        raise GroundTruthError(
            f"{where}: {len(fields)} fields, expected frame, id, x, y, w, h, conf, class[, visibility]"
        )
    frame = _whole(fields[0], "frame", where)
    if frame < 1:
        raise GroundTruthError(f"{where}: frame {frame} (MOT frames start at 1)")
    person = _whole(fields[1], "id", where)
    x, y, w, h, conf = (_real(fields[i], name, where) for i, name in enumerate(("x", "y", "w", "h", "conf"), 2))
    if w <= 0 or h <= 0:
        raise GroundTruthError(f"{where}: empty box (w={w:g}, h={h:g})")
    visibility = _real(fields[8], "visibility", where) if len(fields) > 8 else 1.0
    considered = conf != 0
    label = _class_name(fields[7], where, class_names, classes_path) if considered else ""
    return frame, TruthBox(person, (x, y, w, h), label, visibility, considered)


def _class_name(text: str, where: str, class_names: tuple[str, ...], classes_path: Path | None) -> str:
    class_id = _whole(text, "class", where)
    if not 1 <= class_id <= len(class_names):
        source = display_path(classes_path) if classes_path is not None else "the default classes"
        raise GroundTruthError(
            f"{where}: class {class_id} is not in {source} ({len(class_names)} names: {', '.join(class_names)})"
        )
    return class_names[class_id - 1]


def _lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GroundTruthError(f"ground-truth file not found: {display_path(path)}") from None
    except UnicodeDecodeError:
        raise GroundTruthError(f"{display_path(path)}: not a text file (UTF-8 expected)") from None
    except OSError as exc:
        raise GroundTruthError(f"cannot read {display_path(path)}: {exc.strerror or exc}") from None


def _whole(text: str, name: str, where: str) -> int:
    """``text`` as an exact whole number in -LARGEST_WHOLE-1..LARGEST_WHOLE ("7", "7.0" and "7e0" alike).

    Read as a Decimal, not a float: a float rounds ids above 2**53, so two people could become one.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise GroundTruthError(f"{where}: {name} is not a number ({safe_text(text[:20])!r})") from None
    if not value.is_finite():
        raise GroundTruthError(f"{where}: {name} is not a finite number ({safe_text(text[:20])!r})")
    # Bounds before integrality: int() of "1e999999999" would build a billion-digit number.
    if not -LARGEST_WHOLE - 1 <= value <= LARGEST_WHOLE:
        shown = safe_text(text if len(text) <= 30 else text[:27] + "...")
        raise GroundTruthError(
            f"{where}: {name} {shown} does not fit in 64 bits ({-LARGEST_WHOLE - 1} to {LARGEST_WHOLE})"
        )
    if value != value.to_integral_value():
        raise GroundTruthError(f"{where}: {name} is not a whole number ({safe_text(text[:20])!r})")
    return int(value)


def _real(text: str, name: str, where: str) -> float:
    try:
        return finite_number(text)
    except ValueError as exc:
        raise GroundTruthError(f"{where}: {name} is {exc} ({safe_text(text[:20])!r})") from None
