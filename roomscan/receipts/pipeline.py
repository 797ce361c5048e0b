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
        words = [w for w in self.engine.read(prepared.image) if w.text.strip()]
        lines = group_lines(words)
        if sum(len(w.text) for w in words) < MIN_TEXT_CHARS:
            receipt = Receipt(raw_text="\n".join(line.text for line in lines))
        else:
            receipt = extract_fields(lines, date_order=self.date_order)
        receipt = replace(receipt, source=name, engine=self.engine.name)
        if debug_dir:
            annotate_words(prepared.image, words).save(Path(debug_dir) / "99_words.png")
        return Scan(receipt, prepared.image, tuple(words), tuple(lines), prepared.steps)


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
