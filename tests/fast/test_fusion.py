"""Evidence fusion: a person's classifications combine into one set of class probabilities, the weighted geometric
mean of the views, where a view weighs its face's detector score times its judgeability (here, painted flat faces
without landmarks, only the size counts: full from ``full_weight_side``; the flat patch's sharpness is the same for
every view and cancels out) and earlier views fade by ``memory`` at each new one. The expected values are computed
here by hand from that definition, and compared with what the real tracked pipeline reports for the face
(``Detection.probabilities``).
"""

import numpy as np
import pytest

from mask_detection.classes import INCORRECT_MASK, WITH_MASK, WITHOUT_MASK

THREE_CLASSES = (WITH_MASK, WITHOUT_MASK, INCORRECT_MASK)
LARGE = (272, 192, 96, 96)  # full weight (96 px = full_weight_side)
SMALL = (296, 216, 48, 48)  # the same centre, half the side: half the weight
MASKED = (0.8, 0.2)
UNMASKED = (0.2, 0.8)
# Every tracked frame is classified and nothing is ever settled: the reported probabilities are the fusion alone.
EVERY_FRAME = dict(min_frames=1, unsettled_every=1, reclassify_every=1, settle_classifications=1000)


def fused_by_hand(views, memory):
    """The fused probabilities of ``views`` [(probabilities, weight)], oldest first: view i of n counts
    weight * memory ** (n - 1 - i); the weighted mean of the log-probabilities (each clipped to [0.02, 0.98]),
    exponentiated and normalised."""
    n = len(views)
    counts = np.array([weight * memory ** (n - 1 - i) for i, (_, weight) in enumerate(views)])
    # The classifier's answers are float32: the same numbers here.
    logs = np.log(np.clip([np.asarray(p, np.float32).astype(np.float64) for p, _ in views], 0.02, 0.98))
    mean = counts @ logs / counts.sum()
    p = np.exp(mean - mean.max())
    return p / p.sum()


def fused_reported(result):
    (detection,) = result.detections
    return np.array(detection.probabilities)


def test_the_fused_probabilities_are_the_weighted_geometric_mean_of_the_views_with_memory(make_stage):
    """Three views of one face with different answers and detector scores (so different weights), default memory:
    after each view the reported probabilities are the hand-computed fusion of the views so far."""
    stage = make_stage(class_names=THREE_CLASSES, **EVERY_FRAME)
    memory = stage.people.config.memory
    views = [((0.7, 0.2, 0.1), 0.9), ((0.1, 0.6, 0.3), 0.65), ((0.3, 0.3, 0.4), 0.8)]
    stage.show(stage.face(views[0][0], score=views[0][1]))  # the track's first frame: confirmed, not classified
    for n, (probabilities, score) in enumerate(views, start=1):
        result = stage.show(stage.face(probabilities, score=score))
        # LARGE faces count fully, so a view weighs its detector score.
        expected = fused_by_hand(views[:n], memory)
        np.testing.assert_allclose(fused_reported(result), expected, rtol=1e-9)
    assert stage.classified_at == [1, 2, 3]
    # Not a plain average: the fused answer differs from both the mean and the latest view.
    assert not np.allclose(expected, np.mean([p for p, _ in views], axis=0), atol=0.01)


@pytest.mark.parametrize("large_first", [True, False], ids=["large-then-small", "small-then-large"])
def test_a_large_face_outweighs_a_small_one(make_stage, large_first):
    """One view of the face close up (96 px) says without_mask, one from afar (48 px, half the weight) says
    with_mask just as surely. Without memory the order does not matter: the close view wins either way."""
    stage = make_stage(memory=1.0, **EVERY_FRAME)
    close, far = stage.face(UNMASKED, LARGE), stage.face(MASKED, SMALL)
    order = [close, far] if large_first else [far, close]
    stage.show(order[0])  # confirms the track
    stage.show(order[0])
    result = stage.show(order[1])
    weights = {LARGE: 0.9 * 1.0, SMALL: 0.9 * 48 / 96}
    expected = fused_by_hand([((UNMASKED if f is close else MASKED), weights[f.xywh]) for f in order], 1.0)
    np.testing.assert_allclose(fused_reported(result), expected, rtol=1e-9)
    assert expected[1] == pytest.approx(1 / (1 + 4 ** (-1 / 3)))  # the odds: 4 ** (1/3) for the close view
    assert result.detections[0].class_name == WITHOUT_MASK
    assert {d.track_id for r in stage.results for d in r.detections} == {1}


@pytest.mark.parametrize("sure_first", [True, False], ids=["sure-then-unsure", "unsure-then-sure"])
def test_a_surer_face_outweighs_a_less_sure_one(make_stage, sure_first):
    """The same size of face, detector scores 0.95 and 0.35 (a low score continues a track): the sure view's
    answer wins, in either order."""
    stage = make_stage(memory=1.0, **EVERY_FRAME)
    sure, unsure = stage.face(UNMASKED, score=0.95), stage.face(MASKED, score=0.35)
    order = [sure, unsure] if sure_first else [unsure, sure]
    stage.show(sure)  # a track starts only from a sure face (new_track_score)
    stage.show(order[0])
    result = stage.show(order[1])
    expected = fused_by_hand([((UNMASKED if f is sure else MASKED), f.score) for f in order], 1.0)
    np.testing.assert_allclose(fused_reported(result), expected, rtol=1e-9)
    assert result.detections[0].class_name == WITHOUT_MASK


def test_faces_larger_than_full_weight_side_weigh_no_more(make_stage):
    """Weight grows with size only up to full_weight_side: with full_weight_side 48 the close and far views weigh
    the same, and without memory two opposite views of equal weight cancel out exactly."""
    stage = make_stage(memory=1.0, full_weight_side=48, **EVERY_FRAME)
    stage.show_for(2, stage.face(UNMASKED, LARGE))
    result = stage.show(stage.face(MASKED, SMALL))
    np.testing.assert_allclose(fused_reported(result), [0.5, 0.5], rtol=1e-9)


def test_recent_views_count_more(make_stage):
    """Two views say with_mask, then one says without_mask as surely. With memory 0.5 each earlier view counts
    half as much at every new one, so the latest view outweighs the two before it (1 against 0.5 + 0.25); with
    memory 1 (every view alike) the two win."""
    views = [MASKED, MASKED, UNMASKED]
    fused = {}
    for memory in (0.5, 1.0):
        stage = make_stage(memory=memory, **EVERY_FRAME)
        stage.show(stage.face(views[0]))
        for probabilities in views:
            result = stage.show(stage.face(probabilities))
        fused[memory] = fused_reported(result)
        np.testing.assert_allclose(fused[memory], fused_by_hand([(p, 0.9) for p in views], memory), rtol=1e-9)
    assert fused[0.5][1] > 0.5 and result.detections[0].class_name == WITH_MASK
    assert fused[1.0][0] > 0.5
    # By hand: log-odds (0.75 * log 4 - log 4) / 1.75 with memory 0.5.
    assert fused[0.5][0] == pytest.approx(1 / (1 + 4 ** (0.25 / 1.75)))


def test_one_view_that_says_zero_does_not_veto_all_others(make_stage):
    """A view with p = 0 for a class (a quantised model) is clipped to 0.02 (and its 1 to 0.98), so later views can
    still outweigh it: two sure without_mask views after one certain with_mask view."""
    stage = make_stage(memory=1.0, **EVERY_FRAME)
    views = [(1.0, 0.0), (0.01, 0.99), (0.01, 0.99)]
    stage.show(stage.face(views[0]))
    for probabilities in views:
        result = stage.show(stage.face(probabilities))
    np.testing.assert_allclose(fused_reported(result), fused_by_hand([(p, 0.9) for p in views], 1.0), rtol=1e-9)
    assert result.detections[0].class_name == WITHOUT_MASK
