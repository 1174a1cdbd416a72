"""A person's verdict: settled after ``settle_classifications`` classifications, then changed only when another
class reaches ``change_probability`` on ``change_classifications`` classifications in a row (hysteresis); the
events that tell of it; and the label every tracked face carries, which is its person's verdict.

Most tests classify every frame and use memory 0, so the fused probabilities are exactly the latest view's and each
frame's colour decides that classification: the counts of views below are exact.
"""

import numpy as np
import pytest

from mask_detection.classes import INCORRECT_MASK, WITH_MASK, WITHOUT_MASK

MASKED = (0.95, 0.05)
UNMASKED = (0.05, 0.95)
WEAKLY_UNMASKED = (0.3, 0.7)  # another class leads, but below change_probability
# The verdict's rules alone: a person from the first frame, every frame classified, the latest view is the evidence.
LATEST_VIEW = dict(
    min_frames=1,
    unsettled_every=1,
    reclassify_every=1,
    memory=0.0,
    settle_classifications=3,
    change_probability=0.8,
    change_classifications=4,
)


def settled_on(stage, probabilities, frames=5):
    """Show a face answering ``probabilities`` until its verdict is settled (frame 0 confirms the track, frames 1
    to settle_classifications classify it), and a little longer; returns the face."""
    face = stage.face(probabilities)
    stage.show_for(frames, face)
    assert [e.kind for e in stage.events] == ["verdict"], "precondition: the verdict is settled"
    return face


def labels(results):
    """(class name, settled) of the one face of each frame."""
    return [(r.detections[0].class_name, r.detections[0].settled) for r in results]


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


@pytest.mark.parametrize("run", [1, 2, 3])
def test_contrary_views_fewer_than_change_classifications_in_a_row_do_not_flip_the_verdict(make_stage, run):
    """``run`` frames of strong contrary evidence (the fused probability of without_mask 0.95, above
    change_probability) between with_mask frames: the label stays with_mask throughout."""
    stage = make_stage(**LATEST_VIEW)
    masked = settled_on(stage, MASKED)
    contrary = stage.show_for(run, stage.face(UNMASKED))
    after = stage.show_for(5, masked)
    assert all(r.detections[0].probabilities[1] == pytest.approx(0.95) for r in contrary), "precondition"
    assert labels(contrary + after) == [(WITH_MASK, True)] * (run + 5)
    assert [e.kind for e in stage.events] == ["verdict"]


def test_the_verdict_changes_on_the_change_classifications_th_contrary_view_in_a_row(make_stage):
    stage = make_stage(**LATEST_VIEW)
    settled_on(stage, MASKED)
    start = stage.frame_index
    contrary = stage.show_for(6, stage.face(UNMASKED))
    assert labels(contrary) == [(WITH_MASK, True)] * 3 + [(WITHOUT_MASK, True)] * 3
    change = stage.events[-1]
    assert (change.kind, change.class_name, change.frame_index) == ("verdict", WITHOUT_MASK, start + 3)
    assert change.probability == pytest.approx(0.95)
    assert len(stage.events) == 2


def test_a_changed_verdict_holds_against_the_old_class_as_firmly(make_stage):
    """The hysteresis works both ways: back to with_mask takes change_classifications views in a row again."""
    stage = make_stage(**LATEST_VIEW)
    settled_on(stage, MASKED)
    stage.show_for(4, stage.face(UNMASKED))
    back = stage.show_for(5, stage.face(MASKED))
    assert [name for name, _ in labels(back)] == [WITHOUT_MASK] * 3 + [WITH_MASK] * 2
    assert [e.class_name for e in stage.events] == [WITH_MASK, WITHOUT_MASK, WITH_MASK]


@pytest.mark.parametrize(
    "breaker", [MASKED, WEAKLY_UNMASKED], ids=["a-view-agreeing-with-the-verdict", "a-weak-contrary-view"]
)
def test_a_broken_run_of_contrary_views_starts_counting_again(make_stage, breaker):
    """Three strong contrary views, one view that is not strong contrary evidence, three more: no change (the run
    was broken); the fourth of the new run changes the verdict."""
    stage = make_stage(**LATEST_VIEW)
    settled_on(stage, MASKED)
    unmasked = stage.face(UNMASKED)
    held = stage.show_for(3, unmasked) + [stage.show(stage.face(breaker))] + stage.show_for(3, unmasked)
    assert labels(held) == [(WITH_MASK, True)] * 7
    stage.show(unmasked)
    assert [e.class_name for e in stage.events] == [WITH_MASK, WITHOUT_MASK]


def test_a_different_challenger_starts_its_own_count(make_stage):
    """Three classes: three strong views of without_mask, then four of mask_weared_incorrect: the count starts
    again at the new challenger, so the verdict changes at its fourth view, to that class."""
    stage = make_stage(class_names=(WITH_MASK, WITHOUT_MASK, INCORRECT_MASK), **LATEST_VIEW)
    settled_on(stage, (0.9, 0.05, 0.05))
    stage.show_for(3, stage.face((0.05, 0.9, 0.05)))
    start = stage.frame_index
    stage.show_for(4, stage.face((0.05, 0.05, 0.9)))
    assert [(e.class_name, e.frame_index) for e in stage.events[1:]] == [(INCORRECT_MASK, start + 3)]


def test_evidence_exactly_at_change_probability_is_strong_enough(make_stage):
    """The rule: another class must *reach* change_probability. The fused probability of a (0.2, 0.8) view is
    measured first; with change_probability set to exactly that value four such views change the verdict, with it
    set to the next float above, they do not."""
    probe = make_stage(**LATEST_VIEW)
    probe.show_for(2, probe.face((0.2, 0.8)))
    reached = probe.results[-1].detections[0].probabilities[1]
    assert reached == pytest.approx(0.8)
    for change_probability, changes in ((reached, True), (float(np.nextafter(reached, 1.0)), False)):
        stage = make_stage(**{**LATEST_VIEW, "change_probability": change_probability})
        settled_on(stage, MASKED)
        stage.show_for(4, stage.face((0.2, 0.8)))
        assert (stage.events[-1].class_name == WITHOUT_MASK) is changes, change_probability


def test_the_label_before_settling_is_the_best_estimate_so_far(make_stage):
    stage = make_stage(**{**LATEST_VIEW, "settle_classifications": 4})
    stage.show(stage.face(MASKED))
    shown = [stage.show(stage.face(p)) for p in (MASKED, UNMASKED, UNMASKED)]
    assert labels(shown) == [(WITH_MASK, False), (WITHOUT_MASK, False), (WITHOUT_MASK, False)]


def test_the_label_of_a_tracked_face_is_the_verdict_not_the_latest_view(make_stage):
    """A settled with_mask person whose latest view says without_mask: the face is labelled with_mask, with the
    verdict's fused probability, while its probabilities show the contrary evidence."""
    stage = make_stage(**LATEST_VIEW)
    settled_on(stage, MASKED)
    detection = stage.show(stage.face(UNMASKED)).detections[0]
    assert (detection.class_name, detection.class_index, detection.settled) == (WITH_MASK, 0, True)
    assert detection.probability == pytest.approx(0.05)
    assert detection.probabilities == pytest.approx((0.05, 0.95))


def test_with_default_settings_odd_frames_never_flip_and_a_real_change_flips_once(make_stage):
    """Default fusion and hysteresis (every frame classified): 40 frames masked, then 40 unmasked, with single
    frames of the other answer mixed into both halves. The verdict is with_mask, changes once to without_mask some
    frames after the switch, and the label never flickers."""
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
    # Not before change_classifications unmasked views in a row; not much later (the odd frame 50 breaks a run).
    assert 40 + stage.people.config.change_classifications - 1 <= verdicts[1].frame_index <= 58


# ---------------------------------------------------------------------------------------------------------- events


def test_events_a_verdict_when_settled_one_per_change_and_a_leave_at_the_end(make_stage):
    stage = make_stage(**LATEST_VIEW)
    stage.show_for(6, stage.face(MASKED))
    stage.show_for(6, stage.face(UNMASKED))
    assert stage.finish() == stage.events[-1:]
    summary = [(e.kind, e.track_id, e.frame_index, e.class_name) for e in stage.events]
    assert summary == [
        ("verdict", 1, 3, WITH_MASK),
        ("verdict", 1, 9, WITHOUT_MASK),
        ("leave", 1, 11, WITHOUT_MASK),
    ]
    leave = stage.events[-1]
    assert (leave.first_frame_index, leave.frames) == (1, 11)  # tracked from its second frame
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
