"""The OCR engine interface: an RGB image in, words with boxes and confidences out.

Engines live one per module (``ocr_tesseract.py``, ``ocr_rapid.py``) and are chosen by name through
:func:`get_engine`, which imports an engine's heavy dependencies only when it is asked for.

Example:
    >>> from roomscan.receipts.ocr import get_engine
    >>> engine = get_engine("tesseract")                     # doctest: +SKIP
    >>> words = engine.read(rgb_array)                       # doctest: +SKIP
    >>> words[0].text, words[0].box, words[0].confidence     # doctest: +SKIP
    ('TOTAL', (28.0, 590.0, 96.0, 611.0), 0.96)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from roomscan.errors import RoomscanError

__all__ = ["DEFAULT_ENGINE", "ENGINES", "OcrEngine", "OcrError", "Word", "get_engine"]

# Chosen by measurement (benchmarks/bench_receipts.py --n 40, idle 2-core CPU): PP-OCR (RapidOCR) read 100% of
# totals on degraded photos at 0.76 s/receipt, CER 0.2%; Tesseract 95% at 0.29 s, CER 3.4%, and far fewer items.
# Both meet the 1 s target, so accuracy decides; --engine tesseract when throughput matters more.
DEFAULT_ENGINE = "rapidocr"
ENGINES = ("rapidocr", "tesseract")


class OcrError(RoomscanError):
    """An OCR engine is unknown, not installed, or failed on an image."""


@dataclass(frozen=True)
class Word:
    """A word (or a run of words an engine read as one) where it lies on the image.

    Attributes:
        text: what was read, never empty.
        box: ``(x0, y0, x1, y1)`` pixels on the image the engine was given, axis-aligned.
        confidence: 0..1.
        angle: the text's baseline angle in degrees (clockwise positive, image y down) when the engine measures
            it, else ``None``; layout uses it to follow a slightly rotated page.
    """

    text: str
    box: tuple[float, float, float, float]
    confidence: float
    angle: float | None = None

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class OcrEngine(ABC):
    """One OCR engine. Subclasses implement :meth:`read` only; load models lazily or in ``__init__``."""

    name: str = "engine"

    @abstractmethod
    def read(self, image: np.ndarray) -> list[Word]:
        """Words on ``image`` (``[h, w, 3]`` uint8 RGB), in no particular order; ``[]`` when there is no text."""


def get_engine(engine: str | OcrEngine | None = None) -> OcrEngine:
    """An OCR engine by name (``rapidocr``, ``tesseract``), an instance as is, or the default for ``None``.

    Raises:
        OcrError: unknown name, or the engine is not installed (the message says how to install it).
    """
    if isinstance(engine, OcrEngine):
        return engine
    name = (engine or DEFAULT_ENGINE).strip().lower()
    if name in ("rapidocr", "rapid", "ppocr", "paddle"):
        from roomscan.receipts.ocr_rapid import RapidOcrEngine

        return RapidOcrEngine()
    if name == "tesseract":
        from roomscan.receipts.ocr_tesseract import TesseractEngine

        return TesseractEngine()
    raise OcrError(f"unknown OCR engine {engine!r}; choose one of {', '.join(ENGINES)}")
