from __future__ import annotations

import random

import pytest

from roomscan.receipts.fonts import HELD_OUT_FONTS, TUNED_FONTS, FontMissingError, load_font
from roomscan.receipts.synth import make_receipt, render


@pytest.mark.parametrize("name", [*TUNED_FONTS, *HELD_OUT_FONTS])
def test_every_named_font_is_installed(name):
    # scripts/setup.sh installs them; a machine without one fails here, by name, not in a receipt test
    assert load_font(name, 20).getname()[0]


@pytest.mark.parametrize(
    ("font", "package"),
    [
        ("liberation/LiberationMono-Regular.ttf", "fonts-liberation"),
        ("dejavu/DejaVuSansMono.ttf", "fonts-dejavu-core"),
        ("dejavu/DejaVuSansCondensed.ttf", "fonts-dejavu-extra"),
        ("freefont/FreeMono.ttf", "fonts-freefont-ttf"),
    ],
)
def test_a_missing_font_is_an_error_naming_its_package_never_a_fallback(tmp_path, monkeypatch, font, package):
    monkeypatch.setenv("ROOMSCAN_FONT_DIR", str(tmp_path))
    load_font.cache_clear()
    try:
        with pytest.raises(FontMissingError, match=f"apt-get install {package}$"):
            render(make_receipt(random.Random(0), fonts=(font,)))
    finally:
        load_font.cache_clear()


def test_the_same_seed_draws_the_same_receipt():
    a, b = make_receipt(random.Random(5)), make_receipt(random.Random(5))
    assert a == b and render(a).tobytes() == render(b).tobytes()
