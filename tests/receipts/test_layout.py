from __future__ import annotations

import math

import pytest

from roomscan.receipts.layout import estimate_angle, group_lines
from roomscan.receipts.ocr import Word

ROWS = [("Coffee", "3.50"), ("Croissant", "4.28"), ("SUBTOTAL", "7.78"), ("TOTAL", "7.78")]


def page(angle_deg: float, with_angles: bool) -> list[Word]:
    """Two columns 400 px apart, rows 30 px apart, rotated about the origin by ``angle_deg``."""
    a = math.radians(angle_deg)
    words = []
    for row, (name, price) in enumerate(ROWS):
        for x, text in ((20, name), (420, price)):
            y = 40 + row * 30
            cx, cy = x * math.cos(a) - y * math.sin(a) + 100, x * math.sin(a) + y * math.cos(a) + 100
            words.append(
                Word(text, (cx - 40, cy - 10, cx + 40, cy + 10), 0.9, angle_deg if with_angles else None)
            )
    return words[::-1]


@pytest.mark.parametrize("angle", [0.0, 3.0, -5.0])
@pytest.mark.parametrize("with_angles", [True, False])
def test_items_pair_with_their_prices_on_a_rotated_page(angle, with_angles):
    # At 5 degrees the price column sits 35 px (more than a line) lower than its item: only skew-aware grouping
    # keeps each name with its own price.
    lines = group_lines(page(angle, with_angles))
    assert [line.cells for line in lines] == [tuple(row) for row in ROWS]


def test_angle_estimate_from_word_positions():
    assert estimate_angle(page(-4.0, with_angles=False)) == pytest.approx(-4.0, abs=0.5)


def test_no_words_no_lines():
    assert group_lines([]) == []
