"""Drawing detections: boxes in per-amenity colours, captions, the input photo left untouched."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from roomscan.detection import make_detections
from roomscan.detection.draw import annotate, captions
from roomscan.taxonomy import default_taxonomy


@pytest.fixture
def dets():
    return make_detections(
        [[10, 10, 80, 60], [100, 30, 190, 90], [5, 5, 40, 40]],
        [0.9, 0.31, 0.5],
        [10, 15, 10],
        ["gas-stove", "oven", "gas-stove"],
    )


def test_draws_on_a_copy_of_the_same_size(dets):
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    out = annotate(image, dets)
    assert out.size == image.size and out.mode == "RGB"
    assert np.asarray(image).min() == 255  # input untouched
    changed = np.any(np.asarray(out) != 255, axis=-1)
    assert changed[10, 10:80].any() and changed[30:90, 190].any()  # box edges drawn


def test_colour_follows_the_amenity(dets):
    out = np.asarray(annotate(Image.new("RGB", (200, 100), (255, 255, 255)), dets))
    # Left edges of the two gas-stove boxes share a colour; the oven box has another.
    assert tuple(out[50, 10]) == tuple(out[30, 5])
    assert tuple(out[70, 100]) != tuple(out[50, 10])


def test_captions_say_label_and_score(dets):
    assert captions(dets) == ["gas-stove 0.90", "oven 0.31", "gas-stove 0.50"]
    assert captions(dets, default_taxonomy())[0] == "Gas stove 0.90"


def test_no_detections_returns_the_photo_unchanged():
    image = Image.new("L", (30, 20), 128)
    out = annotate(image, make_detections(np.zeros((0, 4)), [], [], []))
    assert out.mode == "RGB" and np.asarray(out).min() == 128


def test_large_photo_gets_thicker_lines(dets):
    small = np.asarray(annotate(Image.new("RGB", (200, 100), (255, 255, 255)), dets))
    big_dets = make_detections(dets.xyxy * 20, dets.confidence, dets.class_id, list(dets.data["class_name"]))
    big = np.asarray(annotate(Image.new("RGB", (4000, 2000), (255, 255, 255)), big_dets))
    thickness = lambda img, y, x0: int(np.sum(np.any(img[y, x0 - 20 : x0 + 20] != 255, axis=-1)))
    assert thickness(big, 1000, 200) > thickness(small, 50, 10)
