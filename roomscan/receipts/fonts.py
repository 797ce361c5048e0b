"""The fonts generated receipts are drawn with: a fixed list of Debian font packages, never whatever is installed.

A receipt's pixels (and so every test and benchmark built on generated receipts) depend on its font, so the
generator names its fonts exactly and :func:`load_font` refuses to fall back to another one. ``scripts/setup.sh``
installs the packages below.

Example:
    >>> from roomscan.receipts.fonts import TUNED_FONTS, load_font
    >>> font = load_font(TUNED_FONTS[0], 22)      # doctest: +SKIP
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from roomscan.errors import RoomscanError

__all__ = ["FONT_PACKAGES", "HELD_OUT_FONTS", "TUNED_FONTS", "FontMissingError", "font_root", "load_font"]

# Debian package of each font folder under /usr/share/fonts/truetype (Debian 12; scripts/setup.sh installs them)...
FONT_PACKAGES = {
    "dejavu": "fonts-dejavu-core",
    "liberation": "fonts-liberation",
    "freefont": "fonts-freefont-ttf",
}
# ...except the condensed DejaVu faces, which Debian ships separately.
_EXTRA_PACKAGES = {"Condensed": "fonts-dejavu-extra"}
# The fonts the field rules were developed against (roomscan receipt synth, the tests' receipts).
TUNED_FONTS = (
    "dejavu/DejaVuSansMono.ttf",
    "liberation/LiberationMono-Regular.ttf",
    "dejavu/DejaVuSans.ttf",
    "liberation/LiberationSans-Regular.ttf",
    "dejavu/DejaVuSansCondensed.ttf",
    "liberation/LiberationSansNarrow-Regular.ttf",
    "dejavu/DejaVuSansMono-Bold.ttf",
    "liberation/LiberationSans-Bold.ttf",
)
# Fonts only the held-out evaluation split uses (roomscan.receipts.holdout): never looked at while tuning.
HELD_OUT_FONTS = (
    "freefont/FreeMono.ttf",
    "freefont/FreeSans.ttf",
    "freefont/FreeMonoBold.ttf",
    "freefont/FreeSerif.ttf",
    "liberation/LiberationSerif-Regular.ttf",
    "dejavu/DejaVuSerif.ttf",
    "dejavu/DejaVuSerifCondensed.ttf",
)


class FontMissingError(RoomscanError):
    """A font the receipt generator draws with is not installed."""


def font_root() -> Path:
    """Where the font folders live: ``ROOMSCAN_FONT_DIR`` or Debian's ``/usr/share/fonts/truetype``."""
    return Path(os.environ.get("ROOMSCAN_FONT_DIR") or "/usr/share/fonts/truetype")


@lru_cache(maxsize=64)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """The font ``name`` (``folder/file.ttf``, as in :data:`TUNED_FONTS`) at ``size`` pixels.

    Raises:
        FontMissingError: the file is not installed; the message names the Debian package to install.
    """
    path = font_root() / name
    if not path.is_file():
        package = next(
            (pkg for part, pkg in _EXTRA_PACKAGES.items() if part in name),
            FONT_PACKAGES.get(name.split("/", 1)[0], "the package that ships it"),
        )
        raise FontMissingError(
            f"font {path} is not installed; generated receipts need it (no fallback font, so receipts are the "
            f"same on every machine): run scripts/setup.sh or apt-get install {package}"
        )
    return ImageFont.truetype(str(path), size)
