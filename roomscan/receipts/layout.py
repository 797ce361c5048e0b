"""Words into text lines and columns, following the page's skew so an item's name and its price stay paired.

The skew comes from the engine's own baseline angles when it reports them (PP-OCR), otherwise from the slope
between neighbouring words. Word centres are rotated level by that angle, then grouped into lines by their
height-normalised vertical distance; within a line, words sort left to right and split into cells at wide gaps.

Example:
    >>> lines = group_lines(words)                   # doctest: +SKIP
    >>> lines[7].text, lines[7].cells                # doctest: +SKIP
    ('Croissant 4.28', ('Croissant', '4.28'))
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from roomscan.receipts.ocr import Word

__all__ = ["Line", "estimate_angle", "group_lines"]


@dataclass(frozen=True)
class Line:
    """One text line, words left to right.

    Attributes:
        words: the words, in reading order.
        cells: the line's text split at wide horizontal gaps (left column, ..., right column).
    """

    words: tuple[Word, ...]
    cells: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def confidence(self) -> float:
        return min((w.confidence for w in self.words), default=0.0)


def estimate_angle(words: list[Word], max_angle: float = 15.0) -> float:
    """The page's text angle in degrees (image y down, so positive means lines fall to the right)."""
    angles = [w.angle for w in words if w.angle is not None and len(w.text) >= 3]
    if len(angles) >= 3:
        return float(np.median(angles))
    if len(words) < 2:
        return 0.0
    # No engine angles: the angle at which the words fall into the fewest, tightest lines.
    centres = np.array([w.centre for w in words])  # [n_words, 2]
    typical = float(np.median([w.height for w in words])) or 1.0

    def cost(angle: float) -> tuple[int, float]:
        theta = math.radians(angle)
        y = np.sort(-centres[:, 0] * math.sin(theta) + centres[:, 1] * math.cos(theta))
        breaks = np.diff(y) > 0.5 * typical
        spread = float(np.diff(y)[~breaks].sum()) if len(y) > 1 else 0.0
        return int(breaks.sum()), spread

    coarse = min(np.arange(-max_angle, max_angle + 0.01, 0.5), key=lambda a: (*cost(a), abs(a)))
    return float(min(np.arange(coarse - 0.5, coarse + 0.51, 0.1), key=lambda a: (*cost(a), abs(a))))


def group_lines(words: list[Word], angle: float | None = None, gap_factor: float = 1.5) -> list[Line]:
    """Group ``words`` into lines top to bottom, following ``angle`` (estimated when ``None``).

    Args:
        words: OCR output, any order.
        angle: the page's text angle in degrees; see :func:`estimate_angle`.
        gap_factor: a horizontal gap wider than this many text heights starts a new cell.
    """
    if not words:
        return []
    angle = estimate_angle(words) if angle is None else angle
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # Coordinates in the page's frame: rotate every centre by -angle so lines are level.
    levelled = [
        (w, w.centre[0] * cos + w.centre[1] * sin, -w.centre[0] * sin + w.centre[1] * cos) for w in words
    ]
    levelled.sort(key=lambda t: t[2])
    heights = np.array([w.height for w in words])
    typical = float(np.median(heights)) or 1.0

    rows: list[list[tuple[Word, float, float]]] = []
    for item in levelled:
        _, _, y = item
        if rows:
            row_y = float(np.median([r[2] for r in rows[-1]]))
            if abs(y - row_y) <= 0.5 * typical:
                rows[-1].append(item)
                continue
        rows.append([item])

    lines = []
    for row in rows:
        row.sort(key=lambda t: t[1])
        cells: list[list[str]] = [[row[0][0].text]]
        for (prev, px, _), (word, x, _) in itertools.pairwise(row):
            if _gap(prev, px, word, x) > gap_factor * typical:
                cells.append([word.text])
            else:
                cells[-1].append(word.text)
        lines.append(Line(tuple(t[0] for t in row), tuple(" ".join(c) for c in cells)))
    return lines


def _gap(prev: Word, px: float, word: Word, x: float) -> float:
    """The gap between ``prev``'s right edge and ``word``'s left edge, along the levelled line."""
    return (x - (word.box[2] - word.box[0]) / 2) - (px + (prev.box[2] - prev.box[0]) / 2)
