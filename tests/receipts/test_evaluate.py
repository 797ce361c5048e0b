from __future__ import annotations

import pytest

from roomscan.errors import RoomscanError
from roomscan.receipts.evaluate import cer, evaluate_folder


@pytest.mark.parametrize(
    ("predicted", "truth", "expected"),
    [
        ("TOTAL 4.00", "TOTAL 4.00", 0.0),
        ("TOTAL  4.00\n", "TOTAL 4.00", 0.0),
        ("TOTAL 4.0O", "TOTAL 4.00", 0.1),
        ("", "abcd", 1.0),
        ("", "", 0.0),
    ],
)
def test_cer(predicted, truth, expected):
    assert cer(predicted, truth) == pytest.approx(expected)


def test_evaluate_scores_every_field(clean_receipts, tesseract_reader):
    report = evaluate_folder(clean_receipts[0].parent, tesseract_reader)
    assert report.n == 3 and report.failures == ()
    assert report.accuracy["total"] >= 2 / 3 and report.cer < 0.1
    assert set(report.accuracy) >= {"merchant", "date", "total", "items"}


def test_a_folder_without_ground_truth_is_a_clear_error(tmp_path, tesseract_reader):
    with pytest.raises(RoomscanError, match="ground truth"):
        evaluate_folder(tmp_path, tesseract_reader)
