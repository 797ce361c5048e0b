"""Generated receipts for the receipt tests: a handful, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomscan.receipts.synth import write_receipts


@pytest.fixture(scope="session")
def clean_receipts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_receipts(tmp_path_factory.mktemp("clean"), 3, seed=100)


@pytest.fixture(scope="session")
def degraded_receipts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_receipts(tmp_path_factory.mktemp("degraded"), 3, seed=200, degraded=True)


@pytest.fixture(scope="session")
def tesseract_reader():
    from roomscan.receipts import ReceiptReader

    return ReceiptReader("tesseract")
