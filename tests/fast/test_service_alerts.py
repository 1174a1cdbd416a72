"""Which events alert: no-mask verdicts, once per person, at most one per camera per cooldown (a scripted clock)."""

import pytest

from mask_detection.errors import MaskDetectionError
from mask_detection.service.alerts import AlertGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verdict(track: int, label: str | None = "without_mask", camera: str = "door", run: str = "run1", kind="verdict"):
    return {
        "type": kind,
        "camera": camera,
        "run": run,
        "track": track,
        "before": None,
        "after": {"label": label, "probability": 0.9, "box": [1, 2, 3, 4], "judged": True, "settled": True},
    }


def test_only_no_mask_verdicts_alert():
    gate = AlertGate(cooldown=0, clock=Clock())
    assert not gate.check(verdict(1, kind="new"))
    assert not gate.check(verdict(2, label="with_mask"))
    assert not gate.check(verdict(3, label="mask_weared_incorrect"))
    assert not gate.check(verdict(4, label=None))
    assert not gate.check(dict(verdict(5), after=None))
    assert gate.check(verdict(6))


def test_a_person_alerts_once_even_when_their_verdict_repeats():
    clock = Clock()
    gate = AlertGate(cooldown=10, clock=clock)
    assert gate.check(verdict(1))
    clock.now += 3600
    assert not gate.check(verdict(1, label="with_mask"))
    assert not gate.check(verdict(1))  # back to no mask: still the same person
    assert gate.check(verdict(1, run="run2"))  # another run's track 1 is another person
    clock.now += 3600
    assert gate.check(verdict(1, camera="gate"))


def test_one_alert_per_camera_per_cooldown_and_a_suppressed_one_never_alerts_later():
    clock = Clock()
    gate = AlertGate(cooldown=10, clock=clock)
    assert gate.check(verdict(1))
    clock.now += 9.5
    assert not gate.check(verdict(2))  # within the cooldown
    assert gate.check(verdict(3, camera="gate"))  # other cameras have their own
    clock.now += 0.5
    assert gate.check(verdict(4))  # exactly the cooldown later
    clock.now += 60
    assert not gate.check(verdict(2))  # the suppressed person does not alert late
    assert gate.check(verdict(5))


def test_a_person_who_left_is_forgotten():
    gate = AlertGate(cooldown=0, clock=Clock())
    assert gate.check(verdict(1))
    assert len(gate._people) == 1
    assert not gate.check(verdict(1, kind="leave"))
    assert len(gate._people) == 0


def test_a_negative_cooldown_is_refused():
    with pytest.raises(MaskDetectionError):
        AlertGate(cooldown=-1)
