"""Helpers for the CLI tests: a photo file, and running the CLI in-process."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from roomscan.cli import main


def photo(path: Path, seed: int = 0, size=(96, 72)) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype="uint8")).save(path, "JPEG")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
