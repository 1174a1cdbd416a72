"""When an event is an alert: a person's verdict says no mask, once per person, and not too often per camera."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..classes import WITHOUT_MASK
from ..errors import MaskDetectionError
from .records import Event

# People remembered as alerted (or suppressed) whose leave was never seen; the oldest are forgotten beyond this.
_REMEMBERED = 100_000


class AlertGate:
    """Decides which events alert: a ``verdict`` event whose ``after.label`` is ``without_mask``, at most once per
    person (camera, run, track) ever, and at most one alert per camera in any ``cooldown`` seconds. A verdict the
    cooldown suppresses does not alert later: the alert is about a person arriving, not a backlog to deliver.

    ``clock``: seconds, only differences matter (``time.monotonic``). Thread-safe.
    """

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not cooldown >= 0:
            raise MaskDetectionError(f"alert cooldown {cooldown}: must be 0 seconds or more")
        self.cooldown = float(cooldown)
        self.clock = clock
        self._lock = threading.Lock()
        self._people: OrderedDict[tuple[object, object, object], None] = (
            OrderedDict()
        )  # each person judged without mask
        self._last: dict[str, float] = {}  # each camera's latest alert

    def check(self, event: Event) -> bool:
        """Whether ``event`` alerts (the caller marks it ``"alert": true``). Give it every event: a ``leave``
        lets the gate forget that person."""
        person = (event.get("camera"), event.get("run"), event.get("track"))
        kind = event.get("type")
        with self._lock:
            if kind == "leave":
                self._people.pop(person, None)
                return False
            after = event.get("after")
            if kind != "verdict" or not isinstance(after, dict) or after.get("label") != WITHOUT_MASK:
                return False
            if person in self._people:
                return False
            self._people[person] = None
            if len(self._people) > _REMEMBERED:
                self._people.popitem(last=False)
            camera = str(event.get("camera"))
            now = self.clock()
            last = self._last.get(camera)
            if last is not None and now - last < self.cooldown:
                return False
            self._last[camera] = now
            return True
