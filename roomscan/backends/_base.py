"""The narrow interface every detector backend implements: one forward pass; the base class does the rest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from roomscan.backends._common import DEFAULT_MAX_DETECTIONS, ProbabilityKind, check_images, chunks, finalize
from roomscan.detection.core import Detections
from roomscan.taxonomy import Taxonomy


@dataclass(frozen=True)
class ModelInfo:
    """What produced a set of detections; stored with every detection in the catalog.

    Attributes:
        backend: backend name (``owlv2``, ``detr``, ``onnx``).
        name: the model's hub id, or the resolved local directory.
        version: the weights' identity: the hub commit, or a hash of the local weight files.
        taxonomy: fingerprint of the taxonomy the model detects (prompts and thresholds included).
        settings: inference settings that change the scores, when not the model's defaults (``size=640``).
    """

    backend: str
    name: str
    version: str
    taxonomy: str
    settings: str = ""

    @property
    def key(self) -> str:
        """One string that changes whenever the weights, the backend, the taxonomy or the settings change."""
        key = f"{self.backend}:{self.name}@{self.version[:12]}+{self.taxonomy}"
        return f"{key}/{self.settings}" if self.settings else key


@dataclass(frozen=True)
class RawOutput:
    """A model's raw answer for one image, before thresholds, NMS and the taxonomy: one row per query.

    Attributes:
        boxes: ``[q, 4]`` float32, ``x1, y1, x2, y2`` in that image's pixels (may stick out of the image).
        probs: ``[q, n_model_classes]`` float32 in ``[0, 1]``, each query's probability for each of the
            model's classes, in the model's class order (softmax models: without the no-object column).
        image_embedding: ``[d]`` float32, the whole photo in the model's text-embedding space (backends with a
            text tower, see :attr:`Detector.has_text_embeddings`), or ``None``. :meth:`Detector.predict` puts it
            in the detections' ``metadata["image_embedding"]``, where room typing reads it.
    """

    boxes: np.ndarray
    probs: np.ndarray
    image_embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        probs = np.asarray(self.probs, dtype=np.float32)
        if probs.ndim != 2 or len(probs) != len(boxes):
            raise ValueError(f"probs must be [{len(boxes)}, n_model_classes], got shape {probs.shape}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "probs", probs)
        if self.image_embedding is not None:
            embedding = np.asarray(self.image_embedding, dtype=np.float32)
            if embedding.ndim != 1 or not embedding.size:
                raise ValueError(f"image_embedding must be one vector [d], got shape {embedding.shape}")
            object.__setattr__(self, "image_embedding", embedding)


class Detector(ABC):
    """A detector turns RGB images into :class:`~roomscan.detection.core.Detections` of taxonomy amenities.

    :meth:`predict` lives here, once: it checks the images, converts them to RGB, batches them, calls the
    backend's :meth:`_forward`, maps the model's classes onto the taxonomy with ``class_map``, picks candidate
    boxes, and hands them to :func:`~roomscan.backends._common.finalize` (clipping, per-amenity thresholds,
    class-aware NMS, the ``max_detections`` cap). ``class_id`` of each detection indexes ``self.taxonomy``;
    ``data["class_name"]`` holds the slug; ``data["class_probs"]`` ``[n, len(taxonomy)]`` holds each box's
    probability for every amenity (``confidence == class_probs[i, class_id[i]]``); ``metadata`` holds
    ``image_size`` and ``model`` (``self.info.key``).

    Where to add a backend: subclass, load the weights in ``__init__`` (raising
    :class:`~roomscan.errors.ModelUnavailableError` when it cannot) and set ``taxonomy``, ``info``,
    ``thresholds`` (:func:`~roomscan.backends._common.class_thresholds`), ``class_map`` (model class index ->
    taxonomy index, -1 for classes outside the taxonomy; :func:`~roomscan.backends._common.load_label_taxonomy`
    builds it for a fine-tuned model directory), ``nms_threshold``, ``max_detections``, ``probability_kind`` and
    ``one_box_per_query``; then override :meth:`_forward` alone.

    Candidate boxes: with ``one_box_per_query`` each query gives one box, its best amenity (softmax models, whose
    classes exclude each other, and OWLv2); otherwise the ``q`` best (query, class) pairs over the flattened
    ``q x n_model_classes`` grid, so one query may give boxes of several classes: the top-k of transformers'
    ``post_process_object_detection`` for sigmoid/focal-loss models (RT-DETR, D-FINE, Deformable DETR...).

    Hooks for uncertainty (active learning):

    * :meth:`embed` -> ``[n_images, d]`` L2-normalised float32 image embeddings from the detector's own backbone,
      for diversity sampling. Backends implement ``_embed``: OWLv2 mean-pools the vision tower's feature map over
      the patches that cover the photo; the DETR family mean-pools the encoder's last hidden state (scales
      concatenated for multi-scale encoders); ONNX raises ``NotImplementedError`` (its graph exposes no features).
    * :meth:`dropout_sampling`, a context manager in which only the dropout of the torch model is active, so
      repeated :meth:`predict` calls are Monte-Carlo dropout samples; ``ValueError`` when the model has no dropout
      with ``p > 0``. Backends expose their ``torch.nn.Module`` through ``_torch_module``.

    Example:
        >>> detector = get_detector("runs/rtdetr-v2/best")  # doctest: +SKIP
        >>> dets = detector.predict([photo])[0]  # doctest: +SKIP
        >>> dets.data["class_probs"].shape  # doctest: +SKIP
        (7, 30)
        >>> with detector.dropout_sampling():  # doctest: +SKIP
        ...     samples = [detector.predict([photo])[0] for _ in range(8)]
    """

    taxonomy: Taxonomy
    info: ModelInfo
    device: str = "cpu"
    #: "softmax": a box's class probabilities sum to at most 1 (the rest is "no object");
    #: "sigmoid": each class probability is independent, in [0, 1]. Backends may set it per instance.
    probability_kind: ProbabilityKind = "sigmoid"
    one_box_per_query: bool = True
    thresholds: np.ndarray  # [len(taxonomy)] minimum score per amenity
    class_map: np.ndarray  # [n_model_classes] taxonomy index of each model class, -1 when not in the taxonomy
    nms_threshold: float | None = None
    max_detections: int = DEFAULT_MAX_DETECTIONS

    #: True when the backend embeds text (:meth:`text_embeddings`) and puts each photo's embedding in the same
    #: space into its detections' ``metadata["image_embedding"]`` (open-vocabulary backends such as OWLv2).
    has_text_embeddings: bool = False

    @abstractmethod
    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        """The model's boxes and class probabilities for each RGB image of ``batch``, in order."""

    def predict(self, images: Sequence[Image.Image], *, batch_size: int = 4) -> list[Detections]:
        """Detect amenities in each image; one ``Detections`` per input image, in order, boxes in image pixels.

        Args:
            images: PIL images of any size and mode (converted to RGB).
            batch_size: images per forward pass.

        Raises:
            TypeError: an item is not a PIL image.
            ValueError: ``batch_size`` below 1.
        """
        results: list[Detections] = []
        for batch in chunks(_rgb(images), batch_size):
            outputs = self._forward(batch)
            if len(outputs) != len(batch):
                name = type(self).__name__
                raise RuntimeError(f"{name}._forward returned {len(outputs)} outputs for {len(batch)} images")
            results.extend(self._detections(raw, image.size) for image, raw in zip(batch, outputs))
        return results

    def predict_one(self, image: Image.Image) -> Detections:
        return self.predict([image], batch_size=1)[0]

    def _detections(self, raw: RawOutput, image_size: tuple[int, int]) -> Detections:
        rows, class_ids, class_probs = candidates(
            raw.probs, self.class_map, len(self.taxonomy), one_box_per_query=self.one_box_per_query
        )
        dets = finalize(
            raw.boxes[rows],
            class_probs[np.arange(len(rows)), class_ids],
            class_ids,
            class_probs=class_probs,
            taxonomy=self.taxonomy,
            thresholds=self.thresholds,
            image_size=image_size,
            model_key=self.info.key,
            nms_threshold=self.nms_threshold,
            max_detections=self.max_detections,
        )
        if raw.image_embedding is not None:
            dets.metadata["image_embedding"] = raw.image_embedding
        return dets

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings ``[n, d]`` of text prompts, in the space of ``metadata["image_embedding"]``.

        Raises:
            NotImplementedError: the backend has no text tower (:attr:`has_text_embeddings` is false).
        """
        raise NotImplementedError(
            f"the {self.info.backend} backend has no text embeddings: room types come from the amenities found"
        )

    def embed(self, images: Sequence[Image.Image], *, batch_size: int = 4) -> np.ndarray:
        """One image embedding per image from the detector's own backbone, for diversity sampling.

        Returns:
            float32 ``[n_images, d]``, each row of unit L2 norm (``[0, 0]`` for no images).

        Raises:
            NotImplementedError: the backend has no embedding (ONNX exports).
        """
        parts = [np.asarray(self._embed(batch), dtype=np.float32) for batch in chunks(_rgb(images), batch_size)]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        out = np.concatenate(parts, axis=0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _embed(self, batch: Sequence[Image.Image]) -> np.ndarray:
        """Unnormalised embeddings ``[b, d]`` of RGB images."""
        raise NotImplementedError(f"the {self.info.backend} backend has no image embedding")

    def _torch_module(self) -> Any:
        """The ``torch.nn.Module`` that :meth:`predict` runs (for :meth:`dropout_sampling`)."""
        raise NotImplementedError(f"the {self.info.backend} backend has no torch model to sample dropout from")

    @contextmanager
    def dropout_sampling(self) -> Iterator[None]:
        """Within the block, dropout is active and everything else (BatchNorm...) stays in eval mode.

        Each :meth:`predict` call inside gives one Monte-Carlo dropout sample. Only dropout is switched on:
        ``torch.nn.Dropout*`` modules with ``p > 0``, and the layers that apply their own functional dropout
        (transformers' attention and MLP layers, with a ``dropout``, ``attention_dropout`` or
        ``activation_dropout`` above 0) but not whole models, whose training mode also means denoising queries
        or other training-only paths. The previous modes come back on exit.

        Raises:
            ValueError: the model has no dropout with ``p > 0``.
            NotImplementedError: the backend runs no torch model (ONNX).
        """
        switched = dropout_modules(self._torch_module())
        if not switched:
            raise ValueError(
                f"{self.info.name} has no dropout with p > 0, so dropout sampling would give the same output "
                "every time: train (fine-tune) it with dropout > 0 (e.g. config.dropout=0.1) to use MC dropout"
            )
        before = [m.training for m in switched]
        try:
            for module in switched:
                module.training = True  # this module only: its children keep their own mode
            yield
        finally:
            for module, mode in zip(switched, before):
                module.training = mode


_DROPOUT_ATTRIBUTES = ("dropout", "attention_dropout", "activation_dropout")


def dropout_modules(model: Any) -> list[Any]:
    """The modules of ``model`` whose training mode turns on dropout, and nothing else.

    ``torch.nn.Dropout*`` with ``p > 0``; and modules with a float ``dropout``, ``attention_dropout`` or
    ``activation_dropout`` above 0 that apply it themselves (``F.dropout(..., training=self.training)``), as
    transformers' layers do, except ``PreTrainedModel``s (encoders, decoders, whole models), whose
    ``training`` also switches on training-only paths (denoising queries, gradient checkpointing).
    """
    import torch

    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - torch without transformers
        PreTrainedModel = ()  # type: ignore[assignment,misc]  # noqa: N806

    found = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            if module.p > 0:
                found.append(module)
        elif not isinstance(module, PreTrainedModel) and any(
            isinstance(getattr(module, name, None), float | int)
            and not isinstance(getattr(module, name), bool)
            and getattr(module, name) > 0
            for name in _DROPOUT_ATTRIBUTES
        ):
            found.append(module)
    return found


def candidates(
    probs: np.ndarray, class_map: np.ndarray, n_classes: int, *, one_box_per_query: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick candidate boxes from per-query class probabilities.

    Args:
        probs: ``[q, n_model_classes]`` in the model's class order.
        class_map: taxonomy index of each model class, -1 outside the taxonomy; model classes past its end count
            as -1.
        n_classes: the taxonomy's size ``C``.
        one_box_per_query: each query's best amenity; otherwise the ``q`` best (query, class) pairs of the
            flattened ``q x n_model_classes`` grid (classes outside the taxonomy then dropped), as transformers'
            ``post_process_object_detection`` does for sigmoid models.

    Returns:
        ``(rows [n], class_ids [n], class_probs [n, C])``: the query of each candidate, its taxonomy index, and the
        query's probability for every amenity (0 for amenities the model does not know).
    """
    probs = np.asarray(probs, dtype=np.float32)
    q, n_model = probs.shape
    class_map = np.asarray(class_map, dtype=np.int64).reshape(-1)
    if len(class_map) > n_model:
        raise ValueError(f"class_map has {len(class_map)} entries for {n_model} model classes")
    class_map = np.pad(class_map, (0, n_model - len(class_map)), constant_values=-1)  # unlabelled trailing ids
    known = np.flatnonzero(class_map >= 0)
    per_class = np.zeros((q, n_classes), dtype=np.float32)  # [q, C]
    per_class[:, class_map[known]] = probs[:, known]
    if one_box_per_query:
        rows = np.arange(q)
        class_ids = per_class.argmax(axis=1) if n_classes else np.zeros(q, dtype=np.int64)
    else:
        flat = probs.reshape(-1)  # [q * n_model], query-major, as torch's flatten(1)
        top = np.argsort(-flat, kind="stable")[: min(q, flat.size)]
        rows, model_class = np.divmod(top, n_model)
        keep = class_map[model_class] >= 0
        rows, class_ids = rows[keep], class_map[model_class[keep]]
    return rows.astype(np.int64), class_ids.astype(np.int64), per_class[rows]


def _rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    images = list(images)
    check_images(images)
    return [im if im.mode == "RGB" else im.convert("RGB") for im in images]
