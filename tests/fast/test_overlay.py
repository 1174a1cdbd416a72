"""The overlay in crowds: labels placed apart, off the faces, the counts panel and the alert banner, inside the
frame; text and lines sized by the face; the panel and the banner drawn over everything else. No model, no
detector: detections are made up and drawn directly."""

import numpy as np
import pytest

from mask_detection import overlay
from mask_detection.classes import REGISTRY, WITH_MASK, WITHOUT_MASK
from mask_detection.detections import Detection

CLASSES = (WITH_MASK, WITHOUT_MASK)
HEIGHT, WIDTH = 720, 1280
FRAME = (HEIGHT, WIDTH, 3)
LABEL = (95, 17)  # "#12 Mask 97.0%" at the smallest text scale
GREEN, RED = REGISTRY[WITH_MASK].colour, REGISTRY[WITHOUT_MASK].colour
PEOPLE = {WITH_MASK: 50, WITHOUT_MASK: 20}


def overlap(a, b):
    """Whether two (x, y, w, h) rectangles share pixels."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def overlapping(rects, others=None):
    """The (i, j) pairs of overlapping rectangles: within ``rects``, or of ``rects`` with ``others``."""
    if others is None:
        return [(i, j) for i in range(len(rects)) for j in range(i) if overlap(rects[i], rects[j])]
    return [(i, j) for i, a in enumerate(rects) for j, b in enumerate(others) if overlap(a, b)]


def detection(box, name=WITH_MASK, track=None, settled=None):
    k = CLASSES.index(name)
    probabilities = (0.9, 0.1) if k == 0 else (0.1, 0.9)
    return Detection(box, 0.9, k, name, 0.9, probabilities, track, settled)


def exact(image, colour):
    """Pixels of exactly ``colour``: label backgrounds and box lines, not the blended panel or anti-aliasing."""
    return np.all(image == colour, axis=2)


def test_labels_in_a_crowd_do_not_overlap_when_there_is_room():
    # 72 faces in rows 70 px apart: labels 95 px wide do not all fit above their faces, but a free spot exists.
    boxes = [(10 + 70 * j, 100 + 150 * r, 24, 26) for r in range(4) for j in range(18)]
    assert overlapping([(x, y - LABEL[1], *LABEL) for x, y, _, _ in boxes])  # premise: all above would not do
    spots = overlay.place_labels(boxes, [LABEL] * len(boxes), FRAME)
    assert len(spots) == len(boxes) and all(spot[2:] == LABEL for spot in spots)
    assert overlapping(spots) == []


def test_labels_do_not_cover_other_faces_close_by():
    # Two rows 6 px apart: the lower row's first choice, above its faces, would cover the upper row's.
    upper = [(20 + 130 * j, 300, 30, 32) for j in range(9)]
    lower = [(x, y + 32 + 6, w, h) for x, y, w, h in upper]
    boxes = upper + lower
    spots = overlay.place_labels(boxes, [LABEL] * len(boxes), FRAME)
    assert overlapping(spots, boxes) == []
    assert overlapping(spots) == []


def test_labels_stay_inside_the_frame_at_edges_and_corners():
    size = (200, 30)  # wider and taller than the gaps to the edges
    boxes = [
        (0, 0, 40, 40),
        (WIDTH - 40, 0, 40, 40),
        (0, HEIGHT - 40, 40, 40),
        (WIDTH - 40, HEIGHT - 40, 40, 40),
        (WIDTH // 2, 0, 40, 40),
        (0, HEIGHT // 2, 40, 40),
        (WIDTH - 30, HEIGHT // 2, 30, 30),
        (WIDTH // 2, HEIGHT - 20, 40, 20),
    ]
    spots = overlay.place_labels(boxes, [size] * len(boxes), FRAME)
    for x, y, w, h in spots:
        assert 0 <= x and x + w <= WIDTH and 0 <= y and y + h <= HEIGHT
    assert overlapping(spots) == []


def test_without_a_free_spot_every_label_still_gets_one_inside_the_frame():
    # Faces wall to wall: no spot covers neither a label nor a face.
    frame = (120, 240, 3)
    boxes = [(x, y, 30, 30) for y in range(0, 120, 30) for x in range(0, 240, 30)]
    spots = overlay.place_labels(boxes, [LABEL] * len(boxes), frame)
    assert len(spots) == len(boxes)
    for x, y, w, h in spots:
        assert 0 <= x and x + w <= 240 and 0 <= y and y + h <= 120


def test_label_text_and_box_lines_grow_with_the_face_within_bounds():
    faces = [4, 20, 40, 60, 80, 100, 150, 300, 1000]
    scales = [overlay.label_scale(size, FRAME) for size in faces]
    assert scales == sorted(scales) and scales[0] < scales[-1]
    assert scales[0] == overlay.SMALLEST_LABEL_SCALE  # tiny faces: small, still readable text
    assert scales[-1] == pytest.approx(0.8)  # huge faces: no bigger than the frame's standard text
    # A big photo, seen shrunk to fit a screen, gets larger text for small faces too.
    assert overlay.label_scale(20, (3000, 4000)) > overlay.label_scale(20, FRAME)
    lines = [overlay.box_thickness(size, FRAME) for size in faces]
    assert lines == sorted(lines) and lines[0] == 1 and 1 < lines[-1] <= 3


def drawn_label_height(face_size):
    """The height of the label drawn above a lone face of ``face_size`` pixels."""
    image = np.zeros(FRAME, np.uint8)
    x, y = 500, 400
    overlay.draw_detections(image, [detection((x, y, face_size, face_size))])
    column = exact(image[:y, x + 2 : x + 3], GREEN)  # just right of the box's left line, above the box
    return int(column.sum())


def test_drawn_labels_are_taller_on_bigger_faces():
    heights = [drawn_label_height(size) for size in (20, 60, 100, 200)]
    assert heights == sorted(heights) and heights[0] < heights[-1]


def test_labels_avoid_the_given_areas():
    panel, banner = (0, 0, 300, 90), (0, HEIGHT - 40, WIDTH, 40)
    below_panel = [(10 + 60 * j, 92, 30, 30) for j in range(5)]
    above_banner = [(10 + 120 * j, HEIGHT - 40 - 32, 30, 30) for j in range(10)]
    boxes = below_panel + above_banner
    spots = overlay.place_labels(boxes, [LABEL] * len(boxes), FRAME, avoid=[panel, banner])
    assert overlapping(spots, [panel, banner]) == []
    assert overlapping(spots) == []


def test_a_label_pushed_away_from_its_face_is_joined_to_it_by_a_line():
    x, y, w, h = 600, 300, 30, 30
    # Every spot within two label heights of the face taken: the label goes further out.
    taken = (x - 150, y - 45, w + 300, h + 90)
    image = np.zeros(FRAME, np.uint8)
    overlay.draw_detections(image, [detection((x, y, w, h))], avoid=[taken])
    label = np.argwhere(exact(image, GREEN) & (np.arange(HEIGHT) < taken[1])[:, None])
    assert len(label), "the label is outside the taken area"
    between = image[label[:, 0].max() + 2 : y - 1, x : x + w]  # from below the label down to the box
    assert between.any(axis=2).any(axis=1).all()  # a line all the way


def test_a_label_hemmed_in_by_the_counts_panel_and_the_banner_stays_visible():
    # A strip between the panel and the banner, too low for a label above the face and one below it.
    frame = (140, 640, 3)
    lines = [overlay.people_line(PEOPLE, CLASSES), "Faces in view 1", "FPS 25.0"]
    panel, banner = overlay.status_area(frame, lines), overlay.alert_area(frame)
    x, y, w, h = 60, 66, 36, 36
    assert y - LABEL[1] < panel[1] + panel[3] and y + h + LABEL[1] > banner[1]  # premise: above and below hidden
    image = np.zeros(frame, np.uint8)
    overlay.annotate_people(image, [detection((x, y, w, h))], PEOPLE, True, CLASSES, 25.0)
    visible = exact(image, GREEN)
    visible[y - 3 : y + h + 3, x - 3 : x + w + 3] = False  # not the box lines
    assert visible.sum() > 0.4 * LABEL[0] * LABEL[1]


def test_the_banner_and_the_counts_panel_are_drawn_over_the_faces():
    lines = [overlay.people_line(PEOPLE, CLASSES), "Faces in view 2", "FPS 25.0"]
    panel, banner = overlay.status_area(FRAME, lines), overlay.alert_area(FRAME)
    under_panel = detection((20, 20, 100, 100))
    under_banner = detection((600, HEIGHT - 80, 100, 80))  # its bottom within the banner
    image = np.zeros(FRAME, np.uint8)
    overlay.annotate_people(image, [under_panel, under_banner], PEOPLE, True, CLASSES, 25.0)
    x, y, w, h = banner
    banner_pixels = image[y : y + h, x : x + w]
    assert not exact(banner_pixels, GREEN).any()  # the banner's own colour and its text only
    assert exact(banner_pixels, RED).mean() > 0.6
    x, y, w, h = panel
    assert not exact(image[y : y + h, x : x + w], GREEN).any()  # box lines beneath, dimmed by the panel


def crowd(count=70, seed=0):
    """A crowd frame of noise-textured faces (rows of small faces at the back, larger in front, in four tiles
    like a 2x2 tiling of one clip) below the counts panel, and its detections: both classes, tracked and not."""
    rng = np.random.default_rng(seed)
    image = np.full(FRAME, 90, np.uint8)
    detections = []
    rows = [(0.24, 20, 7), (0.44, 30, 5), (0.64, 44, 3), (0.80, 52, 3)]  # (height in the tile, face size, faces)
    boxes = [
        (int((tile_x + col_x) * WIDTH / 2), int((tile_y + row_y) * HEIGHT / 2) - size // 2 + 30 * (1 - tile_y), size)
        for tile_y in range(2)
        for tile_x in range(2)
        for row_y, size, n in rows
        for col_x in np.linspace(0.08, 0.88, n)
    ]
    for i, (x, y, size) in enumerate(boxes[:count]):
        image[y : y + size, x : x + size] = rng.integers(0, 256, (size, size, 3), np.uint8)
        track = i + 1 if i % 5 else None
        settled = None if track is None else bool(i % 2)
        detections.append(detection((x, y, size, size), CLASSES[i % 3 == 0], track, settled))
    return image, detections


def test_drawing_a_crowd_of_70_faces_keeps_the_faces_visible():
    image, detections = crowd()
    assert len(detections) == 70
    before = image.copy()
    assert overlay.annotate_people(image, detections, PEOPLE, True, CLASSES, 24.3) is image
    assert exact(image, GREEN).any() and exact(image, RED).any()
    lines = [overlay.people_line(PEOPLE, CLASSES), "Faces in view 70", "FPS 24.3"]
    hidden = [overlay.status_area(FRAME, lines), overlay.alert_area(FRAME)]
    for d in detections:
        x, y, w, h = d.xywh
        assert not overlapping([d.xywh], hidden)  # premise: only labels could hide a face
        inside = (slice(y + 3, y + h - 3), slice(x + 3, x + w - 3))  # within the box lines
        unchanged = np.all(image[inside] == before[inside], axis=2).mean()
        assert unchanged > 0.95, f"the face at {d.xywh} is covered"


def test_a_face_not_judged_is_grey_with_its_track_and_why_and_counted_apart():
    """A tracked face too small to judge: a grey box and a grey "#7 too small" label, no class colour, no
    probability; the people line counts the people not judged apart from those judged."""
    import cv2

    from mask_detection.detections import NOT_JUDGED
    from mask_detection.results import PeopleCounts

    grey = overlay.NOT_JUDGED_COLOUR
    face = Detection((600, 300, 20, 20), 0.9, None, NOT_JUDGED, float("nan"), (), 7, False, judged=False)
    image = np.zeros(FRAME, np.uint8)
    overlay.annotate_people(image, [face], PeopleCounts(PEOPLE, 3), False, CLASSES)
    assert not exact(image, GREEN).any() and not exact(image, RED).any()
    assert exact(image[300:320, 600:620], grey).any()  # the box
    scale = overlay.label_scale(20, FRAME)
    (text_w, _), _ = cv2.getTextSize("#7 too small", overlay.FONT, scale, max(1, round(scale * 1.6)))
    label = np.argwhere(exact(image, grey) & (np.arange(HEIGHT) < 300)[:, None])  # the label above the face
    assert label[:, 1].max() - label[:, 1].min() + 1 >= text_w  # as wide as its text
    assert overlay.people_line(PEOPLE, CLASSES, 3) == "People 73 | Mask 50 | No mask 20 | Too small 3"
    assert overlay.people_line(PEOPLE, CLASSES) == "People 70 | Mask 50 | No mask 20"  # without the count: as before
