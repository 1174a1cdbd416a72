"""When a tracked face is classified: when its track is new (and big enough to judge), every ``unsettled_every``
frames until the verdict is settled, every ``reclassify_every`` frames after (also when the latest view disagreed),
and at once for a clearly better (larger) view."""

from mask_detection.classes import WITH_MASK

MASKED = (0.95, 0.05)
UNMASKED = (0.05, 0.95)
CLOSE = (252, 172, 136, 136)  # the same centre as stand_ins.FACE_BOX (96 px), twice the area


def test_a_face_is_classified_often_until_settled_then_rarely(make_stage):
    """Defaults: every 2 frames from the track's first (frame 1); settled at frame 5 (seen min_frames = 5 frames,
    3 classifications); then every 10 frames."""
    stage = make_stage()
    stage.show_for(60, stage.face(MASKED))
    assert stage.classified_at == [1, 3, 5, 15, 25, 35, 45, 55]
    assert [(e.kind, e.frame_index) for e in stage.events] == [("verdict", 5)]


def test_a_clearly_better_view_is_classified_at_once(make_stage):
    """The face comes twice as close at frame 8 (over better_view = 1.3 times the best classified area): it is
    classified then, not at frame 15; the same close view once more is not better and waits its turn."""
    stage = make_stage()
    stage.show_for(8, stage.face(MASKED))
    stage.show_for(12, stage.face(MASKED, CLOSE))
    assert stage.classified_at == [1, 3, 5, 8, 18]


def test_a_settled_person_is_checked_at_the_settled_pace_also_after_a_contrary_view(make_stage):
    """A settled person's scheduled view (frame 15) disagrees with the verdict: the next one still comes after
    reclassify_every frames (25). The frames in between are near-copies of that view: classifying them would only
    add the same contrary evidence again."""
    stage = make_stage()
    stage.show_for(15, stage.face(MASKED))
    stage.show_for(2, stage.face(UNMASKED))  # frame 15: classified, disagrees
    stage.show_for(14, stage.face(MASKED))
    assert stage.classified_at == [1, 3, 5, 15, 25]
    assert stage.results[-1].detections[0].class_name == WITH_MASK


def test_a_face_too_small_to_judge_is_not_classified(make_stage):
    """Under judge_size (short side) no view is classified, also not a clearly larger one still under it."""
    stage = make_stage(judge_size=40)
    stage.show_for(5, stage.face(MASKED, (300, 220, 36, 30)))
    stage.show_for(5, stage.face(MASKED, (290, 215, 56, 36)))  # 1.9 times the area, still 36 px high
    stage.show_for(3, stage.face(MASKED, (290, 210, 56, 44)))
    assert stage.classified_at == [10, 12]
