"""images.py: decoding by content, modes, EXIF orientation, the pad-and-resize rule."""

import io

import numpy as np
import pytest
from PIL import Image

from mask_detection.errors import ImageDecodeError
from mask_detection.images import IMAGE_EXTENSIONS, decode_image, list_images, to_model_input


def save(img, path, fmt, **kwargs):
    img.save(path, fmt, **kwargs)
    return path


def test_png_named_jpg_decodes_by_content(tmp_path):
    colour = (10, 200, 30)
    path = save(Image.new("RGB", (40, 30), colour), tmp_path / "photo.jpg", "PNG")
    rgb = decode_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (30, 40, 3)
    assert (rgb == colour).all()  # PNG is lossless: exact colour


def test_webp_and_bytes_source(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 20, 20)).save(buffer, "WEBP", lossless=True)
    rgb = decode_image(buffer.getvalue())
    assert rgb.shape == (10, 20, 3)
    assert (rgb == (200, 20, 20)).all()


def test_rgba_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    img.putpixel((0, 0), (255, 0, 0, 255))  # one opaque red pixel
    img.putpixel((1, 0), (0, 0, 255, 128))  # half transparent blue
    rgb = decode_image(save(img, tmp_path / "a.png", "PNG"))
    assert tuple(rgb[1, 3]) == (255, 255, 255)
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    r, g, b = (int(v) for v in rgb[0, 1])
    assert 120 <= r <= 135 and 120 <= g <= 135 and b == 255


def test_la_and_palette_with_transparency(tmp_path):
    la = Image.new("LA", (3, 3), (0, 0))
    assert (decode_image(save(la, tmp_path / "la.png", "PNG")) == 255).all()

    palette = Image.new("P", (3, 3), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    rgb = decode_image(save(palette, tmp_path / "p.png", "PNG", transparency=0))
    assert tuple(rgb[0, 0]) == (255, 255, 255)
    assert tuple(rgb[1, 1]) == (0, 255, 0)


def test_palette_grayscale_bilevel_cmyk(tmp_path):
    palette = Image.new("RGB", (8, 8), (0, 0, 255)).convert("P")
    assert (decode_image(save(palette, tmp_path / "p.gif", "GIF")) == (0, 0, 255)).all()
    gray = Image.new("L", (5, 7), 77)
    rgb = decode_image(save(gray, tmp_path / "g.png", "PNG"))
    assert rgb.shape == (7, 5, 3) and (rgb == 77).all()
    bilevel = Image.new("1", (5, 5), 1)
    assert (decode_image(save(bilevel, tmp_path / "b.png", "PNG")) == 255).all()
    cmyk = Image.new("CMYK", (6, 6), (0, 0, 0, 0))
    assert (decode_image(save(cmyk, tmp_path / "c.jpg", "JPEG", quality=100)) >= 250).all()


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png", "PNG")
    assert Image.open(path).mode.startswith("I")
    rgb = decode_image(path)
    assert rgb[0, :, 0].tolist() == [0, 100, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save(img, tmp_path / "rot.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    rgb = decode_image(path)
    assert rgb.shape == (40, 20, 3)  # portrait after orientation
    top, bottom = rgb[5, 10], rgb[35, 10]
    assert top[2] > 200 and top[0] < 60  # former left half (blue) is now on top
    assert bottom[0] > 200 and bottom[2] < 60


def test_large_jpeg_draft_keeps_at_least_max_side(tmp_path):
    path = save(Image.new("RGB", (2000, 1200), (90, 90, 90)), tmp_path / "big.jpg", "JPEG")
    full = decode_image(path)
    small = decode_image(path, max_side=224)
    assert full.shape == (1200, 2000, 3)
    assert min(small.shape[:2]) >= 224 and small.shape[0] < 1200


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty"),
        (b"hello, this is a text file\n", "not a recognised image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13\x37" * 40, None),  # JPEG header then garbage
    ],
)
def test_undecodable_raises_with_path(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    message = str(info.value)
    assert message.startswith(f"cannot decode {path}: ")
    assert "\n" not in message
    if reason:
        assert reason in message


def test_truncated_png_and_missing_file(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageDecodeError):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match="no such file"):
        decode_image(tmp_path / "nothing.png")
    with pytest.raises(ImageDecodeError, match="not a file"):
        decode_image(tmp_path)


def test_to_model_input_keeps_aspect_by_edge_replication():
    # 100 wide x 50 high: left half red, right half blue.
    rgb = np.zeros((50, 100, 3), np.uint8)
    rgb[:, :50] = (255, 0, 0)
    rgb[:, 50:] = (0, 0, 255)
    out = to_model_input(rgb, 100)
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    # The image band sits in the middle (rows 25..74); padding replicates its top and bottom rows, so
    # every row is red on the left and blue on the right: no black bars, no stretched halves.
    assert (out[:, :48] == (255, 0, 0)).all()
    assert (out[:, 52:] == (0, 0, 255)).all()
    assert not (out == 0).all(axis=2).any()


def test_to_model_input_vertical_padding_replicates_edge_rows():
    rgb = np.zeros((20, 10, 3), np.uint8)  # tall: pad left and right
    rgb[:, 0] = (0, 255, 0)  # left column green
    rgb[:, -1] = (255, 255, 0)  # right column yellow
    out = to_model_input(rgb, 20)  # square side 20: no resize, pure padding
    assert (out[:, :6] == (0, 255, 0)).all()  # 5 padded columns + the original left column
    assert (out[:, 14:] == (255, 255, 0)).all()
    assert (out[:, 6:14] == 0).all()


def test_to_model_input_enlarge_shrink_and_tiny():
    one = np.array([[[12, 34, 56]]], np.uint8)
    out = to_model_input(one, 224)
    assert out.shape == (224, 224, 3) and (out == (12, 34, 56)).all()
    wide = np.full((400, 6000, 3), 99, np.uint8)
    out = to_model_input(wide, 224)
    assert out.shape == (224, 224, 3) and (out == 99).all()
    gradient = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    out = to_model_input(gradient, 64)  # INTER_AREA: averages, stays monotonic along the row
    assert (np.diff(out[32, :, 0].astype(int)) >= 0).all()
    with pytest.raises(ValueError):
        to_model_input(np.zeros((0, 5, 3), np.uint8))


def test_list_images(tmp_path):
    for name in ["b.JPG", "a.png", ".hidden.jpg", "notes.txt", "c.webp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.webp"]
    assert ".gif" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS
    with pytest.raises(ImageDecodeError):
        list_images(tmp_path / "missing")


def test_decode_photo_bounds_the_longer_side_and_reports_the_full_size(tmp_path):
    from mask_detection.images import decode_photo

    img = Image.new("RGB", (5000, 3000), (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, 2500, 3000))  # left half blue
    path = save(img, tmp_path / "wide.jpg", "JPEG", quality=90)
    rgb, full = decode_photo(path, limit_side=1000)
    assert full == (3000, 5000)
    assert rgb.shape == (600, 1000, 3)
    assert rgb[300, 100, 2] > 150 and rgb[300, 900, 0] > 150  # not mirrored or turned
    # EXIF "rotate 90 CW": the full size is the turned one, as the picture is shown.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(img, tmp_path / "turned.jpg", "JPEG", exif=exif.tobytes())
    rgb, full = decode_photo(path, limit_side=1000)
    assert full == (5000, 3000) and rgb.shape == (1000, 600, 3)
    # Small photos come back whole.
    rgb, full = decode_photo(save(Image.new("RGB", (40, 30)), tmp_path / "s.png", "PNG"), limit_side=1000)
    assert full == (30, 40) and rgb.shape == (30, 40, 3)


def test_list_images_warns_about_broken_links_and_loops(tmp_path):
    save(Image.new("RGB", (8, 8)), tmp_path / "a.png", "PNG")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "x.jpg").symlink_to(tmp_path / "y.jpg")
    (tmp_path / "y.jpg").symlink_to(tmp_path / "x.jpg")
    heard = []
    assert [p.name for p in list_images(tmp_path, warn=heard.append)] == ["a.png"]
    assert heard == [
        f"skipped {tmp_path}/gone.jpg: a broken link",
        f"skipped {tmp_path}/x.jpg: a link loop",
        f"skipped {tmp_path}/y.jpg: a link loop",
    ]


def test_shrink_to_side_keeps_the_aspect_and_leaves_smaller_pictures_alone():
    from mask_detection.images import shrink_to_side

    wide = np.zeros((1000, 3000, 3), np.uint8)
    wide[:, 1500:] = 200  # right half light
    small = shrink_to_side(wide, 600)
    assert small.shape == (200, 600, 3)
    assert (small[:, :290] == 0).all() and (small[:, 310:] == 200).all()  # not mirrored, not stretched
    assert shrink_to_side(np.zeros((7, 5000, 3), np.uint8), 100).shape == (1, 100, 3)  # never 0 px
    same = np.zeros((300, 200, 3), np.uint8)
    assert shrink_to_side(same, 300) is same and shrink_to_side(same, 1000) is same
