"""Listing photo insights: what each photo shows and how a listing's photos hold together.

Modules:

* ``rooms``: room type of a photo (bedroom, bathroom, kitchen, living room, dining room, exterior,
  pool/garden, balcony/view, other) from zero-shot embeddings and from the amenities found;
  ``evaluate_rooms`` scores predictions against labels.
* ``tour``: the photo tour of a listing: a suggested order, a cover photo and completeness notes.
* ``quality``: photo quality checks (a 0-100 score and the problems found).
* ``phash`` and ``dupindex``: the same photo reused across listings (perceptual hashes and their index).

Only ``rooms`` and ``tour`` are re-exported here; import the others by their full path.
"""

from __future__ import annotations

from roomscan.insights.rooms import (
    AMENITY_GAIN,
    DEFAULT_TEMPERATURE,
    FALLBACK_BIAS,
    RoomMetrics,
    RoomReport,
    RoomScores,
    RoomType,
    RoomTypes,
    RoomTypesError,
    combine,
    default_room_types,
    evaluate_rooms,
    load_room_types,
    photo_room_scores,
    room_text_embeddings,
    scores_from_amenities,
    scores_from_embeddings,
)
from roomscan.insights.tour import CompletenessNote, Tour, TourPhoto, TourStop, suggest_tour

__all__ = [
    "AMENITY_GAIN",
    "DEFAULT_TEMPERATURE",
    "FALLBACK_BIAS",
    "CompletenessNote",
    "RoomMetrics",
    "RoomReport",
    "RoomScores",
    "RoomType",
    "RoomTypes",
    "RoomTypesError",
    "Tour",
    "TourPhoto",
    "TourStop",
    "combine",
    "default_room_types",
    "evaluate_rooms",
    "load_room_types",
    "photo_room_scores",
    "room_text_embeddings",
    "scores_from_amenities",
    "scores_from_embeddings",
    "suggest_tour",
]
