"""Dataset formats, one module each, read and written symmetrically: ``read(...) -> DetectionDataset`` and
``write(dataset, ...)``."""

from __future__ import annotations

from roomscan.data.formats._common import Box, build_dataset, fail, place_images

__all__ = ["Box", "build_dataset", "fail", "place_images"]
