from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from roomscan.receipts.preprocess import PreprocessConfig, estimate_skew, find_paper, preprocess


def test_finds_the_paper_on_a_table_and_flattens_it(degraded_receipts, tmp_path):
    photo = np.asarray(Image.open(degraded_receipts[0]).convert("RGB"))
    out = preprocess(photo, debug_dir=tmp_path)
    assert "paper" in out.steps
    assert (
        out.image.shape[0] * out.image.shape[1] < photo.shape[0] * photo.shape[1] * 0.8
    )  # table cropped away
    assert min(p.name for p in tmp_path.iterdir()) == "01_input.png"


def test_a_flat_scan_is_not_cropped(clean_receipts):
    gray = np.asarray(Image.open(clean_receipts[0]).convert("L"))
    assert find_paper(gray) is None


@pytest.mark.parametrize("angle", [-6.0, 0.0, 4.0])
def test_skew_estimate(clean_receipts, angle):
    gray = Image.open(clean_receipts[1]).convert("L").rotate(angle, expand=True, fillcolor=255)
    assert estimate_skew(np.asarray(gray)) == pytest.approx(-angle, abs=0.6)


def test_every_step_can_be_switched_off(clean_receipts):
    photo = np.asarray(Image.open(clean_receipts[0]).convert("RGB"))
    out = preprocess(photo, PreprocessConfig(find_paper=False, deskew=False, normalise=False))
    assert out.steps == () and out.image.shape == photo.shape


@pytest.mark.parametrize("shape", [(1, 1), (5, 300), (64, 64)])
def test_tiny_and_blank_images_pass_through(shape):
    out = preprocess(np.full((*shape, 3), 255, np.uint8))
    assert out.image.ndim == 3


@pytest.mark.parametrize("angle", [90.0, 270.0, 95.0, 30.0, -40.0])
def test_skew_estimate_on_a_short_page_at_any_angle(angle):
    # A short, wide page turned sideways once looked 39 degrees tilted (row variance rewarded its outline's
    # diagonal); the skew is the angle modulo a quarter turn, so sideways is 0 and 95 is -5.
    import dataclasses
    import random

    from roomscan.receipts.synth import make_receipt, render

    receipt = make_receipt(random.Random(3))
    short = render(dataclasses.replace(receipt, lines=receipt.lines[:9]), width=560).convert("L")
    expected = (-angle + 45) % 90 - 45
    gray = np.asarray(short.rotate(angle, expand=True, fillcolor=255))
    assert estimate_skew(gray) == pytest.approx(expected, abs=0.6)
