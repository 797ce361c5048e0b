"""The central detection type and image loading, shared by every backend and consumer."""

from __future__ import annotations

from roomscan.detection.core import (
    LABEL_KEY,
    Detections,
    detections_from_records,
    detections_to_records,
    labels_of,
    make_detections,
)
from roomscan.detection.image import DEFAULT_MAX_PIXELS, LoadedImage, load_image, sniff_image_format

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LABEL_KEY",
    "Detections",
    "LoadedImage",
    "detections_from_records",
    "detections_to_records",
    "labels_of",
    "load_image",
    "make_detections",
    "sniff_image_format",
]
