"""Room type of a photo from the detector that already ran on it: no second model, no second forward pass.

A :class:`RoomClassifier` wraps a loaded :class:`~roomscan.backends._base.Detector`:

* backends with a text tower (:attr:`~roomscan.backends._base.Detector.has_text_embeddings`, OWLv2) put each
  photo's embedding in the text space into ``metadata["image_embedding"]`` during detection; the room types'
  prompts are embedded once, here, and the zero-shot room scores are combined with the amenity evidence;
* other backends (fine-tuned DETR-family detectors, ONNX exports) score rooms from the amenities found alone.

    >>> rooms = RoomClassifier(detector)                      # doctest: +SKIP
    >>> dets = detector.predict([image])[0]                   # doctest: +SKIP
    >>> rooms.scores(dets).best                               # doctest: +SKIP
    'bathroom'
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from roomscan.detection.core import Detections
from roomscan.insights.rooms import (
    DEFAULT_TEMPERATURE,
    RoomScores,
    RoomTypes,
    load_room_types,
    photo_room_scores,
    room_text_embeddings,
)

if TYPE_CHECKING:
    import os

    from roomscan.backends._base import Detector

__all__ = ["RoomClassifier"]

log = logging.getLogger(__name__)


class RoomClassifier:
    """Scores the room type of photos from a detector's own output.

    Args:
        detector: the loaded detector whose detections are scored (its taxonomy gives the amenities' evidence).
        room_types: the rooms (a :class:`~roomscan.insights.rooms.RoomTypes`, a YAML path, or ``None`` for the
            default).
        temperature: softmax temperature of the zero-shot scores (cosine similarities are close together).
        amenity_weight: weight of the amenity evidence against the zero-shot embedding scores.

    Raises:
        RoomTypesError: a malformed room-type file.
    """

    def __init__(
        self,
        detector: Detector,
        room_types: RoomTypes | str | os.PathLike[str] | None = None,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        amenity_weight: float = 1.0,
    ) -> None:
        self.detector = detector
        self.room_types = load_room_types(room_types)
        self.taxonomy = detector.taxonomy
        self.temperature = temperature
        self.amenity_weight = amenity_weight
        self.uses_embeddings = bool(getattr(detector, "has_text_embeddings", False))
        self._room_text: np.ndarray | None = None
        if self.uses_embeddings:
            self._room_text = room_text_embeddings(detector.text_embeddings, self.room_types)

    @property
    def source(self) -> str:
        """``embedding+amenities`` or ``amenities``: what the scores of this classifier are made of."""
        return "embedding+amenities" if self.uses_embeddings else "amenities"

    def scores(self, detections: Detections) -> RoomScores:
        """Room scores of one photo from its detections (and the image embedding they carry, if any).

        A photo detected without an embedding (stored detections re-scored, or an older run) falls back to the
        amenity evidence alone rather than failing.
        """
        embedding: Any = (detections.metadata or {}).get("image_embedding")
        if self._room_text is None or embedding is None:
            return photo_room_scores(detections, taxonomy=self.taxonomy, room_types=self.room_types)
        image_embedding = np.asarray(embedding, dtype=np.float32)
        if image_embedding.shape != (self._room_text.shape[1],):
            log.warning(
                "image embedding of shape %s does not match the room text embeddings (%d-d): amenities only",
                image_embedding.shape,
                self._room_text.shape[1],
            )
            return photo_room_scores(detections, taxonomy=self.taxonomy, room_types=self.room_types)
        return photo_room_scores(
            detections,
            image_embedding=image_embedding,
            room_text_embeddings=self._room_text,
            taxonomy=self.taxonomy,
            room_types=self.room_types,
            temperature=self.temperature,
            amenity_weight=self.amenity_weight,
        )

    def scores_many(self, detections: list[Detections]) -> list[RoomScores]:
        return [self.scores(d) for d in detections]
