"""PASCAL VOC annotation files (as labelImg and the public mask data sets write them), read with defusedxml.

Object names go through the class registry's aliases, so ``mask`` / ``no_mask`` style names count as the
registered classes.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from ..boxes import XYWH, clip_gt_box, to_xywh
from ..classes import REGISTRY, canonical_name
from ..errors import DatasetError
from ..fileio import display_path

# Every registered class, in registry order (the order of the report's tables).
SCENE_CLASSES: tuple[str, ...] = tuple(REGISTRY)


class AnnotationError(DatasetError):
    """A VOC file, or one <object> of it, that cannot be used (malformed XML, missing fields, empty boxes)."""


@dataclass(frozen=True)
class GroundTruth:
    """One annotated face."""

    xywh: XYWH  # floats, clipped to the image when its size is known
    label: str  # the registered class name (aliases mapped)


@dataclass(frozen=True)
class Annotation:
    """One VOC file."""

    xml_path: Path
    filename: str  # the image file named in the XML ("" when it names none)
    width: int  # 0 when the XML gives no size
    height: int
    objects: list[GroundTruth]  # faces of known classes
    unknown: list[GroundTruth]  # faces of other classes (not evaluated)
    bad: tuple[str, ...] = field(default=())  # one message per <object> left out; the file's other faces are kept


def parse_voc(path: str | Path, known_classes: tuple[str, ...] = SCENE_CLASSES) -> Annotation:
    """Read one PASCAL VOC annotation file. Raises AnnotationError with the reason for unusable files.

    Box convention: width = xmax - xmin (as the public mask sets draw them). Objects whose class is not in
    ``known_classes`` go to ``unknown``. An unusable <object> (no <name> or <bndbox>, a coordinate that is not a
    number, an empty box) is left out with its reason in ``bad``; the file's other faces are kept.
    """
    path = Path(path)
    shown = display_path(path.name)
    root = _read_root(path, shown)
    width, height = _image_size(root, shown)
    objects: list[GroundTruth] = []
    unknown: list[GroundTruth] = []
    bad: list[str] = []
    for n, element in enumerate(root.iter("object"), 1):
        try:
            name, xywh = _voc_object(element, f"{shown} object {n}")
        except AnnotationError as exc:
            bad.append(f"{exc}; that object is left out")
            continue
        if width > 0 and height > 0:
            xywh = clip_gt_box(xywh, width, height)
        (objects if name in known_classes else unknown).append(GroundTruth(xywh, name))
    return Annotation(path, _text(root, "filename") or "", width, height, objects, unknown, tuple(bad))


def _read_root(path: Path, shown: str) -> Element:
    """The <annotation> element of ``path``; AnnotationError for unreadable, malformed or unsafe XML."""
    try:
        root = SafeElementTree.parse(path).getroot()
    except SafeElementTree.ParseError as exc:
        raise AnnotationError(f"{shown}: malformed XML ({exc})") from None
    except DefusedXmlException as exc:  # entity declarations, external references: never in a VOC file
        raise AnnotationError(f"{shown}: refused, XML with entities or external references ({exc!r})") from None
    except OSError as exc:
        raise AnnotationError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding declaration Python does not know
        raise AnnotationError(f"{shown}: malformed XML ({exc})") from None
    assert root is not None  # a parsed document has its root element (the stubs' parse() does not say so)
    if root.tag != "annotation":
        raise AnnotationError(f"{shown}: not a PASCAL VOC file (root element <{root.tag}>, expected <annotation>)")
    return root


def _image_size(root: Element, shown: str) -> tuple[int, int]:
    """(width, height) from <size>, (0, 0) when the file gives none."""
    size = root.find("size")
    if size is None or _text(size, "width") is None or _text(size, "height") is None:
        return 0, 0
    return int(_number(size, "width", f"{shown} <size>")), int(_number(size, "height", f"{shown} <size>"))


def _voc_object(element: Element, where: str) -> tuple[str, XYWH]:
    """(class name, (x, y, w, h)) of one <object>; AnnotationError when it cannot be used."""
    raw_name = _text(element, "name")
    if not raw_name:
        raise AnnotationError(f"{where}: missing <name>")
    where = f"{where} ({raw_name})"  # as the file spells it
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise AnnotationError(f"{where}: missing <bndbox>")
    x0, y0, x1, y1 = (_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
    if x1 <= x0 or y1 <= y0:
        raise AnnotationError(f"{where}: empty box xmin={x0:g} ymin={y0:g} xmax={x1:g} ymax={y1:g}")
    return canonical_name(raw_name), to_xywh((x0, y0, x1, y1))


def _text(element: Element, tag: str) -> str | None:
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _number(element: Element, tag: str, where: str) -> float:
    text = _text(element, tag)
    if text is None:
        raise AnnotationError(f"{where}: missing <{tag}>")
    try:
        return finite_number(text)
    except ValueError as exc:
        raise AnnotationError(f"{where}: <{tag}> is {exc} ({text[:20]!r})") from None


def finite_number(text: str) -> float:
    """``text`` as a finite float; ValueError saying "not a number" or "not a finite number" otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value
