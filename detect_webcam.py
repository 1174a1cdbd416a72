"""Live mask detection on a camera, a video file or a stream.

    python detect_webcam.py                                      # camera 0, window with boxes, FPS and counts
    python detect_webcam.py --video in.mp4 --output out.mp4 --no-display --json > frames.jsonl
"""

import argparse

from mask_detection import cli
from mask_detection.video import MAX_CAMERA_INDEX  # standard library only: --help stays instant


def camera_index(text):
    # OpenCV crashes on negative indexes and reads 100 and more as a back-end code plus an index (200 = V4L2
    # camera 0), so only 0..99 name a camera.
    value = cli.non_negative_int(text)
    if value > MAX_CAMERA_INDEX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_CAMERA_INDEX}, got {text}")
    return value


def parse_args(argv=None):
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
    parser.add_argument("--output", metavar="PATH",
                        help="write the annotated video (.mp4, mp4v, the input's frame rate; never the input itself)")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    parser.add_argument("--max-frames", type=cli.positive_int, metavar="N", help="stop after N frames")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame")
    cli.add_pipeline_options(parser, photos=False)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mask_detection.video import detect_stream

    return detect_stream(
        camera=args.camera,
        video=args.video,
        output=args.output,
        display=False if args.no_display else None,
        max_frames=args.max_frames,
        as_json=args.json,
        model_path=args.model,
        face_confidence=args.face_confidence,
        mask_threshold=args.mask_threshold,
        detect_size=args.detect_size,
        threads=args.threads,
    )


if __name__ == "__main__":
    cli.run(main)
