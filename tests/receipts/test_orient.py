"""Sideways and upside-down pages: the reader keeps the quarter turn that reads upright."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import numpy as np
import pytest

from roomscan.receipts.ocr import Word
from roomscan.receipts.orient import looks_upright, reading_score, turn
from roomscan.receipts.synth import degrade, make_receipt, render


def _row(y: float, name: str, price: str, flipped: bool = False) -> list[Word]:
    left, right = (price, name) if flipped else (name, price)
    return [Word(left, (20, y, 120, y + 20), 0.95), Word(right, (300, y, 400, y + 20), 0.95)]


def test_prices_on_the_left_mean_upside_down():
    upright = [w for y in range(0, 200, 30) for w in _row(y, "Coffee", "3.50")]
    flipped = [w for y in range(0, 200, 30) for w in _row(y, "Coffee", "3.50", flipped=True)]
    assert looks_upright(upright) and not looks_upright(flipped)
    assert reading_score(upright) > reading_score(flipped)


def test_tall_word_boxes_mean_sideways():
    sideways = [Word("Coffee", (20, y, 40, y + 100), 0.95) for y in range(0, 600, 120)]
    assert not looks_upright(sideways)


def test_turn():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert turn(image, 1).shape == (3, 2, 1) and turn(image, 1)[0, 0, 0] == 3  # clockwise
    assert (turn(turn(image, 2), 2) == image).all()


@pytest.fixture(scope="module")
def turned_receipt():
    receipt = make_receipt(random.Random(11))
    return receipt.truth, render(receipt)


@pytest.mark.slow
@pytest.mark.parametrize("angle", [90.0, 180.0, 270.0, 35.0, -28.0, 196.0])
def test_reads_a_receipt_photographed_at_any_angle(tesseract_reader, turned_receipt, angle):
    truth, image = turned_receipt
    photo = degrade(image, np.random.default_rng(int(angle) % 360), angle=angle)
    receipt = tesseract_reader.read(photo)
    assert receipt.total == Decimal(truth["total"]), json.dumps(receipt.to_dict()["raw_text"])
    assert receipt.merchant == truth["merchant"]
