"""Find every face in photos and say mask or no mask.

python detect_image.py --demo                                  # the astronaut photo shipped with scikit-image
python detect_image.py --image photo.jpg                       # show (or save) the annotated photo
python detect_image.py --image photos/ --json > results.jsonl  # a folder, machine-readable
"""

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..classes import label_text
from ..detections import Detection
from ..display import display_available
from ..errors import ImageDecodeError, MaskDetectionError, OutputError, exception_line
from ..fileio import check_writable, display_path, refuse_overwriting_inputs
from ..images import IMAGE_EXTENSIONS, check_image_type, decode_photo, list_images, write_image
from ..overlay import annotate
from ..pipeline import MaskPipeline, PhotoResult, detect_photo, load_pipeline
from ..video_io import close_windows, show_until_key
from . import common as cli

DEFAULT_OUTPUT_DIR = "output"  # where annotated pictures go when there is no display and no --output
DEMO_NAME = "skimage.data.astronaut"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=(
            "Detect faces (YuNet) in photos and classify each one (mask / no mask) with the trained model. "
            "Draws boxes and labels such as 'Mask 98.7%' (green: mask, red: no mask). "
            "Without --json: one readable line per face."
        ),
        epilog=(
            "JSON Lines (--json), one object per image: "
            '{"image": PATH, "width": W, "height": H, "faces": [{"box": [x, y, w, h], "score": S, '
            '"label": CLASS, "probability": P}]} with the box in pixels of the original image, S the face '
            "detector's confidence and P the classifier's probability for LABEL. "
            "A window is shown when a display is available (not with --json or --no-display); without a "
            f"display the annotated images are saved to --output or {DEFAULT_OUTPUT_DIR}/. "
            "Exit status: 0 all images done, 1 some inputs failed (reported, the rest processed), 2 nothing "
            "could be processed (bad input or model)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", nargs="+", metavar="PATH", help="image files and/or folders of images")
    source.add_argument(
        "--demo", action="store_true", help="run on scikit-image's astronaut photo (a real face, no mask)"
    )
    parser.add_argument(
        "--output",
        type=cli.non_empty_path,
        metavar="PATH",
        help="save the annotated image here (.jpg or .png); a folder when there are several images",
    )
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per image")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    cli.add_pipeline_options(parser, photos=True)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ImageInput:
    name: str  # what JSON and messages call it (the path as given, printable; or the demo's name)
    path: Path | None  # None for the demo's in-memory photo

    @property
    def stem(self) -> str:
        return "astronaut" if self.path is None else self.path.stem


@dataclass
class ImageInputs:
    items: list[ImageInput]  # in the order given (folders: sorted by name)
    problems: list[str] = field(default_factory=list)  # one-line messages about inputs that cannot be used
    folders: list[Path] = field(default_factory=list)  # the folders that were listed


def expand_inputs(paths: list[str], warn: Callable[[str], None] | None = None) -> ImageInputs:
    """The image files of the given files and folders.

    Fails at once (ImageDecodeError) when no given input is usable (a missing file, a folder without images),
    so the user hears about it before the model loads. ``warn`` hears of unreadable folder entries (broken
    links, link loops).
    """
    inputs = ImageInputs([])
    for raw in paths:
        path = Path(raw)
        shown = display_path(raw)
        if path.is_dir():
            inputs.folders.append(path)
            found = list_images(path, warn=warn)
            if not found:
                inputs.problems.append(f"no images in folder {shown}")
            inputs.items.extend(ImageInput(display_path(p), p) for p in found)
        elif path.exists():
            inputs.items.append(ImageInput(shown, path))
        else:
            inputs.problems.append(f"cannot decode {shown}: {'broken link' if path.is_symlink() else 'no such file'}")
    if not inputs.items:
        problems = inputs.problems
        raise ImageDecodeError(problems[0] if len(problems) == 1 else "; ".join(problems))
    return inputs


def read_photo(item: ImageInput) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB array, full (height, width)) of one input."""
    if item.path is None:
        from skimage import data  # slow to import: only for the demo

        return data.astronaut(), (512, 512)
    return decode_photo(item.path)


# ------------------------------------------------------------------------------------------------ outputs


def output_targets(items: list[ImageInput], output: str | None, several: bool) -> tuple[dict[int, Path], Path | None]:
    """({item index: output file}, output folder or None).

    ``output`` is a folder when it ends with a path separator, is an existing folder, or there are several
    images; else one picture file. Several images and a picture file name (``out.jpg``) is an error rather than
    a folder named ``out.jpg``.
    """
    if output is None:
        return {}, None
    text = os.fspath(output)
    path = Path(text)
    folder = text.endswith(("/", os.sep)) or path.is_dir()
    if several and not folder:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise OutputError(
                f"output {display_path(text)} names one picture, but there are {len(items)} images: "
                "give a folder (a name ending in /)"
            )
        folder = True
    if not folder:
        check_image_type(path)
        return {0: path}, None
    return annotated_names(items, path), path


def annotated_names(items: list[ImageInput], folder: Path) -> dict[int, Path]:
    """``<stem>_annotated.jpg`` in ``folder`` for each input, numbered when two inputs share a stem."""
    targets, used = {}, set()
    for i, item in enumerate(items):
        name = f"{item.stem}_annotated.jpg"
        n = 2
        while name in used:  # a.png and a.jpg in one run
            name = f"{item.stem}_annotated_{n}.jpg"
            n += 1
        used.add(name)
        targets[i] = folder / name
    return targets


def check_outputs(inputs: ImageInputs, targets: dict[int, Path], folder: Path | None) -> None:
    """Before any work: no output is one of the inputs (nor the output folder an input folder), and every output
    can be written. Raises OutputError."""
    sources = [item.path for item in inputs.items if item.path is not None] + list(inputs.folders)
    refuse_overwriting_inputs([*([folder] if folder is not None else []), *targets.values()], sources)
    if folder is not None:
        check_writable(folder, folder=True)
    for target in targets.values():
        if folder is None:
            check_writable(target)


# ------------------------------------------------------------------------------------------------ reports


def describe(name: str, detections: list[Detection]) -> list[str]:
    """Readable lines for one image, one per face."""
    if not detections:
        return [f"{name}: no faces"]
    lines = []
    for i, d in enumerate(detections, 1):
        x, y, w, h = d.xywh
        lines.append(
            f"{name}: face {i}/{len(detections)} at x={x} y={y} {w}x{h}: "
            f"{label_text(d.class_name, d.probability)} (face score {d.score:.2f})"
        )
    return lines


# ---------------------------------------------------------------------------------------------------- run


class PhotoRun:
    """The photos one by one: detect, report, save and show; counts what was done and what failed."""

    def __init__(self, args: argparse.Namespace, inputs: ImageInputs, targets: dict[int, Path], show: bool):
        self.args = args
        self.targets = targets
        self.show = show
        # A lone input that cannot be decoded is the run's error (exit 2), not a skipped file.
        self.lone = len(inputs.items) == 1 and not inputs.problems
        self.failed = len(inputs.problems)
        self.done = 0
        self.pipeline: MaskPipeline | None = None

    def detect(self, item: ImageInput) -> PhotoResult:
        rgb, full_shape = read_photo(item)
        if self.pipeline is None:  # loaded once the first photo decodes: bad inputs fail fast
            a = self.args
            self.pipeline = load_pipeline(
                a.model,
                a.face_confidence,
                a.mask_threshold,
                detect_size=a.detect_size,
                threads=a.threads,
                upscale=a.upscale,
                warn=cli.warn,
            )
        return detect_photo(self.pipeline, rgb, full_shape)

    def process(self, index: int, item: ImageInput) -> None:
        try:
            result = self.detect(item)
        except ImageDecodeError as exc:
            if self.lone:
                raise
            self.skip(str(exc))
            return
        except (MemoryError, cv2.error) as exc:
            # One photo too large for this machine (or one OpenCV cannot handle) must not end a folder run.
            reason = (
                "out of memory"
                if isinstance(exc, MemoryError)
                else (f"OpenCV failed ({exception_line(exc, last=True)})")
            )
            self.skip(f"{item.name}: {reason}")
            return
        self.done += 1
        self.report(item, result)
        if index in self.targets or self.show:
            assert self.pipeline is not None  # loaded by the detect() that just gave the result
            annotate(result.bgr, result.detections, self.pipeline.class_names)
        if index in self.targets and not self.save(self.targets[index], result.bgr):
            return
        if self.show:
            self.show = show_until_key(item.name, result.bgr)

    def skip(self, message: str) -> None:
        cli.warn(f"skipped: {message}")
        self.failed += 1

    def report(self, item: ImageInput, result: PhotoResult) -> None:
        if self.args.json:
            cli.say(json.dumps(result.to_json(item.name)))
        else:
            for line in describe(item.name, result.reported):
                cli.say(line)

    def save(self, target: Path, bgr: np.ndarray) -> bool:
        try:
            write_image(target, bgr)
        except MaskDetectionError as exc:
            cli.warn(str(exc))
            self.failed += 1
            return False
        if not self.args.json:
            cli.say(f"saved {display_path(target)}")
        return True


def choose_display(output: str | None, several: bool) -> tuple[bool, str | None, bool]:
    """(show a window, output, several): without a display, annotated images go to the output folder."""
    show, why = display_available()
    if not show:
        if output is None:
            output, several = DEFAULT_OUTPUT_DIR, True
        cli.warn(f"no display ({why}): not showing a window; annotated images go to {display_path(output)}")
    return show, output, several


def main(argv: list[str] | None = None) -> int:
    """Outputs are checked (never one of the inputs, writable) before any work; the model loads only once the
    first image has decoded, so bad inputs fail fast."""
    args = parse_args(argv)
    inputs = ImageInputs([ImageInput(DEMO_NAME, None)]) if args.demo else expand_inputs(args.image, warn=cli.warn)
    output, several = args.output, len(inputs.items) > 1 or bool(inputs.folders)
    show = False
    if not (args.no_display or args.json):
        show, output, several = choose_display(output, several)
    if args.demo and output is None:  # the demo always saves its picture
        output, several = DEFAULT_OUTPUT_DIR, True
    targets, folder = output_targets(inputs.items, output, several)
    check_outputs(inputs, targets, folder)
    for message in inputs.problems:
        cli.warn(f"skipped: {message}")
    run = PhotoRun(args, inputs, targets, show)
    try:
        for index, item in enumerate(inputs.items):
            run.process(index, item)
    finally:
        if show:
            close_windows()
    if run.done == 0:
        cli.fail("no image could be processed")
        return cli.EXIT_ERROR
    return cli.EXIT_PARTIAL if run.failed else cli.EXIT_OK


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
