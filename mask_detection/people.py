"""People, not frames: faces followed across video frames, one fused verdict per person, and events.

``PeoplePipeline.process(bgr, frame_index, time)`` runs the face detector on every frame, follows the faces with
``tracker.FaceTracker`` (ByteTrack), and classifies a tracked face only when it adds evidence: a new track, a
clearly better view, or every few frames. A face smaller than ``judge_size`` is followed but never classified: the
classifier cannot tell masks apart that small, so a person whose face never grew past it is counted as seen but
not judged (no verdict, no alert).

The verdict listens to the best views. Each person's classifications are fused into one set of class
probabilities (a weighted geometric mean, earlier views fading by ``memory``), each view weighted by how
judgeable it is (``view_quality``: the face's size, its sharpness and how frontal it is, from the detector's
landmarks) times the detector's score. The inertia is in the evidence, not in the label: one ordinary view may
take at most ``max_share`` of a person's evidence, so a settled verdict ignores a single odd frame, while a view
``clearly_better`` than every earlier one is not capped and can overturn a verdict from poor views at once. The
label a face carries is always the decision rule's choice on its person's fused probabilities, printed with that
class's fused probability, so a label and its probability never disagree.

Events: a "verdict" event when a person's verdict is first settled (after ``settle_classifications``
classifications; for someone judged who leaves before that, when they leave) and again whenever it changes; a
"leave" event when the track ends (the face has been missing for longer than ``max_missing_seconds``, a scene cut,
or ``finish`` at the end of the run), which says whether the person was judged.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from .classes import WITHOUT_MASK
from .crop import crop_region
from .detections import NOT_JUDGED, Box, Detection, Face, Landmarks
from .errors import MaskDetectionError
from .pipeline import MaskPipeline
from .results import FrameResult, PeopleCounts, PersonEvent, Timings
from .tracker import FaceTracker, SceneCut, TrackedFace

# Snapshots show a little more than the classifier's crop (hair, chin, mask straps), so an operator can tell who.
SNAPSHOT_MARGIN = 0.3
# Each view's probabilities are clipped to [_CLIP, 1 - _CLIP] before fusion: one over-confident classification (a
# quantised model says 0.0 or 1.0) shifts the odds by at most 49:1, so it cannot outweigh several ordinary views.
_CLIP = 0.02
# Sharpness is measured on the grey face region shrunk to at most this many pixels across: cheap (only for faces
# being classified), and a big face is not called sharp merely for having more pixels.
SHARPNESS_SIDE = 32
# The ratio of the Laplacian's variance to the patch's own variance (contrast does not matter) that counts as
# fully sharp: about the median of the faces of 64 px and more on the dev video (0.56). There the classifier's
# balanced accuracy on faces of 24 px and more rose from 74% in the least sharp fifth of the faces to 96% in the
# sharpest.
SHARP_RATIO = 0.5
# Yaw: the nose tip's offset from the eyes' midpoint along the eye line, in eye distances. Up to FRONTAL_YAW counts
# as frontal (the classifier's accuracy on the dev video is flat there: 89-91%); the factor falls linearly to
# QUALITY_FLOOR at TURNED_YAW, near a profile (81% from 0.45 on).
FRONTAL_YAW, TURNED_YAW = 0.2, 0.7
# Pitch: the nose tip's distance below the eye line as a share of the mouth's. About PITCH_LEVEL for a level face
# (the dev video's median: 0.56; accuracy 87-90% within 0.1 of it, 78-81% beyond); a face looking down or up moves
# it by PITCH_TOLERANCE before the factor falls, reaching QUALITY_FLOOR another PITCH_SPAN further.
PITCH_LEVEL, PITCH_TOLERANCE, PITCH_SPAN = 0.55, 0.1, 0.3
# No factor goes below this: a flat patch or a turned face still tells something (and a weight is never 0).
QUALITY_FLOOR = 0.2


@dataclass(frozen=True)
class TrackingConfig:
    """How faces are followed and how a person's verdict is formed (defaults tuned on the dev video)."""

    max_missing_seconds: float = (
        1.0  # a face hidden up to this long (someone walks in front, missed detections) keeps its track
    )
    min_frames: int = 5  # frames seen before a track counts as a person (a short false detection never does)
    reclassify_every: int = 10  # frames between re-classifications of a settled person's face
    unsettled_every: int = 2  # frames between classifications before the verdict is settled (evidence fast)
    better_view: float = 1.3  # a face this many times the area of its best classified view is classified again
    settle_classifications: int = 3  # classifications before a person's verdict is settled (its first event)
    memory: float = 0.85  # share of the earlier evidence kept at each new classification: recent views count more
    # The largest share of a settled person's evidence one view may take, so a single odd frame cannot flip the
    # verdict (0.15: what a view takes anyway at the settled pace with memory 0.85; the cap keeps the first views
    # after settling from weighing more) ...
    max_share: float = 0.15
    # ... unless it is this many times as judgeable as every earlier view: then it counts in full.
    clearly_better: float = 1.5
    full_weight_side: int = 96  # faces this many pixels across (and more) count fully; smaller ones less
    # Faces smaller than this (short side of the box, px) are followed but not classified: on the dev video the
    # classifier's balanced accuracy falls from 82-84% to 72% below 20 px, and judging from 24 px gave the most
    # accurate verdicts for the people counted (docs/results.md, "The verdict").
    judge_size: int = 24
    new_track_score: float = 0.6  # detector score a face needs to start a track; lower ones only continue one
    # Overlap a face needs with a track's predicted box to continue that track: 0.3 lost a face that came out
    # from behind another one half-hidden (its box narrower than the prediction).
    min_iou: float = 0.2
    scene_cut_colour: float = 0.15  # share of the colour histogram that moves at a hard cut ...
    scene_cut_pixels: float = 0.5  # ... together with the share of pixels that change (see tracker.SceneCut)


@dataclass(frozen=True)
class ViewQuality:
    """How judgeable one view of a face is: three factors of at most 1; the evidence weighs their product."""

    size: float  # the face's side over full_weight_side, at most 1
    sharpness: float  # the Laplacian-to-intensity variance ratio over SHARP_RATIO, at most 1
    frontal: float  # from the landmarks' yaw and pitch; 1 without landmarks

    @property
    def judgeability(self) -> float:
        return self.size * self.sharpness * self.frontal


def view_quality(bgr: np.ndarray, face: Face, full_weight_side: int) -> ViewQuality:
    """The judgeability factors of ``face`` in the BGR frame ``bgr``."""
    return ViewQuality(
        size_factor(face.xywh, full_weight_side), sharpness_factor(bgr, face.xywh), frontal_factor(face.landmarks)
    )


def size_factor(xywh: Box, full_weight_side: int) -> float:
    """The face's side (the square root of its box's area) over ``full_weight_side``, at most 1."""
    _, _, w, h = xywh
    return min(1.0, float(np.sqrt(w * h)) / full_weight_side)


def sharpness_factor(bgr: np.ndarray, xywh: Box) -> float:
    """How sharp the face region is: the variance of the Laplacian of its grey patch (shrunk to at most
    SHARPNESS_SIDE across) over the patch's own variance, relative to SHARP_RATIO, in [QUALITY_FLOOR, 1]. A blurred
    face loses its fine detail (the Laplacian) much faster than its overall contrast."""
    x, y, w, h = (int(v) for v in xywh)
    patch = bgr[max(0, y) : y + h, max(0, x) : x + w]
    if patch.size == 0:
        return QUALITY_FLOOR
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    scale = SHARPNESS_SIDE / max(grey.shape)
    if scale < 1.0:  # shrink only: enlarging a small face would blur it and count its size twice
        size = (max(3, round(grey.shape[1] * scale)), max(3, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    contrast = float(grey.var())
    if contrast < 1.0:  # a flat patch: nothing to judge by
        return QUALITY_FLOOR
    ratio = float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1)[1:-1, 1:-1].var()) / contrast
    return float(np.clip(ratio / SHARP_RATIO, QUALITY_FLOOR, 1.0))


def frontal_factor(landmarks: Landmarks | None) -> float:
    """How frontal the face is, from its five landmarks (eyes, nose tip, mouth corners), in [QUALITY_FLOOR, 1]:
    the yaw factor (the nose tip's offset along the eye line) times the pitch factor (the nose tip's height
    between the eye line and the mouth). 1 without landmarks."""
    if landmarks is None or len(landmarks) < 5:
        return 1.0
    left_eye, right_eye, nose, left_mouth, right_mouth = (np.asarray(p, np.float64) for p in landmarks[:5])
    eyes = (left_eye + right_eye) / 2
    across = right_eye - left_eye
    distance = float(np.hypot(*across))
    if distance < 1e-6:  # both eyes on one point: a full profile or a bad detection
        return QUALITY_FLOOR
    along = across / distance
    down = np.array([-along[1], along[0]])  # perpendicular to the eye line, toward the mouth (image y grows down)
    yaw = abs(float((nose - eyes) @ along)) / distance
    mouth_depth = float(((left_mouth + right_mouth) / 2 - eyes) @ down)
    pitch = float((nose - eyes) @ down) / mouth_depth if mouth_depth > 1e-6 else 1.0
    yaw_factor = 1.0 - (1.0 - QUALITY_FLOOR) * (yaw - FRONTAL_YAW) / (TURNED_YAW - FRONTAL_YAW)
    pitch_factor = 1.0 - (1.0 - QUALITY_FLOOR) * (abs(pitch - PITCH_LEVEL) - PITCH_TOLERANCE) / PITCH_SPAN
    return float(np.clip(yaw_factor, QUALITY_FLOOR, 1.0) * np.clip(pitch_factor, QUALITY_FLOOR, 1.0))


@dataclass
class _Track:
    """One track's evidence and verdict."""

    track_id: int
    first_frame: int
    n_classes: int
    seen: int = 0  # frames the face was seen in
    face: Face = Face((0, 0, 0, 0), 0.0)  # last seen
    log_evidence: np.ndarray = field(init=False)  # decayed, weighted sum of log-probabilities
    weight: float = 0.0
    classifications: int = 0
    last_classified: int = -1  # frame index
    best_area: int = 0  # of the classified views
    best_judgeability: float = 0.0  # of the classified views
    snapshot: np.ndarray | None = None  # the most judgeable classified view, with margin
    verdict: int | None = None  # the class of the latest verdict event: None until settled

    def __post_init__(self) -> None:
        self.log_evidence = np.zeros(self.n_classes)

    @property
    def xywh(self) -> Box:
        return self.face.xywh

    @property
    def judged(self) -> bool:
        """Whether any view of the face was classified (a face never big enough to judge has no verdict)."""
        return self.classifications > 0

    def fused(self) -> np.ndarray:
        """The fused class probabilities: the weighted geometric mean of the classifications, normalised."""
        mean = self.log_evidence / self.weight
        p = np.exp(mean - mean.max())
        return p / p.sum()

    def add_evidence(
        self, probabilities: np.ndarray, judgeability: float, weight: float, config: "TrackingConfig"
    ) -> None:
        """One classification joins the evidence: earlier views fade by ``memory``; once the verdict is settled
        the new view takes at most ``max_share`` of the total unless it is ``clearly_better`` than every earlier
        view."""
        log_p = np.log(np.clip(probabilities, _CLIP, 1.0 - _CLIP))
        kept = config.memory * self.weight
        ordinary = judgeability < config.clearly_better * self.best_judgeability
        if self.verdict is not None and ordinary and kept > 0 and config.max_share < 1.0:
            weight = min(weight, config.max_share / (1.0 - config.max_share) * kept)
        self.log_evidence = config.memory * self.log_evidence + weight * log_p
        self.weight = kept + weight
        self.classifications += 1
        self.best_judgeability = max(self.best_judgeability, judgeability)


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
        self._departed = dict.fromkeys(self.class_names, 0)  # judged people whose track ended, by final verdict
        self._departed_unjudged = 0  # people whose track ended before any view of them could be judged
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
        # Settled verdicts only (the label of a settled person is its verdict): no alert from a first guess, nor
        # from someone never judged.
        alert = any(t.verdict is not None and t.verdict == self._without_mask for t in self._tracks.values())
        return FrameResult(frame_index, time, detections, bgr, events, alert, self.people, faces)

    def finish(self, frame_index: int, time: float) -> list[PersonEvent]:
        """End every open track (the end of the run, Ctrl-C, SIGTERM): a leave event for every open person, after
        a verdict event for those judged but not yet settled. ``stream.process_stream`` calls it on every way
        out."""
        return self._end(self._tracker.reset(), frame_index, time)

    @property
    def people(self) -> PeopleCounts:
        """People so far (tracks that became persons, gone or still in view): the judged by current verdict,
        every class of the model, and those not (yet) judged."""
        counts, unjudged = dict(self._departed), self._departed_unjudged
        for track in self._tracks.values():
            if not self._is_person(track):
                continue
            label = self._label(track)
            if label is None:
                unjudged += 1
            else:
                counts[self.class_names[label]] += 1
        return PeopleCounts(counts, unjudged)

    def _is_person(self, track: _Track) -> bool:
        return track.seen >= self.config.min_frames

    def _observe(self, tracked: list[TrackedFace], frame_index: int) -> None:
        for item in tracked:
            track = self._tracks.get(item.track_id)
            if track is None:
                track = self._tracks[item.track_id] = _Track(item.track_id, frame_index, len(self.class_names))
            track.seen += 1
            track.face = item.face

    def _needs_evidence(self, track: _Track, frame_index: int) -> bool:
        _, _, w, h = track.xywh
        if min(w, h) < self.config.judge_size:
            return False  # too small to judge: a guess there would only add noise to the verdict
        if track.classifications == 0:
            return True
        if w * h >= self.config.better_view * track.best_area:
            return True
        # A settled person is looked at again only every reclassify_every frames, also when the latest view
        # disagreed: the frames in between are near-copies of that view, and classifying them would only add the
        # same contrary evidence again (on the dev video that flipped good verdicts and cost a point of accuracy).
        every = self.config.reclassify_every if track.verdict is not None else self.config.unsettled_every
        return frame_index - track.last_classified >= every

    def _classify(self, bgr: np.ndarray, tracked: list[TrackedFace], frame_index: int) -> None:
        """One batched classifier call for the faces that need evidence; each result joins its track's, weighted
        by the view's judgeability and the detector's score."""
        wanting = [self._tracks[item.track_id] for item in tracked]
        wanting = [track for track in wanting if self._needs_evidence(track, frame_index)]
        if not wanting:
            return
        kept, probabilities = self.pipeline.classify(bgr, [track.face for track in wanting])
        for i, probs in zip(kept, probabilities, strict=True):
            track = wanting[i]
            judgeability = view_quality(bgr, track.face, self.config.full_weight_side).judgeability
            better = judgeability > track.best_judgeability
            weight = judgeability * max(1e-6, track.face.score)
            track.add_evidence(np.asarray(probs, np.float64), judgeability, weight, self.config)
            track.last_classified = frame_index
            _, _, w, h = track.xywh
            track.best_area = max(track.best_area, w * h)
            if better:
                x0, y0, x1, y1 = crop_region(track.xywh, bgr.shape, SNAPSHOT_MARGIN)
                track.snapshot = bgr[y0:y1, x0:x1].copy()

    def _label(self, track: _Track) -> int | None:
        """The person's label: the decision rule's choice on the fused probabilities; None before any view of
        the face was judged."""
        return self._rule.decide_one(track.fused()) if track.judged else None

    def _judge(self, track: _Track, frame_index: int, time: float) -> list[PersonEvent]:
        """A verdict event when the verdict is first settled (enough classifications) and whenever the label of a
        settled person changes; both only happen at a classification."""
        if track.last_classified != frame_index or not self._is_person(track):
            return []
        label = self._label(track)
        if track.verdict is None and track.classifications < self.config.settle_classifications:
            return []
        if label == track.verdict:
            return []
        track.verdict = label
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
        """Close these tracks: judged people get their verdict (if they had none yet), everyone a leave event."""
        events = []
        for track_id in track_ids:
            track = self._tracks.pop(track_id, None)
            if track is None or not self._is_person(track):
                continue  # a short-lived track (or one never reported) is nobody
            label = self._label(track)
            name = probability = None
            if label is None:
                self._departed_unjudged += 1
            else:
                if track.verdict != label:
                    track.verdict = label
                    events.append(self._verdict_event(track, frame_index, time))
                name = self.class_names[label]
                self._departed[name] += 1
                probability = float(track.fused()[label])
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
        index = self._label(track)
        if index is None:
            return Detection(
                item.face.xywh,
                item.face.score,
                None,
                NOT_JUDGED,
                float("nan"),
                (),
                track_id=track.track_id,
                settled=False,
                judged=False,
            )
        fused = track.fused()
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
    for name in ("min_frames", "reclassify_every", "unsettled_every", "settle_classifications", "judge_size"):
        if getattr(config, name) < 1:
            problems.append(f"{name.replace('_', ' ')} must be at least 1, got {getattr(config, name)}")
    if not 0.0 <= config.memory <= 1.0:
        problems.append(f"the evidence memory must be between 0 and 1, got {config.memory}")
    if not 0.0 < config.max_share <= 1.0:
        problems.append(f"the largest share of one view must be above 0 and at most 1, got {config.max_share}")
    if not config.clearly_better >= 1.0:
        problems.append(f"a clearly better view must be at least 1 times as judgeable, got {config.clearly_better}")
    if problems:
        raise MaskDetectionError("; ".join(problems))
