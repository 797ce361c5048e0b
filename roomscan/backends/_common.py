"""What every torch backend does the same way: pick a device, batch, and turn raw boxes into ``Detections``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import numpy as np

from roomscan.detection.core import Detections, make_detections
from roomscan.taxonomy import Taxonomy

T = TypeVar("T")

DEFAULT_MAX_DETECTIONS = 100


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Load weights for inference without transformers' chatter.

    Its per-tensor "Loading weights" bar and notices (e.g. that an image processor falls back to its PIL twin
    without torchvision) mean nothing to someone detecting amenities; the CLI shows its own spinner. Downloads
    are unaffected: huggingface_hub draws their progress.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def resolve_device(device: str | None) -> str:
    """``auto`` (or ``None``) is ``cuda`` when a GPU is visible, else ``cpu``; anything else passes through.

    Raises:
        ValueError: ``cuda`` was asked for and torch sees no GPU.
    """
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch sees no CUDA GPU; use --device cpu")
    return str(device)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_images(images: Sequence[Any]) -> None:
    from PIL import Image

    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"image #{i} is a {type(image).__name__}, not a PIL image (load it with load_image)"
            )


def class_thresholds(taxonomy: Taxonomy, score_threshold: float | None) -> np.ndarray:
    """Per-class minimum scores ``[n_classes]``: the taxonomy's, or ``score_threshold`` for every class."""
    if score_threshold is None:
        return np.array([a.threshold for a in taxonomy], dtype=np.float32)
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must be between 0 and 1, got {score_threshold}")
    return np.full(len(taxonomy), score_threshold, dtype=np.float32)


def finalize(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    taxonomy: Taxonomy,
    thresholds: np.ndarray,
    image_size: tuple[int, int],
    model_key: str,
    nms_threshold: float | None,
    max_detections: int,
) -> Detections:
    """Clip boxes to the image, apply per-class thresholds, class-aware NMS and the top-k cap.

    Args:
        xyxy: boxes ``[n, 4]`` in image pixels (may stick out of the image).
        scores: ``[n]`` in ``[0, 1]``.
        class_ids: taxonomy indices ``[n]``.
        image_size: ``(width, height)``.

    Returns:
        Detections sorted by score, highest first; ``metadata`` holds ``image_size`` and ``model``.
    """
    width, height = image_size
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    # Boxes that lie wholly in the padding (OWLv2) or outside the image collapse to zero area when clipped.
    keep = (scores >= thresholds[class_ids]) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    order = np.flatnonzero(keep)
    order = order[np.argsort(-scores[order], kind="stable")]
    slugs = np.array(taxonomy.slugs, dtype=object)
    dets = make_detections(
        xyxy[order],
        scores[order],
        class_ids[order],
        slugs[class_ids[order]],
        metadata={"image_size": (int(width), int(height)), "model": model_key},
    )
    if nms_threshold is not None and len(dets) > 1:
        dets = dets.with_nms(threshold=nms_threshold, class_agnostic=False)
        dets = cast(Detections, dets[np.argsort(-np.asarray(dets.confidence), kind="stable")])
    return cast(Detections, dets[:max_detections]) if len(dets) > max_detections else dets
