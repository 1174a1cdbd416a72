"""Live mask detection on a camera, a video file or a stream.

    python detect_webcam.py                                      # camera 0, window with boxes, FPS and counts
    python detect_webcam.py --video in.mp4 --output out.mp4 --no-display --json > frames.jsonl
"""

import argparse

from mask_detection import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=(
            "Detect faces and classify mask / no mask on every frame of a camera, video file or stream URL, "
            "with a live overlay (boxes, labels, FPS, counts of faces, mask and no mask). q or Esc quits, "
            "Ctrl-C too. A camera is read on its own thread (the newest frame is processed); a video file "
            "is processed frame by frame, none dropped."
        ),
        epilog=(
            'JSON Lines (--json), one object per frame: {"frame": I, "time": SECONDS, "faces": [{"box": '
            '[x, y, w, h], "score": S, "label": CLASS, "probability": P}]} (time: position in a video file, '
            "seconds since start for a camera or stream). A summary is printed at the end (on stderr with "
            "--json). Exit status: 0 done, 1 the stream broke off mid-way (output kept), 2 nothing could be "
            "processed (camera or video cannot be opened, bad model)."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="INDEX", help="camera index (default: 0)")
    source.add_argument("--video", metavar="PATH_OR_URL", help="video file or stream URL (rtsp://, http://, ...)")
    parser.add_argument("--output", metavar="PATH", help="write the annotated video (.mp4, mp4v, the input's frame rate)")
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
