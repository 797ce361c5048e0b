"""Load photos safely: from a path or bytes, EXIF orientation applied, converted to RGB, size-guarded.

Every failure raises :class:`~roomscan.errors.ImageError` with a message that names the input and says what was
wrong, so the CLI and the API can show it as is.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from roomscan.errors import ImageError

# 50 megapixels: above any phone or DSLR listing photo (a 48 MP phone shot is 8064x6048) and far below what a
# decompression bomb declares. Checked from the header, before any pixel is decoded.
DEFAULT_MAX_PIXELS = 50_000_000

# Formats we accept, by what Pillow reports after reading the header (never by file name).
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
# File suffixes worth trying when scanning a folder for photos (the bytes still decide).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Magic numbers of the accepted formats, for sniffing uploads before handing bytes to a decoder.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"WEBP", 8, "WEBP"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)

ImageFile.LOAD_TRUNCATED_IMAGES = False

__all__ = ["ACCEPTED_FORMATS", "DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "LoadedImage", "load_image", "sniff_image_format"]


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo ready for a detector.

    Attributes:
        image: the pixels, RGB, upright (EXIF orientation applied).
        format: the container format Pillow detected (``JPEG``, ``PNG``...).
        sha256: hex digest of the original bytes: the photo's identity in the catalog.
        name: where it came from (a path or an upload's file name), for messages.
        data: the original bytes, kept so the catalog stores exactly what was uploaded.
    """

    image: Image.Image
    format: str
    sha256: str
    name: str
    data: bytes

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def sniff_image_format(data: bytes) -> str | None:
    """The image format named by the first bytes of ``data``, or ``None`` when it is not one we accept."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, offset, fmt in _MAGIC:
        if fmt != "WEBP" and data[offset : offset + len(magic)] == magic:
            return fmt
    return None


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Read and decode one photo.

    Args:
        source: a file path, or the file's bytes.
        name: how to name the input in messages (defaults to the path, or ``"upload"``).
        max_pixels: refuse images whose header declares more pixels than this (decompression bombs).

    Raises:
        ImageError: missing or unreadable file, empty input, not an image, a format we do not accept,
            corrupt or truncated data, or too many pixels.

    Example:
        >>> photo = load_image("kitchen.jpg")  # doctest: +SKIP
        >>> photo.image.mode, photo.format
        ('RGB', 'JPEG')
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "upload"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise ImageError(f"{label}: no such file; check the path", "missing")
        if path.is_dir():
            raise ImageError(f"{label}: is a directory, not an image file", "missing")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{label}: cannot be read ({exc.strerror or exc}); check its permissions", "unreadable") from exc

    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes); upload the photo again", "empty")
    if sniff_image_format(data) is None:
        raise ImageError(
            f"{label}: not an image roomscan can read (its bytes are not JPEG, PNG, WebP, GIF, BMP or TIFF, "
            "whatever its name says)",
            "not_image",
        )

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or "unknown"
            width, height = probe.size
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not a readable image (the data is corrupt or not an image)", "corrupt") from exc
    except Image.DecompressionBombError as exc:
        # Pillow refuses headers of over ~179 MP itself, before our own (lower) limit gets a look.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageError(
            f"{label}: {size}, over the limit of {max_pixels / 1e6:.0f}; resize the photo "
            "(this guard stops decompression bombs)",
            "too_large",
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label}: the image header is corrupt ({exc})") from exc

    if fmt not in ACCEPTED_FORMATS:
        raise ImageError(f"{label}: {fmt} images are not accepted; use JPEG, PNG or WebP", "unsupported")
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: the image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f}; resize the photo (this guard stops decompression bombs)",
            "too_large",
        )

    try:
        with Image.open(io.BytesIO(data)) as checker:
            checker.verify()  # checksums and structure (PNG CRCs, chunk layout) without decoding twice
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
    except Image.DecompressionBombError as exc:  # pragma: no cover - guarded above
        raise ImageError(f"{label}: image is too large to decode safely", "too_large") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        text = str(exc)
        what = "truncated" if "truncated" in text.lower() else "corrupt"
        raise ImageError(f"{label}: the {fmt} data is {what} ({text}); re-export or re-upload the photo", what) from exc

    image: Image.Image = decoded
    try:
        image = ImageOps.exif_transpose(decoded)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose an otherwise good photo
        pass
    return LoadedImage(
        image=_to_rgb(image),
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        name=label,
        data=data,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white (how a page shows the photo)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits rather than clipping everything to white.
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        top = arr.max() or 1.0
        return Image.fromarray((arr / top * 255.0).astype("uint8")).convert("RGB")
    return image.convert("RGB")
