"""The scenes report's pictures: recall by face size, and a gallery of the worst misses, wrong labels and false
alarms."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..boxes import BUCKET_NAMES, XYWH
from ..classes import class_info
from ..crop import crop_region
from ..errors import ImageDecodeError
from ..images import decode_image
from ..metrics import new_figure, save_figure
from .matching import DetectionRecord, FaceRecord
from .scenes import SceneResult
from .scoring import SceneScores, outcome

GALLERY_PER_SECTION = 12
GALLERY_COLUMNS = 6
TILE_SIDE = 128
CONTEXT_MARGIN = 0.6  # around a gallery face: enough to see what the detector saw
ANNOTATION_COLOUR, DETECTION_COLOUR = (255, 200, 0), (255, 0, 255)  # RGB: yellow, magenta

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class GalleryTile:
    image: int  # index into the scene results
    boxes: list[tuple[XYWH, RGB]]  # the first one is centred
    caption: str


def plot_recall_by_size(by_iou: dict[str, SceneScores], path: Path, primary: float) -> None:
    """Bars: recall by class and size at the primary IoU; lines: recall by size at every IoU."""
    fig = new_figure((7, 4.2))
    ax = fig.subplots()
    table = by_iou[f"{primary:g}"].detector["recall_by_class_and_size"]
    width = 0.8 / max(1, len(table))
    for i, (label, rows) in enumerate(table.items()):
        values = [(rows.get(b) or {}).get("recall") or 0.0 for b in BUCKET_NAMES]
        counts = [(rows.get(b) or {}).get("faces", 0) for b in BUCKET_NAMES]
        xs = np.arange(len(BUCKET_NAMES)) + (i - (len(table) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=f"{label} (IoU {primary:g})")
        for bar, n in zip(bars, counts, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"n={n}", ha="center", fontsize=7)
    for key, scores in by_iou.items():
        rows = scores.detector["recall_by_size"]
        ax.plot(
            range(len(BUCKET_NAMES)),
            [(rows.get(b) or {}).get("recall") or 0.0 for b in BUCKET_NAMES],
            marker="o",
            label=f"all classes, IoU {key}",
        )
    ax.set_xticks(range(len(BUCKET_NAMES)), [f"{b} px" for b in BUCKET_NAMES])
    ax.set_xlabel("face size (short side of the annotated box)")
    ax.set_ylabel("detection recall")
    ax.set_ylim(0, 1.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.set_title("Faces found, by size")
    save_figure(fig, path, in_place=True)


def gallery_sections(
    results: Sequence[SceneResult],
    scores: SceneScores,
    class_names: Sequence[str],
    incorrect_as_without: bool,
    per_section: int = GALLERY_PER_SECTION,
) -> list[tuple[str, list[GalleryTile]]]:
    """[(title, tiles)]: the largest missed faces, the largest wrongly labelled ones, the surest false alarms."""
    names = [r.name for r in results]
    faces = scores.faces
    missed = sorted((f for f in faces if not f.found), key=lambda f: -f.size)[:per_section]
    # Largest first: a big face labelled wrong is worse than a 10-px one (and the classifier is often sure of both).
    wrong = sorted(
        (f for f in faces if outcome(f, class_names, incorrect_as_without) == "wrong_label"),
        key=lambda f: (-f.size, -f.found_detection.probability),
    )[:per_section]
    alarms = sorted((d for d in scores.detections if d.false_alarm), key=lambda d: -d.detection.score)[:per_section]
    return [
        ("Missed faces (largest first; yellow: annotation)", [_missed_tile(f, names, class_names) for f in missed]),
        (
            "Wrong labels (largest first; yellow: annotation, magenta: detection)",
            [_wrong_label_tile(f, class_names) for f in wrong],
        ),
        (
            "False alarms (highest face score first; magenta: detection)",
            [_false_alarm_tile(d, names, class_names) for d in alarms],
        ),
    ]


def _short(label: str | None, class_names: Sequence[str]) -> str:
    """The display name of the model's classes ("Mask"); other classes by their own name."""
    return class_info(label).display if label is not None and label in class_names else str(label)


def _missed_tile(face: FaceRecord, names: list[str], class_names: Sequence[str]) -> GalleryTile:
    caption = f"{_short(face.label, class_names)}, {face.size:.0f}px\n{names[face.image]}"
    return GalleryTile(face.image, [(face.truth.xywh, ANNOTATION_COLOUR)], caption)


def _wrong_label_tile(face: FaceRecord, class_names: Sequence[str]) -> GalleryTile:
    caption = (
        f"is {_short(face.label, class_names)}, said\n{_short(face.predicted, class_names)} "
        f"{face.found_detection.probability * 100:.0f}%, {face.size:.0f}px"
    )
    boxes = [(face.truth.xywh, ANNOTATION_COLOUR), (face.found_detection.xywh, DETECTION_COLOUR)]
    return GalleryTile(face.image, boxes, caption)


def _false_alarm_tile(record: DetectionRecord, names: list[str], class_names: Sequence[str]) -> GalleryTile:
    d = record.detection
    caption = f"score {d.score:.2f}, {_short(d.class_name, class_names)}\n{names[record.image]}"
    return GalleryTile(record.image, [(d.xywh, DETECTION_COLOUR)], caption)


def plot_gallery(
    results: Sequence[SceneResult],
    sections: list[tuple[str, list[GalleryTile]]],
    path: Path,
    columns: int = GALLERY_COLUMNS,
) -> None:
    """One row of tiles per ``columns`` tiles of a section, each section titled ("none" when empty)."""
    rows = [(title, tiles[i : i + columns]) for title, tiles in sections for i in range(0, max(1, len(tiles)), columns)]
    fig = new_figure((columns * 1.7, len(rows) * 2.1))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    photos: dict[int, np.ndarray] = {}
    titled = set()
    for r, (title, tiles) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c == 0 and title not in titled:
                titled.add(title)
                ax.set_title(
                    title + ("" if tiles else ": none"), loc="left", fontsize=8, fontweight="bold", x=0.0, y=1.18
                )
            if c < len(tiles):
                tile = tiles[c]
                ax.imshow(_tile(_photo(results, tile.image, photos), tile.boxes))
                ax.text(0.5, -0.03, tile.caption, transform=ax.transAxes, ha="center", va="top", fontsize=6)
    fig.subplots_adjust(hspace=0.75, wspace=0.08)
    save_figure(fig, path, in_place=True)


def _photo(results: Sequence[SceneResult], index: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    """The photo (RGB), decoded once; a white page when it cannot be read any more."""
    if index not in cache:
        path = results[index].path
        assert path is not None  # a scenes run's results hold their photo's path (None only in hand-made ones)
        try:
            cache[index] = decode_image(path)
        except ImageDecodeError:
            cache[index] = np.full(results[index].shape + (3,), 255, np.uint8)
    return cache[index]


def _tile(rgb: np.ndarray, boxes: list[tuple[XYWH, RGB]], side: int = TILE_SIDE) -> np.ndarray:
    """A context crop around boxes[0] with every (box, colour) drawn, fitted into side x side."""
    x, y, w, h = boxes[0][0]
    x0, y0, x1, y1 = crop_region((x, y, max(w, 1), max(h, 1)), rgb.shape, margin=CONTEXT_MARGIN)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if crop.size == 0:
        return np.full((side, side, 3), 255, np.uint8)
    scale = side / max(crop.shape[:2])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    resized = cv2.resize(
        crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), interpolation=interpolation
    )
    for (bx, by, bw, bh), colour in boxes:
        p0 = (int((bx - x0) * scale), int((by - y0) * scale))
        p1 = (int((bx + bw - x0) * scale), int((by + bh - y0) * scale))
        cv2.rectangle(resized, p0, p1, colour, 1)
    out = np.full((side, side, 3), 255, np.uint8)
    oy, ox = (side - resized.shape[0]) // 2, (side - resized.shape[1]) // 2
    out[oy : oy + resized.shape[0], ox : ox + resized.shape[1]] = resized
    return out
