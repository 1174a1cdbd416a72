"""The decision rule: the most probable class, or with a mask threshold "with_mask" exactly when p(with_mask)
reaches it (else the most probable other class); a threshold is ignored by models without a with_mask class."""

import numpy as np
import pytest

from mask_detection.classes import INCORRECT_MASK, WITH_MASK, WITHOUT_MASK
from mask_detection.decision import DecisionRule
from mask_detection.errors import ModelError

THREE = (WITH_MASK, WITHOUT_MASK, INCORRECT_MASK)


def test_without_a_threshold_the_most_probable_class_wins():
    rule = DecisionRule(THREE)
    rows = [(0.5, 0.3, 0.2), (0.2, 0.7, 0.1), (0.3, 0.3, 0.4), (0.4, 0.4, 0.2)]
    assert rule.decide(rows).tolist() == [0, 1, 2, 0]  # a tie: the first class
    assert rule.decide_one((0.1, 0.2, 0.7)) == 2
    assert not rule.ignored_threshold


@pytest.mark.parametrize(
    "probabilities, chosen",
    [
        ((0.7, 0.3), WITH_MASK),  # reaching the threshold is enough
        ((0.69, 0.31), WITHOUT_MASK),  # the most probable class, but under the threshold
        ((0.9, 0.1), WITH_MASK),
        ((0.2, 0.8), WITHOUT_MASK),
    ],
)
def test_with_a_threshold_with_mask_needs_to_reach_it(probabilities, chosen):
    rule = DecisionRule((WITH_MASK, WITHOUT_MASK), mask_threshold=0.7)
    assert rule.class_names[rule.decide_one(probabilities)] == chosen


def test_under_the_threshold_the_most_probable_other_class_wins():
    """p(with_mask) 0.6 is the largest, under 0.7: the best of the others, here mask_weared_incorrect."""
    rule = DecisionRule(THREE, mask_threshold=0.7)
    assert rule.decide([(0.6, 0.15, 0.25), (0.6, 0.25, 0.15), (0.75, 0.05, 0.2)]).tolist() == [2, 1, 0]


def test_a_low_threshold_calls_more_faces_masked_than_the_plain_rule():
    rule = DecisionRule((WITH_MASK, WITHOUT_MASK), mask_threshold=0.3)
    assert rule.decide_one((0.35, 0.65)) == 0


def test_the_threshold_is_ignored_for_a_model_without_with_mask():
    rule = DecisionRule(("cat", "dog"), mask_threshold=0.9)
    assert rule.ignored_threshold
    assert rule.decide([(0.6, 0.4), (0.1, 0.9)]).tolist() == [0, 1]
    assert "0.9 is ignored" in rule.ignored_message() and "cat, dog" in rule.ignored_message()


def test_no_rows_decide_nothing():
    rule = DecisionRule((WITH_MASK, WITHOUT_MASK), mask_threshold=0.5)
    assert rule.decide(np.zeros((0, 2))).tolist() == []


@pytest.mark.parametrize("threshold", [-0.01, 1.01, float("nan")])
def test_a_threshold_outside_0_to_1_raises_model_error(threshold):
    with pytest.raises(ModelError, match="mask threshold must be between 0 and 1"):
        DecisionRule((WITH_MASK, WITHOUT_MASK), mask_threshold=threshold)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_ends_of_0_to_1_are_valid_thresholds(threshold):
    rule = DecisionRule((WITH_MASK, WITHOUT_MASK), mask_threshold=threshold)
    assert rule.decide_one((0.5, 0.5)) == (0 if threshold == 0.0 else 1)


def test_a_tracked_persons_verdict_follows_the_pipelines_threshold(make_stage):
    """The tracked pipeline decides verdicts with the pipeline's rule: a person whose fused p(with_mask) is 0.6 is
    settled with_mask without a threshold, without_mask with threshold 0.7."""
    verdicts = {}
    for threshold in (None, 0.7):
        stage = make_stage(mask_threshold=threshold, min_frames=1, unsettled_every=1)
        stage.show_for(5, stage.face((0.6, 0.4)))
        verdicts[threshold] = [e.class_name for e in stage.events]
    assert verdicts == {None: [WITH_MASK], 0.7: [WITHOUT_MASK]}
