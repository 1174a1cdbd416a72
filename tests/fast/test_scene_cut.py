"""Scene cuts: a hard cut (the frame's colours AND most of its pixels change) ends every track, so that nobody in
the new scene inherits the id and verdict of whoever stood at the same place before; camera motion, lighting
changes and people walking through are no cut.

The scenes are vertical stripes of two colours, 40 px wide (whole blocks of both ``SceneCut`` thumbnails), with
colours in the middle of their histogram bins: the two measures of a change are known exactly.
"""

import cv2
import numpy as np
import pytest

from mask_detection.classes import WITH_MASK, WITHOUT_MASK
from mask_detection.tracker import SceneCut

from .stand_ins import HEIGHT, WIDTH

STREET = ((160, 96, 32), (32, 160, 96))  # BGR; grey levels 84 and 126
PARK = ((224, 224, 96), (96, 224, 224))  # other bins, grey levels 186 and 209
COAT = (32, 32, 32)  # someone dark walking in front: a new bin, grey 32
FACES = ((40, 192, 96, 96), (400, 192, 96, 96))  # two people standing still
MASKED = (0.95, 0.05)
UNMASKED = (0.05, 0.95)


def stripes(colours, offset=0):
    """A frame of vertical stripes of ``colours`` in turn, 40 px wide, moved ``offset`` px to the right."""
    index = ((np.arange(WIDTH) - offset) // 40) % len(colours)
    return np.ascontiguousarray(np.broadcast_to(np.array(colours, np.uint8)[index], (HEIGHT, WIDTH, 3)))


def brighter(frame, levels):
    return np.clip(frame.astype(np.int16) + levels, 0, 255).astype(np.uint8)


def covered(frame, share):
    """``frame`` with its left ``share`` hidden by the coat (rounded to 20 px columns: whole thumbnail pixels)."""
    frame = frame.copy()
    frame[:, : round(share * WIDTH / 20) * 20] = COAT
    return frame


def is_cut(before, after, colour=0.15, pixels=0.5):
    cut = SceneCut(colour, pixels)
    assert cut(before) is False  # never at the first frame
    return cut(after)


# The measures of each change: (share of the colour histogram that moves, share of the pixels that change).
CHANGES = {
    "new-scene": (stripes(PARK), 1.0, 1.0),
    "brighter-within-the-same-colours": (brighter(stripes(STREET), 28), 0.0, 1.0),
    "pan-by-one-stripe": (stripes(STREET, offset=40), 0.0, 1.0),
    "a-coat-over-3/8": (covered(stripes(STREET), 0.375), 0.375, 0.375),
    "a-coat-over-5/8": (covered(stripes(STREET), 0.625), 0.625, 0.625),
}


@pytest.mark.parametrize(
    "change, colour, pixels, cut",
    [
        ("new-scene", 0.15, 0.5, True),
        # Pixels change, colours stay: camera motion or an exposure change.
        ("brighter-within-the-same-colours", 0.15, 0.5, False),
        ("pan-by-one-stripe", 0.15, 0.5, False),
        # Colours change, most pixels stay: someone walks in front of the camera.
        ("a-coat-over-3/8", 0.15, 0.5, False),
        # Each threshold matters: the same change is a cut or not as either threshold passes its measure.
        ("a-coat-over-3/8", 0.15, 0.35, True),
        ("a-coat-over-5/8", 0.15, 0.5, True),
        ("a-coat-over-5/8", 0.65, 0.5, False),
        ("a-coat-over-5/8", 0.15, 0.65, False),
        ("a-coat-over-5/8", 0.625, 0.625, True),  # reaching a threshold is enough
        ("brighter-within-the-same-colours", 0.0, 0.5, True),
        ("brighter-within-the-same-colours", 0.15, 1.0, False),
    ],
)
def test_a_cut_needs_both_the_colours_and_most_pixels_to_change(change, colour, pixels, cut):
    after, _, _ = CHANGES[change]
    assert is_cut(stripes(STREET), after, colour, pixels) is cut


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_moves_the_shares_it_is_meant_to(change):
    """The premise of the cases above, measured on SceneCut's own thumbnails: the share of the colour histogram
    that moves (total variation distance) and the share of grey pixels that change by more than PIXEL_STEP."""
    after, colour, pixels = CHANGES[change]
    small = [cv2.resize(f, SceneCut.COLOUR_THUMBNAIL, interpolation=cv2.INTER_AREA) for f in (stripes(STREET), after)]
    histograms = [SceneCut.histogram(s) for s in small]
    greys = [SceneCut.grey(s) for s in small]
    measured_colour = 0.5 * np.abs(histograms[0] - histograms[1]).sum()
    measured_pixels = (np.abs(greys[0] - greys[1]) > SceneCut.PIXEL_STEP).mean()
    assert (measured_colour, measured_pixels) == pytest.approx((colour, pixels))


def test_a_hard_cut_ends_every_track(make_stage):
    """Two people stand still while the scene cuts from the street to the park: both tracks end at the cut (leave
    events at that frame), and the same boxes go on as two new people."""
    stage = make_stage()
    faces = [stage.face(UNMASKED, box) for box in FACES]
    stage.show_for(10, *faces, background=stripes(STREET))
    stage.show_for(10, *faces, background=stripes(PARK))
    stage.finish()
    before = {d.track_id for r in stage.results[:10] for d in r.detections}
    after = {d.track_id for r in stage.results[10:] for d in r.detections}
    assert before == {1, 2} and after == {3, 4}
    leaves = [(e.track_id, e.frame_index) for e in stage.events if e.kind == "leave"]
    assert leaves == [(1, 10), (2, 10), (3, 19), (4, 19)]
    assert stage.people.people.total == 4


def drifting_light(frames):
    """The street getting brighter by 6 grey levels a frame: no pixel changes much between two frames, though every
    colour crosses into other bins on the way (half the histogram moves at once)."""
    return [brighter(stripes(STREET), 6 * i) for i in range(frames)]


# Changes within one scene, frame by frame, with two people standing still in it.
NO_CUT = {
    "light-drifting": drifting_light(20),
    "exposure-jumping-within-the-same-colours": [stripes(STREET)] * 10 + [brighter(stripes(STREET), 28)] * 10,
    "camera-panning-fast": [stripes(STREET, offset=40 * i) for i in range(20)],
    "someone-stepping-in-front": [stripes(STREET)] * 10 + [covered(stripes(STREET), 0.375)] * 10,
}


@pytest.mark.parametrize("change", list(NO_CUT))
def test_no_track_ends_without_a_hard_cut(make_stage, change):
    stage = make_stage()
    faces = [stage.face(UNMASKED, box) for box in FACES]
    for background in NO_CUT[change]:
        stage.show(*faces, background=background)
    assert {d.track_id for r in stage.results for d in r.detections} == {1, 2}
    assert [e.kind for e in stage.events] == ["verdict", "verdict"]
    assert sorted((e.kind, e.track_id) for e in stage.finish()) == [("leave", 1), ("leave", 2)]


def test_after_a_cut_the_person_at_the_same_place_does_not_inherit_the_verdict(make_stage):
    """An unmasked person, settled, in the street; the scene cuts to a masked person standing where they stood. The
    new person is labelled from their own views from their first tracked frame on, never with the old verdict."""
    stage = make_stage(min_frames=1, unsettled_every=1)
    stage.show_for(10, stage.face(UNMASKED), background=stripes(STREET))
    assert stage.results[-1].detections[0].class_name == WITHOUT_MASK, "precondition: settled without_mask"
    after = stage.show_for(10, stage.face(MASKED), background=stripes(PARK))
    assert [d.class_name for r in after for d in r.detections] == [WITH_MASK] * 9
    assert [(e.kind, e.track_id, e.frame_index, e.class_name) for e in stage.events] == [
        ("verdict", 1, 3, WITHOUT_MASK),
        ("leave", 1, 10, WITHOUT_MASK),
        ("verdict", 2, 13, WITH_MASK),
    ]
