"""Which way up a page is, from what OCR read on it: upright, sideways or upside down.

Pre-processing levels the text modulo a quarter turn (:func:`~roomscan.receipts.preprocess.estimate_skew`);
what is left is a turn of 0, 90, 180 or 270 degrees, and only reading tells them apart. An upright receipt's
words are wider than tall, read confidently, and its prices stand at the right end of their lines; a sideways
page gives tall word boxes, and an upside-down one (read by an engine that flips each text line, like PP-OCR's
angle classifier) puts its prices on the left. :func:`reading_score` measures that, so the reader can keep the
quarter turn that reads best, trying the others only when the first read does not look upright.

Example:
    >>> score = reading_score(engine.read(image))          # doctest: +SKIP
    >>> upright = looks_upright(engine.read(image))         # doctest: +SKIP
"""

from __future__ import annotations

import re

import numpy as np

from roomscan.receipts.layout import group_lines
from roomscan.receipts.ocr import Word

__all__ = ["looks_upright", "reading_score", "turn"]

_PRICE = re.compile(r"^\D{0,4}\d{1,4}[.,]\d{2}\D{0,4}$")


def _price_sides(words: list[Word]) -> tuple[int, int]:
    """(lines whose price stands right of the rest, lines whose price stands left of it)."""
    right = left = 0
    for line in group_lines(words):
        if len(line.words) < 2:
            continue
        prices = [i for i, w in enumerate(line.words) if _PRICE.match(w.text)]
        if not prices or len(prices) == len(line.words):
            continue
        right += prices[-1] == len(line.words) - 1
        left += prices[0] == 0 and prices[-1] != len(line.words) - 1
    return right, left


def reading_score(words: list[Word]) -> float:
    """How well the page read, upright: confident characters in wide boxes, halved when prices stand left."""
    wide = [w for w in words if (w.box[2] - w.box[0]) >= (w.box[3] - w.box[1]) or len(w.text) <= 1]
    score = sum(w.confidence * len(w.text) for w in wide if w.confidence >= 0.5)
    right, left = _price_sides(words)
    return score * (0.5 if left > right else 1.0)


def looks_upright(words: list[Word]) -> bool:
    """Whether a read needs no second try: mostly wide, confident words, and prices on the right if any."""
    long = [w for w in words if len(w.text) >= 3]
    if len(long) < 3:
        return True  # too little text to judge (a blank or nearly blank image): nothing to gain by turning
    wide = sum((w.box[2] - w.box[0]) >= (w.box[3] - w.box[1]) for w in long) / len(long)
    confident = float(np.mean([w.confidence for w in long]))
    right, left = _price_sides(words)
    # measured on generated receipts: upright reads 0.76-0.95 confident (Tesseract, photos), turned ones 0.1-0.5
    return wide >= 0.6 and confident >= 0.6 and right >= left


def turn(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """``image`` turned clockwise by ``quarter_turns`` x 90 degrees (``[h, w, c]`` in, a contiguous copy out)."""
    return np.ascontiguousarray(np.rot90(image, k=-(quarter_turns % 4)))
