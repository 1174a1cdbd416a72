"""Image decoding and the one resize rule shared by the loader and detection.

Files are decoded by content (Pillow sniffs the format), never by extension: the reference data has
PNG and WebP files named ``.jpg``, RGBA and palette PNGs, grayscale and 16-bit pictures.
"""

import errno
import io
import os
import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps

from . import INPUT_SIZE
from .errors import ImageDecodeError, OutputError
from .fileio import atomic_path, display_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# Padding a very long, thin picture to a square before resizing can need gigabytes (20000 x 100 ->
# 20000^2 x 3 bytes). Above this side the picture is first shrunk, aspect kept, to this side.
_MAX_PAD_SIDE = 4096

ImageSource = str | os.PathLike | bytes | bytearray | memoryview

_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

# Photos larger than this (longer side) are decoded at reduced size for detection: a 12000 x 12000 photo took
# 12.8 GB at full size, while YuNet finds faces from about 10 px, so at 4096 px only faces under about 0.25%
# of the photo's side are lost.
MAX_PHOTO_SIDE = 4096


def _decode_error(path_text: str, reason: str) -> ImageDecodeError:
    exc = ImageDecodeError(f"cannot decode {path_text}: {reason}")
    exc.path = path_text
    exc.reason = reason
    return exc


def _short_reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[-1] if lines else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def quiet_opencv_logs() -> None:
    """Silence OpenCV's own log lines, process-wide (OpenCV's log level is global; this is the one place it is set).

    Every failure they describe (DNN back-end notices such as "Targets are not supported by the new graph engine",
    camera probing's "Camera index out of range", FFmpeg's "No JPEG data found") reaches the user as one clear
    line of ours instead; some of them are logged at ERROR level, so SILENT is the level that keeps output clean.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def decode_image(source: ImageSource, max_side: int | None = None) -> np.ndarray:
    """Decode a path or bytes to an RGB uint8 HxWx3 array (EXIF orientation applied).

    ``max_side`` is an optional hint: the caller only needs about that many pixels on the short side,
    so large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (never below ``max_side``), which is much
    faster and smaller. Raises ImageDecodeError for anything that is not a readable picture.
    """
    return _decode(source, draft_side=max_side)[0]


def decode_photo(
    source: ImageSource, limit_side: int = MAX_PHOTO_SIDE, max_pixels: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB uint8 array, (height, width) of the full picture): a photo bounded to ``limit_side`` on its longer side.

    ``max_pixels``: a picture whose header announces more pixels is refused before any of it is decoded (an
    upload that would take gigabytes: a decompression bomb).

    A 12000 x 12000 photo would take gigabytes to decode and far more to run detection on; above
    ``limit_side`` the picture is decoded at reduced JPEG scale where possible, then shrunk (aspect kept).
    Callers scale what they find by ``full size / returned size`` to report it in the original's pixels.
    """
    rgb, full_size = _decode(source, draft_side=limit_side, limit_side=limit_side, max_pixels=max_pixels)
    return rgb, full_size


def _decode(
    source: ImageSource, draft_side: int | None = None, limit_side: int | None = None, max_pixels: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    opener: Callable[[], BinaryIO]
    if isinstance(source, (bytes, bytearray, memoryview)):
        path_text = "<bytes>"
        data = bytes(source)
        if not data:
            raise _decode_error(path_text, "empty data")
        opener = lambda: io.BytesIO(data)  # noqa: E731
    else:
        path_text = display_path(source)
        path = Path(os.fspath(source))
        try:
            if not path.is_file():
                raise _decode_error(path_text, "no such file" if not path.exists() else "not a file")
            if path.stat().st_size == 0:
                raise _decode_error(path_text, "empty file")
        except OSError as exc:
            raise _decode_error(path_text, _short_reason(exc)) from None
        opener = lambda: open(path, "rb")  # noqa: E731

    try:
        with opener() as stream, warnings.catch_warnings():
            # A DecompressionBombWarning (huge but allowed picture) is not worth a line per file.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(stream)
            stored_width, stored_height = img.size
            if max_pixels is not None and stored_width * stored_height > max_pixels:
                raise _decode_error(
                    path_text, f"too many pixels ({stored_width} x {stored_height}; at most {max_pixels:,} allowed)"
                )
            if draft_side and img.format == "JPEG" and (limit_side is None or max(img.size) > limit_side):
                img.draft("RGB", (int(draft_side), int(draft_side)))
            img.load()
            loaded_size = img.size
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # a broken EXIF block should not lose a readable picture
                pass
            turned = img.size != loaded_size  # a quarter turn swaps the sides
            full_size = (stored_width, stored_height) if turned else (stored_height, stored_width)
            rgb = _to_rgb(img)
            del img
            rgb = shrink_to_side(rgb, limit_side) if limit_side is not None else rgb
    except ImageDecodeError:
        raise
    except (Image.UnidentifiedImageError, Image.DecompressionBombError) as exc:
        reason = "not a recognised image" if isinstance(exc, Image.UnidentifiedImageError) else _short_reason(exc)
        raise _decode_error(path_text, reason) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error) as exc:
        # Pillow's plugins raise a mix of these for truncated or malformed files.
        raise _decode_error(path_text, _short_reason(exc)) from None
    except MemoryError:
        raise _decode_error(path_text, "out of memory while decoding") from None
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise _decode_error(path_text, f"empty picture {rgb.shape}")
    return rgb, full_size


def resize_by(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` with both sides multiplied by ``factor`` (rounded, at least 1 px): INTER_AREA when shrinking (no
    aliasing), INTER_LINEAR when enlarging."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def shrink_to_side(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` shrunk, aspect kept, so that its longer side is ``side``; unchanged when it is not longer.

    The factor is ``side / longer side`` (callers that map boxes back divide by it).
    """
    longer = max(image.shape[:2])
    return resize_by(image, side / longer) if longer > side else image


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8 array; transparency composited on white."""
    mode = img.mode
    if mode in _TRANSPARENT_MODES or "transparency" in img.info:
        # Logos and cut-outs have transparent backgrounds whose hidden colour is arbitrary (often
        # black); white is what a viewer shows.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own I;16 -> L conversion clips at 255 instead of scaling, turning most of a 16-bit
        # picture white; scale by the value range instead.
        values = np.asarray(img)
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            top = float(finite.max()) if finite.size else 0.0
            scale = 255.0 if top <= 1.0 else (1.0 if top <= 255.0 else 255.0 / 65535.0)
            gray = np.clip(np.nan_to_num(values) * scale, 0, 255)
        elif mode.startswith("I;16") or int(values.max(initial=0)) > 255:
            gray = np.clip(values.astype(np.float64) / 257.0, 0, 255)
        else:
            gray = np.clip(values, 0, 255)
        gray = np.rint(gray).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def to_model_input(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """THE resize rule: pad to a centred square by replicating the edge pixels, then resize.

    Keeps the aspect ratio without black bars. cv2.INTER_AREA when shrinking (no aliasing),
    cv2.INTER_LINEAR when enlarging. Returns a C-contiguous uint8 (size, size, 3) array.
    """
    image = np.asarray(rgb)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    image = np.ascontiguousarray(image)
    image = shrink_to_side(image, _MAX_PAD_SIDE)
    height, width = image.shape[:2]
    side = max(height, width)
    top = (side - height) // 2
    left = (side - width) // 2
    if height != width:
        image = cv2.copyMakeBorder(image, top, side - height - top, left, side - width - left, cv2.BORDER_REPLICATE)
    if side == size:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def list_images(folder: str | os.PathLike, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Picture files directly in ``folder`` by extension, sorted by name, hidden files skipped.

    Broken links and link loops cannot be read: each is skipped with one ``warn`` line (when given).
    """
    folder = Path(folder)
    if not folder.is_dir():
        reason = "no such folder" if not folder.exists() else "not a folder"
        raise ImageDecodeError(f"cannot list images in {display_path(folder)}: {reason}")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        try:
            entry.stat()
        except OSError as exc:
            if warn is not None:
                why = (
                    "a link loop"
                    if exc.errno == errno.ELOOP
                    else "a broken link"
                    if entry.is_symlink()
                    else (exc.strerror or str(exc))
                )
                warn(f"skipped {display_path(entry)}: {why}")
            continue
        if entry.suffix.lower() in IMAGE_EXTENSIONS and entry.is_file():
            found.append(entry)
    return found


def check_image_type(path: Path) -> None:
    """Raise OutputError unless OpenCV can write a picture of ``path``'s type (by its suffix)."""
    suffix = Path(path).suffix
    if not suffix or not re.fullmatch(r"\.[A-Za-z0-9]+", suffix) or not cv2.haveImageWriter("x" + suffix):
        raise OutputError(f"cannot write {display_path(path)}: unsupported image type (use .jpg or .png)")


def write_image(path: Path, bgr: np.ndarray) -> None:
    """Encode in memory, then write atomically: a full disk or an unwritable folder is an OutputError."""
    ok, encoded = cv2.imencode(Path(path).suffix or ".jpg", bgr)
    if not ok:
        raise OutputError(f"cannot write {display_path(path)}: OpenCV cannot encode this picture type")
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
