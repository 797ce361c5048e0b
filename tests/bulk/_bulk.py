"""Helpers of the bulk-job tests (imported by basename: the test tree has no packages)."""

from __future__ import annotations

import io

from _models import make_image

# Thresholds 0: the tiny random model reports detections on any photo.
DETECTOR_OPTIONS = {"score_threshold": 0.0}


def jpeg(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """A small distinct JPEG per ``seed``."""
    buf = io.BytesIO()
    make_image(size, seed).save(buf, "JPEG")
    return buf.getvalue()
