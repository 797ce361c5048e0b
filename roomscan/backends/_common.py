"""What every backend does the same way: pick a device, batch, map model classes onto the taxonomy, and turn raw
boxes into ``Detections``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np

from roomscan.detection.core import Detections, make_detections
from roomscan.errors import ModelUnavailableError, TaxonomyError
from roomscan.taxonomy import Taxonomy, load_taxonomy

T = TypeVar("T")
ProbabilityKind = Literal["softmax", "sigmoid"]

DEFAULT_MAX_DETECTIONS = 100
TAXONOMY_FILE = "taxonomy.yaml"

# transformers' object-detection model types trained with softmax cross-entropy and a trailing "no object" class
# (their post-processing takes softmax[..., :-1] and the best class per query). The others in the DETR family
# (RT-DETR, RT-DETRv2, D-FINE, Deformable/Conditional DETR...) use sigmoid focal loss.
SOFTMAX_MODEL_TYPES = frozenset({"detr", "table-transformer", "yolos"})


def probability_kind_of(model_type: str) -> ProbabilityKind:
    """``softmax`` for the DETR model types with a no-object class, ``sigmoid`` for focal-loss ones."""
    return "softmax" if model_type in SOFTMAX_MODEL_TYPES else "sigmoid"


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
    class_probs: np.ndarray,
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
        class_probs: ``[n, len(taxonomy)]`` each box's probability for every amenity; kept in
            ``data["class_probs"]``, aligned with the boxes through thresholds, NMS and the cap.
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
    class_probs = np.asarray(class_probs, dtype=np.float32).reshape(len(scores), len(taxonomy))
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
        class_probs=class_probs[order],
        metadata={"image_size": (int(width), int(height)), "model": model_key},
    )
    if nms_threshold is not None and len(dets) > 1:
        dets = dets.with_nms(threshold=nms_threshold, class_agnostic=False)
        dets = cast(Detections, dets[np.argsort(-np.asarray(dets.confidence), kind="stable")])
    return cast(Detections, dets[:max_detections]) if len(dets) > max_detections else dets


def read_label_map(config: dict[str, Any], trained: Taxonomy, where: Path) -> dict[int, str]:
    """``config.id2label`` as ``{class id: slug}``, checked against the taxonomy the model was trained on."""
    raw = config.get("id2label") or {}
    try:
        id2label = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelUnavailableError(f"{where}/config.json: id2label is malformed ({exc})") from exc
    names, slugs = set(id2label.values()), set(trained.slugs)
    if names != slugs or len(id2label) != len(names):
        problems = []
        if names - slugs:
            problems.append(f"labels not in {TAXONOMY_FILE}: {', '.join(sorted(names - slugs))}")
        if slugs - names:
            problems.append(f"amenities the model has no label for: {', '.join(sorted(slugs - names))}")
        if len(id2label) != len(names):
            problems.append("some labels appear twice")
        raise ModelUnavailableError(
            f"{where}: config.json's id2label and {TAXONOMY_FILE} disagree ({'; '.join(problems)}); write the "
            "directory with roomscan.backends.detr.save_model_dir"
        )
    return id2label


def load_label_taxonomy(
    path: Path,
    name: str,
    config: dict[str, Any],
    taxonomy: Taxonomy | str | os.PathLike[str] | None,
    *,
    missing_hint: str,
) -> tuple[Taxonomy, np.ndarray]:
    """The taxonomy a fine-tuned model directory reports in, and its class map.

    Args:
        path: the model directory, holding ``taxonomy.yaml`` (the amenities the model was trained on).
        name: the model's name, for messages.
        config: its ``config.json`` (``id2label`` names the slugs).
        taxonomy: another taxonomy to report in (it must hold every amenity the model knows), or ``None`` for the
            directory's own.
        missing_hint: what the error says when ``taxonomy.yaml`` is missing.

    Returns:
        ``(taxonomy, class_map)``: ``class_map[model class id]`` is the taxonomy index, -1 for ids with no label.

    Raises:
        ModelUnavailableError: no or invalid ``taxonomy.yaml``, or labels that disagree with it.
        TaxonomyError: ``taxonomy`` lacks amenities the model detects.
    """
    if not (path / TAXONOMY_FILE).is_file():
        raise ModelUnavailableError(f"{name}: no {TAXONOMY_FILE} in the {missing_hint}")
    try:
        trained = load_taxonomy(path / TAXONOMY_FILE)
    except TaxonomyError as exc:
        raise ModelUnavailableError(f"{name}: its {TAXONOMY_FILE} is invalid: {exc}") from exc
    id2label = read_label_map(config, trained, path)
    chosen = trained if taxonomy is None else load_taxonomy(taxonomy)
    missing = [slug for slug in id2label.values() if slug not in chosen]
    if missing:
        raise TaxonomyError(
            f"the taxonomy {chosen.source} lacks amenities the model detects: {', '.join(missing)}"
        )
    class_map = np.full(max(id2label) + 1, -1, dtype=np.int64)
    for class_id, slug in id2label.items():
        class_map[class_id] = chosen.index(slug)
    return chosen, class_map
