"""Drawing detections on BGR frames: boxes, "Mask 98.7%" labels, face counts, FPS; in tracked video also the
track ids ("#7 Mask 98.7%", a thin box and a "?" while the verdict is not settled; a grey "#7 too small" for a
person not judged yet), the people counts and an alert banner while a person without a mask is in view.

Crowds stay readable: each label goes to the first free spot around its face (``place_labels``), its text sized
by the face (``label_scale``), and the counts panel and the alert banner are kept free of labels and drawn last.

Colours and display names come from the class registry (``classes``).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .classes import WITHOUT_MASK, class_info, label_text
from .detections import Box, Detection
from .results import FrameResult, PeopleCounts

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive): label placement works in these

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_COLOUR = (255, 255, 255)
PANEL_COLOUR = (32, 32, 32)
PANEL_OPACITY = 0.75  # dark enough for white text over any picture, light enough to see faces beneath
ALERT_TEXT = "NO MASK: a person without a mask is in view"
SMALLEST_LABEL_SCALE = 0.45  # Hershey letters about 10 px tall: the smallest that reads at 1:1
FACE_PX_PER_LABEL_SCALE = 130  # a face this many pixels across gets text scale 1.0 (before the bounds)
FACE_PX_PER_LINE_PX = 40  # a box line one pixel wide per this many pixels across the face (before the bounds)
LABEL_GAP = 1  # pixels kept between two labels, so that two labels of one colour do not read as one
NOT_JUDGED_COLOUR = (150, 150, 150)  # grey: a face followed, too small so far to say mask or no mask
NOT_JUDGED_TEXT = "too small"  # the label of a face not judged, after its track id
NOT_JUDGED_DISPLAY = "Too small"  # the people counts' name for people not judged

# Where a label may go around its face, in order of preference, as coefficients of
# (x0, y0) = (x + a*w + b*label_w, y + c*h + d*label_h) for the face box (x, y, w, h), plus LABEL_GAP between
# spots a label apart.
_NEAR = [
    (0, 0, 0, -1),  # above, left-aligned
    (0, 0, 1, 0),  # below, left-aligned
    (1, -1, 0, -1),  # above, right-aligned
    (1, -1, 1, 0),  # below, right-aligned
    (0.5, -0.5, 0, -1),  # above, centred
    (0.5, -0.5, 1, 0),  # below, centred
    (1, 0, 0, 0),  # right of the face, at its top
    (0, -1, 0, 0),  # left of the face, at its top
    (1, 0, 1, -1),  # right, at its bottom
    (0, -1, 1, -1),  # left, at its bottom
    (1, 0, 0, -1),  # above the top-right corner
    (0, -1, 0, -1),  # above the top-left corner
    (1, 0, 1, 0),  # below the bottom-right corner
    (0, -1, 1, 0),  # below the bottom-left corner
]
_ABOVE_AND_BELOW = [(0, 0, 0, -1), (0, 0, 1, 0), (1, -1, 0, -1), (1, -1, 1, 0), (1, 0, 0, -1), (0, -1, 0, -1)]


def _stacked(steps: range) -> list[tuple[float, float, float, float]]:
    # ``step`` label heights further up (the spots above the face) or down (the spots below it).
    return [(a, b, c, d - step if d < 0 else d + step) for step in steps for a, b, c, d in _ABOVE_AND_BELOW]


def _sideways(steps: range) -> list[tuple[float, float, float, float]]:
    # ``step`` label widths further right or left, level with the face's top, above it or below it.
    rows = [(0, 0), (0, -1), (1, 0), (0, -2), (1, 1)]
    return [(a, b, c, d) for step in steps for c, d in rows for a, b in ((1, step), (0, -1 - step))]


_INSIDE_TOP = (0, 0, 0, 0)
# Tiers by distance from the face: every label gets its chance at a nearer tier before any label takes a spot
# further out (joined to its face by a thin line). Inside the top of the face hides part of it: not near.
_FURTHER = [*_stacked(range(1, 3)), _INSIDE_TOP]
_FAR = [*_stacked(range(3, 7)), *_sideways(range(1, 3))]
_CANDIDATES = [*_NEAR, *_FURTHER, *_FAR]
_TIERS = (
    range(len(_NEAR)),
    range(len(_NEAR), len(_NEAR) + len(_FURTHER)),
    range(len(_NEAR) + len(_FURTHER), len(_CANDIDATES)),
)
_INSIDE_TOP_INDEX = _CANDIDATES.index(_INSIDE_TOP)
_a, _b, _c, _d = np.array(_CANDIDATES, dtype=np.float32).T
# The coefficients as arrays, and the offsets that keep LABEL_GAP between spots a label apart (a spot next to the
# face touches it).
_PLACEMENT = (_a, _b, _c, _d, LABEL_GAP * (_b + (_b < 0)), LABEL_GAP * (_d + (_d < 0)))
# Where a label goes that cannot avoid covering another: not far out, where it would not even show whose it is.
_NEXT_TO = range(len(_NEAR) + len(_FURTHER))


def _standard_scale(height: int, width: int) -> float:
    # Readable on a 640x480 frame and on a multi-megapixel photo alike.
    return float(np.clip(min(height, width) / 900.0, 0.45, 3.0))


def _font_scale(image: np.ndarray) -> float:
    return _standard_scale(*image.shape[:2])


def label_scale(face_size: float, frame_shape: Sequence[int]) -> float:
    """Text scale for the label of a face ``face_size`` pixels across in a frame of ``frame_shape``: grows with
    the face, from a readable minimum up to the frame's standard text size (the counts panel's)."""
    standard = _standard_scale(frame_shape[0], frame_shape[1])
    # A big photo is seen shrunk to fit a screen, so its smallest text needs more pixels to stay readable.
    smallest = max(SMALLEST_LABEL_SCALE, 0.45 * standard)
    return float(np.clip(face_size / FACE_PX_PER_LABEL_SCALE, smallest, standard))


def box_thickness(face_size: float, frame_shape: Sequence[int]) -> int:
    """Line width of the box around a face ``face_size`` pixels across: thin around small faces, where lines
    crowd, bolder around big ones, up to the frame's standard width."""
    thickest = max(2, int(3 * _standard_scale(frame_shape[0], frame_shape[1]) + 0.5))
    return int(np.clip(int(face_size / FACE_PX_PER_LINE_PX + 0.5), 1, thickest))


def _text_thickness(scale: float) -> int:
    return max(1, int(round(scale * 1.6)))


def _xyxy(box: Box) -> Rect:
    x, y, w, h = box
    return x, y, x + w, y + h


class _Occupancy:
    """The labels (and areas to avoid) and the faces in a frame, for ``place_labels``: each filed under the cells
    of a coarse grid it touches, so that a look at a spot compares it with the few rectangles nearby only (about
    half the time a look at a pixel map takes with numpy, and nothing frame-sized to allocate and paint)."""

    CELL_BITS = 6  # 64-pixel cells: a label or a face touches a few
    LABEL = -1  # the owner of a label or an area to avoid; a face's owner is its index

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[tuple[Rect, int]]] = {}

    def add(self, rect: Rect, owner: int) -> None:
        x0, y0, x1, y1 = rect
        bits = self.CELL_BITS
        for cell_y in range(y0 >> bits, ((y1 - 1) >> bits) + 1):
            for cell_x in range(x0 >> bits, ((x1 - 1) >> bits) + 1):
                self.cells.setdefault((cell_x, cell_y), []).append((rect, owner))

    def nearby(self, rect: Rect) -> Iterator[tuple[Rect, int]]:
        """The rectangles (with their owners) filed under the cells ``rect`` touches; some more than once."""
        x0, y0, x1, y1 = rect
        bits = self.CELL_BITS
        for cell_y in range(y0 >> bits, ((y1 - 1) >> bits) + 1):
            for cell_x in range(x0 >> bits, ((x1 - 1) >> bits) + 1):
                yield from self.cells.get((cell_x, cell_y), ())

    def is_free(self, rect: Rect, own_face: int | None = None, faces_too: bool = True) -> bool:
        """Whether ``rect`` covers no label and (``faces_too``) no face, ``own_face`` (an index) not counted."""
        x0, y0, x1, y1 = rect
        bits, cells = self.CELL_BITS, self.cells
        # The innermost loop of the placement: the cells walked here rather than through ``nearby``, which
        # takes twice as long.
        for cell_y in range(y0 >> bits, ((y1 - 1) >> bits) + 1):
            for cell_x in range(x0 >> bits, ((x1 - 1) >> bits) + 1):
                for (a0, b0, a1, b1), owner in cells.get((cell_x, cell_y), ()):
                    if a0 < x1 and x0 < a1 and b0 < y1 and y0 < b1 and owner != own_face:
                        if faces_too or owner == self.LABEL:
                            return False
        return True

    def coverage(self, rect: Rect, own_face: int | None = None) -> tuple[int, int]:
        """(label pixels, face pixels) ``rect`` covers, ``own_face`` not counted; where labels or faces overlap
        each other, their shared pixels count for each."""
        x0, y0, x1, y1 = rect
        areas = {}
        for (a0, b0, a1, b1), owner in self.nearby(rect):
            if a0 < x1 and x0 < a1 and b0 < y1 and y0 < b1 and owner != own_face:
                shared = (min(x1, a1) - max(x0, a0)) * (min(y1, b1) - max(y0, b0))
                areas[(a0, b0, a1, b1), owner] = shared  # once, however many cells it is filed under
        labels = sum(area for (_, owner), area in areas.items() if owner == self.LABEL)
        return labels, sum(areas.values()) - labels


def _candidate_rects(faces: np.ndarray, sizes: np.ndarray, candidates: range, width: int, height: int) -> np.ndarray:
    """(n, k, 4): the label rectangles (xyxy) of ``candidates`` for ``faces`` (n, 4: xyxy) and label ``sizes``
    (n, 2), each moved inside the frame (a label too big for it sticks out on the right and bottom only)."""
    a, b, c, d, gap_x, gap_y = (column[None, candidates.start : candidates.stop] for column in _PLACEMENT)
    face_w, face_h = (faces[:, 2] - faces[:, 0])[:, None], (faces[:, 3] - faces[:, 1])[:, None]
    label_w, label_h = sizes[:, 0, None], sizes[:, 1, None]
    left = np.rint(faces[:, 0, None] + a * face_w + b * label_w + gap_x).astype(np.int32)
    top = np.rint(faces[:, 1, None] + c * face_h + d * label_h + gap_y).astype(np.int32)
    left = np.minimum(np.maximum(left, 0), np.maximum(0, width - label_w))
    top = np.minimum(np.maximum(top, 0), np.maximum(0, height - label_h))
    return np.stack([left, top, left + label_w, top + label_h], axis=2)


def _least_covering_spot(occupancy: _Occupancy, rects: list[Rect], own_face: int | None) -> Rect:
    """For a label with no free spot among ``rects`` (all its candidates, in order of preference; ``own_face``: the
    index of the face the spot inside its top may cover): the spot covering no label and the fewest face pixels
    or, with none, the spot next to the face covering the fewest label pixels, then face pixels (the first of
    equals)."""
    # Near the frame's edges many candidates are moved onto the same spot: each is looked at once.
    first_index: dict[Rect, int] = {}
    for k, rect in enumerate(rects):
        first_index.setdefault(rect, k)
    holes = {rect: own_face if k == _INSIDE_TOP_INDEX else None for rect, k in first_index.items()}
    label_free = [rect for rect in first_index if occupancy.is_free(rect, holes[rect], faces_too=False)]
    if label_free:
        return min(label_free, key=lambda rect: occupancy.coverage(rect, holes[rect])[1])
    near = [rect for rect, k in first_index.items() if k in _NEXT_TO]
    return min(near, key=lambda rect: occupancy.coverage(rect, holes[rect]))


def place_labels(
    boxes: Sequence[Box], sizes: Sequence[tuple[int, int]], frame_shape: Sequence[int], avoid: Sequence[Box] = ()
) -> list[Box]:
    """Where to draw each face's label: (x, y, width, height) for ``boxes[i]`` (faces, xywh) and ``sizes[i]``
    (label width, height), inside a frame of ``frame_shape`` (height, width, ...).

    Greedy, in the given order: each label takes the first candidate spot (next to its face, further out, inside
    its top) that lies in the frame and covers no label placed before it, no area of ``avoid`` and no face (its
    own only in the spot inside its top, and only when the label covers at most its top third). Every label gets
    its chance at the spots next to its face before any takes one further out. When no spot is free: a spot that
    covers no label and the fewest face pixels or, failing that, the spot near the face covering the least.
    """
    if not boxes:
        return []
    height, width = int(frame_shape[0]), int(frame_shape[1])
    faces = np.clip(np.array([_xyxy(box) for box in boxes], dtype=np.int32), 0, None)
    label_wh = np.array(sizes, dtype=np.int32).reshape(-1, 2)
    face_rects = [tuple(face) for face in faces.tolist()]
    # Only the spot inside the top may cover the own face, and only where enough of the face shows below the
    # label. Elsewhere a label on its own face was pushed there by the frame's edge: a spot beside it is better.
    fits_inside_top = (
        (label_wh[:, 0] <= faces[:, 2] - faces[:, 0]) & (3 * label_wh[:, 1] <= faces[:, 3] - faces[:, 1])
    ).tolist()
    occupancy = _Occupancy()
    for i, face in enumerate(face_rects):
        occupancy.add(face, i)
    for box in avoid:
        occupancy.add(_xyxy(box), _Occupancy.LABEL)
    placed: list[Box | None] = [None] * len(boxes)

    def take(i: int, rect: Rect) -> None:
        x0, y0, x1, y1 = rect
        occupancy.add((x0 - LABEL_GAP, y0 - LABEL_GAP, x1 + LABEL_GAP, y1 + LABEL_GAP), _Occupancy.LABEL)
        placed[i] = (x0, y0, x1 - x0, y1 - y0)

    for tier in _TIERS:
        pending = [i for i, spot in enumerate(placed) if spot is None]
        rects = _candidate_rects(faces[pending], label_wh[pending], tier, width, height)
        for i, candidates in zip(pending, rects.tolist(), strict=True):
            for k, rect in zip(tier, map(tuple, candidates), strict=True):
                if occupancy.is_free(rect, i if k == _INSIDE_TOP_INDEX and fits_inside_top[i] else None):
                    take(i, rect)
                    break
    pending = [i for i, spot in enumerate(placed) if spot is None]
    rects = _candidate_rects(faces[pending], label_wh[pending], range(len(_CANDIDATES)), width, height)
    for i, candidates in zip(pending, rects.tolist(), strict=True):
        own_face = i if fits_inside_top[i] else None
        take(i, _least_covering_spot(occupancy, [tuple(rect) for rect in candidates], own_face))
    return [spot for spot in placed if spot is not None]


@dataclass(frozen=True, slots=True)
class _Label:
    """One face's label as drawn: its text, colour and the geometry of the text on its filled rectangle."""

    text: str
    colour: tuple[int, int, int]
    scale: float
    thickness: int  # of the text strokes
    pad: int
    text_height: int
    size: tuple[int, int]  # width, height of the filled rectangle


def _label(text: str, colour: tuple[int, int, int], scale: float) -> _Label:
    thickness = _text_thickness(scale)
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, int(round(3 * scale)))
    return _Label(text, colour, scale, thickness, pad, text_h, (text_w + 2 * pad, text_h + baseline + 2 * pad))


def _draw_label(image: np.ndarray, label: _Label, where: Box) -> None:
    x, y, w, h = where
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), label.colour, thickness=-1)
    origin = (x + label.pad, y + label.pad + label.text_height)
    cv2.putText(image, label.text, origin, FONT, label.scale, TEXT_COLOUR, label.thickness, cv2.LINE_AA)


def _nearest_points(a: Box, b: Box) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The closest pixels of rectangles ``a`` and ``b`` (xywh), or None when they touch or overlap."""
    ends = []
    for a0, a_len, b0, b_len in ((a[0], a[2], b[0], b[2]), (a[1], a[3], b[1], b[3])):
        a1, b1 = a0 + a_len, b0 + b_len
        if a1 < b0:
            ends.append((a1 - 1, b0))
        elif b1 < a0:
            ends.append((a0, b1 - 1))
        else:  # the ranges overlap or meet: a straight line across the middle of the shared range
            middle = (max(a0, b0) + min(a1, b1)) // 2
            ends.append((middle, middle))
    (ax, bx), (ay, by) = ends
    if abs(ax - bx) <= 1 and abs(ay - by) <= 1:
        return None
    return (ax, ay), (bx, by)


def draw_detections(
    image: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str] = (), avoid: Sequence[Box] = ()
) -> np.ndarray:
    """Draw each detection's box and label onto ``image`` (BGR, modified in place) and return it.

    Labels are sized by their face and placed apart (``place_labels``), kept off the ``avoid`` areas (xywh);
    a label that could not go next to its face is joined to it by a thin line."""
    labels, thicknesses = [], []
    for detection in detections:
        _, _, w, h = detection.xywh
        scale = label_scale((w + h) / 2, image.shape)
        thickness = box_thickness((w + h) / 2, image.shape)
        if not detection.judged:  # no label to show, and no probability: grey, thin, saying why
            text, colour, thickness = f"#{detection.track_id} {NOT_JUDGED_TEXT}", NOT_JUDGED_COLOUR, 1
            labels.append(_label(text, colour, scale))
            thicknesses.append(thickness)
            continue
        text = label_text(detection.class_name, detection.probability)
        if detection.track_id is not None:
            text = f"#{detection.track_id} {text}"
            if not detection.settled:  # the best estimate so far: drawn lighter, marked
                text, thickness = f"{text} ?", max(1, thickness // 2)
        labels.append(_label(text, class_info(detection.class_name, class_names).colour, scale))
        thicknesses.append(thickness)
    # Boxes first: a label then covers the line of a box it has to touch, never the other way round.
    for detection, label, thickness in zip(detections, labels, thicknesses, strict=True):
        x, y, w, h = detection.xywh
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), label.colour, thickness)
    # In reading order, whatever order the detections come in: the same crowd gets the same spots frame after
    # frame, and labels do not jump about.
    order = sorted(range(len(detections)), key=lambda i: (detections[i].xywh[1], detections[i].xywh[0]))
    spots = place_labels([detections[i].xywh for i in order], [labels[i].size for i in order], image.shape, avoid)
    where = dict(zip(order, spots, strict=True))
    for i, detection in enumerate(detections):
        ends = _nearest_points(where[i], detection.xywh)
        if ends is not None:
            cv2.line(image, *ends, labels[i].colour, 1, cv2.LINE_AA)
    # No-mask labels last: where a crowd left no free spot and labels overlap, the alert's reason stays on top.
    for i in sorted(range(len(detections)), key=lambda i: detections[i].class_name == WITHOUT_MASK):
        _draw_label(image, labels[i], where[i])
    return image


@dataclass(frozen=True, slots=True)
class _TextBlock:
    """Where a panel or banner goes (``area``, xywh) and how its lines are written."""

    area: Box
    scale: float
    thickness: int
    origins: tuple[tuple[int, int], ...]  # bottom-left corner of each line's text


def _status_block(frame_shape: Sequence[int], lines: Sequence[str]) -> _TextBlock | None:
    if not lines:
        return None
    scale = _standard_scale(frame_shape[0], frame_shape[1]) * 0.9
    thickness = _text_thickness(scale)
    pad = max(3, int(round(4 * scale)))
    sizes = [cv2.getTextSize(text, FONT, scale, thickness) for text in lines]
    line_h = max(th + baseline for (_, th), baseline in sizes) + pad
    panel_w = max(tw for (tw, _), _ in sizes) + 2 * pad
    panel_h = line_h * len(lines) + pad
    area = (0, 0, min(frame_shape[1], panel_w), min(frame_shape[0], panel_h))
    origins = tuple((pad, pad + i * line_h + th) for i, ((_, th), _) in enumerate(sizes))
    return _TextBlock(area, scale, thickness, origins)


def status_area(frame_shape: Sequence[int], lines: Sequence[str]) -> Box | None:
    """The area (xywh) the status panel of ``lines`` covers in a frame of ``frame_shape``; None without lines."""
    block = _status_block(frame_shape, lines)
    return None if block is None else block.area


def draw_status(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Stack short status lines (face count, FPS, ...) in the top-left corner on a dark panel."""
    block = _status_block(image.shape, lines)
    if block is None:
        return image
    _, _, w, h = block.area
    # Blend the panel so the picture stays visible behind the text.
    region = image[0:h, 0:w]
    region[:] = (region * (1 - PANEL_OPACITY) + np.array(PANEL_COLOUR) * PANEL_OPACITY).astype(np.uint8)
    for text, origin in zip(lines, block.origins, strict=True):
        cv2.putText(image, text, origin, FONT, block.scale, TEXT_COLOUR, block.thickness, cv2.LINE_AA)
    return image


def count_labels(detections: Sequence[Detection]) -> dict[str, int]:
    """{class name: count} for one frame."""
    counts: dict[str, int] = {}
    for detection in detections:
        counts[detection.class_name] = counts.get(detection.class_name, 0) + 1
    return counts


def count_line(counts: dict[str, int], n_faces: int, class_names: Sequence[str] = ()) -> str:
    """E.g. "Faces 3 | Mask 2 | No mask 1": every class of the model, in its order, also when zero."""
    return _counts_line("Faces", n_faces, counts, class_names)


def people_line(people_counts: dict[str, int], class_names: Sequence[str] = (), unjudged: int | None = None) -> str:
    """E.g. "People 23 | Mask 19 | No mask 4": people counted so far, by verdict, every class of the model; with
    ``unjudged`` (tracked video) also those seen but never judged, counted apart: "People 25 | Mask 19 | No mask 4 |
    Too small 2"."""
    line = _counts_line("People", sum(people_counts.values()) + (unjudged or 0), people_counts, class_names)
    return line if unjudged is None else f"{line} | {NOT_JUDGED_DISPLAY} {unjudged}"


def _counts_line(what: str, total: int, counts: dict[str, int], class_names: Sequence[str]) -> str:
    names = list(class_names) or list(counts)
    return " | ".join([f"{what} {total}"] + [f"{class_info(name).display} {counts.get(name, 0)}" for name in names])


def _alert_block(frame_shape: Sequence[int], text: str) -> _TextBlock:
    height, width = int(frame_shape[0]), int(frame_shape[1])
    scale = _standard_scale(height, width) * 1.1
    thickness = max(2, int(round(scale * 2.2)))
    (tw, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    scale = min(scale, scale * 0.95 * width / tw)  # fits a narrow frame
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(4, int(round(6 * scale)))
    top = max(0, height - (th + baseline + 2 * pad))
    return _TextBlock((0, top, width, height - top), scale, thickness, ((max(pad, (width - tw) // 2), top + pad + th),))


def alert_area(frame_shape: Sequence[int], text: str = ALERT_TEXT) -> Box:
    """The area (xywh) the alert banner covers in a frame of ``frame_shape``."""
    return _alert_block(frame_shape, text).area


def draw_alert(image: np.ndarray, text: str = ALERT_TEXT) -> np.ndarray:
    """A full-width banner in the no-mask colour along the bottom of ``image`` (in place)."""
    block = _alert_block(image.shape, text)
    x, y, w, h = block.area
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), class_info(WITHOUT_MASK).colour, thickness=-1)
    cv2.putText(image, text, block.origins[0], FONT, block.scale, TEXT_COLOUR, block.thickness, cv2.LINE_AA)
    return image


def _annotate_with(
    image: np.ndarray,
    detections: Sequence[Detection],
    class_names: Sequence[str],
    lines: Sequence[str],
    alert: bool,
) -> np.ndarray:
    panel = status_area(image.shape, lines)
    avoid = [area for area in (panel, alert_area(image.shape) if alert else None) if area is not None]
    draw_detections(image, detections, class_names, avoid)
    # The panel and the banner last, over any box beneath: however crowded the frame, they stay readable.
    draw_status(image, lines)
    if alert:
        draw_alert(image)
    return image


def annotate_people(
    image: np.ndarray,
    detections: Sequence[Detection],
    people_counts: dict[str, int] | PeopleCounts,
    alert: bool,
    class_names: Sequence[str] = (),
    fps: float | None = None,
) -> np.ndarray:
    """Tracked video: boxes with track ids and verdicts, the people counts (``PeopleCounts``: with those not
    judged apart), faces in view, FPS and the alert."""
    if isinstance(people_counts, PeopleCounts):
        line = people_line(people_counts.by_class, class_names, people_counts.unjudged)
    else:
        line = people_line(people_counts, class_names)
    lines = [line, f"Faces in view {len(detections)}"]
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    return _annotate_with(image, detections, class_names, lines, alert)


def annotate(
    image: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str] = (), fps: float | None = None
) -> np.ndarray:
    """Boxes, labels and the status panel (face counts, FPS when given) on ``image`` in place."""
    lines = [count_line(count_labels(detections), len(detections), class_names)]
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    return _annotate_with(image, detections, class_names, lines, alert=False)


def draw_result(result: FrameResult, class_names: Sequence[str] = (), fps: float | None = None) -> np.ndarray:
    """The overlay of one processed video frame, on ``result.image`` in place: tracked (people counts, track ids,
    the alert banner) when the result counts people, else per frame (faces counted by label)."""
    if result.people is None:
        return annotate(result.image, result.detections, class_names, fps=fps)
    return annotate_people(result.image, result.detections, result.people, result.alert, class_names, fps)
