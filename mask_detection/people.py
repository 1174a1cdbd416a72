"""People, not frames: faces followed across video frames, one fused verdict per person, and events.

``PeoplePipeline.process(bgr, frame_index, time)`` runs the face detector on every frame, follows the faces with
``tracker.FaceTracker`` (ByteTrack), and classifies a tracked face only when it adds evidence: a new track, a
clearly better view, or every few frames. Each person's classifications are fused into one verdict (a weighted
geometric mean of the class probabilities, recent and larger, surer faces counting more); the verdict is settled
after enough evidence and changes afterwards only on strong evidence held over several classifications
(hysteresis), so one frame's noise never flips a label. Every face a frame reports carries its person's current
verdict, not that frame's guess.

Events: a "verdict" event when a person's verdict is first settled (or, for someone who leaves before that, when
they leave) and again whenever it changes; a "leave" event when the track ends (the face has been missing for
longer than ``max_missing_seconds``, a scene cut, or ``finish`` at the end of the run).
"""

from dataclasses import dataclass, field

import numpy as np

from .classes import WITHOUT_MASK
from .crop import crop_region
from .detections import Box, Detection
from .errors import MaskDetectionError
from .pipeline import MaskPipeline
from .results import FrameResult, PeopleCounts, PersonEvent, Timings
from .tracker import FaceTracker, SceneCut, TrackedFace

# Snapshots show a little more than the classifier's crop (hair, chin, mask straps), so an operator can tell who.
SNAPSHOT_MARGIN = 0.3
# Probabilities are floored here: one over-confident classification (a quantised model says 0.0) must not outweigh
# all the others; each view can shift the odds by at most 100:1.
_MIN_PROBABILITY = 0.01


@dataclass(frozen=True)
class TrackingConfig:
    """How faces are followed and how a person's verdict is formed (defaults tuned on the dev video)."""

    max_missing_seconds: float = (
        1.0  # a face hidden up to this long (someone walks in front, missed detections) keeps its track
    )
    min_frames: int = 5  # frames seen before a track counts as a person (a short false detection never does)
    reclassify_every: int = 10  # frames between re-classifications of a settled person's face
    # Frames between classifications before the verdict is settled, and while the latest view disagrees with it
    # (gather evidence fast when it matters).
    unsettled_every: int = 2
    better_view: float = 1.3  # a face this many times the area of its best classified view is classified again
    settle_classifications: int = 3  # classifications before a person's verdict is settled
    memory: float = 0.85  # share of the earlier evidence kept at each new classification: recent views count more
    change_probability: float = 0.8  # fused probability another class needs to overturn a settled verdict ...
    change_classifications: int = 4  # ... on this many classifications in a row
    full_weight_side: int = 96  # faces this many pixels across (and more) count fully; smaller ones less
    new_track_score: float = 0.6  # detector score a face needs to start a track; lower ones only continue one
    # Overlap a face needs with a track's predicted box to continue that track: 0.3 lost a face that came out
    # from behind another one half-hidden (its box narrower than the prediction).
    min_iou: float = 0.2
    scene_cut_colour: float = 0.15  # share of the colour histogram that moves at a hard cut ...
    scene_cut_pixels: float = 0.5  # ... together with the share of pixels that change (see tracker.SceneCut)


@dataclass
class _Track:
    """One track's evidence and verdict."""

    track_id: int
    first_frame: int
    n_classes: int
    seen: int = 0  # frames the face was seen in
    xywh: Box = (0, 0, 0, 0)  # last seen box
    score: float = 0.0
    log_evidence: np.ndarray = field(init=False)  # decayed, weighted sum of log-probabilities
    weight: float = 0.0
    classifications: int = 0
    last_classified: int = -1  # frame index
    best_area: int = 0  # of the classified views
    snapshot: np.ndarray | None = None  # the best classified view, with margin
    verdict: int | None = None  # the settled class index
    doubted: bool = False  # the latest classification disagreed with the settled verdict
    challenger: int | None = None  # another class with strong evidence against the verdict ...
    challenges: int = 0  # ... on this many classifications in a row

    def __post_init__(self) -> None:
        self.log_evidence = np.zeros(self.n_classes)

    def fused(self) -> np.ndarray:
        """The fused class probabilities: the weighted geometric mean of the classifications, normalised."""
        mean = self.log_evidence / self.weight
        p = np.exp(mean - mean.max())
        return p / p.sum()

    def add_evidence(self, probabilities: np.ndarray, weight: float, memory: float) -> None:
        log_p = np.log(np.clip(probabilities, _MIN_PROBABILITY, 1.0))
        self.log_evidence = memory * self.log_evidence + weight * log_p
        self.weight = memory * self.weight + weight
        self.classifications += 1


class PeoplePipeline:
    """A ``MaskPipeline``'s detector and classifier, applied to people across the frames of one video.

    One instance per video (per thread, like the pipeline it wraps). ``fps`` converts ``max_missing_seconds`` into
    frames; frames must come in order.
    """

    def __init__(self, pipeline: MaskPipeline, config: TrackingConfig | None = None, fps: float = 30.0) -> None:
        self.pipeline = pipeline
        self.config = config = config or TrackingConfig()
        check_config(config, fps)
        self.fps = fps
        self.class_names = pipeline.class_names
        self.timings = Timings()
        self._rule = pipeline.rule
        self._tracker = FaceTracker(fps, config.max_missing_seconds, config.new_track_score, config.min_iou)
        self._scene_cut = SceneCut(config.scene_cut_colour, config.scene_cut_pixels)
        self._tracks: dict[int, _Track] = {}
        self._departed = dict.fromkeys(self.class_names, 0)  # people whose track ended, by final verdict
        self._without_mask = self.class_names.index(WITHOUT_MASK) if WITHOUT_MASK in self.class_names else None

    @property
    def max_missing_frames(self) -> int:
        """How many frames in a row a face may be missing and keep its track."""
        return self._tracker.max_missing_frames

    def process(self, bgr: np.ndarray, frame_index: int, time: float) -> FrameResult:
        """One BGR uint8 frame; frames must come in order. Seconds spent in "detect", "track" and "classify" are
        added to ``timings``."""
        with self.timings.stage("detect"):
            faces = self.pipeline.detect(bgr)
        events = []
        with self.timings.stage("track"):
            if self._scene_cut(bgr):
                events += self._end(self._tracker.reset(), frame_index, time)
            tracked, ended = self._tracker.update(faces)
            events += self._end(ended, frame_index, time)
        with self.timings.stage("classify"):
            self._observe(tracked, frame_index)
            self._classify(bgr, tracked, frame_index)
            for item in tracked:
                events += self._judge(self._tracks[item.track_id], frame_index, time)
        detections = [self._detection(item) for item in sorted(tracked, key=lambda t: t.face.score, reverse=True)]
        alert = any(t.verdict is not None and t.verdict == self._without_mask for t in self._tracks.values())
        return FrameResult(frame_index, time, detections, bgr, events, alert, self.people)

    def finish(self, frame_index: int, time: float) -> list[PersonEvent]:
        """End every open track (the end of the run, Ctrl-C, SIGTERM): a leave event for every open person, after
        a verdict event for those not yet settled. ``stream.process_stream`` calls it on every way out."""
        return self._end(self._tracker.reset(), frame_index, time)

    @property
    def people(self) -> PeopleCounts:
        """People so far (tracks that became persons, gone or still in view) by current verdict, every class of
        the model."""
        counts = dict(self._departed)
        for track in self._tracks.values():
            if self._is_person(track):
                counts[self.class_names[self._label(track)]] += 1
        return PeopleCounts(counts)

    def _is_person(self, track: _Track) -> bool:
        return track.seen >= self.config.min_frames

    def _observe(self, tracked: list[TrackedFace], frame_index: int) -> None:
        for item in tracked:
            track = self._tracks.get(item.track_id)
            if track is None:
                track = self._tracks[item.track_id] = _Track(item.track_id, frame_index, len(self.class_names))
            track.seen += 1
            track.xywh, track.score = item.face.xywh, item.face.score

    def _needs_evidence(self, track: _Track, frame_index: int) -> bool:
        if track.classifications == 0:
            return True
        _, _, w, h = track.xywh
        if w * h >= self.config.better_view * track.best_area:
            return True
        sure = track.verdict is not None and not track.doubted
        every = self.config.reclassify_every if sure else self.config.unsettled_every
        return frame_index - track.last_classified >= every

    def _classify(self, bgr: np.ndarray, tracked: list[TrackedFace], frame_index: int) -> None:
        """One batched classifier call for the faces that need evidence; each result joins its track's."""
        wanting = [self._tracks[item.track_id] for item in tracked]
        wanting = [track for track in wanting if self._needs_evidence(track, frame_index)]
        if not wanting:
            return
        kept, probabilities = self.pipeline.classify(bgr, [track.xywh for track in wanting])
        for i, probs in zip(kept, probabilities, strict=True):
            track = wanting[i]
            track.add_evidence(np.asarray(probs, np.float64), self._weight(track), self.config.memory)
            track.last_classified = frame_index
            track.doubted = track.verdict is not None and int(np.argmax(probs)) != track.verdict
            _, _, w, h = track.xywh
            if w * h >= track.best_area:
                track.best_area = w * h
                x0, y0, x1, y1 = crop_region(track.xywh, bgr.shape, SNAPSHOT_MARGIN)
                track.snapshot = bgr[y0:y1, x0:x1].copy()

    def _weight(self, track: _Track) -> float:
        """A classification's weight: the detector's score times the face's size (full from full_weight_side)."""
        _, _, w, h = track.xywh
        return max(1e-6, track.score) * min(1.0, float(np.sqrt(w * h)) / self.config.full_weight_side)

    def _label(self, track: _Track) -> int:
        """The person's current verdict: the settled one, or the best estimate so far."""
        if track.verdict is not None:
            return track.verdict
        return self._rule.decide_one(track.fused())

    def _judge(self, track: _Track, frame_index: int, time: float) -> list[PersonEvent]:
        """Settle the verdict once there is enough evidence; afterwards change it only on strong evidence held
        over several classifications. A verdict event when it is settled or changed."""
        if track.last_classified != frame_index or not self._is_person(track):
            return []
        if track.verdict is None:
            if track.classifications < self.config.settle_classifications:
                return []
            track.verdict = self._label(track)
            return [self._verdict_event(track, frame_index, time)]
        fused = track.fused()
        best = self._rule.decide_one(fused)
        if best == track.verdict or fused[best] < self.config.change_probability:
            track.challenger, track.challenges = None, 0
            return []
        track.challenges = track.challenges + 1 if best == track.challenger else 1
        track.challenger = best
        if track.challenges < self.config.change_classifications:
            return []
        track.verdict, track.challenger, track.challenges = best, None, 0
        return [self._verdict_event(track, frame_index, time)]

    def _verdict_event(self, track: _Track, frame_index: int, time: float) -> PersonEvent:
        verdict = track.verdict
        assert verdict is not None  # called once the verdict is set
        name = self.class_names[verdict]
        probability = float(track.fused()[verdict])
        return PersonEvent(
            "verdict", track.track_id, frame_index, time, name, probability, track.xywh, snapshot=track.snapshot
        )

    def _end(self, track_ids: list[int], frame_index: int, time: float) -> list[PersonEvent]:
        """Close these tracks: people get their verdict (if they had none yet) and a leave event."""
        events = []
        for track_id in track_ids:
            track = self._tracks.pop(track_id, None)
            if track is None or not self._is_person(track):
                continue  # a short-lived track (or one never reported) is nobody
            if track.verdict is None:
                track.verdict = self._label(track)
                events.append(self._verdict_event(track, frame_index, time))
            name = self.class_names[track.verdict]
            self._departed[name] += 1
            probability = float(track.fused()[track.verdict])
            events.append(
                PersonEvent(
                    "leave",
                    track_id,
                    frame_index,
                    time,
                    name,
                    probability,
                    first_frame_index=track.first_frame,
                    frames=track.seen,
                )
            )
        return events

    def _detection(self, item: TrackedFace) -> Detection:
        track = self._tracks[item.track_id]
        fused = track.fused()
        index = self._label(track)
        return Detection(
            item.face.xywh,
            item.face.score,
            index,
            self.class_names[index],
            float(fused[index]),
            tuple(map(float, fused)),
            track_id=track.track_id,
            settled=track.verdict is not None,
        )


def check_config(config: TrackingConfig, fps: float) -> None:
    """Raise MaskDetectionError for settings no tracking can run with."""
    problems = []
    if not fps > 0:
        problems.append(f"the frame rate must be positive, got {fps}")
    if config.max_missing_seconds < 0:
        problems.append(f"the time a face may be missing must be 0 or more, got {config.max_missing_seconds}")
    for name in ("min_frames", "reclassify_every", "unsettled_every", "settle_classifications"):
        if getattr(config, name) < 1:
            problems.append(f"{name.replace('_', ' ')} must be at least 1, got {getattr(config, name)}")
    if not 0.0 <= config.memory <= 1.0:
        problems.append(f"the evidence memory must be between 0 and 1, got {config.memory}")
    if problems:
        raise MaskDetectionError("; ".join(problems))
