"""Live mask detection on a camera, a video file or a stream.

python detect_webcam.py                                      # camera 0, window with boxes, FPS and counts
python detect_webcam.py --video in.mp4 --output out.mp4 --no-display --json > frames.jsonl
"""

import argparse
import json
import signal
import sys
import time

from ..classes import class_info
from ..errors import TERMINATING_SIGNALS
from ..fileio import display_path
from ..pipeline import MaskPipeline, load_pipeline
from ..stream import StreamTally, process_stream
from ..video_io import (
    MAX_CAMERA_INDEX,
    FileSource,
    LiveSource,
    StopFlag,
    VideoOutput,
    check_output,
    close_windows,
    display_available,
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=(
            "Detect faces and classify mask / no mask on every frame of a camera, video file or stream URL, "
            "with a live overlay (boxes, labels, FPS, counts of faces, mask and no mask). q or Esc quits, "
            "Ctrl-C too. A camera is read on its own thread (the newest frame is processed); a video file "
            "is processed frame by frame, none dropped."
        ),
        epilog=(
            'JSON Lines (--json), one object per frame: {"frame": I, "time": SECONDS, "faces": [{"box": '
            '[x, y, w, h], "score": S, "label": CLASS, "probability": P}]} (time: position in a video file, '
            "seconds since start for a camera or stream; frame: the index among the frames processed, which "
            "are the --output video's frames). Damaged frames of a video file are skipped and reading goes "
            "on. A summary is printed at the end (on stderr with --json). Ctrl-C, SIGTERM and SIGHUP finish "
            "the current frame, finalise --output and print the summary. Exit status: 0 done (also after "
            "Ctrl-C), 1 the stream broke off mid-way or frames of the video could not be decoded (output "
            "kept), 2 nothing could be processed (camera or video cannot be opened, bad model, unwritable "
            "--output or --output naming the input video), 143 / 129 stopped by SIGTERM / SIGHUP."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=camera_index, metavar="INDEX", help="camera index, 0 to 99 (default: 0)")
    source.add_argument("--video", metavar="PATH_OR_URL", help="video file or stream URL (rtsp://, http://, ...)")
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="write the annotated video (.mp4, mp4v, the input's frame rate; never the input itself)",
    )
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    parser.add_argument("--max-frames", type=cli.positive_int, metavar="N", help="stop after N frames")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame")
    cli.add_pipeline_options(parser, photos=False)
    return parser.parse_args(argv)


def wants_window(args: argparse.Namespace) -> bool:
    """Whether to show a window: unless --no-display, and only with a display that answers."""
    if args.no_display:
        return False
    available, why = display_available()
    if not available:
        cli.warn(f"no display ({why}): running without a window; see --output and --json")
    return available


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


def summary_line(tally: StreamTally, class_names: list[str], seconds: float) -> str:
    per_class = ", ".join(f"{class_info(name).display.lower()} {tally.counts.get(name, 0)}" for name in class_names)
    fps = tally.frames / seconds if seconds > 0 else 0.0
    return f"summary: {tally.frames} frames, {tally.faces} faces seen ({per_class}), mean {fps:.1f} FPS"


def run_loop(
    args: argparse.Namespace,
    source: FileSource | LiveSource,
    pipeline: MaskPipeline,
    writer: VideoOutput | None,
    show: bool,
    stop: StopFlag,
) -> tuple[StreamTally, float, bool]:
    """Every frame: a JSON line (--json) and the window; (totals, seconds, stopped by the quit key)."""
    tally = StreamTally()
    started = time.perf_counter()
    quit_key = False
    # The handlers stay until the video is finalised: a signal during the clean-up only sets the flag.
    with stop.on_signals():
        try:
            for result in process_stream(source, pipeline, writer, stop, args.max_frames, draw=show):
                tally.add(result.detections)
                if args.json:
                    record = {
                        "frame": result.index,
                        "time": round(result.time, 3),
                        "faces": [d.to_json() for d in result.detections],
                    }
                    print(json.dumps(record), flush=True)
                if show and not show_frame(result.frame):
                    quit_key = True
                    break
        finally:
            seconds = time.perf_counter() - started
            source.close()
            if writer is not None:
                writer.close()
            if show:
                close_windows()
    return tally, seconds, quit_key


def exit_code(
    args: argparse.Namespace,
    source: FileSource | LiveSource,
    writer: VideoOutput | None,
    tally: StreamTally,
    seconds: float,
    class_names: list[str],
    stop: StopFlag,
    quit_key: bool,
) -> int:
    """Say how the run ended and map it to the exit status: the summary, then signal, failure or success."""
    if tally.frames == 0:
        if stop.signum is None:
            cli.fail(source.failure or f"no frame could be read from {source.name}")
            return cli.EXIT_ERROR
    else:
        report = sys.stderr if args.json else sys.stdout  # stdout stays pure JSON Lines
        cli.say(summary_line(tally, class_names, seconds), file=report)
        if writer is not None and writer.frames:
            cli.say(f"saved {display_path(writer.path)} ({writer.frames} frames)", file=report)
    if stop.signum in TERMINATING_SIGNALS:
        cli.say(f"stopped by signal {signal.Signals(stop.signum).name}", file=sys.stderr)
        return cli.exit_code_for_signal(stop.signum)
    if stop.set:  # Ctrl-C: the ordinary way to end a camera run
        if tally.frames == 0:
            cli.say("interrupted", file=sys.stderr)
            return cli.EXIT_INTERRUPTED
        return cli.EXIT_OK
    if source.failure and not quit_key:
        cli.warn(f"{source.failure}; stopped" if source.live else source.failure)
        return cli.EXIT_PARTIAL
    return cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Ctrl-C, SIGTERM and SIGHUP during the loop finish the current frame, finalise the video and print the
    summary; Ctrl-C then returns 0 (the interactive way to stop), SIGTERM and SIGHUP 128 + the signal number."""
    args = parse_args(argv)
    if args.output is not None:
        check_output(args.output, args.video)  # before the slow model load; creates nothing
    show = wants_window(args)
    source, pipeline, writer = open_run(args)
    stop = StopFlag()
    tally, seconds, quit_key = run_loop(args, source, pipeline, writer, show, stop)
    return exit_code(args, source, writer, tally, seconds, pipeline.class_names, stop, quit_key)


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
