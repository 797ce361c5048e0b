from __future__ import annotations

import io

import pytest
from PIL import Image

from roomscan.detection.image import load_image, sniff_image_format
from roomscan.errors import ImageError


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    # 40x20 stored sideways with EXIF orientation 6 ("rotate 90 CW to display"): upright it is 20x40.
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = load_image(encode(img, "JPEG", exif=exif))
    assert (photo.width, photo.height) == (20, 40)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_any_mode_becomes_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    photo = load_image(encode(Image.new(mode, (8, 6)), fmt))
    assert photo.image.mode == "RGB" and photo.image.size == (8, 6)


def test_transparent_png_is_composited_on_white():
    photo = load_image(encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG"))
    assert photo.image.getpixel((0, 0)) == (255, 255, 255)


def test_path_and_bytes_give_the_same_photo_and_hash(tmp_path):
    data = encode(Image.new("RGB", (10, 10), "blue"), "PNG")
    (tmp_path / "a.png").write_bytes(data)
    a, b = load_image(tmp_path / "a.png"), load_image(data)
    assert a.sha256 == b.sha256 and a.format == b.format == "PNG"


def _truncated_png() -> bytes:
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    return data[: len(data) // 2]


def _corrupt_jpeg() -> bytes:
    data = bytearray(encode(Image.new("RGB", (64, 64), "red"), "JPEG"))
    data[4:60] = b"\x00" * 56  # keep the JPEG magic, wreck the segments after it
    return bytes(data)


def _bomb_png() -> bytes:
    # 20000x20000 but tiny on disk: a single-colour image compresses to almost nothing.
    return encode(Image.new("1", (20000, 20000)), "PNG")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text pretending to be a jpg", "not an image"),
        (_truncated_png(), "truncated"),
        (_corrupt_jpeg(), "corrupt"),
        (_bomb_png(), "megapixels, over the limit"),
        (b"%PDF-1.4 not a photo", "not an image"),
    ],
    ids=["zero-bytes", "text-named-jpg", "truncated-png", "corrupt-jpeg", "decompression-bomb", "pdf"],
)
def test_bad_input_is_a_clear_image_error_naming_the_file(data, message):
    with pytest.raises(ImageError, match=message) as info:
        load_image(data, name="kitchen.jpg")
    assert "kitchen.jpg" in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_unaccepted_format_names_what_is_accepted():
    data = encode(Image.new("RGB", (4, 4)), "ICO")
    with pytest.raises(ImageError):
        load_image(data)


def test_sniffing_reads_bytes_not_names():
    assert sniff_image_format(encode(Image.new("RGB", (2, 2)), "WEBP")) == "WEBP"
    assert sniff_image_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_image_format(b"GIF89a...") == "GIF"
    assert sniff_image_format(b"<html>") is None
