"""Receipt photos to structured expense data, offline: pre-processing, OCR, layout, fields, evaluation.

Example:
    >>> from roomscan.receipts import ReceiptReader
    >>> receipt = ReceiptReader().read("receipt.jpg")         # doctest: +SKIP
    >>> receipt.to_dict()["total"]                            # doctest: +SKIP
    '44.76'
"""

from __future__ import annotations

from roomscan.receipts.ocr import DEFAULT_ENGINE, ENGINES, OcrEngine, OcrError, Word, get_engine
from roomscan.receipts.pipeline import ReceiptReader, Scan
from roomscan.receipts.preprocess import PreprocessConfig
from roomscan.receipts.result import ArithmeticCheck, LineItem, Receipt, TaxLine

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ArithmeticCheck",
    "LineItem",
    "OcrEngine",
    "OcrError",
    "PreprocessConfig",
    "Receipt",
    "ReceiptReader",
    "Scan",
    "TaxLine",
    "Word",
    "get_engine",
]
