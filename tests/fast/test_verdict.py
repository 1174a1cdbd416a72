"""A person's verdict: the label a tracked face carries is the decision rule's choice on its person's fused
probabilities, printed with that class's fused probability; the inertia is in the evidence (a settled person's
view takes at most ``max_share`` of it, unless clearly better than every earlier one). Settled after
``settle_classifications`` classifications; the events that tell of it; faces too small to judge.

Most tests here classify every frame. With memory 0 the fused probabilities are exactly the latest view's, so each
frame's colour decides the label: the counts of views below are exact.
"""

import math

import numpy as np
import pytest

from mask_detection.classes import INCORRECT_MASK, WITH_MASK, WITHOUT_MASK
from mask_detection.detections import NOT_JUDGED

from .stand_ins import FACE_BOX

MASKED = (0.95, 0.05)
UNMASKED = (0.05, 0.95)
SMALL_BOX = (296, 216, 48, 48)  # FACE_BOX's centre, half its side: half as judgeable
# The verdict's rules alone: a person from the first frame, every frame classified, the latest view is the evidence.
LATEST_VIEW = dict(min_frames=1, unsettled_every=1, reclassify_every=1, memory=0.0, settle_classifications=3)
EVERY_FRAME = dict(min_frames=1, unsettled_every=1, reclassify_every=1)  # default fusion and cap


def settled_on(stage, probabilities, frames=5, xywh=FACE_BOX):
    """Show a face answering ``probabilities`` until its verdict is settled (frame 0 confirms the track, frames 1
    to settle_classifications classify it), and a little longer; returns the face."""
    face = stage.face(probabilities, xywh)
    stage.show_for(frames, face)
    assert [e.kind for e in stage.events] == ["verdict"], "precondition: the verdict is settled"
    return face


def labels(results):
    """(class name, settled) of the one face of each frame."""
    return [(r.detections[0].class_name, r.detections[0].settled) for r in results]


def printed(results):
    """(label, probability printed beside it) of every tracked face of ``results``."""
    return [(d.class_name, d.probability) for r in results for d in r.detections]


@pytest.mark.parametrize("settle", [2, 3, 5])
def test_the_verdict_settles_exactly_at_settle_classifications(make_stage, settle):
    stage = make_stage(**{**LATEST_VIEW, "settle_classifications": settle})
    face = stage.face(MASKED)
    results = stage.show_for(settle + 3, face)
    assert results[0].detections == []  # ByteTrack confirms a track at its second frame
    assert stage.classified_at == list(range(1, settle + 3))
    assert [d.settled for r in results[1:] for d in r.detections] == [False] * (settle - 1) + [True] * 3
    (verdict,) = stage.events
    assert (verdict.kind, verdict.frame_index, verdict.class_name) == ("verdict", settle, WITH_MASK)


def test_a_person_is_settled_only_once_seen_min_frames(make_stage):
    """Enough classifications but too few frames: the verdict waits for min_frames (a short false detection never
    gets one)."""
    stage = make_stage(**{**LATEST_VIEW, "min_frames": 6})
    stage.show_for(9, stage.face(MASKED))
    (verdict,) = stage.events
    assert verdict.frame_index == 6  # seen at frames 1..6


def test_the_printed_probability_is_always_the_labels_and_never_under_half(make_stage):
    """The case of the issue: one bare-faced person whose first views say "Mask" at 61% (settled so), then every
    view says 7.5%. The old hysteresis held "Mask" while its fused probability fell toward 7.5%; now the label
    follows the evidence: every printed probability is the label's own fused probability, at least 50%, and the
    verdict changes (one event) as soon as the evidence favours no mask."""
    stage = make_stage()  # the default schedule, fusion and cap
    stage.show_for(20, stage.face((0.61, 0.39)))
    assert [e.class_name for e in stage.events] == [WITH_MASK], "precondition: settled as with_mask"
    results = stage.show_for(60, stage.face((0.075, 0.925)))
    shown = printed(stage.results)
    assert all(p >= 0.5 for _, p in shown), min(p for _, p in shown)
    for r in stage.results[1:]:
        (d,) = r.detections
        assert d.probability == d.probabilities[d.class_index]
    assert results[-1].detections[0].class_name == WITHOUT_MASK
    assert [e.class_name for e in stage.events] == [WITH_MASK, WITHOUT_MASK]
    change = stage.events[-1]
    first_without = next(r.frame_index for r in results if r.detections[0].class_name == WITHOUT_MASK)
    assert change.frame_index == first_without  # the event comes with the first frame of the new label


def test_a_clearly_better_view_overturns_an_early_verdict_from_poor_views_at_once(make_stage):
    """Settled on views from afar (48 px: half as judgeable) that say with_mask at 80%; then the face comes close
    (96 px, twice as judgeable: over clearly_better) and one view says without_mask: that one classification
    overturns the verdict, not capped at max_share like an ordinary view."""
    stage = make_stage()
    settled_on(stage, (0.8, 0.2), frames=10, xywh=SMALL_BOX)
    close = stage.show(stage.face(UNMASKED))
    assert stage.classified_at[-1] == close.frame_index  # a clearly better view is classified at once
    assert labels([close]) == [(WITHOUT_MASK, True)]
    assert [(e.class_name, e.frame_index) for e in stage.events[1:]] == [(WITHOUT_MASK, close.frame_index)]


def test_a_single_odd_view_of_ordinary_quality_does_not_flip_a_settled_verdict(make_stage):
    """Settled on views that say with_mask at 80%; one view just as good says without_mask as surely as a model
    can (p = 1, clipped): capped at max_share of the evidence it cannot flip the verdict; uncapped it would (its
    natural share right after settling is about 0.31, and log(49) * 0.31 outweighs log(4) * 0.69)."""
    stage = make_stage(**EVERY_FRAME)
    masked = settled_on(stage, (0.8, 0.2), frames=4)  # settled at frame 3, by 3 views
    odd = stage.show(stage.face((0.0, 1.0)))
    after = stage.show_for(5, masked)
    assert labels([odd, *after]) == [(WITH_MASK, True)] * 6
    assert [e.kind for e in stage.events] == ["verdict"]
    assert odd.detections[0].probability < 0.8  # the odd view did count, only not enough to flip


def test_with_default_settings_odd_frames_never_flip_and_a_real_change_flips_once(make_stage):
    """Default fusion (every frame classified): 40 frames masked, then 40 unmasked, with single frames of the other
    answer mixed into both halves. The label is with_mask, changes once to without_mask a few frames after the
    switch, and never flickers."""
    stage = make_stage(unsettled_every=1, reclassify_every=1)
    odd = {10, 17, 24, 31, 50, 57, 64, 71}
    masked, unmasked = stage.face(MASKED), stage.face(UNMASKED)
    for i in range(80):
        stage.show(masked if (i < 40) != (i in odd) else unmasked)
    stage.finish()
    names = [name for name, _ in labels(stage.results[1:])]
    assert sum(a != b for a, b in zip(names, names[1:], strict=False)) == 1
    verdicts = [e for e in stage.events if e.kind == "verdict"]
    assert [e.class_name for e in verdicts] == [WITH_MASK, WITHOUT_MASK]
    # Each unmasked view takes max_share (0.15) of the evidence: from a steady with_mask verdict the fused log-odds
    # would cross zero at the fifth (0.85 ** 5 < 0.5); the odd views at 24 and 31 still count, so at the fourth.
    assert verdicts[1].frame_index == 43


def test_the_label_before_settling_is_the_best_estimate_so_far(make_stage):
    stage = make_stage(**{**LATEST_VIEW, "settle_classifications": 4})
    stage.show(stage.face(MASKED))
    shown = [stage.show(stage.face(p)) for p in (MASKED, UNMASKED, UNMASKED)]
    assert labels(shown) == [(WITH_MASK, False), (WITHOUT_MASK, False), (WITHOUT_MASK, False)]


def test_a_three_class_label_is_the_rules_choice_with_its_own_probability(make_stage):
    """Three classes: the label is the most probable fused class, printed with its own fused probability."""
    stage = make_stage(class_names=(WITH_MASK, WITHOUT_MASK, INCORRECT_MASK), **LATEST_VIEW)
    settled_on(stage, (0.9, 0.05, 0.05))
    detection = stage.show(stage.face((0.05, 0.15, 0.8))).detections[0]
    assert (detection.class_name, detection.class_index) == (INCORRECT_MASK, 2)
    assert detection.probability == pytest.approx(0.8)
    assert [e.class_name for e in stage.events] == [WITH_MASK, INCORRECT_MASK]


def test_the_mask_threshold_decides_the_label_of_a_tracked_face(make_stage):
    """--mask-threshold 0.7: fused p(with_mask) 0.65 is labelled without_mask, with without_mask's probability."""
    stage = make_stage(mask_threshold=0.7, **LATEST_VIEW)
    stage.show_for(4, stage.face((0.65, 0.35)))
    detection = stage.results[-1].detections[0]
    assert detection.class_name == WITHOUT_MASK and detection.probability == pytest.approx(0.35)


# ---------------------------------------------------------------------------------------------- too small to judge


def test_a_face_too_small_to_judge_is_followed_and_counted_but_never_judged(make_stage):
    """A 20 px face (under judge_size 24) that the classifier would call unmasked: tracked, never classified, shown
    as not judged (no label, no probability), no verdict event, no alert; counted as a person not judged, and its
    leave event says so."""
    stage = make_stage()
    small = stage.face(UNMASKED, (310, 230, 20, 20))
    results = stage.show_for(20, small)
    in_view = results[-1].people
    assert (in_view.total, in_view.judged, in_view.unjudged) == (1, 0, 1)  # counted while in view, too
    stage.finish()
    assert stage.classified_at == []
    faces = [d for r in results for d in r.detections]
    assert len(faces) == 19 and all(not d.judged and d.class_name == NOT_JUDGED for d in faces)
    assert all(d.class_index is None and math.isnan(d.probability) and d.probabilities == () for d in faces)
    assert faces[0].to_json() == {
        "box": [310, 230, 20, 20],
        "score": 0.9,
        "label": None,
        "probability": None,
        "track": 1,
        "settled": False,
        "judged": False,
    }
    assert not any(r.alert for r in results)
    (leave,) = stage.events
    assert (leave.kind, leave.class_name, leave.probability, leave.judged) == ("leave", None, None, False)
    people = stage.people.people
    assert (people.total, people.judged, people.unjudged) == (1, 0, 1)
    assert people.by_class == {WITH_MASK: 0, WITHOUT_MASK: 0}


def test_a_face_is_judged_once_it_grows_past_the_judging_size(make_stage):
    """The same person, 20 px for 10 frames, then 30 px: classified from its first view at 30 px, settled after
    settle_classifications views (then the alert is on), one verdict event; counted as judged."""
    stage = make_stage(settle_classifications=3)
    stage.show_for(10, stage.face(UNMASKED, (310, 230, 20, 20)))
    grown = stage.show_for(10, stage.face(UNMASKED, (305, 225, 30, 30)))
    assert stage.classified_at[0] == 10
    assert [d.judged for r in grown for d in r.detections] == [True] * 10
    assert {d.track_id for r in stage.results for d in r.detections} == {1}  # one person throughout
    (verdict,) = stage.events
    assert (verdict.class_name, verdict.frame_index) == (WITHOUT_MASK, 14)  # views at 10, 12, 14
    assert [r.alert for r in grown] == [False] * 4 + [True] * 6
    people = stage.people.people
    assert (people.judged, people.unjudged, people.by_class[WITHOUT_MASK]) == (1, 0, 1)


def test_the_judging_size_is_a_setting(make_stage):
    """judge_size 16: the same 20 px face is judged."""
    stage = make_stage(judge_size=16)
    stage.show_for(10, stage.face(UNMASKED, (310, 230, 20, 20)))
    assert stage.results[-1].detections[0].class_name == WITHOUT_MASK
    assert stage.people.people.unjudged == 0


# ---------------------------------------------------------------------------------------------------------- events


def test_events_a_verdict_when_settled_one_per_change_and_a_leave_at_the_end(make_stage):
    stage = make_stage(**LATEST_VIEW)
    stage.show_for(6, stage.face(MASKED))
    stage.show_for(6, stage.face(UNMASKED))
    assert stage.finish() == stage.events[-1:]
    summary = [(e.kind, e.track_id, e.frame_index, e.class_name) for e in stage.events]
    assert summary == [
        ("verdict", 1, 3, WITH_MASK),
        ("verdict", 1, 6, WITHOUT_MASK),
        ("leave", 1, 11, WITHOUT_MASK),
    ]
    leave = stage.events[-1]
    assert (leave.first_frame_index, leave.frames, leave.judged) == (1, 11, True)  # tracked from its second frame
    assert leave.probability == pytest.approx(0.95)
    verdict = stage.events[0]
    assert verdict.xywh == (272, 192, 96, 96) and verdict.snapshot is not None
    assert stage.people.people.by_class == {WITH_MASK: 0, WITHOUT_MASK: 1}


def test_a_face_gone_longer_than_max_missing_ends_its_track(make_stage):
    """The face leaves after frame 9: a leave event once it has been missing for more than max_missing_frames,
    and nothing at finish."""
    stage = make_stage(**LATEST_VIEW)
    stage.show_for(10, stage.face(UNMASKED))
    stage.show_for(stage.people.max_missing_frames + 3)
    leaves = [e for e in stage.events if e.kind == "leave"]
    assert [(e.frame_index, e.first_frame_index, e.frames) for e in leaves] == [
        (10 + stage.people.max_missing_frames, 1, 9)
    ]
    assert stage.finish() == []


def test_a_person_who_leaves_before_settling_gets_a_verdict_then_a_leave(make_stage):
    stage = make_stage(**{**LATEST_VIEW, "settle_classifications": 100})
    stage.show_for(6, stage.face(UNMASKED))
    assert stage.events == []
    assert [(e.kind, e.class_name, e.frame_index) for e in stage.finish()] == [
        ("verdict", WITHOUT_MASK, 5),
        ("leave", WITHOUT_MASK, 5),
    ]


def test_a_short_track_is_nobody(make_stage):
    """Seen in fewer than min_frames frames: reported while in view, never counted, no events."""
    stage = make_stage()
    stage.show_for(4, stage.face(UNMASKED))
    stage.show_for(stage.people.max_missing_frames + 2)
    stage.finish()
    assert [d.track_id for r in stage.results for d in r.detections] == [1, 1, 1]
    assert stage.events == [] and stage.people.people.total == 0


def test_the_alert_is_on_while_a_settled_unmasked_person_is_in_view(make_stage):
    stage = make_stage(**LATEST_VIEW)
    masked = stage.face(MASKED, (40, 192, 96, 96))
    unmasked = stage.face(UNMASKED, (400, 192, 96, 96))
    together = stage.show_for(6, masked, unmasked)
    alone = stage.show_for(stage.people.max_missing_frames + 4, masked)
    assert [r.alert for r in together] == [False] * 3 + [True] * 3  # settled at frame 3
    assert alone[-1].alert is False and alone[0].alert is True  # on until the track ends
    assert stage.people.people.by_class == {WITH_MASK: 1, WITHOUT_MASK: 1}


def test_fused_probabilities_of_every_tracked_face_sum_to_one(make_stage):
    stage = make_stage(**EVERY_FRAME)
    for p in (MASKED, UNMASKED, (0.5, 0.5), MASKED):
        stage.show(stage.face(p))
    for r in stage.results[1:]:
        assert np.sum(r.detections[0].probabilities) == pytest.approx(1.0)
