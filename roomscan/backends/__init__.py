"""Detector backends, chosen by name through one factory.

``get_detector`` takes ``None`` (the default OWLv2), a known name, a hub id, a local model directory, or a ready
``Detector`` (returned as is). Backends import torch and transformers only when built, so importing this package
stays light.

Example:
    >>> from roomscan.backends import get_detector
    >>> detector = get_detector("owlv2", image_size=640)  # doctest: +SKIP
    >>> dets = detector.predict([photo])[0]  # doctest: +SKIP
    >>> get_detector(detector) is detector  # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

from roomscan.backends._base import Detector, ModelInfo
from roomscan.backends._common import resolve_device
from roomscan.backends._hub import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    ModelStatus,
    ResolvedModel,
    list_models,
    pull_model,
    read_model_config,
    resolve_model,
)
from roomscan.errors import ModelUnavailableError
from roomscan.taxonomy import Taxonomy

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "Detector",
    "ModelInfo",
    "ModelStatus",
    "ResolvedModel",
    "available_backends",
    "get_detector",
    "list_models",
    "pull_model",
    "read_model_config",
    "resolve_device",
    "resolve_model",
]

# backend name -> (module, class, what it loads)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "owlv2": (
        "roomscan.backends.owlv2",
        "Owlv2Detector",
        "OWLv2 open-vocabulary checkpoints (model_type owlv2)",
    ),
    "detr": (
        "roomscan.backends.detr",
        "DetrDetector",
        "fine-tuned DETR-family checkpoints with a taxonomy.yaml (rt_detr_v2, rt_detr, d_fine, detr, ...)",
    ),
    "onnx": (
        "roomscan.backends.onnx",
        "OnnxDetector",
        "DETR-family and OWLv2 models exported with `roomscan export` (a directory with model.onnx), on ONNX Runtime",
    ),
}
_TORCH = ("torch", "transformers")
_REQUIREMENTS: dict[str, tuple[str, ...]] = {"owlv2": _TORCH, "detr": _TORCH, "onnx": ("onnxruntime",)}


def available_backends() -> dict[str, str]:
    """Backends whose dependencies are installed, name -> what it loads (checked without importing them)."""
    return {
        name: description
        for name, (_, _, description) in _BACKENDS.items()
        if all(importlib.util.find_spec(mod) for mod in _REQUIREMENTS[name])
    }


def _backend_of(resolved: ResolvedModel) -> str:
    if resolved.backend:
        return resolved.backend
    if (resolved.path / "model.onnx").is_file():  # an export (roomscan.train.export) keeps the source config.json
        return "onnx"
    model_type = read_model_config(resolved.path)["model_type"]
    if model_type == "owlv2":
        return "owlv2"
    from transformers.models.auto.modeling_auto import MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES

    if model_type in MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES:
        return "detr"
    detr_types = ", ".join(sorted(MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES))
    raise ModelUnavailableError(
        f"{resolved.name}: roomscan has no backend for model_type {model_type!r}. Supported: owlv2 (open "
        f"vocabulary) and, fine-tuned with a taxonomy.yaml, the object-detection types {detr_types}"
    )


def get_detector(
    spec: None | str | os.PathLike[str] | ResolvedModel | Detector = None,
    *,
    taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
    device: str = "auto",
    image_size: int | None = None,
    score_threshold: float | None = None,
    **kwargs: Any,
) -> Detector:
    """Build the detector ``spec`` names.

    Args:
        spec: ``None`` for the default (``owlv2``); a known name (see :func:`list_models`); a hub id; a local
            model directory (its ``config.json`` picks the backend: ``owlv2`` or a DETR-family type); or a
            ``Detector``, returned unchanged (the other arguments are then ignored).
        taxonomy: amenities to detect (``Taxonomy``, YAML path, or ``None`` for the default; a fine-tuned DETR
            directory defaults to its own ``taxonomy.yaml``).
        device: ``cpu``, ``cuda`` or ``auto``.
        image_size: input side the model sees (``None``: the checkpoint's own).
        score_threshold: one minimum score for every amenity instead of the taxonomy's thresholds.
        **kwargs: backend options (``nms_threshold``, ``max_detections``).

    Raises:
        ModelUnavailableError: weights missing and not downloadable, no such directory, or an unsupported model.

    Example:
        >>> detector = get_detector("path/to/rtdetr-run", device="cpu")  # doctest: +SKIP
        >>> detector.info.backend  # doctest: +SKIP
        'detr'
    """
    if isinstance(spec, Detector):
        return spec
    resolved = resolve_model(DEFAULT_MODEL if spec is None else spec)
    backend = _backend_of(resolved)
    module_name, class_name, _ = _BACKENDS[backend]
    cls = getattr(importlib.import_module(module_name), class_name)
    detector: Detector = cls(
        resolved,
        taxonomy=taxonomy,
        device=device,
        image_size=image_size,
        score_threshold=score_threshold,
        **kwargs,
    )
    return detector
