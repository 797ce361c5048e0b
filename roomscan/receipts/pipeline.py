"""Photo to :class:`~roomscan.receipts.result.Receipt`: load, pre-process, OCR, lay out, extract.

Example:
    >>> from roomscan.receipts import ReceiptReader
    >>> reader = ReceiptReader(engine="tesseract")          # doctest: +SKIP
    >>> receipt = reader.read("lunch.jpg")                  # doctest: +SKIP
    >>> receipt.total, receipt.check.total_ok               # doctest: +SKIP
    (Decimal('18.40'), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from roomscan.detection.image import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from roomscan.receipts.fields import extract_fields
from roomscan.receipts.layout import Line, group_lines
from roomscan.receipts.ocr import OcrEngine, Word, get_engine
from roomscan.receipts.orient import looks_upright, reading_score, turn
from roomscan.receipts.preprocess import PreprocessConfig, preprocess
from roomscan.receipts.result import Receipt

__all__ = ["ReceiptReader", "Scan", "annotate_words"]

# Below this many readable characters an image is not a receipt (blank, a photo of something else).
MIN_TEXT_CHARS = 8


@dataclass(frozen=True)
class Scan:
    """Everything one read produced: the receipt, the image OCR saw, its words and lines (for drawing, debugging)."""

    receipt: Receipt
    image: np.ndarray
    words: tuple[Word, ...]
    lines: tuple[Line, ...]
    steps: tuple[str, ...]


class ReceiptReader:
    """Reads receipts with one OCR engine, loaded once and reused.

    Args:
        engine: ``"rapidocr"``, ``"tesseract"``, an :class:`~roomscan.receipts.ocr.OcrEngine`, or ``None`` for the
            default.
        preprocess: which clean-up steps run.
        date_order: ``"dmy"``/``"mdy"`` for ambiguous numeric dates; ``None`` uses the receipt's evidence.
        max_pixels: refuse larger photos (decompression-bomb guard).
    """

    def __init__(
        self,
        engine: str | OcrEngine | None = None,
        *,
        preprocess: PreprocessConfig | None = None,
        date_order: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if date_order not in (None, "dmy", "mdy"):
            raise ValueError(f"date_order must be 'dmy' or 'mdy', got {date_order!r}")
        self.engine = get_engine(engine)
        self.preprocess = preprocess or PreprocessConfig()
        self.date_order = date_order
        self.max_pixels = max_pixels

    def read(
        self,
        source: str | os.PathLike[str] | bytes | LoadedImage | Image.Image,
        *,
        debug_dir: str | Path | None = None,
    ) -> Receipt:
        """Read one receipt; see :meth:`scan` for the arguments and errors."""
        return self.scan(source, debug_dir=debug_dir).receipt

    def scan(
        self,
        source: str | os.PathLike[str] | bytes | LoadedImage | Image.Image,
        *,
        debug_dir: str | Path | None = None,
    ) -> Scan:
        """Read one receipt and keep the intermediate results.

        Args:
            source: a path, the file's bytes, a :class:`~roomscan.detection.image.LoadedImage` or a PIL image.
            debug_dir: save each pre-processing step's image and the annotated words there.

        Raises:
            ImageError: the file is missing, not an image, corrupt, or too large.
            OcrError: the engine failed.

        An image with no readable text gives an empty receipt (every confidence 0), never an error.
        """
        if isinstance(source, Image.Image):
            image, name = source.convert("RGB"), None
        else:
            loaded = (
                source if isinstance(source, LoadedImage) else load_image(source, max_pixels=self.max_pixels)
            )
            image, name = loaded.image, loaded.name
        prepared = preprocess(np.asarray(image), self.preprocess, debug_dir=debug_dir)
        page, words, steps = self._read_upright(prepared.image, prepared.steps)
        lines = group_lines(words)
        if sum(len(w.text) for w in words) < MIN_TEXT_CHARS:
            receipt = Receipt(raw_text="\n".join(line.text for line in lines))
        else:
            receipt = extract_fields(lines, date_order=self.date_order)
        receipt = replace(receipt, source=name, engine=self.engine.name)
        if debug_dir:
            annotate_words(page, words).save(Path(debug_dir) / "99_words.png")
        return Scan(receipt, page, tuple(words), tuple(lines), steps)

    def _read_upright(
        self, image: np.ndarray, steps: tuple[str, ...]
    ) -> tuple[np.ndarray, list[Word], tuple[str, ...]]:
        """OCR ``image``; when the read does not look upright, also the other quarter turns, and keep the best.

        A landscape page (wider than tall after clean-up) tries the sideways turns first; the first turn that
        reads upright ends the search, so an upright receipt costs one read.
        """
        words = [w for w in self.engine.read(image) if w.text.strip()]
        if not self.preprocess.orient or looks_upright(words):
            return image, words, steps
        best = (reading_score(words), 0, image, words)
        sideways_first = image.shape[1] > image.shape[0] * 1.2
        for quarter in (1, 3, 2) if sideways_first else (2, 1, 3):
            turned = turn(image, quarter)
            candidate = [w for w in self.engine.read(turned) if w.text.strip()]
            if looks_upright(candidate):
                best = (float("inf"), quarter, turned, candidate)
                break
            best = max(best, (reading_score(candidate), quarter, turned, candidate), key=lambda b: b[0])
        _, quarter, page, words = best
        return page, words, (*steps, f"turn{quarter * 90}") if quarter else steps


def annotate_words(image: np.ndarray, words: list[Word] | tuple[Word, ...]) -> Image.Image:
    """The image with each word's box drawn, green when confident, orange below 0.8, red below 0.5."""
    from PIL import ImageDraw

    out = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(out)
    for word in words:
        colour = (
            (26, 127, 55)
            if word.confidence >= 0.8
            else (179, 89, 0)
            if word.confidence >= 0.5
            else (207, 34, 46)
        )
        draw.rectangle(word.box, outline=colour, width=2)
    return out
