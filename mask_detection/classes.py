"""The class registry: each class a model can name, with its display text, colour and dataset aliases.

Adding a class (e.g. ``mask_weared_incorrect`` as a model class) is one entry here plus training data; drawing,
readable output and evaluation take every class from here. Classes a model names that are not registered are
shown under their own name with a palette colour.
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassInfo:
    name: str  # as models and JSON name it
    display: str  # as people read it: "Mask"
    colour: tuple[int, int, int]  # BGR, for OpenCV drawing
    aliases: tuple[str, ...] = ()  # other names annotation tools and data sets use for it


WITH_MASK = "with_mask"
WITHOUT_MASK = "without_mask"
INCORRECT_MASK = "mask_weared_incorrect"

REGISTRY: dict[str, ClassInfo] = {
    info.name: info
    for info in (
        ClassInfo(WITH_MASK, "Mask", (0, 190, 0), ("mask", "with-mask", "masked")),
        ClassInfo(WITHOUT_MASK, "No mask", (0, 0, 230), ("no_mask", "without-mask", "nomask", "unmasked")),
        ClassInfo(
            INCORRECT_MASK,
            "Mask worn wrongly",
            (0, 140, 255),
            ("mask_worn_incorrectly", "mask_worn_incorrect", "incorrect_mask"),
        ),
    )
}

# Colours for classes that are not registered, by their index in the model's class list.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 130, 0),
    (0, 170, 255),
    (200, 0, 200),
    (0, 200, 200),
    (255, 80, 80),
    (120, 120, 255),
    (80, 200, 120),
    (160, 160, 160),
)

_ALIASES = {alias: info.name for info in REGISTRY.values() for alias in (info.name, *info.aliases)}


def canonical_name(name: str) -> str:
    """The registered name for ``name`` or one of its aliases (case-insensitive); other names unchanged."""
    return _ALIASES.get(name.strip().lower(), name)


def class_info(name: str, class_names: Sequence[str] = ()) -> ClassInfo:
    """The registry entry of ``name``, or a made-up one (its own name, a palette colour) for other classes."""
    if name in REGISTRY:
        return REGISTRY[name]
    names = list(class_names)
    index = names.index(name) if name in names else sum(name.encode("utf-8", "replace"))
    return ClassInfo(name, name, PALETTE[index % len(PALETTE)])


def label_text(name: str, probability: float) -> str:
    """What a face's label reads, e.g. "Mask 98.7%" (overlay and readable output alike)."""
    return f"{class_info(name).display} {probability * 100:.1f}%"
