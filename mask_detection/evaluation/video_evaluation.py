"""The video evaluation: a video with MOT ground truth through the same stream code as detect_webcam (tracked
people, or every frame on its own), every figure written to a report folder (report.json, summary.md)."""

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..annotations.mot import VideoTruth, read_video_truth
from ..errors import MaskDetectionError
from ..fileio import display_path
from ..interfaces import FrameProcessor
from ..matching import DEFAULT_IOU
from ..people import PeoplePipeline, TrackingConfig
from ..pipeline import DEFAULT_FACE_CONFIDENCE, MaskPipeline, PerFrameProcessor, load_pipeline
from ..results import PersonEvent
from ..stream import process_stream
from ..video_io import FileSource
from .report import check_report_dir, json_writer, text_writer, write_report_files
from .scoring import HEADLINE_MIN_FACE
from .video_scoring import VideoRun, VideoScores, score_video
from .video_summary import video_markdown

Warn = Callable[[str], None]
Report = dict[str, Any]

VIDEO_REPORT_FILES = ("report.json", "summary.md")


@dataclass(frozen=True)
class VideoSettings:
    """How the video was evaluated (report.json's "settings", in this order)."""

    mode: str  # "tracked" or "per-frame"
    iou: float
    min_face: int
    face_confidence: float
    mask_threshold: float | None
    detect_size: int | None
    detector: str
    tracking: dict[str, Any] | None  # the TrackingConfig used (tracked mode)


@dataclass(frozen=True)
class VideoEvaluation:
    """What ``evaluate_video`` measured and wrote."""

    report_dir: Path
    report: Report  # report.json's content
    headline: Report
    frames: int  # frames processed
    problems: list[str]  # frames lost, ground truth beyond the video: the figures cover what was seen


@dataclass(frozen=True)
class _Played:
    run: VideoRun
    seconds: float  # in the pipeline alone
    fps: float  # the video's frame rate
    failure: str | None  # frames of the file that could not be decoded


def default_video_report_dir(video: str | Path) -> Path:
    """output/eval-<video file name without its suffix>."""
    return Path("output") / f"eval-{Path(video).stem or 'video'}"


def evaluate_video(
    video: str | Path,
    gt: str | Path,
    gt_classes: str | Path | None = None,
    gt_segments: str | Path | None = None,
    model_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    iou_threshold: float = DEFAULT_IOU,
    face_confidence: float | None = None,
    mask_threshold: float | None = None,
    per_frame: bool = False,
    detect_size: int | None = None,
    threads: int | None = None,
    tracking: TrackingConfig | None = None,
    progress: bool = False,
    warn: Warn | None = None,
) -> VideoEvaluation:
    """Evaluate the video pipeline on ``video`` against ``gt`` (MOT text format; see ``annotations.mot``).

    Tracked mode (default) runs ``people.PeoplePipeline``; ``per_frame`` runs ``MaskPipeline.process`` on every
    frame as detect_webcam's per-frame mode does, and its identity and per-person figures are not applicable.
    The report folder (default output/eval-<video name>) and the ground truth are checked before the model loads.
    """
    warn = warn or _ignore
    if not 0.0 < iou_threshold <= 1.0:
        raise MaskDetectionError(f"the IoU threshold must be above 0 and at most 1, got {iou_threshold}")
    report_dir = Path(report_dir) if report_dir else default_video_report_dir(video)
    check_report_dir(report_dir)
    truth = read_video_truth(gt, gt_classes, gt_segments)
    check_report_dir(report_dir, input_files=[Path(video), *truth.input_files()], report_files=VIDEO_REPORT_FILES)
    face_confidence = DEFAULT_FACE_CONFIDENCE if face_confidence is None else face_confidence
    pipeline = load_pipeline(
        model_path, face_confidence, mask_threshold, detect_size=detect_size, threads=threads, upscale=1.0, warn=warn
    )
    tracking = None if per_frame else (tracking or TrackingConfig())
    played = _play(video, pipeline, tracking, progress)
    problems = _problems(played, truth)
    for message in problems:
        warn(message)
    scores = score_video(played.run, truth, pipeline.class_names, iou_threshold)
    settings = VideoSettings(
        mode="per-frame" if per_frame else "tracked",
        iou=float(iou_threshold),
        min_face=HEADLINE_MIN_FACE,
        face_confidence=face_confidence,
        mask_threshold=mask_threshold,
        detect_size=detect_size,
        detector=display_path(pipeline.detector.model_path),
        tracking=None if tracking is None else asdict(tracking),
    )
    report = _video_report(video, truth, pipeline, settings, played, scores, problems)
    write_report_files(
        report_dir, [("report.json", json_writer(report)), ("summary.md", text_writer(video_markdown(report)))]
    )
    return VideoEvaluation(report_dir, report, report["headline"], len(played.run.frames), problems)


def _play(video: str | Path, pipeline: MaskPipeline, tracking: TrackingConfig | None, progress: bool) -> _Played:
    """Every frame of the video through the pipeline; frame numbers from each frame's position in the file (so
    frames that could not be decoded do not shift the ground truth)."""
    source = FileSource(video)
    try:
        with tqdm(
            total=source.frame_count or None, desc="video", unit="frame", file=sys.stderr, disable=not progress
        ) as bar:
            if tracking is None:
                run, seconds = _run(source, PerFrameProcessor(pipeline), bar)
            else:
                run, seconds = _run(source, PeoplePipeline(pipeline, tracking, fps=source.fps), bar)
    finally:
        source.close()
    return _Played(run, seconds, source.fps, source.failure)


def _run(source: FileSource, processor: FrameProcessor, bar: tqdm) -> tuple[VideoRun, float]:
    """Every frame through the processor: its detections by MOT frame number and, tracked, every person's final
    verdict (from the leave events, those at the end of the video included; None for a person never judged) and
    the people counted."""
    frames, final = [], {}

    def note_leaves(events: list[PersonEvent]) -> None:
        final.update({e.track_id: e.class_name for e in events if e.kind == "leave"})

    started = time.perf_counter()
    for result in process_stream(source, processor, on_events=note_leaves):
        frames.append((_frame_number(result.time, source.fps), result.detections))
        bar.update()
    elapsed = time.perf_counter() - started
    people = processor.people
    if people is None:
        return VideoRun(frames, tracked=False), elapsed
    return VideoRun(frames, True, final, people.total, dict(people.by_class), people.unjudged), elapsed


def _frame_number(seconds: float, fps: float) -> int:
    """The 1-based MOT frame number of a frame ``seconds`` into a file of ``fps``."""
    return int(round(seconds * fps)) + 1


def _problems(played: _Played, truth: VideoTruth) -> list[str]:
    problems = [played.failure] if played.failure else []
    seen = {number for number, _ in played.run.frames}
    beyond = [n for n in truth.frames if n not in seen]
    if beyond:
        problems.append(
            f"{len(beyond)} annotated frames of {display_path(truth.path)} were not in the video as decoded (first: "
            f"frame {beyond[0]}); their faces are not scored"
        )
    return problems


def _video_report(
    video: str | Path,
    truth: VideoTruth,
    pipeline: MaskPipeline,
    settings: VideoSettings,
    played: _Played,
    scores: VideoScores,
    problems: list[str],
) -> Report:
    frames = len(played.run.frames)
    return {
        "kind": "video",
        "video": display_path(video),
        "gt": display_path(truth.path),
        "gt_classes": display_path(truth.classes_path) if truth.classes_path else "default (registry order)",
        "gt_class_names": list(truth.class_names),
        "gt_segments": display_path(truth.segments_path) if truth.segments_path else None,
        "model": None if pipeline.classifier.path is None else display_path(pipeline.classifier.path),
        "class_names": list(pipeline.class_names),
        "settings": asdict(settings),
        "data": {
            "frames": frames,
            "fps": played.fps,
            "annotated_frames": len(truth.frames),
            "segments": len(truth.segments),
        },
        "timing": {"seconds": played.seconds, "frames_per_second": frames / played.seconds if played.seconds else None},
        "headline": scores.headline,
        "figures": scores.figures,
        "people": scores.people,
        "problems": problems,
    }


def _ignore(message: str) -> None:
    """The default ``warn``: every message is in the result too."""
