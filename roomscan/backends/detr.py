"""Closed-vocabulary detectors of the DETR family (RT-DETRv2, RT-DETR, D-FINE, DETR...) fine-tuned on a taxonomy.

A model directory holds what ``save_pretrained`` writes (``config.json``, weights, ``preprocessor_config.json``)
plus ``taxonomy.yaml``, the taxonomy the model was trained on: ``config.id2label`` names its slugs.
:func:`save_model_dir` writes such a directory.

Example:
    >>> detector = DetrDetector("runs/rtdetr-v2/best")  # doctest: +SKIP
    >>> [d["label"] for d in detections_to_records(detector.predict_one(photo))]  # doctest: +SKIP
    ['bed', 'pillow']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from roomscan.backends._base import Detector, ModelInfo, RawOutput
from roomscan.backends._common import (
    DEFAULT_MAX_DETECTIONS,
    TAXONOMY_FILE,
    class_thresholds,
    load_label_taxonomy,
    probability_kind_of,
    quiet_transformers,
    resolve_device,
)
from roomscan.backends._hub import ResolvedModel, read_model_config, resolve_model
from roomscan.errors import ModelUnavailableError
from roomscan.taxonomy import Taxonomy

if TYPE_CHECKING:
    import torch

__all__ = ["TAXONOMY_FILE", "DetrDetector", "save_model_dir"]


def save_model_dir(
    model: Any, image_processor: Any, taxonomy: Taxonomy, path: str | os.PathLike[str]
) -> Path:
    """Write a model directory :class:`DetrDetector` loads: weights, configs and ``taxonomy.yaml``.

    Sets ``config.id2label`` to the taxonomy's slugs (class ``i`` is amenity ``i``), so the model, its config and
    the taxonomy cannot disagree.

    Args:
        model: a transformers object-detection model (``RTDetrV2ForObjectDetection``...) with one label per amenity.
        image_processor: the image processor it was trained with.
        taxonomy: the amenities, in class-id order.
        path: the directory (created if needed).

    Raises:
        ValueError: the model's number of labels differs from the taxonomy's number of amenities.
    """
    n_labels = int(model.config.num_labels)
    if n_labels != len(taxonomy):
        raise ValueError(f"the model has {n_labels} labels but the taxonomy has {len(taxonomy)} amenities")
    model.config.id2label = dict(enumerate(taxonomy.slugs))
    model.config.label2id = {slug: i for i, slug in enumerate(taxonomy.slugs)}
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    image_processor.save_pretrained(str(out))
    taxonomy.save(out / TAXONOMY_FILE)
    return out


class DetrDetector(Detector):
    """Detector for a fine-tuned DETR-family checkpoint (anything ``AutoModelForObjectDetection`` loads).

    Args:
        model: a model directory (see :func:`save_model_dir`) or a hub id whose repository holds one.
        taxonomy: the taxonomy to report in; defaults to the directory's ``taxonomy.yaml``. Another taxonomy must
            contain every amenity the model knows (to retune thresholds, or to share class ids with other models).
        device: ``cpu``, ``cuda`` or ``auto``.
        image_size: square input side, overriding the processor's.
        score_threshold: one minimum score for every amenity, instead of each amenity's ``threshold``.
        nms_threshold: IoU for class-aware NMS; ``None`` (default) keeps DETR's NMS-free output.
        max_detections: keep at most this many boxes per image, highest scores first.

    Raises:
        ModelUnavailableError: missing directory, no ``taxonomy.yaml``, an unreadable config, labels that
            disagree with the taxonomy, or weights transformers cannot load.
    """

    backend = "detr"

    def __init__(
        self,
        model: str | os.PathLike[str] | ResolvedModel,
        *,
        taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
        device: str = "auto",
        image_size: int | None = None,
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        resolved = resolve_model(model)
        path = resolved.path
        config = read_model_config(path)
        self.taxonomy, self.class_map = load_label_taxonomy(
            path,
            resolved.name,
            config,
            taxonomy,
            missing_hint="model directory; a fine-tuned detector needs the taxonomy it was trained on (write the "
            "directory with roomscan.backends.detr.save_model_dir)",
        )
        self.probability_kind = probability_kind_of(str(config["model_type"]))
        self.one_box_per_query = self.probability_kind == "softmax"
        self.device = resolve_device(device)
        self.thresholds = class_thresholds(self.taxonomy, score_threshold)
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        extra = {"size": {"height": int(image_size), "width": int(image_size)}} if image_size else {}
        try:
            with quiet_transformers():
                self.model = AutoModelForObjectDetection.from_pretrained(str(path)).to(self.device).eval()
                self.processor = AutoImageProcessor.from_pretrained(str(path), **extra)
        except Exception as exc:  # corrupt weights raise library-specific errors (SafetensorError...)
            raise ModelUnavailableError(
                f"{resolved.name}: transformers cannot load this {config['model_type']} checkpoint ({exc})"
            ) from exc
        settings = f"size={image_size}" if image_size else ""
        self.info = ModelInfo(
            self.backend, resolved.name, resolved.version, self.taxonomy.fingerprint(), settings
        )

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        """Boxes and class probabilities per query, scored as the model family's ``post_process_object_detection``
        scores them: softmax without the no-object column (DETR, YOLOS), else per-class sigmoids."""
        import torch

        inputs = self.processor(images=list(batch), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
            logits = outputs.logits.float()  # [b, q, n_model_classes (+1 no-object for softmax models)]
            probs = logits.softmax(-1)[..., :-1] if self.probability_kind == "softmax" else logits.sigmoid()
            cx, cy, w, h = outputs.pred_boxes.float().unbind(-1)  # normalised to the image
            xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)  # [b, q, 4]
        return [
            RawOutput(box * np.array([im.width, im.height, im.width, im.height], dtype=np.float32), p)
            for im, box, p in zip(batch, xyxy.cpu().numpy(), probs.cpu().numpy())
        ]

    def _embed(self, batch: Sequence[Image.Image]) -> np.ndarray:
        """The encoder's last hidden state, mean-pooled over positions (and concatenated over the scales of
        multi-scale encoders such as RT-DETR's): ``[b, d]``. Padding-based processors (DETR) pool their padding
        too, so there an image's embedding depends a little on the other images of its batch."""
        import torch

        inputs = self.processor(images=list(batch), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**inputs).encoder_last_hidden_state
            pooled = torch.cat([_pool(h) for h in (hidden if isinstance(hidden, list | tuple) else [hidden])], -1)
        return pooled.float().cpu().numpy()

    def _torch_module(self) -> Any:
        return self.model


def _pool(hidden: torch.Tensor) -> torch.Tensor:
    """Mean over positions: ``[b, n, d]`` (tokens) or ``[b, d, h, w]`` (feature maps) -> ``[b, d]``."""
    return hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
