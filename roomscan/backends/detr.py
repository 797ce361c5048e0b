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
from typing import Any

import numpy as np
from PIL import Image

from roomscan.backends._base import Detector, ModelInfo
from roomscan.backends._common import (
    DEFAULT_MAX_DETECTIONS,
    check_images,
    chunks,
    class_thresholds,
    finalize,
    quiet_transformers,
    resolve_device,
)
from roomscan.backends._hub import ResolvedModel, read_model_config, resolve_model
from roomscan.detection.core import Detections
from roomscan.errors import ModelUnavailableError, TaxonomyError
from roomscan.taxonomy import Taxonomy, load_taxonomy

TAXONOMY_FILE = "taxonomy.yaml"

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


def _label_map(config: dict[str, Any], trained: Taxonomy, where: Path) -> dict[int, str]:
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
        if not (path / TAXONOMY_FILE).is_file():
            raise ModelUnavailableError(
                f"{resolved.name}: no {TAXONOMY_FILE} in the model directory; a fine-tuned detector needs the "
                "taxonomy it was trained on (write the directory with roomscan.backends.detr.save_model_dir)"
            )
        try:
            trained = load_taxonomy(path / TAXONOMY_FILE)
        except TaxonomyError as exc:
            raise ModelUnavailableError(f"{resolved.name}: its {TAXONOMY_FILE} is invalid: {exc}") from exc
        id2label = _label_map(config, trained, path)
        self.taxonomy = trained if taxonomy is None else load_taxonomy(taxonomy)
        missing = [slug for slug in id2label.values() if slug not in self.taxonomy]
        if missing:
            raise TaxonomyError(
                f"the taxonomy {self.taxonomy.source} lacks amenities the model detects: {', '.join(missing)}"
            )
        # Model class id -> index in self.taxonomy.
        self._to_taxonomy = np.full(max(id2label) + 1, -1, dtype=np.int64)
        for class_id, slug in id2label.items():
            self._to_taxonomy[class_id] = self.taxonomy.index(slug)
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

    def predict(self, images: Sequence[Image.Image], *, batch_size: int = 4) -> list[Detections]:
        """Detect amenities in each image; one ``Detections`` per image, in order, boxes in image pixels."""
        import torch

        images = [im if im.mode == "RGB" else im.convert("RGB") for im in _checked(images)]
        floor = float(self.thresholds.min())
        results: list[Detections] = []
        for batch in chunks(images, batch_size):
            inputs = self.processor(images=list(batch), return_tensors="pt").to(self.device)
            with torch.inference_mode():
                outputs = self.model(**inputs)
            sizes = [(im.height, im.width) for im in batch]
            raw = self.processor.post_process_object_detection(outputs, threshold=floor, target_sizes=sizes)
            for image, found in zip(batch, raw):
                labels = found["labels"].cpu().numpy()
                results.append(
                    finalize(
                        found["boxes"].float().cpu().numpy(),
                        found["scores"].float().cpu().numpy(),
                        self._to_taxonomy[labels],
                        taxonomy=self.taxonomy,
                        thresholds=self.thresholds,
                        image_size=image.size,
                        model_key=self.info.key,
                        nms_threshold=self.nms_threshold,
                        max_detections=self.max_detections,
                    )
                )
        return results


def _checked(images: Sequence[Image.Image]) -> list[Image.Image]:
    images = list(images)
    check_images(images)
    return images
