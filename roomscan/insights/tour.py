"""The photo tour of a listing: a suggested photo order, a cover photo, and what the photos leave out.

Input is each photo's :class:`~roomscan.insights.rooms.RoomScores` and quality (0-100, from
``roomscan.insights.quality``, with the problems it flagged); output a :class:`Tour`, JSON-ready by
``to_dict()``.

* **Cover**: the photo with the highest ``preference(room) × quality / 100``, where the preference is the
  room scores' expectation of :data:`COVER_PREFERENCE` (exterior and living room 1.0 ... bathroom 0.4, other
  0.3). A photo with a quality problem is never the cover while another photo has none.
* **Order**: photos grouped by room (their ``best`` room type) in :data:`ROOM_ORDER`: exterior, living room,
  kitchen, dining room, bedrooms, bathrooms, balcony/view, pool/garden, then room types of a custom file
  (first seen first), then other. When the cover is a living-room photo the living room opens the tour, before
  the exterior. Within a room the cover leads, then photos without problems, best quality first, then flagged
  ones.
* **Notes**: no bathroom photo; no bedroom photo (unless 0 bedrooms are declared); fewer bedroom photos than
  bedrooms declared ("2 bedrooms declared, 1 bedroom photo": several photos of one bedroom count as several,
  so this flags only certain gaps); a claimed amenity with no photo of a room where it would be seen
  ("claims a swimming pool but no outdoor photo").

Example:
    >>> from roomscan.insights.rooms import scores_from_amenities
    >>> photo = TourPhoto("p1", scores_from_amenities([("bed", 0.9, "bedroom")]), quality=70)
    >>> tour = suggest_tour([photo], claims=["swimming-pool"])
    >>> tour.cover, [n.message for n in tour.notes]
    ('p1', ['no bathroom photo', 'claims a swimming pool but no outdoor photo'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roomscan.insights.rooms import RoomScores, RoomTypes, RoomTypesError, load_room_types
from roomscan.taxonomy import Taxonomy, default_taxonomy

__all__ = [
    "COVER_PREFERENCE",
    "EXPECTED_ROOMS",
    "ROOM_ORDER",
    "CompletenessNote",
    "Tour",
    "TourPhoto",
    "TourStop",
    "suggest_tour",
]

ROOM_ORDER = (
    "exterior",
    "living-room",
    "kitchen",
    "dining-room",
    "bedroom",
    "bathroom",
    "balcony-view",
    "pool-garden",
    "other",
)
COVER_PREFERENCE: Mapping[str, float] = {
    "exterior": 1.0,
    "living-room": 1.0,
    "pool-garden": 0.9,
    "balcony-view": 0.9,
    "bedroom": 0.8,
    "kitchen": 0.7,
    "dining-room": 0.7,
    "bathroom": 0.4,
    "other": 0.3,
}
_UNKNOWN_PREFERENCE = 0.5  # room types of a custom file
EXPECTED_ROOMS = (
    "bedroom",
    "bathroom",
)  # every rental has them; a kitchen is expected only when one is claimed
_BEDROOM = "bedroom"
_GROUP_PHRASE = {"living": "living room"}  # amenity group -> words in a note (others read as they are)


@dataclass(frozen=True)
class TourPhoto:
    """One photo of a listing as the tour sees it.

    Attributes:
        photo_id: the caller's id (catalog photo id, file name...).
        rooms: its room scores.
        quality: 0 (unusable) to 100.
        problems: quality problems found (``dark``, ``blurry``...); any makes it a cover of last resort.
    """

    photo_id: str | int
    rooms: RoomScores
    quality: float
    problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not math.isfinite(self.quality) or not 0 <= self.quality <= 100:
            raise ValueError(
                f"photo {self.photo_id!r}: quality must be a number from 0 to 100, got {self.quality!r}"
            )


@dataclass(frozen=True)
class TourStop:
    """A photo's place in the tour."""

    photo_id: str | int
    room: str
    quality: float
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompletenessNote:
    """Something the photos leave out. ``code``: ``missing-room``, ``bedrooms-unshown``, ``claim-unshown`` or
    ``no-photos``; ``room`` and ``amenity`` are slugs when they apply; ``message`` is for people."""

    code: str
    message: str
    room: str | None = None
    amenity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "room": self.room, "amenity": self.amenity}


@dataclass(frozen=True)
class Tour:
    """A listing's suggested photo order, cover photo (``None`` without photos) and completeness notes."""

    stops: tuple[TourStop, ...]
    cover: str | int | None
    notes: tuple[CompletenessNote, ...]

    @property
    def order(self) -> list[str | int]:
        return [s.photo_id for s in self.stops]

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "cover": self.cover,
            "stops": [
                {
                    "photo_id": s.photo_id,
                    "room": s.room,
                    "quality": round(s.quality, 1),
                    "problems": list(s.problems),
                }
                for s in self.stops
            ],
            "notes": [n.to_dict() for n in self.notes],
        }


def _cover(photos: Sequence[TourPhoto], preference: Mapping[str, float]) -> TourPhoto | None:
    candidates = [p for p in photos if not p.problems] or list(photos)
    if not candidates:
        return None

    def key(item: tuple[int, TourPhoto]) -> tuple[float, float, int]:
        i, photo = item
        pref = sum(
            p * preference.get(s, _UNKNOWN_PREFERENCE) for s, p in zip(photo.rooms.slugs, photo.rooms.probs)
        )
        return (
            pref * photo.quality / 100.0,
            pref,
            -i,
        )  # equal scores: the likelier cover room, then input order

    return max(enumerate(candidates), key=key)[1]


def _room_sequence(rooms_seen: Iterable[str], opener: str | None) -> list[str]:
    known = [r for r in ROOM_ORDER if r != "other"]
    extra = [r for r in dict.fromkeys(rooms_seen) if r not in ROOM_ORDER]
    sequence = [*known, *extra, "other"]
    if opener == "living-room":
        sequence.remove(opener)
        sequence.insert(0, opener)
    return sequence


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _notes(
    photos: Sequence[TourPhoto],
    claims: Iterable[str],
    bedrooms: int | None,
    taxonomy: Taxonomy,
    rooms: RoomTypes,
) -> list[CompletenessNote]:
    if not photos:
        return [CompletenessNote("no-photos", "no photos")]
    shown = [p.rooms.best for p in photos]
    notes: list[CompletenessNote] = []
    for room in EXPECTED_ROOMS:
        if room not in rooms.slugs or room in shown:
            continue
        if room == _BEDROOM and bedrooms is not None:
            continue  # the declared count below says it, or 0 bedrooms were declared
        notes.append(CompletenessNote("missing-room", f"no {rooms[room].name.lower()} photo", room=room))
    if bedrooms is not None and _BEDROOM in rooms.slugs:
        count = shown.count(_BEDROOM)
        if count < bedrooms:
            notes.append(
                CompletenessNote(
                    "bedrooms-unshown",
                    f"{bedrooms} bedroom{'s' * (bedrooms != 1)} declared, "
                    f"{count} bedroom photo{'s' * (count != 1)}",
                    room=_BEDROOM,
                )
            )
    for claim in dict.fromkeys(claims):
        amenity = taxonomy.resolve(claim)
        targets = {r.slug for r in rooms if amenity.slug in r.amenities or amenity.group in r.evidence}
        if not targets or targets & set(shown):
            continue  # general amenities (a mirror) fit any room
        where = _GROUP_PHRASE.get(amenity.group, amenity.group)
        name = amenity.name.lower()
        notes.append(
            CompletenessNote(
                "claim-unshown", f"claims {_article(name)} {name} but no {where} photo", amenity=amenity.slug
            )
        )
    return notes


def suggest_tour(
    photos: Sequence[TourPhoto],
    *,
    claims: Iterable[str] = (),
    bedrooms: int | None = None,
    taxonomy: Taxonomy | None = None,
    room_types: RoomTypes | None = None,
    cover_preference: Mapping[str, float] = COVER_PREFERENCE,
) -> Tour:
    """Suggest a listing's photo order and cover photo, and note what its photos leave out.

    Args:
        photos: the listing's photos (ids unique), in their current order (which breaks ties).
        claims: amenities the listing claims (slugs, names or synonyms, resolved by ``taxonomy``).
        bedrooms: the declared number of bedrooms, if any.
        taxonomy: resolves claims; the default taxonomy when ``None``.
        room_types: the room types the scores use; the default ones when ``None``.
        cover_preference: room slug -> how good a cover that room makes (0-1); others count 0.5.

    Raises:
        ValueError: two photos with one id, or a negative bedroom count.
        RoomTypesError: a photo scored over other room types than ``room_types``.
        TaxonomyError: a claim that is not an amenity.
    """
    rooms = load_room_types(room_types)
    ids = [p.photo_id for p in photos]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"photo ids must be unique; repeated: {sorted({str(i) for i in ids if ids.count(i) > 1})}"
        )
    if bedrooms is not None and (isinstance(bedrooms, bool) or bedrooms < 0):
        raise ValueError(f"bedrooms must be a count of 0 or more, got {bedrooms!r}")
    for p in photos:
        if p.rooms.slugs != rooms.slugs:
            raise RoomTypesError(
                f"photo {p.photo_id!r} was scored over room types {p.rooms.slugs}, "
                f"not {rooms.source}'s {rooms.slugs}"
            )
    cover = _cover(photos, cover_preference)
    opener = cover.rooms.best if cover is not None else None
    position = {p.photo_id: i for i, p in enumerate(photos)}

    def within_room(p: TourPhoto) -> tuple[bool, bool, float, int]:
        return (p is not cover, bool(p.problems), -p.quality, position[p.photo_id])

    stops: list[TourStop] = []
    for room in _room_sequence((p.rooms.best for p in photos), opener):
        members = sorted((p for p in photos if p.rooms.best == room), key=within_room)
        stops.extend(TourStop(p.photo_id, room, float(p.quality), tuple(p.problems)) for p in members)
    notes = _notes(photos, claims, bedrooms, taxonomy or default_taxonomy(), rooms)
    return Tour(tuple(stops), cover.photo_id if cover is not None else None, tuple(notes))
