"""Scene folders: every PASCAL VOC file paired with its photo, and every problem found on the way.

A scenes folder is DIR/annotations + DIR/images, or the XML files beside the images. Unusable files are listed by
kind in ``SceneSet.problems``, not raised, so a whole folder is read even when a few files are broken.
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError, ImageDecodeError
from ..fileio import display_path, safe_text
from ..images import IMAGE_EXTENSIONS, list_images
from .voc import SCENE_CLASSES, Annotation, AnnotationError, parse_voc

# The kinds of annotation problems, in the report's order.
PROBLEM_KINDS = ("malformed", "missing_image", "unknown_class", "bad_box")


@dataclass(frozen=True)
class SceneSet:
    items: list[tuple[Annotation, Path]]  # (annotation, its image), sorted by annotation file name
    problems: dict[str, list[str]]  # kind (PROBLEM_KINDS) -> one-line messages
    unannotated_images: list[Path]  # image files that no annotation names


def scene_folders(scenes_dir: str | Path) -> tuple[Path, Path]:
    """(annotations folder, images folder): DIR/annotations + DIR/images, or XML files beside the images."""
    scenes_dir = Path(scenes_dir)
    if not scenes_dir.exists():
        raise DatasetError(f"scenes folder not found: {display_path(scenes_dir)}")
    if not scenes_dir.is_dir():
        raise DatasetError(f"scenes path is not a folder: {display_path(scenes_dir)}")
    annotations = scenes_dir / "annotations" if (scenes_dir / "annotations").is_dir() else scenes_dir
    images = scenes_dir / "images" if (scenes_dir / "images").is_dir() else scenes_dir
    return annotations, images


def load_scene_set(scenes_dir: str | Path, known_classes: tuple[str, ...] = SCENE_CLASSES) -> SceneSet:
    """Pair every VOC file with its image. Unusable files are listed in ``problems``, not raised.

    Raises DatasetError when the folder is missing or holds no annotation files, or when none is usable.
    """
    annotations_dir, images_dir = scene_folders(scenes_dir)
    xml_files = _annotation_files(scenes_dir, annotations_dir)
    problems: dict[str, list[str]] = {kind: [] for kind in PROBLEM_KINDS}
    items = []
    for xml_path in xml_files:
        item = _pair_with_image(xml_path, images_dir, known_classes, problems)
        if item is not None:
            items.append(item)
    if not items:
        first = next((m for kind in problems.values() for m in kind), "")
        raise DatasetError(
            f"no usable annotation in {display_path(annotations_dir)} ({len(xml_files)} files; first problem: {first})"
        )
    return SceneSet(items, problems, _unannotated_images(images_dir, {image.resolve() for _, image in items}))


def scene_inputs(scene_set: SceneSet) -> list[Path]:
    """Every file a scenes run reads: the annotation files and their images."""
    return [path for annotation, image in scene_set.items for path in (annotation.xml_path, image)]


def _annotation_files(scenes_dir: str | Path, annotations_dir: Path) -> list[Path]:
    try:
        # Not only regular files: a broken link or a link loop named *.xml is reported, not passed over.
        xml_files = sorted(p for p in annotations_dir.iterdir() if p.suffix.lower() == ".xml" and not p.is_dir())
    except OSError as exc:
        raise DatasetError(f"cannot read {display_path(annotations_dir)}: {exc.strerror or exc}") from None
    if not xml_files:
        raise DatasetError(
            f"no PASCAL VOC annotation files (*.xml) in {display_path(annotations_dir)}: expected "
            f"{display_path(scenes_dir)}/images and {display_path(scenes_dir)}/annotations"
        )
    return xml_files


def _pair_with_image(
    xml_path: Path, images_dir: Path, known_classes: tuple[str, ...], problems: dict[str, list[str]]
) -> tuple[Annotation, Path] | None:
    """(annotation, image), or None with the reason added to ``problems``; the file's own problems too."""
    shown = display_path(xml_path.name)
    try:
        annotation = parse_voc(xml_path, known_classes)
    except AnnotationError as exc:
        problems["malformed"].append(safe_text(exc))
        return None
    image_path = _find_image(images_dir, annotation)
    if image_path is None:
        named = annotation.filename or f"{xml_path.stem}.*"
        problems["missing_image"].append(f"{shown}: image {safe_text(named)} not found in {display_path(images_dir)}")
        return None
    problems["bad_box"].extend(safe_text(message) for message in annotation.bad)
    for unknown in annotation.unknown:
        problems["unknown_class"].append(
            f"{shown}: unknown class {safe_text(repr(unknown.label))} (known: {', '.join(known_classes)}); "
            f"that face is not evaluated"
        )
    return annotation, image_path


def _find_image(images_dir: Path, annotation: Annotation) -> Path | None:
    """The image an annotation describes: its <filename>, else any image with the XML's stem."""
    if annotation.filename:
        named = images_dir / Path(annotation.filename).name
        if named.is_file():
            return named
    stems = [Path(annotation.filename).stem] if annotation.filename else []
    stems.append(annotation.xml_path.stem)
    for stem in stems:
        for ext in IMAGE_EXTENSIONS:
            for candidate in (images_dir / f"{stem}{ext}", images_dir / f"{stem}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def _unannotated_images(images_dir: Path, used: set[Path]) -> list[Path]:
    if not images_dir.is_dir():
        return []
    try:
        return [p for p in list_images(images_dir) if p.resolve() not in used]
    except (ImageDecodeError, OSError):  # only counted in the report: not worth stopping the run for
        return []
