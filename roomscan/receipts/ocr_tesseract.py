"""Tesseract through pytesseract's ``image_to_data``: word boxes and confidences, one page block (``--psm 6``)."""

from __future__ import annotations

import os
import shutil

import numpy as np

from roomscan.receipts.ocr import OcrEngine, OcrError, Word

INSTALL_HINT = "install it with: apt-get install tesseract-ocr tesseract-ocr-eng"


class TesseractEngine(OcrEngine):
    """Tesseract 4/5 (LSTM), English. ``--psm 6`` reads the receipt as one uniform block of text lines.

    Args:
        lang: Tesseract language code(s).
        config: extra command-line flags.
        threads: OpenMP threads per call (1 is fastest when several calls share a few cores).
    """

    name = "tesseract"

    def __init__(self, lang: str = "eng", config: str = "--psm 6", threads: int = 1) -> None:
        try:
            import pytesseract
        except ImportError as exc:
            raise OcrError(
                "the tesseract engine needs pytesseract: pip install 'roomscan[receipts]'"
            ) from exc
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise OcrError(f"the tesseract program is not installed; {INSTALL_HINT}")
        self._tess = pytesseract
        self.lang, self.config = lang, config
        os.environ.setdefault("OMP_THREAD_LIMIT", str(threads))

    def read(self, image: np.ndarray) -> list[Word]:
        try:
            data = self._tess.image_to_data(
                image, lang=self.lang, config=self.config, output_type=self._tess.Output.DICT
            )
        except self._tess.TesseractNotFoundError as exc:
            raise OcrError(f"the tesseract program is not installed; {INSTALL_HINT}") from exc
        except self._tess.TesseractError as exc:
            hint = f"; {INSTALL_HINT}" if "traineddata" in str(exc) else ""
            raise OcrError(f"tesseract failed: {exc}{hint}") from exc
        words = []
        for text, conf, x, y, w, h in zip(
            data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"], strict=True
        ):
            text = str(text).strip()
            if not text or float(conf) < 0:
                continue
            words.append(Word(text, (float(x), float(y), float(x + w), float(y + h)), float(conf) / 100.0))
        return words
