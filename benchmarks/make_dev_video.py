#!/usr/bin/env python3
"""Build the dev video for `evaluate.py --video`: a virtual camera over annotated scene photos.

For each photo of a scenes folder (images/ + annotations/ in PASCAL VOC, as `evaluate.py --scenes` reads them):
the photo is letterboxed to 4:3 (grey bars, so no annotated face is cut away), then 36 frames at 12 FPS zoom
smoothly from the whole photo to 1.4-2x toward one annotated face, panning to it; then a hard cut to the next
photo. Frames are 640x480. Every annotated face is one person (its own id); its box is transformed with the frame
and kept in the ground truth while at least 60% of it is in view (the box written is the part in view; the
visibility column says how much). Zoom and target face are drawn from a generator seeded by (seed, photo
number): the same photo always gets the same shot, whatever --max-photos.

Writes, replaced together: OUT_DIR/video.mp4 (mp4v), OUT_DIR/gt.txt (MOT: frame, id, x, y, w, h, conf, class,
visibility; frames from 1), OUT_DIR/classes.txt (class id = line number) and OUT_DIR/segments.txt (first frame,
last frame, photo: one line per scene). Do not commit the video; rebuild it:

    python benchmarks/make_dev_video.py /tmp/devvideo                     # all of ../shared/datasets/scenes-dev
    python benchmarks/make_dev_video.py /tmp/devvideo-small --max-photos 10
    python evaluate.py --video /tmp/devvideo/video.mp4 --gt /tmp/devvideo/gt.txt --report /tmp/devvideo/eval
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENES = REPO.parent / "shared" / "datasets" / "scenes-dev"
WIDTH, HEIGHT = 640, 480
FRAMES_PER_PHOTO = 36
FPS = 12.0
ZOOM_RANGE = (1.4, 2.0)
MIN_VISIBLE = 0.6
BORDER = (114, 114, 114)  # BGR grey of the letterbox bars and anything outside the photo


@dataclass(frozen=True)
class Shot:
    """One photo's camera move."""

    zoom: float  # at the last frame
    target: tuple[float, float]  # centre of the face zoomed toward, in letterboxed-canvas pixels


@dataclass(frozen=True)
class DevVideo:
    photos: int
    frames: int
    people: int  # persons with at least one frame in the ground truth
    rows: int  # lines of gt.txt


def letterbox(width: int, height: int) -> tuple[float, float, float, float]:
    """(canvas width, canvas height, x offset, y offset): the smallest 4:3 canvas holding the photo, centred."""
    canvas_w, canvas_h = max(width, height * 4 / 3), max(height, width * 3 / 4)
    return canvas_w, canvas_h, (canvas_w - width) / 2, (canvas_h - height) / 2


def choose_shot(faces: list, canvas: tuple[float, float, float, float], rng: np.random.Generator) -> Shot:
    canvas_w, canvas_h, off_x, off_y = canvas
    zoom = float(rng.uniform(*ZOOM_RANGE))
    if not faces:
        return Shot(zoom, (canvas_w / 2, canvas_h / 2))
    x, y, w, h = faces[int(rng.integers(len(faces)))].xywh
    return Shot(zoom, (off_x + x + w / 2, off_y + y + h / 2))


def frame_transform(t: int, shot: Shot, canvas: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """(scale, x shift, y shift) mapping photo pixels to output pixels at frame ``t`` of the shot."""
    canvas_w, canvas_h, off_x, off_y = canvas
    s = t / (FRAMES_PER_PHOTO - 1)
    s = s * s * (3 - 2 * s)  # smoothstep: the camera eases in and out
    zoom = 1 + (shot.zoom - 1) * s
    view_w, view_h = canvas_w / zoom, canvas_h / zoom
    cx = canvas_w / 2 + (shot.target[0] - canvas_w / 2) * s
    cy = canvas_h / 2 + (shot.target[1] - canvas_h / 2) * s
    x0 = min(max(cx - view_w / 2, 0.0), canvas_w - view_w)  # the view stays on the canvas
    y0 = min(max(cy - view_h / 2, 0.0), canvas_h - view_h)
    scale = WIDTH / view_w
    return scale, (off_x - x0) * scale, (off_y - y0) * scale


def render(bgr: np.ndarray, transform: tuple[float, float, float]) -> np.ndarray:
    import cv2

    scale, dx, dy = transform
    # Pixel centres sit at integer coordinates in warpAffine: shift by half a pixel on both sides.
    matrix = np.array([[scale, 0, dx + 0.5 * (scale - 1)], [0, scale, dy + 0.5 * (scale - 1)]], dtype=np.float64)
    return cv2.warpAffine(
        bgr, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER
    )


def visible_box(xywh, transform) -> tuple[tuple[float, float, float, float], float] | None:
    """The face's box in the frame, clipped to it, and the share of it in view; None below MIN_VISIBLE."""
    scale, dx, dy = transform
    x, y, w, h = xywh
    x0, y0, x1, y1 = x * scale + dx, y * scale + dy, (x + w) * scale + dx, (y + h) * scale + dy
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(WIDTH)), min(y1, float(HEIGHT))
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    share = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
    if share < MIN_VISIBLE:
        return None
    return (cx0, cy0, cx1 - cx0, cy1 - cy0), share


def build_dev_video(
    scenes_dir: str | Path, out_dir: str | Path, max_photos: int | None = None, seed: int = 0
) -> DevVideo:
    """Write video.mp4, gt.txt, classes.txt and segments.txt to ``out_dir`` (all replaced together)."""
    from mask_detection.annotations.scene_set import load_scene_set
    from mask_detection.annotations.voc import SCENE_CLASSES
    from mask_detection.fileio import atomic_paths

    items = load_scene_set(scenes_dir).items[:max_photos]
    out_dir = Path(out_dir)
    names = ("video.mp4", "gt.txt", "classes.txt", "segments.txt")
    with atomic_paths([out_dir / name for name in names]) as (video_tmp, gt_tmp, classes_tmp, segments_tmp):
        rows, segments, frames = _write_video(items, video_tmp, seed)
        gt_tmp.write_text("".join(rows), encoding="utf-8")
        classes_tmp.write_text("".join(f"{name}\n" for name in SCENE_CLASSES), encoding="utf-8")
        segments_tmp.write_text("".join(segments), encoding="utf-8")
    people = len({row.split(",")[1] for row in rows})
    return DevVideo(len(segments), frames, people, len(rows))


def _write_video(items: list, video_path: Path, seed: int) -> tuple[list[str], list[str], int]:
    """Render every photo's shot into ``video_path``; (gt rows, segment rows, frames written)."""
    import cv2

    from mask_detection.annotations.voc import SCENE_CLASSES
    from mask_detection.images import decode_image

    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OSError(f"cannot write {video_path}")
    rows, segments, frame, person = [], [], 0, 0
    try:
        for number, (annotation, image_path) in enumerate(items):
            bgr = cv2.cvtColor(decode_image(image_path), cv2.COLOR_RGB2BGR)
            canvas = letterbox(bgr.shape[1], bgr.shape[0])
            faces = annotation.objects
            shot = choose_shot(faces, canvas, np.random.default_rng([seed, number]))
            first = frame + 1
            for t in range(FRAMES_PER_PHOTO):
                frame += 1
                transform = frame_transform(t, shot, canvas)
                writer.write(render(bgr, transform))
                for k, face in enumerate(faces):
                    seen = visible_box(face.xywh, transform)
                    if seen is not None:
                        (x, y, w, h), share = seen
                        class_id = SCENE_CLASSES.index(face.label) + 1
                        rows.append(
                            f"{frame},{person + k + 1},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,{class_id},{share:.3f}\n"
                        )
            person += len(faces)
            segments.append(f"{first},{frame},{image_path.name}\n")
    finally:
        writer.release()
    return rows, segments, frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for video.mp4, gt.txt, classes.txt, segments.txt")
    parser.add_argument(
        "--scenes", default=str(DEFAULT_SCENES), metavar="DIR", help="scenes folder (default: %(default)s)"
    )
    parser.add_argument("--max-photos", type=int, default=None, metavar="N", help="only the first N photos")
    parser.add_argument("--seed", type=int, default=0, help="camera moves' seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.max_photos is not None and args.max_photos < 1:
        parser.error("--max-photos must be at least 1")
    from mask_detection.errors import MaskDetectionError

    try:
        built = build_dev_video(args.scenes, args.out_dir, args.max_photos, args.seed)
    except (MaskDetectionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{built.photos} photos, {built.frames} frames at {FPS:g} FPS, {built.people} people, {built.rows} gt rows "
        f"-> {args.out_dir}/video.mp4, gt.txt, classes.txt, segments.txt"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
