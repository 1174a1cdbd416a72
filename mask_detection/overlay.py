"""Drawing detections on BGR frames: boxes, "Mask 98.7%" labels, face counts, FPS."""

import numpy as np

# BGR colours. Known classes get the colours people expect; any other class set gets a colour per index.
CLASS_STYLE = {
    "with_mask": ("Mask", (0, 190, 0)),
    "without_mask": ("No mask", (0, 0, 230)),
}
PALETTE = [
    (230, 130, 0),
    (0, 170, 255),
    (200, 0, 200),
    (0, 200, 200),
    (255, 80, 80),
    (120, 120, 255),
    (80, 200, 120),
    (160, 160, 160),
]
TEXT_COLOUR = (255, 255, 255)
PANEL_COLOUR = (32, 32, 32)


def class_style(label, class_names=()):
    """(display text, BGR colour) for a class name."""
    if label in CLASS_STYLE:
        return CLASS_STYLE[label]
    names = list(class_names)
    index = names.index(label) if label in names else abs(hash(label))
    return label, PALETTE[index % len(PALETTE)]


def label_text(detection):
    """E.g. "Mask 98.7%"."""
    text, _ = class_style(detection.label)
    return f"{text} {detection.probability * 100:.1f}%"


def _font_scale(image):
    # Readable on a 640x480 frame and on a multi-megapixel photo alike.
    return float(np.clip(min(image.shape[:2]) / 900.0, 0.45, 3.0))


def _put_label(image, text, anchor_x, anchor_y, colour, scale, below=None):
    """Text on a filled rectangle whose bottom-left corner is near (anchor_x, anchor_y), kept inside the image.

    When there is no room above ``anchor_y``, the label goes below ``below`` (e.g. the box's bottom)
    or, failing that, inside the top of the box.
    """
    import cv2

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


def draw_detections(image, detections, class_names=()):
    """Draw each detection's box and label onto ``image`` (BGR, modified in place) and return it."""
    import cv2

    scale = _font_scale(image)
    line = max(2, int(round(scale * 3)))
    for detection in detections:
        x, y, w, h = detection.box
        text, colour = class_style(detection.label, class_names)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, line)
        _put_label(image, f"{text} {detection.probability * 100:.1f}%", x, y, colour, scale, below=y + h)
    return image


def draw_status(image, lines):
    """Stack short status lines (face count, FPS, ...) in the top-left corner on a dark panel."""
    import cv2

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


def count_labels(detections):
    """{label: count} for one frame."""
    counts = {}
    for detection in detections:
        counts[detection.label] = counts.get(detection.label, 0) + 1
    return counts


def count_line(counts, n_faces, class_names=()):
    """E.g. "Faces 3 | Mask 2 | No mask 1": every class of the model, in its order, also when zero."""
    names = list(class_names) or list(counts)
    parts = [f"Faces {n_faces}"]
    parts += [f"{class_style(name)[0]} {counts.get(name, 0)}" for name in names]
    return " | ".join(parts)


def annotate(image, detections, class_names=(), fps=None):
    """Boxes, labels and the status panel (face counts, FPS when given) on ``image`` in place."""
    lines = [count_line(count_labels(detections), len(detections), class_names)]
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    # Panel first: a face in the top-left corner keeps its box and label drawn over the panel.
    draw_status(image, lines)
    draw_detections(image, detections, class_names)
    return image
