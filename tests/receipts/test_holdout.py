"""The held-out split is fixed: the same receipts on every machine and run, with ground truth for each."""

from __future__ import annotations

import json

import pytest

from roomscan.receipts.fonts import HELD_OUT_FONTS, TUNED_FONTS
from roomscan.receipts.holdout import TEMPLATES, write_holdout


def test_held_out_split_is_deterministic_and_uses_only_held_out_fonts(tmp_path):
    first = write_holdout(tmp_path / "a")
    second = write_holdout(tmp_path / "b")
    assert len(first) == 3 * len(TEMPLATES)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    for path in first:
        truth = json.loads(path.with_suffix(".json").read_text())
        assert truth["font"] in HELD_OUT_FONTS and truth["font"] not in TUNED_FONTS
        assert {"merchant", "date", "currency", "total", "items", "text"} <= set(truth)


def test_unknown_condition_is_refused(tmp_path):
    with pytest.raises(ValueError, match="clean, degraded, rotated"):
        write_holdout(tmp_path, condition="blurry")
