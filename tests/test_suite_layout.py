"""The test tree has no packages, so pytest imports test modules by basename: two files with one name break the
whole run at collection. Catch it here with a message instead."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_module_basenames_are_unique():
    root = Path(__file__).parent
    names = Counter(p.name for p in root.rglob("*.py") if p.name != "conftest.py")
    assert not [n for n, c in names.items() if c > 1], "rename one of each pair of same-named test modules"
