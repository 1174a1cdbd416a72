"""YuNet face detection, the shared crop rule and the pipeline around them, on real photos (scikit-image's
astronaut and cameraman). The pipeline tests use small stand-ins for the detector and the classifier (they
implement the Protocols of ``interfaces``), so what the pipeline itself does is what is checked."""

import hashlib
import threading

import cv2
import numpy as np
import pytest
from skimage import data

from mask_detection import INPUT_SIZE
from mask_detection.crop import FACE_MARGIN, MIN_FACE_SIZE, crop_face, crop_region, face_input, largest_face
from mask_detection.detections import Face
from mask_detection.detector import YuNetDetector as FaceDetector
from mask_detection.detector import load_detector
from mask_detection.errors import ModelError
from mask_detection.images import to_model_input
from mask_detection.paths import YUNET_PATH as DEFAULT_DETECTOR_PATH
from mask_detection.pipeline import MaskPipeline

YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
# The astronaut's face (brow to chin, ear to ear) in the 512x512 photo, by eye: x 180..265, y 70..175.
ASTRONAUT_FACE_CENTRE = (222, 120)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def test_shipped_detector_model_is_the_published_yunet():
    assert hashlib.sha256(DEFAULT_DETECTOR_PATH.read_bytes()).hexdigest() == YUNET_SHA256
    assert (DEFAULT_DETECTOR_PATH.parent / "LICENSE-yunet").is_file()


def test_astronaut_has_exactly_one_face_on_her_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    (x, y, w, h), score = faces[0].xywh, faces[0].score
    assert score > 0.8
    assert abs(x + w / 2 - ASTRONAUT_FACE_CENTRE[0]) < 20 and abs(y + h / 2 - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert 60 <= w <= 130 and 80 <= h <= 150
    assert all(isinstance(v, int) for v in faces[0].xywh)


def test_no_face_in_a_photo_without_people(detector):
    assert detector.detect(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)) == []
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_input_size_follows_each_frame(detector, astronaut):
    """The same face pasted into frames of other sizes is found where it was pasted."""
    reference = detector.detect(astronaut)[0].xywh
    for height, width, top, left in ((480, 640, 100, 300), (600, 900, 50, 20), (512, 512, 0, 0)):
        frame = np.full((height, width, 3), 90, np.uint8)
        frame[top : top + 512, left : left + 512] = astronaut[: height - top, : width - left]
        faces = detector.detect(frame)
        assert len(faces) == 1, (height, width)
        x, y, w, h = faces[0].xywh
        # A few pixels of jitter: the detector's grid sees a different surrounding.
        assert abs(x - left - reference[0]) <= 8 and abs(y - top - reference[1]) <= 8
        assert abs(w - reference[2]) <= 0.15 * reference[2] and abs(h - reference[3]) <= 0.15 * reference[3]


def test_grayscale_frames_are_accepted(detector):
    faces = detector.detect(data.camera())
    assert len(faces) == 1
    x, y, w, h = faces[0].xywh
    assert 180 < x + w / 2 < 260 and 110 < y + h / 2 < 200  # the cameraman's face


def test_boxes_are_clipped_to_the_image(detector, astronaut):
    # Cut the photo through the face: the detector's box reaches past the edge, ours must not.
    cut = np.ascontiguousarray(astronaut[95:, 195:])
    faces = detector.detect(cut)
    assert faces, "a face cut by the edges is still found"
    for face in faces:
        x, y, w, h = face.xywh
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= cut.shape[1] and y + h <= cut.shape[0]


def test_faces_are_sorted_by_score(detector, astronaut):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.full((512, 1024, 3), 100, np.uint8)
    frame[:, :512] = astronaut
    frame[128:384, 640:896] = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    faces = detector.detect(frame)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score


def test_score_threshold_filters_faces(astronaut):
    assert FaceDetector(score_threshold=0.999).detect(astronaut) == []


def test_crop_region_is_a_square_centred_on_the_face():
    x0, y0, x1, y1 = crop_region((100, 100, 40, 60), (480, 640), margin=0.25)
    assert (x1 - x0, y1 - y0) == (90, 90)  # max(40, 60) * 1.5
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == (120, 130)
    assert crop_region((100, 100, 40, 60), (480, 640), margin=0.0) == (90, 100, 150, 160)


def test_crop_region_is_clipped_at_the_edges():
    assert crop_region((0, 0, 50, 50), (100, 120), margin=0.5) == (0, 0, 75, 75)
    assert crop_region((90, 60, 30, 40), (100, 120), margin=0.2) == (77, 52, 120, 100)


def test_crop_face_keeps_the_face_and_skips_tiny_ones(astronaut):
    box = (178, 63, 90, 113)
    crop = crop_face(astronaut, box)
    x0, y0, x1, y1 = crop_region(box, astronaut.shape, FACE_MARGIN)
    assert crop.shape == (y1 - y0, x1 - x0, 3)
    assert np.array_equal(crop, astronaut[y0:y1, x0:x1])
    assert crop_face(astronaut, (10, 10, MIN_FACE_SIZE - 1, 30)) is None
    assert crop_face(astronaut, (10, 10, MIN_FACE_SIZE, MIN_FACE_SIZE)) is not None
    assert crop_face(astronaut, (10, 10, 20, 20), min_size=30) is None


def test_largest_face():
    faces = [Face((0, 0, 10, 10), 0.9), Face((0, 0, 30, 20), 0.6), Face((5, 5, 20, 30), 0.7)]
    assert largest_face(faces) == faces[2]
    assert largest_face([]) is None


def test_missing_or_corrupt_detector_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        FaceDetector(tmp_path / "none.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(ModelError, match="cannot load face detector model"):
        FaceDetector(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        FaceDetector(empty)


def test_shrunk_detection_gives_boxes_in_original_pixels(detector, astronaut):
    full = detector.detect(astronaut)[0].xywh
    small = FaceDetector(max_side=256).detect(astronaut)
    assert len(small) == 1
    assert all(abs(a - b) <= 8 for a, b in zip(small[0].xywh, full, strict=True))
    with pytest.raises(ModelError):
        FaceDetector(max_side=8)


def test_load_detector_builds_yunet_with_the_settings(astronaut):
    detector = load_detector(score_threshold=0.6, max_side=256, upscale=1.5)
    assert isinstance(detector, FaceDetector)
    assert (detector.model_path, detector.score_threshold, detector.max_side, detector.upscale) == (
        DEFAULT_DETECTOR_PATH,
        0.6,
        256,
        1.5,
    )
    assert len(detector.detect(astronaut)) == 1


def test_one_detector_shared_by_threads_gives_each_frame_its_own_answer(detector, astronaut):
    """YuNet's input size is per frame: threads alternating frame sizes on one detector must not get boxes made
    with another frame's size."""
    wide = np.full((400, 900, 3), 90, np.uint8)
    wide[:, 300:700] = cv2.resize(astronaut, (400, 400), interpolation=cv2.INTER_AREA)
    frames = [astronaut, wide]
    expected = [detector.detect(frame) for frame in frames]
    wrong = []

    def work(k):
        for _ in range(15):
            try:
                if detector.detect(frames[k]) != expected[k]:
                    wrong.append(k)
            except cv2.error as exc:  # what a size changed by another thread mid-call does
                wrong.append(str(exc))

    threads = [threading.Thread(target=work, args=(k % 2,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# ------------------------------------------------------------------------------------ the pipeline's own work


class GivenFaces:
    """A FaceDetector stand-in: returns the faces it was given, in the order given."""

    model_path = DEFAULT_DETECTOR_PATH
    upscale = 1.0

    def __init__(self, faces):
        self.faces = faces

    def detect(self, bgr):
        return list(self.faces)


class RecordingClassifier:
    """A Classifier stand-in: records each batch it is given; answers p(first class) = the batch row's mean red."""

    class_names = ["with_mask", "without_mask"]
    input_size = INPUT_SIZE
    crop = "square"
    path = None

    def __init__(self):
        self.batches = []

    def predict(self, batch):
        self.batches.append(np.array(batch))
        red = np.asarray(batch, np.float32)[..., 0].mean(axis=(1, 2)) / 255.0
        return np.stack([red, 1 - red], axis=1).astype(np.float32)


def loader_face_input(rgb, xywh):
    """What the loader stores for a face: the dataset's face crop (crop_face on the RGB photo, default margin),
    then the resize rule."""
    return to_model_input(crop_face(rgb, xywh), INPUT_SIZE)


def test_classifier_sees_the_same_face_input_as_the_loader_stores(astronaut):
    """A non-square face touching the photo's left and top edges: the crop is clipped there (not square), so
    the pipeline must pad it by edge replication with the loader's margin, not stretch it or use another margin."""
    photo = np.ascontiguousarray(astronaut[40:400, 150:])  # 362 wide, 360 high: the face near the top-left
    xywh = (0, 0, 70, 110)  # taller than wide; the margin reaches past both edges
    classifier = RecordingClassifier()
    MaskPipeline(GivenFaces([Face(xywh, 0.9)]), classifier).process(photo)
    (batch,) = classifier.batches
    rgb = photo[:, :, ::-1]
    assert batch.shape == (1, INPUT_SIZE, INPUT_SIZE, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch[0], loader_face_input(rgb, xywh))
    # The rule itself, spelled out: a square of side 110 * 1.3 = 143 centred on the face, clipped to x 0..106,
    # y 0..126, padded to 126 x 126 by repeating the edge columns and rows, then resized.
    region = rgb[0:126, 0:106]
    assert crop_region(xywh, photo.shape, FACE_MARGIN) == (0, 0, 106, 126)
    padded = np.pad(region, ((0, 0), (10, 10), (0, 0)), mode="edge")
    expected = cv2.resize(padded, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(batch[0], expected)
    stretched = cv2.resize(np.ascontiguousarray(region), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    assert np.abs(batch[0].astype(int) - stretched).mean() > 5  # the check can tell padding from stretching


def test_face_input_is_crop_then_resize_rule_in_the_photos_channel_order(astronaut):
    xywh = (178, 63, 90, 113)
    assert np.array_equal(face_input(astronaut, xywh), to_model_input(crop_face(astronaut, xywh)))
    assert face_input(astronaut, (0, 0, MIN_FACE_SIZE - 1, 40)) is None


def test_pipeline_sorts_faces_by_score_whatever_order_the_detector_gives(astronaut):
    faces = [Face((10, 10, 60, 60), 0.55), Face((300, 300, 80, 80), 0.97), Face((200, 40, 70, 70), 0.8)]
    classifier = RecordingClassifier()
    detections = MaskPipeline(GivenFaces(faces), classifier).process(astronaut)
    assert [d.score for d in detections] == [0.97, 0.8, 0.55]
    assert [d.xywh for d in detections] == [(300, 300, 80, 80), (200, 40, 70, 70), (10, 10, 60, 60)]
    # Each face keeps its own classification: the batch went in sorted order too.
    (batch,) = classifier.batches
    for detection, image in zip(detections, batch, strict=True):
        assert np.array_equal(image, loader_face_input(astronaut[:, :, ::-1], detection.xywh))
        red = image[..., 0].mean() / 255.0
        assert detection.probabilities == pytest.approx((red, 1 - red), abs=1e-6)
        assert detection.class_index == int(red < 0.5)
        assert detection.class_name == RecordingClassifier.class_names[detection.class_index]


def test_pipeline_skips_tiny_faces_and_calls_the_classifier_once_per_frame(astronaut):
    faces = [Face((10, 10, MIN_FACE_SIZE - 1, 30), 0.9), Face((178, 63, 90, 113), 0.8)]
    classifier = RecordingClassifier()
    detections = MaskPipeline(GivenFaces(faces), classifier).process(astronaut)
    assert [d.xywh for d in detections] == [(178, 63, 90, 113)]
    assert len(classifier.batches) == 1 and len(classifier.batches[0]) == 1
    assert MaskPipeline(GivenFaces([]), classifier).process(astronaut) == []
    assert len(classifier.batches) == 1  # no call without a face
