"""Listing photo insights in the catalog: each photo's quality, perceptual hashes and room type, and what they
say about a listing (its photo tour, and photos it shares with other listings).

* ``photo_insights`` (one row per photo, any model): written by ``store.add_photo`` for a new photo from the image
  it already decoded, or by :func:`analyse_missing` (``roomscan photos analyse``) for photos stored before.
* ``photo_rooms`` (per photo and model): written by the detection worker with the detections
  (:func:`save_room_scores`).
* ``listing_rooms``: the rooms each published listing shows, refreshed with ``listing_amenities``
  (:func:`refresh_listing_rooms`); search by room reads it.

:func:`listing_insights` reads them all for one listing, as the CLI, the API and the page show them.

Example:
    >>> found = listing_insights(session, listing, model_id, viewer=None, room_types=rooms,
    ...                          taxonomy=taxonomy)  # doctest: +SKIP
    >>> found.tour.cover, [p.room.best for p in found.photos if p.room]  # doctest: +SKIP
    (12, ['living-room', 'bathroom'])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from roomscan.catalog.duplicates import (
    DuplicateCluster,
    duplicate_clusters,
    find_duplicates,
    near_copies,
    to_signed,
)
from roomscan.catalog.models import Listing, ListingPhoto, ListingRoom, Photo, PhotoInsight, PhotoRoom
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image
from roomscan.errors import RoomscanError
from roomscan.insights.dupindex import Match
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE, photo_hashes
from roomscan.insights.quality import PhotoQuality, assess_photo
from roomscan.insights.rooms import RoomScores, RoomTypes
from roomscan.insights.tour import Tour, TourPhoto, suggest_tour
from roomscan.taxonomy import Taxonomy

if TYPE_CHECKING:
    from roomscan.auth import Principal

log = logging.getLogger(__name__)

__all__ = [
    "ANALYSIS_VERSION",
    "AnalysisStats",
    "DuplicateCluster",
    "DuplicateRef",
    "ListingInsights",
    "PhotoAnalysis",
    "PhotoInsights",
    "analyse_image",
    "analyse_missing",
    "catalog_hashes",
    "duplicate_clusters",
    "find_duplicates",
    "listing_insights",
    "missing_analysis_count",
    "photo_quality",
    "photo_rooms",
    "refresh_listing_rooms",
    "save_photo_analysis",
    "save_room_scores",
]

ANALYSIS_VERSION = 1
"""The analysis ``photo_insights`` rows hold: raise it when quality checks or hashes change, and
``roomscan photos analyse`` redoes the rows of older versions."""


# -- one photo's analysis ------------------------------------------------------------------------------------------
class PhotoAnalysis(NamedTuple):
    """What the pixels of one photo say: its quality and its perceptual hashes (unsigned)."""

    quality: PhotoQuality
    hashes: tuple[int, ...]

    def to_json(self) -> str:
        """As text, to carry from where a photo was decoded (a Ray task of ``roomscan import``) to ``add_photo``."""
        return json.dumps({"quality": self.quality.to_dict(), "hashes": [str(h) for h in self.hashes]})

    @classmethod
    def from_json(cls, text: str) -> PhotoAnalysis:
        doc = json.loads(text)
        return cls(PhotoQuality.from_dict(doc["quality"]), tuple(int(h) for h in doc["hashes"]))


HASH_LONG_SIDE = 1024
"""Photos are hashed from a copy shrunk to this long side: 7x faster on a 12 MP photo (0.05 s instead of 0.35 s),
and within 2 bits of the full-size hashes on generated 4000x3000 rooms (pHash reads a 32x32 thumbnail anyway)."""


def catalog_hashes(image: Image.Image) -> tuple[int, ...]:
    """The perceptual hashes the catalog stores for a photo (``insights.phash.photo_hashes`` of a copy shrunk to
    :data:`HASH_LONG_SIDE`): compute a query's hashes this way to compare like with like."""
    if max(image.size) > HASH_LONG_SIDE:
        scale = HASH_LONG_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return photo_hashes(image)


def analyse_image(image: Image.Image, *, name: str = "photo") -> PhotoAnalysis | None:
    """Quality and hashes of a decoded photo; ``None`` (logged) when the analysis fails, so a photo is never
    refused for it."""
    try:
        return PhotoAnalysis(assess_photo(image), catalog_hashes(image))
    except Exception:  # an analysis bug must not cost a host their upload
        log.exception("analysing %s failed; it is stored without quality and hashes", name)
        return None


def save_photo_analysis(session: Session, photo_id: int, analysis: PhotoAnalysis) -> None:
    """Write (or replace) a photo's ``photo_insights`` row; the caller commits."""
    session.execute(delete(PhotoInsight).where(PhotoInsight.photo_id == photo_id))
    session.add(
        PhotoInsight(
            photo_id=photo_id,
            version=ANALYSIS_VERSION,
            quality=analysis.quality.to_dict(),
            quality_score=analysis.quality.score,
            **{f"hash{i}": to_signed(h) for i, h in enumerate(analysis.hashes)},
        )
    )
    session.flush()


def _current() -> Any:
    return exists().where(PhotoInsight.photo_id == Photo.id, PhotoInsight.version >= ANALYSIS_VERSION)


def missing_analysis_count(session: Session) -> int:
    """Stored photos without a current analysis (what :func:`analyse_missing` would do)."""
    return session.scalar(select(func.count()).select_from(Photo).where(~_current())) or 0


@dataclass
class AnalysisStats:
    analysed: int = 0
    failed: int = 0
    """Photos whose file is missing or unreadable (named in ``errors``); a later run tries them again."""
    errors: list[str] | None = None


def analyse_missing(
    session: Session,
    photos: PhotoStore,
    limit: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    *,
    batch_size: int = 50,
    max_pixels: int | None = None,
) -> AnalysisStats:
    """Analyse stored photos that have no current ``photo_insights`` row, oldest first, committing after every
    ``batch_size`` photos: an interrupted run keeps what it did, and the next run goes on from there.

    Args:
        session: a catalog session; this function commits it.
        photos: the photo store holding their bytes.
        limit: analyse at most this many (``None``: all).
        on_progress: called with the number of photos handled after each batch.
        max_pixels: decompression-bomb guard (``Settings.max_pixels``; the loader's default when ``None``).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive whole number or None, got {limit!r}")
    stats = AnalysisStats(errors=[])
    after = 0
    options = {} if max_pixels is None else {"max_pixels": max_pixels}
    while limit is None or stats.analysed + stats.failed < limit:
        size = batch_size if limit is None else min(batch_size, limit - stats.analysed - stats.failed)
        batch = session.execute(
            select(Photo.id, Photo.sha256).where(Photo.id > after, ~_current()).order_by(Photo.id).limit(size)
        ).all()
        session.rollback()  # no transaction held while files are read and photos analysed
        if not batch:
            break
        done: list[tuple[int, PhotoAnalysis]] = []
        for photo_id, sha256 in batch:
            after = photo_id
            try:
                loaded = load_image(photos.get(sha256), name=f"photo {photo_id}", **options)
            except RoomscanError as exc:
                stats.failed += 1
                stats.errors.append(str(exc))  # type: ignore[union-attr]
                continue
            analysis = analyse_image(loaded.image, name=f"photo {photo_id}")
            if analysis is None:
                stats.failed += 1
                stats.errors.append(f"photo {photo_id}: the analysis failed (see the log)")  # type: ignore[union-attr]
                continue
            done.append((photo_id, analysis))
        # Photos deleted while they were analysed are skipped (their row would point at nothing).
        present = set(session.scalars(select(Photo.id).where(Photo.id.in_([p for p, _ in done]))))
        for photo_id, analysis in done:
            if photo_id in present:
                save_photo_analysis(session, photo_id, analysis)
        session.commit()
        stats.analysed += len(done)
        if on_progress is not None:
            on_progress(len(batch))
    return stats


def photo_quality(session: Session, photo_ids: Iterable[int]) -> dict[int, PhotoQuality]:
    """The stored quality of each photo that has been analysed (others are absent)."""
    ids = list(photo_ids)
    if not ids:
        return {}
    rows = session.execute(select(PhotoInsight.photo_id, PhotoInsight.quality).where(PhotoInsight.photo_id.in_(ids)))
    return {photo_id: PhotoQuality.from_dict(doc) for photo_id, doc in rows}


# -- room types ------------------------------------------------------------------------------------------------------
def save_room_scores(session: Session, photo_id: int, model_id: int, scores: RoomScores) -> None:
    """Write (or replace) a photo's room scores under one model; the caller commits (the worker: with the
    detections)."""
    session.execute(delete(PhotoRoom).where(PhotoRoom.photo_id == photo_id, PhotoRoom.model_id == model_id))
    best = scores.best
    session.add(
        PhotoRoom(
            photo_id=photo_id,
            model_id=model_id,
            room=best,
            probability=scores.scores[best],
            scores=scores.to_dict(),
            source=scores.source[:64],
        )
    )
    session.flush()


def photo_rooms(session: Session, photo_ids: Iterable[int], model_id: int) -> dict[int, RoomScores]:
    """The stored room scores of each photo under one model (photos not scored yet are absent)."""
    ids = list(photo_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(PhotoRoom.photo_id, PhotoRoom.scores).where(PhotoRoom.photo_id.in_(ids), PhotoRoom.model_id == model_id)
    )
    return {photo_id: RoomScores.from_dict(doc) for photo_id, doc in rows}


def refresh_listing_rooms(session: Session, listing: Listing, model_id: int) -> None:
    """Recompute a listing's ``listing_rooms`` under ``model_id`` (none for an unpublished listing). Called by
    ``store.refresh_listing_amenities``, under its listing lock."""
    session.execute(delete(ListingRoom).where(ListingRoom.listing_id == listing.id))
    if listing.published:
        rows = session.execute(
            select(PhotoRoom.room, func.count(), func.max(PhotoRoom.probability))
            .join(ListingPhoto, ListingPhoto.photo_id == PhotoRoom.photo_id)
            .where(ListingPhoto.listing_id == listing.id, PhotoRoom.model_id == model_id)
            .group_by(PhotoRoom.room)
        ).all()
        session.add_all(
            ListingRoom(listing_id=listing.id, room=room, model_id=model_id, photo_count=n, score=float(best))
            for room, n, best in rows
        )
    session.flush()


# -- a listing's insights --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DuplicateRef:
    """Another listing showing the same picture: ``photo_id`` is its photo (this photo's own id when the very
    same bytes are on both), ``distance`` the bits between their hashes (0: identical)."""

    photo_id: int
    listing_id: int
    listing_title: str
    distance: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "photo_id": self.photo_id,
            "listing_id": self.listing_id,
            "listing_title": self.listing_title,
            "distance": self.distance,
        }


@dataclass(frozen=True)
class PhotoInsights:
    """One photo of a listing: its room type (``None`` until detected by the model), quality (``None`` until
    analysed), and the other listings showing the same picture.

    ``hidden_duplicates`` counts matches on listings the viewer may not see (never linked)."""

    photo_id: int
    position: int
    filename: str | None
    room: RoomScores | None
    quality: PhotoQuality | None
    duplicates: tuple[DuplicateRef, ...] = ()
    hidden_duplicates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "photo_id": self.photo_id,
            "position": self.position,
            "filename": self.filename,
            "room": None if self.room is None else self.room.to_dict(),
            "quality": None if self.quality is None else self.quality.to_dict(),
            "duplicates": [d.to_dict() for d in self.duplicates],
            "hidden_duplicates": self.hidden_duplicates,
        }


@dataclass(frozen=True)
class ListingInsights:
    """A listing's photos with their insights, in listing order, and its suggested tour.

    ``tour`` covers the photos that have both a room type (over ``room_types``) and a quality; it is ``None``
    when no photo has them yet. ``left_out`` lists the photos it could not place yet.
    """

    listing_id: int
    model_id: int | None
    photos: tuple[PhotoInsights, ...]
    tour: Tour | None
    left_out: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "listing_id": self.listing_id,
            "model_id": self.model_id,
            "photos": [p.to_dict() for p in self.photos],
            "tour": None if self.tour is None else self.tour.to_dict(),
            "left_out_of_tour": list(self.left_out),
        }


def listing_insights(
    session: Session,
    listing: Listing,
    model_id: int | None,
    *,
    viewer: Principal | None,
    room_types: RoomTypes,
    taxonomy: Taxonomy,
    max_distance: int = DEFAULT_MAX_DISTANCE,
) -> ListingInsights:
    """Room type, quality and duplicates of each photo of ``listing`` (in its order), and the suggested tour.

    Args:
        model_id: whose room scores to read (``None``: no model has run yet, so no rooms and no tour).
        viewer: who reads (``roomscan.auth``; ``None`` is anonymous): duplicates on listings it may not see are
            only counted.
        room_types: the room types of the tour; photos scored over other room types stay out of it.
        taxonomy: resolves the listing's claims for the completeness notes (claims it does not know are skipped).
        max_distance: bits within which two photos are the same picture (0..32).
    """
    from roomscan.auth import can_see

    attached = sorted(listing.photos, key=lambda lp: (lp.position, lp.photo_id))
    ids = [lp.photo_id for lp in attached]
    rooms = photo_rooms(session, ids, model_id) if model_id is not None else {}
    quality = photo_quality(session, ids)
    copies = near_copies(session, ids, max_distance)
    # Identical bytes are one photo: another listing holding this very photo is a duplicate at distance 0.
    for photo_id in ids:
        copies.setdefault(photo_id, [])
        if not any(m.id == photo_id for m in copies[photo_id]):
            copies[photo_id].insert(0, Match(photo_id, 0))
    others = sorted({m.id for matches in copies.values() for m in matches})
    where: dict[int, list[Listing]] = {}
    for start in range(0, len(others), 1000):
        for photo_id, other in session.execute(
            select(ListingPhoto.photo_id, Listing)
            .join(Listing, Listing.id == ListingPhoto.listing_id)
            .where(ListingPhoto.photo_id.in_(others[start:start + 1000]), ListingPhoto.listing_id != listing.id)
            .order_by(ListingPhoto.listing_id)
        ).all():
            where.setdefault(photo_id, []).append(other)
    photos = []
    for lp in attached:
        refs, hidden = [], 0
        for match in copies[lp.photo_id]:
            for other in where.get(match.id, []):
                if can_see(viewer, other):
                    refs.append(DuplicateRef(match.id, other.id, other.title, match.distance))
                else:
                    hidden += 1
        refs.sort(key=lambda r: (r.distance, r.listing_id, r.photo_id))
        photos.append(
            PhotoInsights(lp.photo_id, lp.position, lp.filename, rooms.get(lp.photo_id), quality.get(lp.photo_id),
                          tuple(refs), hidden)
        )
    tour_photos = [
        TourPhoto(p.photo_id, p.room, p.quality.score, p.quality.problem_codes)
        for p in photos
        if p.room is not None and p.quality is not None and p.room.slugs == room_types.slugs
    ]
    placed = {t.photo_id for t in tour_photos}
    tour = None
    if tour_photos:
        tour = suggest_tour(
            tour_photos,
            claims=[c.amenity for c in listing.claims if c.amenity in taxonomy],
            bedrooms=listing.bedrooms,
            taxonomy=taxonomy,
            room_types=room_types,
        )
    return ListingInsights(listing.id, model_id, tuple(photos), tour, tuple(i for i in ids if i not in placed))
