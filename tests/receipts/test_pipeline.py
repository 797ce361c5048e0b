from __future__ import annotations

import io
import json
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image

from roomscan.errors import ImageError
from roomscan.receipts import ReceiptReader


def truth(path):
    return json.loads(path.with_suffix(".json").read_text())


@pytest.mark.parametrize("which", ["clean_receipts", "degraded_receipts"])
def test_reads_totals_of_generated_receipts(which, request, tesseract_reader, tmp_path):
    paths = request.getfixturevalue(which)
    right = sum(tesseract_reader.read(p).total == Decimal(truth(p)["total"]) for p in paths)
    assert right >= len(paths) - 1
    tesseract_reader.read(paths[0], debug_dir=tmp_path)
    assert (tmp_path / "99_words.png").exists()


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (400, 600), "white"),  # blank
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)),  # noise
        Image.new("RGB", (2, 2), "black"),  # tiny
    ],
)
def test_not_a_receipt_gives_an_empty_result_never_a_total(tesseract_reader, image):
    receipt = tesseract_reader.read(png(image))
    assert receipt.total is None and receipt.confidence["total"] == 0.0
    assert receipt.items == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt"),
    ],
)
def test_bad_files_raise_a_clear_image_error(tesseract_reader, data, message):
    with pytest.raises(ImageError, match=message):
        tesseract_reader.read(data)


def test_huge_image_is_refused():
    reader = ReceiptReader("tesseract", max_pixels=10_000)
    with pytest.raises(ImageError, match="megapixels"):
        reader.read(png(Image.new("RGB", (200, 200), "white")))


def test_bad_date_order_is_refused():
    with pytest.raises(ValueError, match="dmy"):
        ReceiptReader("tesseract", date_order="ymd")
