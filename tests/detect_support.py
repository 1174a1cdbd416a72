"""Helpers for the detection tests: a tiny saved classifier and frames/videos built from real face photos."""

import json

import numpy as np


def save_tiny_classifier(folder, class_names=("with_mask", "without_mask"), outputs=None, name="tiny", constant=None):
    """A real (untrained, fixed-weight) .keras classifier with the shipped model's input and metadata format.

    uint8 RGB (224, 224, 3) -> mean colour -> softmax. Fixed weights make its answer deterministic: reddish
    faces lean to the first class. ``outputs`` != len(class_names) makes a model that contradicts its metadata.
    ``constant``: class probabilities it answers for every image instead (so a test knows the label beforehand).
    """
    from mask_detection._tf import keras

    k = keras()
    n_out = outputs or len(class_names)
    inputs = k.Input((224, 224, 3), dtype="uint8", name="image")
    x = k.layers.Rescaling(1 / 255.0)(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    dense = k.layers.Dense(n_out, activation="softmax")
    model = k.Model(inputs, dense(x))
    kernel = np.zeros((3, n_out), np.float32)
    bias = np.zeros(n_out, np.float32)
    if constant is None:
        kernel[0, 0], kernel[2, 0] = 4.0, -4.0  # first class: red minus blue
    else:
        bias = np.log(np.asarray(constant, np.float32))  # softmax(log p) = p
    dense.set_weights([kernel, bias])
    path = folder / f"{name}.keras"
    model.save(path)
    meta = {"class_names": list(class_names), "backbone": "tiny-test", "input_size": 224}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return path


def small_faces_photo(side=50):
    """A 400x300 BGR photo with four copies of the astronaut shrunk to ``side`` px (faces of about 10 px at 50):
    YuNet misses them at their own size and finds them in the photo enlarged 1.5x."""
    import cv2
    from skimage import data

    small = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 400, 3), 120, np.uint8)
    for k in range(4):
        top, left = 20 + (k // 2) * 140, 30 + (k % 2) * 200
        canvas[top : top + side, left : left + side] = small
    return canvas


def face_photo():
    """The astronaut's head and shoulders (BGR): a real face without a mask."""
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:260, 120:330]


def make_face_video(path, frames=30, fps=15.0, size=(640, 480)):
    """An mp4v video of a real face moving across a plain background; returns the frame count written."""
    import cv2

    face = face_photo()
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    step = max(1, (width - face.shape[1]) // max(1, frames))
    for i in range(frames):
        canvas = np.full((height, width, 3), 90, np.uint8)
        x = (i * step) % (width - face.shape[1])
        y = (height - face.shape[0]) // 2
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return frames


def count_frames(path):
    """Frames actually decodable from a video file (not the header's claim)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n
