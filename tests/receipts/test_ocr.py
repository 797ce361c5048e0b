"""Contract: every engine reads a clean receipt into words with boxes inside the image and confidences 0..1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from roomscan.receipts.evaluate import cer
from roomscan.receipts.ocr import ENGINES, OcrError, get_engine


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    return get_engine(request.param)


def test_engine_reads_words_with_boxes(engine, clean_receipts):
    image = np.asarray(Image.open(clean_receipts[0]).convert("RGB"))
    words = engine.read(image)
    text = " ".join(w.text for w in words)
    truth = json.loads(clean_receipts[0].with_suffix(".json").read_text())
    assert truth["merchant"] in text and cer(text, truth["text"]) < 0.25  # loose: words come in no set order
    h, w = image.shape[:2]
    for word in words:
        x0, y0, x1, y1 = word.box
        assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
        assert 0.0 <= word.confidence <= 1.0 and word.text


def test_engine_on_a_blank_image_reads_nothing(engine):
    assert engine.read(np.full((200, 150, 3), 255, np.uint8)) == []


def test_unknown_engine_names_the_choices():
    with pytest.raises(OcrError, match="rapidocr, tesseract"):
        get_engine("abbyy")


def test_missing_tesseract_binary_says_how_to_install(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(OcrError, match="apt-get install tesseract-ocr tesseract-ocr-eng"):
        get_engine("tesseract")
