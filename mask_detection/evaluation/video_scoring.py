"""Every figure of a video evaluation, from the detections of each frame and the video's ground truth.

Each frame's detections are matched one-to-one to its annotated faces (highest face score first, IoU at least the
threshold, as in the scenes evaluation). The slice scored is the scenes headline's: faces of ``min_face`` px and
more on the short side, ``mask_weared_incorrect`` left out unless the model names it. A detection on a face
outside the slice (small, left-out class, or a ``conf 0`` region) is neither a hit nor a false alarm, so it is
removed from the identity figures too (TrackEval does the same with distractor regions).

Identity figures (IDF1, HOTA, MOTA, identity switches) come from ``trackers.eval``, TrackEval's formulas; the
others are computed here from the matched face-frames:

- tracks per true person: distinct tracks matched to a person (found at least once), averaged over people;
- identity purity: for each track, the share of its matched frames on its majority person; averaged over tracks;
- tracks across a scene cut: tracks matched to people of two segments (and tracks with detections in two);
- flicker: for each person, successive matched frames with a label whose shown label differs, per 100 such steps
  (a face not judged yet shows no label: its first label is no change);
- per-person verdicts: each person's main track (matched in most frames) and its final verdict (its leave
  event, else its last label), against the person's class; per-frame: every matched face-frame's shown label.
  A person whose main track was never judged (every view smaller than the judging size) has no verdict: counted
  apart, not scored; so are face-frames not judged;
- labels under 50%: tracked face-frames (all of them, not only the slice) whose shown label's probability is
  under 0.5; the label must be the one the evidence favours.

Without tracks (per-frame mode) the identity and per-person figures are not applicable (None): a face there is
nobody in particular, and treating each detection as a track of its own would only measure that.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..annotations.mot import TruthBox, VideoTruth
from ..boxes import box_size, iou_matrix
from ..classes import INCORRECT_MASK
from ..detections import Detection
from ..matching import match_detections
from ..metrics import classification_figures
from .scoring import HEADLINE_MIN_FACE, quiet_metrics

Figures = dict[str, Any]

# The targets on the dev video (faces >= 32 px, IoU 0.3); "max" figures must stay at or below.
TARGETS: dict[str, tuple[str, float]] = {
    "flicker_per_100_steps": ("max", 0.3),
    "people_with_label_change": ("max", 0.03),
    "tracks_per_person": ("max", 1.15),
    "identity_purity": ("min", 0.98),
    "tracks_across_cut": ("max", 0),
    "person_balanced_accuracy": ("min", 0.95),
    "verdict_gain": ("min", 0.03),
    "label_probability_under_half": ("max", 0),
}


@dataclass(frozen=True)
class VideoRun:
    """What the pipeline gave on a video, ready to score."""

    frames: list[tuple[int, list[Detection]]]  # (1-based frame number, that frame's detections)
    tracked: bool
    final_verdicts: dict[int, str | None] = field(default_factory=dict)  # track -> label of its leave event
    people: int | None = None  # tracks that became persons (tracked mode)
    people_counts: dict[str, int] = field(default_factory=dict)  # judged persons by final verdict
    people_unjudged: int | None = None  # persons never judged (tracked mode)


@dataclass(frozen=True)
class FaceFrame:
    """One annotated face of the slice in one frame, and the detection matched to it."""

    frame: int
    person: int
    label: str
    detection: Detection | None


@dataclass(frozen=True)
class FrameMatch:
    """One frame after matching: the slice's faces and the detections scored (hits and false alarms)."""

    frame: int
    faces: list[TruthBox]  # in the slice
    kept: list[Detection]  # not on a face outside the slice
    records: list[FaceFrame]
    false_alarms: int


@dataclass(frozen=True)
class VideoScores:
    headline: Figures
    figures: Figures  # by section
    people: list[Figures]  # one record per true person of the slice


def left_out_classes(class_names: Sequence[str]) -> tuple[str, ...]:
    """Classes outside the slice: mask_weared_incorrect unless the model names it (as the scenes headline)."""
    return () if INCORRECT_MASK in class_names else (INCORRECT_MASK,)


def score_video(
    run: VideoRun,
    truth: VideoTruth,
    class_names: Sequence[str],
    iou_threshold: float,
    min_face: int = HEADLINE_MIN_FACE,
) -> VideoScores:
    """Every figure of one run at one IoU threshold."""
    left_out = left_out_classes(class_names)
    matches = [
        match_frame(number, detections, truth.frames.get(number, []), iou_threshold, min_face, left_out)
        for number, detections in run.frames
    ]
    records = [r for m in matches for r in m.records]
    people = _person_records(records, truth, run)
    figures = {
        "detector": _detector_figures(matches),
        "identity": _identity_figures(matches, iou_threshold) if run.tracked else None,
        "tracks": _track_figures(records, people, truth, matches) if run.tracked else None,
        "flicker": _flicker_figures(people),
        "people": _people_figures(run, truth, people, class_names, left_out, min_face),
        "verdicts": _verdict_figures(records, people, class_names, run),
    }
    slice_text = f"faces >= {min_face} px on the short side" + "".join(f", {n} left out" for n in left_out)
    return VideoScores(_headline(figures, slice_text), figures, people)


def match_frame(
    number: int,
    detections: Sequence[Detection],
    boxes: Sequence[TruthBox],
    iou_threshold: float,
    min_face: int,
    left_out: tuple[str, ...],
) -> FrameMatch:
    """Match one frame's detections to its faces; those on faces outside the slice are set aside."""
    in_slice = [b.considered and box_size(b.xywh) >= min_face and b.label not in left_out for b in boxes]
    scored = [b for b, keep in zip(boxes, in_slice, strict=True) if keep]
    ignored = [b for b, keep in zip(boxes, in_slice, strict=True) if not keep]
    det_boxes = [d.xywh for d in detections]
    everyone = [b.xywh for b in scored + ignored]
    matched = match_detections(det_boxes, [d.score for d in detections], everyone, iou_threshold)
    on_ignored = iou_matrix(det_boxes, [b.xywh for b in ignored])
    by_face: dict[int, Detection] = {}
    kept, false_alarms = [], 0
    for d, g in enumerate(matched):
        if g is not None and g < len(scored):
            by_face[g] = detections[d]
            kept.append(detections[d])
        elif g is None and not (on_ignored.shape[1] and on_ignored[d].max() >= iou_threshold):
            kept.append(detections[d])
            false_alarms += 1
    records = [FaceFrame(number, b.person, b.label, by_face.get(g)) for g, b in enumerate(scored)]
    return FrameMatch(number, scored, kept, records, false_alarms)


# ------------------------------------------------------------------------------------------------ sections


def _detector_figures(matches: Sequence[FrameMatch]) -> Figures:
    faces = sum(len(m.records) for m in matches)
    found = sum(r.detection is not None for m in matches for r in m.records)
    kept = sum(len(m.kept) for m in matches)
    false_alarms = sum(m.false_alarms for m in matches)
    return {
        "frames": len(matches),
        "face_frames": faces,
        "found": found,
        "recall": _ratio(found, faces),
        "detections": kept,
        "false_alarms": false_alarms,
        "false_alarms_per_frame": _ratio(false_alarms, len(matches)),
        "precision": _ratio(kept - false_alarms, kept),
    }


def _identity_figures(matches: Sequence[FrameMatch], iou_threshold: float) -> Figures:
    """IDF1, HOTA and CLEAR (MOTA) from trackers.eval; detections without a track id are left out, as TrackEval
    leaves out unconfirmed tracks."""
    import numpy as np
    from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    gt_ids, tracker_ids, similarity = [], [], []
    for m in matches:
        tracked = [d for d in m.kept if d.track_id is not None]
        gt_ids.append(np.array([b.person for b in m.faces], dtype=np.int64))
        tracker_ids.append(np.array([d.track_id for d in tracked], dtype=np.int64))
        similarity.append(iou_matrix([b.xywh for b in m.faces], [d.xywh for d in tracked]))
    identity = compute_identity_metrics(gt_ids, tracker_ids, similarity, threshold=iou_threshold)
    clear = compute_clear_metrics(gt_ids, tracker_ids, similarity, threshold=iou_threshold)
    hota = compute_hota_metrics(gt_ids, tracker_ids, similarity)
    keys = (
        (identity, ("IDF1", "IDR", "IDP")),
        (hota, ("HOTA", "DetA", "AssA")),
        (clear, ("MOTA", "MOTP", "IDSW", "Frag", "MT", "ML")),
    )
    figures: Figures = {"source": "trackers.eval (TrackEval formulas); HOTA over IoU 0.05..0.95"}
    for result, names in keys:
        figures.update({name: _plain(result[name]) for name in names})
    return figures


def _track_figures(
    records: Sequence[FaceFrame], people: list[Figures], truth: VideoTruth, matches: Sequence[FrameMatch]
) -> Figures:
    on_track: dict[int, Counter] = {}  # track -> matched frames per person
    for r in records:
        if r.detection is not None and r.detection.track_id is not None:
            on_track.setdefault(r.detection.track_id, Counter())[r.person] += 1
    found = [p for p in people if p["tracks"]]
    segment = {p["person"]: p["segment"] for p in people}
    purities = [counts.most_common(1)[0][1] / sum(counts.values()) for counts in on_track.values()]
    across = [t for t, counts in on_track.items() if len({segment[p] for p in counts} - {None}) > 1]
    return {
        "tracks_matched": len(on_track),
        "people_found": len(found),
        "tracks_per_person": _mean([len(p["tracks"]) for p in found]),
        "counted_tracks_per_person": _mean([len(p["counted_tracks"]) for p in found]),
        "identity_purity": _mean(purities),
        "tracks_across_cut": len(across) if truth.segments else None,
        "tracks_across_cut_ids": sorted(across) if truth.segments else None,
        "tracks_spanning_segments": _spanning_tracks(matches, truth),
    }


def _spanning_tracks(matches: Sequence[FrameMatch], truth: VideoTruth) -> int | None:
    """Tracks with detections (matched or not) in two segments: the tracker did not reset at a cut."""
    if not truth.segments:
        return None
    segments: dict[int, set] = {}
    for m in matches:
        for d in m.kept:
            if d.track_id is not None:
                segments.setdefault(d.track_id, set()).add(truth.segment_of(m.frame))
    return sum(len(s - {None}) > 1 for s in segments.values())


def _flicker_figures(people: list[Figures]) -> Figures:
    steps = sum(max(0, p["found_frames"] - 1) for p in people)
    changes = sum(p["label_changes"] for p in people)
    with_steps = [p for p in people if p["found_frames"] > 1]
    changed = sum(p["label_changes"] > 0 for p in with_steps)
    return {
        "steps": steps,
        "label_changes": changes,
        "per_100_steps": None if not steps else 100.0 * changes / steps,
        "people_seen_twice": len(with_steps),
        "people_with_change": changed,
        "people_with_change_share": _ratio(changed, len(with_steps)),
    }


def _people_figures(
    run: VideoRun,
    truth: VideoTruth,
    people: list[Figures],
    class_names: Sequence[str],
    left_out: tuple[str, ...],
    min_face: int,
) -> Figures:
    labels = truth.person_labels()
    return {
        "true_people": len(labels),
        "true_people_in_slice": len(people),
        "true_people_by_class": dict(Counter(labels.values())),
        "people_counted": run.people,
        "people_counted_by_verdict": dict(run.people_counts) if run.tracked else None,
        "people_counted_not_judged": run.people_unjudged if run.tracked else None,
        "counted_per_true_person": _ratio(run.people, len(labels)) if run.people is not None else None,
        "note": f"true people: every person of the ground truth; in the slice: seen at least once with a face of "
        f">= {min_face} px" + "".join(f", {n} left out" for n in left_out),
    }


def _verdict_figures(
    records: Sequence[FaceFrame], people: list[Figures], class_names: Sequence[str], run: VideoRun
) -> Figures:
    tracked = run.tracked
    found = sum(r.detection is not None for r in records)
    frame_pairs = [(r.label, r.detection.class_name) for r in records if r.detection is not None and r.detection.judged]
    person_pairs = [(p["label"], p["verdict"]) for p in people if p["verdict"] is not None]
    person_ba = _balanced_accuracy(person_pairs, class_names) if tracked else None
    frame_ba = _balanced_accuracy(frame_pairs, class_names)
    labelled = [d for _, detections in run.frames for d in detections if d.judged]
    return {
        "person_balanced_accuracy": person_ba,
        "people_scored": len(person_pairs) if tracked else None,
        "people_not_judged": sum(p["main_track"] is not None and p["verdict"] is None for p in people)
        if tracked
        else None,
        "person_accuracy": _ratio(sum(t == p for t, p in person_pairs), len(person_pairs)) if tracked else None,
        "per_frame_balanced_accuracy": frame_ba,
        "face_frames_scored": len(frame_pairs),
        "face_frames_not_judged": found - len(frame_pairs),
        "label_probability_under_half": sum(d.probability < 0.5 for d in labelled),
        "verdict_gain": None if person_ba is None or frame_ba is None else person_ba - frame_ba,
        "note": "per-frame: every matched face-frame's shown label (tracked: the person's verdict at that frame; "
        "per-frame mode: that frame's own classification)",
    }


def _headline(figures: Figures, slice_text: str) -> Figures:
    tracks = figures["tracks"] or {}
    identity = figures["identity"] or {}
    flicker, verdicts = figures["flicker"], figures["verdicts"]
    headline: Figures = {
        "slice": slice_text,
        "detection_recall": figures["detector"]["recall"],
        "false_alarms_per_frame": figures["detector"]["false_alarms_per_frame"],
        "IDF1": identity.get("IDF1"),
        "HOTA": identity.get("HOTA"),
        "MOTA": identity.get("MOTA"),
        "identity_switches": identity.get("IDSW"),
        "tracks_per_person": tracks.get("tracks_per_person"),
        "identity_purity": tracks.get("identity_purity"),
        "tracks_across_cut": tracks.get("tracks_across_cut"),
        "flicker_per_100_steps": flicker["per_100_steps"],
        "people_with_label_change": flicker["people_with_change_share"],
        "people_counted": figures["people"]["people_counted"],
        "true_people": figures["people"]["true_people"],
        "person_balanced_accuracy": verdicts["person_balanced_accuracy"],
        "per_frame_balanced_accuracy": verdicts["per_frame_balanced_accuracy"],
        "verdict_gain": verdicts["verdict_gain"],
        "label_probability_under_half": verdicts["label_probability_under_half"],
    }
    headline["targets"] = {name: {"bound": kind, "value": value} for name, (kind, value) in TARGETS.items()}
    headline["met"] = {name: _meets(headline[name], kind, value) for name, (kind, value) in TARGETS.items()}
    return headline


def _meets(value: float | None, kind: str, bound: float) -> bool | None:
    """Whether ``value`` meets the target; None when it is not applicable."""
    if value is None:
        return None
    return bool(value <= bound + 1e-12) if kind == "max" else bool(value >= bound - 1e-12)


# ------------------------------------------------------------------------------------------------ people


def _person_records(records: Sequence[FaceFrame], truth: VideoTruth, run: VideoRun) -> list[Figures]:
    """One record per person of the slice: frames, tracks, main track and its verdict, label changes."""
    by_person: dict[int, list[FaceFrame]] = {}
    for r in records:
        by_person.setdefault(r.person, []).append(r)
    last_label = _last_labels(run)
    counted = set(run.final_verdicts)
    people = []
    for person, rows in sorted(by_person.items()):
        found = [r.detection for r in rows if r.detection is not None]
        tracks = Counter(d.track_id for d in found if d.track_id is not None)
        main = tracks.most_common(1)[0][0] if tracks else None  # ties: the track seen first
        labels = [d.class_name for d in found if d.judged]
        people.append(
            {
                "person": person,
                "label": Counter(r.label for r in rows).most_common(1)[0][0],
                "segment": truth.segment_of(rows[0].frame),
                "first_frame": rows[0].frame,
                "frames": len(rows),
                "found_frames": len(found),
                "frames_labelled_right": sum(r.detection.class_name == r.label for r in rows if r.detection),
                "frames_not_judged": len(found) - len(labels),
                "tracks": sorted(tracks),
                "counted_tracks": sorted(t for t in tracks if t in counted),
                "main_track": main,
                "verdict": None if main is None else run.final_verdicts.get(main, last_label.get(main)),
                "label_changes": sum(a != b for a, b in zip(labels, labels[1:], strict=False)),
            }
        )
    return people


def _last_labels(run: VideoRun) -> dict[int, str]:
    """Each track's label in the last frame it was seen."""
    last: dict[int, str] = {}
    for _, detections in run.frames:
        for d in detections:
            if d.track_id is not None and d.judged:
                last[d.track_id] = d.class_name
    return last


def _balanced_accuracy(pairs: Sequence[tuple[str, str]], class_names: Sequence[str]) -> float | None:
    """Balanced accuracy over (true, predicted) pairs whose true class the model names; None without any."""
    index = {name: i for i, name in enumerate(class_names)}
    scored = [(index[t], index[p]) for t, p in pairs if t in index and p in index]
    if not scored:
        return None
    with quiet_metrics():
        return classification_figures([t for t, _ in scored], [p for _, p in scored], list(class_names))[
            "balanced_accuracy"
        ]


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values)) / len(values) if values else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / denominator if denominator else None


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (report.json)."""
    return value.item() if hasattr(value, "item") else value
