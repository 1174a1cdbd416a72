"""Stand-ins for the two models, and a stage that runs the real tracked pipeline on painted frames.

Only the face detector and the classifier are replaced. ``PeoplePipeline``, ``MaskPipeline`` (its crop and resize
rules), ``FaceTracker`` (ByteTrack) and ``SceneCut`` are the real ones: the scripted detector reports the faces a
test gives for each frame, and the palette classifier answers each face by its colour, so a test decides every
detection and every classification by what it paints.
"""

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask_detection.boxes import Box
from mask_detection.classes import WITH_MASK, WITHOUT_MASK
from mask_detection.detections import Face, Landmarks
from mask_detection.people import PeoplePipeline, TrackingConfig
from mask_detection.pipeline import MaskPipeline
from mask_detection.results import FrameResult, PersonEvent

FPS = 10.0
WIDTH, HEIGHT = 640, 480
GREY = (90, 90, 90)  # BGR: the default background
TWO_CLASSES = (WITH_MASK, WITHOUT_MASK)
# A face 96 px across counts fully (TrackingConfig.full_weight_side), away from the edges so its crop is whole.
FACE_BOX: Box = (272, 192, 96, 96)

Colour = tuple[int, int, int]  # BGR


class ScriptedDetector:
    """A face detector (``interfaces.FaceDetector``) that reports, for each frame, the faces scripted for it."""

    model_path = Path("scripted-detector")
    upscale = 1.0

    def __init__(self) -> None:
        self.script: deque[list[Face]] = deque()

    def detect(self, bgr: np.ndarray) -> list[Face]:
        assert self.script, "the detector ran on a frame that no faces were scripted for"
        return list(self.script.popleft())


class PaletteClassifier:
    """A classifier (``interfaces.Classifier``) that answers each face with the probabilities registered for its
    colour (``colour_for``). It reads the centre pixel of its input: the crop rule centres the crop on the face,
    and a uniformly painted face keeps its exact colour through the resize. Counts the faces it classifies."""

    input_size = 32  # small: the answer is in one pixel
    crop = "square"
    path = None

    def __init__(self, class_names: tuple[str, ...] = TWO_CLASSES) -> None:
        self.class_names = list(class_names)
        self._answers: dict[Colour, np.ndarray] = {}
        self.faces = 0

    def colour_for(self, probabilities) -> Colour:
        """The BGR colour to paint a face that this classifier should answer with ``probabilities``."""
        answer = np.asarray(probabilities, np.float32)
        assert answer.shape == (len(self.class_names),), f"{len(self.class_names)} probabilities expected"
        for colour, known in self._answers.items():
            if np.array_equal(known, answer):
                return colour
        n = len(self._answers) + 1
        colour = (30 + n % 200, 30 + n // 200, 230)  # distinct from each other and from the backgrounds used
        self._answers[colour] = answer
        return colour

    def predict(self, batch: np.ndarray) -> np.ndarray:
        centre = self.input_size // 2
        answers = []
        for face in batch:
            colour = tuple(int(v) for v in face[centre, centre, ::-1])  # RGB input, BGR keys
            assert colour in self._answers, f"a face painted {colour}, which no answer was registered for"
            answers.append(self._answers[colour])
        self.faces += len(batch)
        return np.stack(answers).astype(np.float32)


@dataclass(frozen=True)
class Shown:
    """A face in one frame: where the detector reports it (and it is painted), its colour and detector score."""

    xywh: Box
    colour: Colour
    score: float = 0.9
    landmarks: Landmarks | None = None  # what the detector reports with the face (None: none)


def paint(faces: list[Shown], background: np.ndarray | None = None) -> np.ndarray:
    """A BGR frame: ``background`` (or plain grey) with each face painted as a uniform rectangle of its colour."""
    frame = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8) if background is None else background.copy()
    for face in faces:
        x, y, w, h = face.xywh
        frame[y : y + h, x : x + w] = face.colour
    return frame


class Stage:
    """The real ``PeoplePipeline`` with the scripted detector and the palette classifier. ``show`` paints one frame
    with the given faces, scripts the detector to report them and processes it; frames are numbered from 0 at
    ``FPS``. Every result and event is kept (``results``, ``events``; ``finish`` adds the end-of-run events)."""

    def __init__(
        self,
        config: TrackingConfig | None = None,
        class_names: tuple[str, ...] = TWO_CLASSES,
        mask_threshold: float | None = None,
    ) -> None:
        self.detector = ScriptedDetector()
        self.classifier = PaletteClassifier(class_names)
        self.people = PeoplePipeline(
            MaskPipeline(self.detector, self.classifier, mask_threshold=mask_threshold), config, fps=FPS
        )
        self.results: list[FrameResult] = []
        self.events: list[PersonEvent] = []
        self.classified_at: list[int] = []  # the frame of every face classification, in order

    @property
    def frame_index(self) -> int:
        """The index the next frame gets."""
        return len(self.results)

    def face(
        self, probabilities, xywh: Box = FACE_BOX, score: float = 0.9, landmarks: Landmarks | None = None
    ) -> Shown:
        """A face the classifier answers with ``probabilities`` (and the detector reports with ``landmarks``)."""
        return Shown(xywh, self.classifier.colour_for(probabilities), score, landmarks)

    def show(self, *faces: Shown, background: np.ndarray | None = None) -> FrameResult:
        self.detector.script.append([Face(face.xywh, face.score, face.landmarks) for face in faces])
        before = self.classifier.faces
        index = self.frame_index
        result = self.people.process(paint(list(faces), background), index, index / FPS)
        self.classified_at += [index] * (self.classifier.faces - before)
        self.results.append(result)
        self.events += result.events
        return result

    def show_for(self, frames: int, *faces: Shown, background: np.ndarray | None = None) -> list[FrameResult]:
        """The same faces (and background) for ``frames`` frames in a row."""
        return [self.show(*faces, background=background) for _ in range(frames)]

    def finish(self) -> list[PersonEvent]:
        """The end of the run, at the last frame shown."""
        last = self.frame_index - 1
        events = self.people.finish(last, last / FPS)
        self.events += events
        return events
