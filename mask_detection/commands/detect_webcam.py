"""Live mask detection on a camera, a video file or a stream.

python detect_webcam.py                                      # camera 0, window: people, verdicts, counts, alert
python detect_webcam.py --video in.mp4 --no-display --events events.jsonl --snapshots snapshots/
python detect_webcam.py --video in.mp4 --output out.mp4 --no-display --json > frames.jsonl
python detect_webcam.py --video in.mp4 --per-frame --json    # every face of every frame on its own (as before)
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..classes import class_info
from ..display import display_available
from ..errors import TERMINATING_SIGNALS, OutputError
from ..events import EventWriter, SnapshotWriter, end_record, event_record, new_run_id, start_record
from ..fileio import check_writable, display_path, refuse_overwriting_inputs, same_file
from ..interfaces import FrameProcessor
from ..interrupts import StopFlag
from ..people import PeoplePipeline, TrackingConfig
from ..pipeline import MaskPipeline, PerFrameProcessor, load_pipeline
from ..results import FrameResult, PeopleCounts, PersonEvent
from ..stream import StreamTally, process_stream
from ..video_io import (
    MAX_CAMERA_INDEX,
    FileSource,
    LiveSource,
    VideoError,
    VideoOutput,
    check_output,
    close_windows,
    open_source,
    show_frame,
)
from . import common as cli


def camera_index(text: str) -> int:
    # OpenCV crashes on negative indexes and reads 100 and more as a back-end code plus an index (200 = V4L2
    # camera 0), so only 0..99 name a camera.
    value = cli.non_negative_int(text)
    if value > MAX_CAMERA_INDEX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_CAMERA_INDEX}, got {text}")
    return value


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """--camera or --video, for ``video_io.open_source``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=camera_index, metavar="INDEX", help="camera index, 0 to 99 (default: 0)")
    source.add_argument("--video", metavar="PATH_OR_URL", help="video file or stream URL (rtsp://, http://, ...)")


def add_judge_size_option(parser: argparse.ArgumentParser, lead: str = "") -> None:
    """--judge-size, read by ``tracking_config``."""
    parser.add_argument(
        "--judge-size",
        type=cli.positive_int,
        metavar="PX",
        help=f"{lead}judge a person only from views of the face at least PX pixels on its short side; "
        "smaller faces are followed and counted but not classified (default: "
        f"{TrackingConfig().judge_size}, below which the classifier's accuracy falls on the dev video)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    config = TrackingConfig()
    parser = cli.ArgumentParser(
        description=(
            "Detect faces on a camera, video file or stream URL, follow each face from frame to frame and "
            "give each person one mask / no mask verdict built from all the views of their face, with a live "
            "overlay (boxes with track numbers and verdicts, people counted by verdict, FPS, and a red alert "
            "banner while a person without a mask is in view). q or Esc quits, Ctrl-C too. A camera is read "
            "on its own thread (the newest frame is processed); a video file is processed frame by frame, "
            "none dropped."
        ),
        epilog=(
            "Tracked mode (the default): the face detector runs on every frame; a face is classified when "
            "its track is new, when it shows a clearly larger view, or every few frames, and the results are "
            "fused into the person's verdict, so labels do not flicker from frame to frame. A face counts as "
            f"a person once seen in {config.min_frames} frames; it keeps its track while hidden for up to "
            f"{config.max_missing_seconds:g} s (someone walking in front, missed detections); a hard scene cut "
            "ends every track. Each view counts by how judgeable it is (face size, sharpness, how frontal), so a "
            "clearly better view can overturn a verdict from poor views at once, while one ordinary odd frame "
            "cannot flip a settled one; the label shown is always the one the person's evidence favours, with "
            "its own probability. A verdict is settled after a few classifications; a face smaller than "
            "--judge-size is followed but not judged (a grey box, counted apart as too small to judge, never an "
            "alert). "
            'JSON Lines (--json), one object per frame: {"frame": I, "time": SECONDS, "faces": [{"box": '
            '[x, y, w, h], "score": S, "label": CLASS, "probability": P, "track": ID, "settled": BOOL, '
            '"judged": BOOL}]} '
            "(time: position in a video file, seconds since start for a camera or stream; frame: the index "
            "among the frames processed, which are the --output video's frames; track: the person's number, "
            "unique within the run; label and probability: the person's current verdict and its probability, "
            "settled: false while it is only the best estimate so far; judged: false, with label and "
            "probability null, while every view of the person was too small to judge; a face appears from its "
            "second frame on, once its track is confirmed). Events (--events), one JSON object a line, each "
            "run appended after a "
            '{"event": "start", "run": RUN, "started": UTC, "source": NAME} line and closed by {"event": "end", '
            '"run": RUN, "frames": N}; every event carries "run" after "event": {"event": "verdict", "track": '
            'ID, "frame": I, "time": SECONDS, "label": CLASS, "probability": P, "box": [x, y, w, h], '
            '"snapshot": PATH} once per person when the verdict is settled (at the latest when they leave) '
            'and again if it changes; {"event": "leave", "track": ID, "frame": I, "time": SECONDS, "label": '
            'CLASS, "probability": P, "first_frame": I, "frames": N, "judged": BOOL} when the track ends (the '
            "frame at which it ended; frames: those the person was seen in; a person never judged has no verdict "
            "event and a leave event with judged false, label and probability null), for every person still in "
            "view also at the end, "
            "on q, Ctrl-C and SIGTERM. --snapshots saves each person's best view of the face as "
            "DIR/<run id>_track-000007.jpg, named in the verdict events (a folder that fills up or cannot be written: "
            "one warning, the run goes on). --per-frame: every face of every frame classified on its own, no "
            "tracks, no events (the JSON then has no track and settled keys). Damaged frames of a video file "
            "are skipped and reading goes on. A summary is printed at the end (on stderr with --json or "
            "--events -): people judged, by verdict, and people too small to judge (faces seen, with "
            "--per-frame). Ctrl-C, SIGTERM and SIGHUP "
            "finish the current frame, write the leave events, finalise --output and print the summary. "
            "Exit status: 0 done (also after Ctrl-C), 1 the stream broke off mid-way or frames of the video "
            "could not be decoded (output kept), 2 nothing could be processed (camera or video cannot be "
            "opened, bad model, an output that cannot be written or names the input video or another output; or an "
            "--output video that could not be completed, e.g. on a full disk: the previous file is kept), 143 / 129 "
            "stopped by SIGTERM / SIGHUP."
        ),
    )
    add_source_options(parser)
    parser.add_argument(
        "--output",
        type=cli.non_empty_path,
        metavar="PATH",
        help="write the annotated video (.mp4, mp4v, the input's frame rate; never the input itself); a FIFO "
        "or a device gets the finished video's bytes written into it, never replaced",
    )
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    parser.add_argument("--max-frames", type=cli.positive_int, metavar="N", help="stop after N frames")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame")
    parser.add_argument(
        "--events",
        type=cli.non_empty_path,
        metavar="PATH",
        help="append person events (verdict, leave) as JSON Lines to PATH, flushed line by line so another "
        "program can follow it; each run's lines carry its run id between a start and an end line; never "
        "truncated; a FIFO or device is written as a stream; - is stdout (not with --json)",
    )
    parser.add_argument(
        "--snapshots",
        type=cli.non_empty_path,
        metavar="DIR",
        help="save each person's best view of the face in DIR (<run id>_track-000007.jpg: runs never replace "
        "each other's pictures), named in the events",
    )
    parser.add_argument(
        "--per-frame",
        action="store_true",
        help="classify every face of every frame on its own, as before tracking: no tracks, verdicts, people "
        "counts or events",
    )
    add_judge_size_option(parser, "tracked mode: ")
    cli.add_pipeline_options(parser, photos=False)
    args = parser.parse_args(argv)
    if args.events == "-" and args.json:
        parser.error("--events - and --json both write to stdout: give --events a file, or leave out --json")
    if args.per_frame and (args.events is not None or args.snapshots is not None):
        parser.error("--events and --snapshots need tracked mode: leave out --per-frame")
    if args.per_frame and args.judge_size is not None:
        parser.error("--judge-size needs tracked mode: --per-frame classifies every face")
    return args


def check_outputs(args: argparse.Namespace) -> None:
    """Every output can be written and none is an input or another output; before the slow model load, creating
    nothing. The outputs: the --output video, the --events log, the --snapshots folder and, with --json or
    --events -, standard output when it is a file."""
    if args.output is not None:
        check_output(args.output, args.video)
    inputs = [args.video] if args.video is not None and "://" not in args.video else []
    named = []  # (what, path) of every file or folder output, to compare pairwise
    if args.output is not None:
        named.append(("the --output video", args.output))
    if args.events not in (None, "-"):
        refuse_overwriting_inputs([args.events], inputs)
        check_writable(args.events)
        named.append(("the --events log", args.events))
    if args.snapshots is not None:
        refuse_overwriting_inputs([args.snapshots], inputs)
        SnapshotWriter.check(args.snapshots)
        named.append(("the --snapshots folder", args.snapshots))
    for i, (what, path) in enumerate(named):
        for other, other_path in named[i + 1 :]:
            if same_file(path, other_path):
                raise OutputError(f"refusing to write {display_path(path)}: it is both {what} and {other}")
    if args.json or args.events == "-":
        for what, path in [("the input video", p) for p in inputs] + named:
            if is_stdout(path):
                raise OutputError(f"refusing to write JSON lines to standard output: it is {what}")


def is_stdout(path: str) -> bool:
    """Whether ``path`` is the file that standard output is redirected to (``> out.mp4``)."""
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):  # no such file, or stdout is no file
        return False


def wants_window(args: argparse.Namespace) -> bool:
    """Whether to show a window: unless --no-display, and only with a display that answers."""
    if args.no_display:
        return False
    available, why = display_available()
    if not available:
        cli.warn(f"no display ({why}): running without a window; see --output and --json")
    return available


def tracking_config(args: argparse.Namespace) -> TrackingConfig:
    """The tracked mode's settings: the defaults, with --judge-size."""
    if args.judge_size is None:
        return TrackingConfig()
    return TrackingConfig(judge_size=args.judge_size)


def open_run(args: argparse.Namespace) -> tuple[FileSource | LiveSource, MaskPipeline, VideoOutput | None]:
    """The source, the pipeline and the output video; the source is closed again when the others fail."""
    source = open_source(args.camera, args.video)
    try:
        pipeline = load_pipeline(
            args.model,
            args.face_confidence,
            args.mask_threshold,
            detect_size=args.detect_size,
            threads=args.threads,
            upscale=1.0,
            warn=cli.warn,
        )  # live frames: no extra time
        writer = VideoOutput(args.output, source.fps) if args.output is not None else None
    except BaseException:
        source.close()
        raise
    return source, pipeline, writer


def summary_line(tally: StreamTally, class_names: list[str], seconds: float, people: PeopleCounts | None) -> str:
    """Tracked: "summary: 661 frames, 25 people: 23 judged (mask 19, no mask 4), 2 too small to judge, mean 31.0
    FPS"; per frame: "summary: 661 frames, 1204 faces seen (mask 1000, no mask 204), mean 31.0 FPS"."""
    fps = tally.frames / seconds if seconds > 0 else 0.0
    if people is None:
        counts, what = tally.counts, f"{tally.faces} faces seen"
    else:
        n = people.total
        counts, what = people.by_class, f"{n} {'person' if n == 1 else 'people'}: {people.judged} judged"
    per_class = ", ".join(f"{class_info(name).display.lower()} {counts.get(name, 0)}" for name in class_names)
    unjudged = "" if people is None else f", {people.unjudged} too small to judge"
    return f"summary: {tally.frames} frames, {what} ({per_class}){unjudged}, mean {fps:.1f} FPS"


class EventLog:
    """Where person events go: the --events JSON Lines (with snapshot paths) and the --snapshots pictures.

    Every line of this run carries its run id, between a start line and, unless the process is killed, an end
    line; the snapshots are named by it too, so runs that share a log or a folder never mix."""

    def __init__(self, args: argparse.Namespace, source_name: str) -> None:
        self.run = new_run_id()
        self.snapshots = SnapshotWriter(args.snapshots, cli.warn, self.run) if args.snapshots is not None else None
        self.writer = None
        if args.events is not None:
            self.writer = EventWriter(sys.stdout if args.events == "-" else Path(args.events))
            self.writer.write(start_record(self.run, source_name))

    def write(self, events: list[PersonEvent]) -> None:
        for event in events:
            path = None
            if self.snapshots is not None and event.kind == "verdict" and event.snapshot is not None:
                path = self.snapshots.save(event.track_id, event.snapshot)
            if self.writer is not None:
                self.writer.write(event_record(event, path, snapshots=self.snapshots is not None, run=self.run))

    def close(self, frames: int) -> None:
        if self.writer is not None:
            try:
                self.writer.write(end_record(self.run, frames))
            finally:
                self.writer.close()


@dataclass
class RunOutcome:
    """How the frame loop ended."""

    tally: StreamTally
    seconds: float
    quit_key: bool  # the user pressed q or Esc
    video_error: VideoError | None  # what kept the --output video from being completed


def run_loop(
    args: argparse.Namespace,
    source: FileSource | LiveSource,
    processor: FrameProcessor,
    writer: VideoOutput | None,
    show: bool,
    stop: StopFlag,
    log: "EventLog",
) -> RunOutcome:
    """Every frame: a JSON line (--json), the events and the window.

    On every way out (the end, q, Ctrl-C, SIGTERM, an error) the stream gives the people still in view their
    leave events before the outputs are closed."""
    tally = StreamTally()
    started = time.perf_counter()
    quit_key = False
    video_error: VideoError | None = None
    looped = False  # the loop ended without an exception of its own
    # The handlers stay until the video is finalised: a signal during the clean-up only sets the flag.
    with stop.on_signals():
        try:
            frames = process_stream(source, processor, writer, stop, args.max_frames, draw=show, on_events=log.write)
            with contextlib.closing(frames):  # leaving early (q) ends the stream, and its people, at once
                for result in frames:
                    tally.add(result.detections)
                    if args.json:
                        print(json.dumps(frame_record(result)), flush=True)
                    if show and not show_frame(result.image):
                        quit_key = True
                        break
            looped = True
        finally:
            seconds = time.perf_counter() - started
            source.close()
            try:
                log.close(tally.frames)
            finally:
                try:
                    if writer is not None:
                        writer.close()
                except VideoError as exc:  # the video could not be completed (a full disk): the old one kept
                    video_error = exc  # said after the summary: the other outputs are complete
                    if not looped:
                        cli.warn(str(exc))  # the error in flight is the one the run ends with
                finally:
                    if show:
                        close_windows()
    return RunOutcome(tally, seconds, quit_key, video_error)


def frame_record(result: FrameResult) -> dict:
    return {
        "frame": result.frame_index,
        "time": round(result.time, 3),
        "faces": [d.to_json() for d in result.detections],
    }


def exit_code(
    args: argparse.Namespace,
    source: FileSource | LiveSource,
    writer: VideoOutput | None,
    outcome: RunOutcome,
    processor: FrameProcessor,
    stop: StopFlag,
) -> int:
    """Say how the run ended and map it to the exit status: the summary, then signal, failure or success."""
    tally = outcome.tally
    if tally.frames == 0:
        if stop.signum is None:
            cli.fail(source.failure or f"no frame could be read from {source.name}")
            return cli.EXIT_ERROR
    else:
        report = sys.stderr if args.json or args.events == "-" else sys.stdout  # stdout stays pure JSON Lines
        people = processor.people
        cli.say(summary_line(tally, processor.class_names, outcome.seconds, people), file=report)
        min_frames = TrackingConfig().min_frames
        if people is not None and people.total == 0 and not source.live and tally.frames < min_frames:
            cli.warn(
                f"only {tally.frames} {'frame' if tally.frames == 1 else 'frames'} read: a face counts as a person "
                f"once seen in {min_frames} frames (a photo? use detect_image.py; or --per-frame)"
            )
        if writer is not None and writer.saved:
            cli.say(f"saved {display_path(writer.path)} ({writer.frames} frames)", file=report)
    if outcome.video_error is not None:
        cli.fail(str(outcome.video_error))
        return cli.EXIT_ERROR
    if stop.signum is not None and stop.signum in TERMINATING_SIGNALS:
        cli.say(f"stopped by signal {signal.Signals(stop.signum).name}", file=sys.stderr)
        return cli.exit_code_for_signal(stop.signum)
    if stop.set:  # Ctrl-C: the ordinary way to end a camera run
        if tally.frames == 0:
            cli.say("interrupted", file=sys.stderr)
            return cli.EXIT_INTERRUPTED
        return cli.EXIT_OK
    if source.failure and not outcome.quit_key:
        cli.warn(f"{source.failure}; stopped" if source.live else source.failure)
        return cli.EXIT_PARTIAL
    return cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Ctrl-C, SIGTERM and SIGHUP during the loop finish the current frame, finalise the video and print the
    summary; Ctrl-C then returns 0 (the interactive way to stop), SIGTERM and SIGHUP 128 + the signal number."""
    args = parse_args(argv)
    check_outputs(args)  # before the slow model load; creates nothing
    show = wants_window(args)
    source, pipeline, writer = open_run(args)
    try:
        processor: FrameProcessor = (
            PerFrameProcessor(pipeline)
            if args.per_frame
            else PeoplePipeline(pipeline, tracking_config(args), source.fps)
        )
        log = EventLog(args, source.name)
    except BaseException:
        source.close()
        if writer is not None:
            writer.close()
        raise
    stop = StopFlag()
    outcome = run_loop(args, source, processor, writer, show, stop, log)
    return exit_code(args, source, writer, outcome, processor, stop)


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
