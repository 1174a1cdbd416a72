#!/usr/bin/env python3
"""Draw docs/example.jpg: an entrance scene followed by the tracked pipeline, the last frame as the overlay shows it.

The people are copies of scikit-image's astronaut portrait (NASA, public domain); three wear a surgical mask
painted over nose, mouth and chin from YuNet's landmarks. A short clip lets the tracks settle their verdicts, so
the picture shows track numbers, masks, bare faces, the people counts and the alert. No data set picture is used
(nothing from the data sets is committed). Run from the repository: ``python docs/make_example.py [OUT.jpg]``.
"""

import sys

import cv2
import numpy as np
from skimage import data

import mask_detection as md
from mask_detection.overlay import draw_result
from mask_detection.paths import YUNET_PATH

FPS = 12.0
FRAMES = 24


def landmarks(bgr):
    """(face box x, y, w, h; the five landmarks: eyes, nose tip, mouth corners) of the picture's one face."""
    detector = cv2.FaceDetectorYN.create(str(YUNET_PATH), "", (bgr.shape[1], bgr.shape[0]), 0.5)
    _, faces = detector.detect(bgr)
    return faces[0][:4], faces[0][4:14].reshape(5, 2)


def with_mask(bgr, colour):
    """The face with a pleated surgical mask from the nose bridge to under the chin, ear loops included."""
    out = bgr.copy()
    (x, y, w, h), marks = landmarks(bgr)
    eyes_y = marks[:2, 1].mean()
    top = eyes_y + 0.35 * (marks[2][1] - eyes_y)  # the nose bridge
    bottom = y + h * 1.02
    left, right = x - 0.02 * w, x + w * 1.02
    middle = (left + right) / 2
    outline = [
        (left + 0.12 * w, top), (middle, top - 0.04 * h), (right - 0.12 * w, top), (right, top + 0.18 * h),
        (right - 0.08 * w, bottom - 0.12 * h), (middle, bottom), (left + 0.08 * w, bottom - 0.12 * h),
        (left, top + 0.18 * h),
    ]  # fmt: skip
    cv2.fillPoly(out, [np.array(outline, np.int32)], colour, lineType=cv2.LINE_AA)
    pleat = tuple(int(c * 0.82) for c in colour)
    for share in (0.3, 0.5, 0.7):
        row = int(top + share * (bottom - top))
        cv2.line(out, (int(left + 0.1 * w), row), (int(right - 0.1 * w), row), pleat, 2, cv2.LINE_AA)
    for side, outward in ((left, -0.12), (right, 0.12)):
        ear = (int(side + outward * w), int(eyes_y))
        cv2.line(out, (int(side), int(top + 0.18 * h)), ear, (245, 245, 245), 2, cv2.LINE_AA)
    return out


def scene_frames():
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:260, 120:330]
    people = [  # (picture, scale, top-left corner)
        (with_mask(face, (230, 200, 150)), 0.9, (40, 80)),
        (face, 0.8, (300, 100)),
        (with_mask(face, (240, 240, 240)), 0.75, (540, 110)),
        (with_mask(face, (60, 60, 60)), 0.7, (770, 120)),
        (cv2.flip(face, 1), 0.85, (990, 90)),
    ]
    width, height = 1280, 440
    background = np.repeat(np.linspace(140, 90, height).astype(np.uint8)[:, None], width, axis=1)
    background = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
    for t in range(FRAMES):
        canvas = background.copy()
        for picture, scale, (x, y) in people:
            small = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            x += 2 * t  # walking slowly to the right
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        yield canvas


def main(out="docs/example.jpg"):
    pipeline = md.load_pipeline(upscale=1.0)
    people = md.PeoplePipeline(pipeline, fps=FPS)
    for index, frame in enumerate(scene_frames()):
        last = people.process(frame, index, index / FPS)
    draw_result(last, pipeline.class_names)
    cv2.imwrite(out, last.image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    for face in last.detections:
        print(f"#{face.track_id} {face.class_name} {face.probability:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
