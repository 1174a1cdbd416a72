"""Drawing detections on BGR frames: boxes, "Mask 98.7%" labels, face counts, FPS; in tracked video also the
track ids ("#7 Mask 98.7%", a thin box and a "?" while the verdict is not settled), the people counts and an alert
banner while a person without a mask is in view.

Colours and display names come from the class registry (``classes``).
"""

from collections.abc import Sequence

import cv2
import numpy as np

from .classes import WITHOUT_MASK, class_info, label_text
from .detections import Detection

TEXT_COLOUR = (255, 255, 255)
PANEL_COLOUR = (32, 32, 32)
ALERT_TEXT = "NO MASK: a person without a mask is in view"


def _font_scale(image: np.ndarray) -> float:
    # Readable on a 640x480 frame and on a multi-megapixel photo alike.
    return float(np.clip(min(image.shape[:2]) / 900.0, 0.45, 3.0))


def _put_label(image, text, anchor_x, anchor_y, colour, scale, below=None):
    """Text on a filled rectangle whose bottom-left corner is near (anchor_x, anchor_y), kept inside the image.

    When there is no room above ``anchor_y``, the label goes below ``below`` (e.g. the box's bottom)
    or, failing that, inside the top of the box.
    """
    height, width = image.shape[:2]
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, int(round(3 * scale)))
    box_w, box_h = tw + 2 * pad, th + baseline + 2 * pad
    x0 = int(np.clip(anchor_x, 0, max(0, width - box_w)))
    y0 = anchor_y - box_h
    if y0 < 0:
        if below is not None and below + box_h <= height:
            y0 = below
        else:
            y0 = max(0, anchor_y)
    y0 = int(np.clip(y0, 0, max(0, height - box_h)))
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), colour, thickness=-1)
    cv2.putText(
        image, text, (x0 + pad, y0 + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness, cv2.LINE_AA
    )


def draw_detections(image: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str] = ()) -> np.ndarray:
    """Draw each detection's box and label onto ``image`` (BGR, modified in place) and return it."""
    scale = _font_scale(image)
    line = max(2, int(round(scale * 3)))
    for detection in detections:
        x, y, w, h = detection.xywh
        colour = class_info(detection.class_name, class_names).colour
        text = label_text(detection.class_name, detection.probability)
        thickness = line
        if detection.track_id is not None:
            text = f"#{detection.track_id} {text}"
            if not detection.settled:  # the best estimate so far: drawn lighter, marked
                text, thickness = f"{text} ?", max(1, line // 2)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        _put_label(image, text, x, y, colour, scale, below=y + h)
    return image


def draw_status(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Stack short status lines (face count, FPS, ...) in the top-left corner on a dark panel."""
    scale = _font_scale(image) * 0.9
    thickness = max(1, int(round(scale * 1.6)))
    pad = max(3, int(round(4 * scale)))
    sizes = [cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness) for text in lines]
    if not sizes:
        return image
    line_h = max(th + baseline for (_, th), baseline in sizes) + pad
    panel_w = max(tw for (tw, _), _ in sizes) + 2 * pad
    panel_h = line_h * len(lines) + pad
    height, width = image.shape[:2]
    x1, y1 = min(width, panel_w), min(height, panel_h)
    # Blend the panel so the picture stays visible behind the text.
    region = image[0:y1, 0:x1]
    region[:] = (region * 0.35 + np.array(PANEL_COLOUR) * 0.65).astype(np.uint8)
    for i, text in enumerate(lines):
        (_, th), _ = sizes[i]
        y = pad + i * line_h + th
        cv2.putText(image, text, (pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness, cv2.LINE_AA)
    return image


def count_labels(detections: Sequence[Detection]) -> dict[str, int]:
    """{class name: count} for one frame."""
    counts: dict[str, int] = {}
    for detection in detections:
        counts[detection.class_name] = counts.get(detection.class_name, 0) + 1
    return counts


def count_line(counts: dict[str, int], n_faces: int, class_names: Sequence[str] = ()) -> str:
    """E.g. "Faces 3 | Mask 2 | No mask 1": every class of the model, in its order, also when zero."""
    names = list(class_names) or list(counts)
    parts = [f"Faces {n_faces}"]
    parts += [f"{class_info(name).display} {counts.get(name, 0)}" for name in names]
    return " | ".join(parts)


def people_line(people_counts: dict[str, int], class_names: Sequence[str] = ()) -> str:
    """E.g. "People 23 | Mask 19 | No mask 4": people counted so far, by verdict, every class of the model."""
    names = list(class_names) or list(people_counts)
    parts = [f"People {sum(people_counts.values())}"]
    parts += [f"{class_info(name).display} {people_counts.get(name, 0)}" for name in names]
    return " | ".join(parts)


def draw_alert(image: np.ndarray, text: str = ALERT_TEXT) -> np.ndarray:
    """A full-width banner in the no-mask colour along the bottom of ``image`` (in place)."""
    scale = _font_scale(image) * 1.1
    thickness = max(2, int(round(scale * 2.2)))
    height, width = image.shape[:2]
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    scale = min(scale, scale * 0.95 * width / tw)  # fits a narrow frame
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(4, int(round(6 * scale)))
    top = max(0, height - (th + baseline + 2 * pad))
    cv2.rectangle(image, (0, top), (width - 1, height - 1), class_info(WITHOUT_MASK).colour, thickness=-1)
    x = max(pad, (width - tw) // 2)
    cv2.putText(image, text, (x, top + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness, cv2.LINE_AA)
    return image


def annotate_people(
    image: np.ndarray,
    detections: Sequence[Detection],
    people_counts: dict[str, int],
    alert: bool,
    class_names: Sequence[str] = (),
    fps: float | None = None,
) -> np.ndarray:
    """Tracked video: boxes with track ids and verdicts, the people counts, faces in view, FPS and the alert."""
    lines = [people_line(people_counts, class_names), f"Faces in view {len(detections)}"]
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    draw_status(image, lines)
    draw_detections(image, detections, class_names)
    if alert:
        draw_alert(image)
    return image


def annotate(
    image: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str] = (), fps: float | None = None
) -> np.ndarray:
    """Boxes, labels and the status panel (face counts, FPS when given) on ``image`` in place."""
    lines = [count_line(count_labels(detections), len(detections), class_names)]
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    # Panel first: a face in the top-left corner keeps its box and label drawn over the panel.
    draw_status(image, lines)
    draw_detections(image, detections, class_names)
    return image
