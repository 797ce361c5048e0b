"""Catalog operations on listings, photos, models, detections and their roll-up.

Functions take an open SQLAlchemy ``Session`` and leave committing to the caller, so one request or one job is
one transaction: it is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np
from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from roomscan.backends import ModelInfo
from roomscan.catalog import insights, jobs
from roomscan.catalog.models import (
    DECISIONS,
    MAX_BEDROOMS,
    AmenityDecision,
    Detection,
    JobState,
    Listing,
    ListingAmenity,
    ListingClaim,
    ListingPhoto,
    Model,
    Photo,
    PhotoJob,
    User,
)
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.core import Detections, labels_of, make_detections
from roomscan.detection.image import LoadedImage
from roomscan.errors import ListingError, NotFoundError
from roomscan.listing import ListingAmenities, roll_up
from roomscan.taxonomy import Taxonomy

__all__ = [
    "UNCHANGED",
    "AddedPhoto",
    "ProcessingState",
    "RemovedPhoto",
    "Unchanged",
    "add_photo",
    "check_bedrooms",
    "create_listing",
    "delete_listing",
    "delete_orphan_files",
    "ensure_model",
    "get_listing",
    "get_photo",
    "list_listings",
    "listing_amenities",
    "listing_processing_state",
    "photo_detections",
    "refresh_listing_amenities",
    "refresh_stale_listings",
    "remove_photo",
    "save_detections",
    "set_claims",
    "set_decision",
    "update_listing",
]


BOOTSTRAP_OWNER = "admin"
"""The account that owns listings made without one (the CLI, imports): ``roomscan.auth.BOOTSTRAP_ADMIN``."""


class Unchanged(Enum):
    """The type of :data:`UNCHANGED` (one member)."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED
"""For :func:`update_listing`'s fields where ``None`` is a value (``bedrooms=None`` clears the count): leave it."""


def check_bedrooms(bedrooms: int | None) -> int | None:
    """``bedrooms`` unchanged when it is ``None`` (not declared) or a whole number 0..MAX_BEDROOMS (100).

    Raises:
        ListingError: anything else (a negative count, more than 100, a bool, a float, a string).
    """
    if bedrooms is None:
        return None
    if isinstance(bedrooms, bool) or not isinstance(bedrooms, int) or not 0 <= bedrooms <= MAX_BEDROOMS:
        raise ListingError(
            f"bedrooms must be a whole number from 0 to {MAX_BEDROOMS}, got {bedrooms!r}; "
            "leave it out when the listing declares no count"
        )
    return bedrooms


def create_listing(
    session: Session,
    title: str,
    claimed: Iterable[str] = (),
    *,
    taxonomy: Taxonomy | None = None,
    model_id: int | None = None,
    owner_id: int | None = None,
    published: bool = True,
    bedrooms: int | None = None,
) -> Listing:
    """Create a listing (not committed), owned by ``owner_id`` (a ``users`` row; the host who may change it).

    Args:
        title: non-blank; surrounding white space is dropped.
        claimed: amenities the host claims: slugs, or names/ids when ``taxonomy`` is given to resolve them.
        taxonomy, model_id: when given, the listing's searchable roll-up is written at once (claims start
            ``unverified``).
        published: ``False`` keeps it to its owner and admins (left out of search, 404 to everyone else).
        bedrooms: how many bedrooms the host declares (0..100; ``None``: no count); the photo tour notes
            fewer bedroom photos than that.

    Raises:
        ValueError: blank title. ListingError: a bedroom count out of range. TaxonomyError: an unknown amenity
            (with ``taxonomy``).
    """
    title = title.strip()
    if not title:
        raise ValueError("a listing needs a non-empty title")
    bedrooms = check_bedrooms(bedrooms)
    if taxonomy is not None:
        claimed = [taxonomy.resolve(c).slug for c in claimed]
    if owner_id is None:  # made by the operator (CLI, import): the bootstrap admin owns it
        owner_id = session.scalar(select(User.id).where(User.name == BOOTSTRAP_OWNER))
    listing = Listing(title=title[:200], owner_id=owner_id, published=published, bedrooms=bedrooms)
    listing.claims = [ListingClaim(amenity=slug) for slug in sorted(set(claimed))]
    session.add(listing)
    session.flush()
    if taxonomy is not None and model_id is not None:
        refresh_listing_amenities(session, listing, model_id, taxonomy)
    else:
        listing.rollup_stale = True  # a worker writes its roll-up
    return listing


def update_listing(
    session: Session,
    listing: Listing,
    *,
    title: str | None = None,
    claimed: Iterable[str] | None = None,
    published: bool | None = None,
    bedrooms: int | None | Unchanged = UNCHANGED,
    taxonomy: Taxonomy,
    model_id: int | None,
) -> Listing:
    """Change a listing's title, its claimed amenities (names, slugs or synonyms), whether it is published and/or
    its declared bedroom count; the roll-up follows (or, with no ``model_id`` yet, is left to a worker).
    Unpublishing takes the listing out of search at once; publishing puts it back.

    ``None`` leaves a field as it is; ``claimed=[]`` withdraws every claim. ``bedrooms`` is left as it is with
    :data:`UNCHANGED` (the default); ``None`` clears it (no count declared).

    Raises:
        ValueError: blank title. ListingError: a bedroom count out of range. TaxonomyError: an unknown amenity
            (nothing is changed).
    """
    slugs = None if claimed is None else sorted({taxonomy.resolve(c).slug for c in claimed})
    if bedrooms is not UNCHANGED:
        bedrooms = check_bedrooms(bedrooms)
    if title is not None:
        title = title.strip()
        if not title:
            raise ValueError("a listing needs a non-empty title")
        listing.title = title[:200]
    if slugs is not None:
        set_claims(session, listing, slugs)
    if published is not None:
        listing.published = published
    if bedrooms is not UNCHANGED:
        listing.bedrooms = bedrooms
    session.flush()
    _follow(session, listing, model_id, taxonomy)
    return listing


def _follow(session: Session, listing: Listing, model_id: int | None, taxonomy: Taxonomy) -> None:
    """Bring the roll-up in line after a change, or mark it stale for a worker when no model ran yet."""
    if model_id is None:
        listing.rollup_stale = True
        session.flush()
    else:
        refresh_listing_amenities(session, listing, model_id, taxonomy)


def delete_listing(session: Session, listing: Listing) -> list[str]:
    """Delete a listing with its claims, decisions and roll-up; photos no other listing uses go too.

    Returns the SHA-256 of each photo deleted, whose file the caller removes after committing
    (:func:`delete_orphan_files`).
    """
    photo_ids = [lp.photo_id for lp in listing.photos]
    session.delete(listing)
    session.flush()
    return _delete_orphan_photos(session, photo_ids)


def missing_listing(listing_id: int) -> str:
    """The one wording of "no such listing" (also for a listing hidden from the reader: nothing leaks)."""
    return f"listing {listing_id} does not exist"


def missing_photo(photo_id: int) -> str:
    return f"photo {photo_id} does not exist"


def get_listing(session: Session, listing_id: int) -> Listing:
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFoundError(missing_listing(listing_id))
    return listing


def list_listings(
    session: Session, *, limit: int = 50, offset: int = 0, visible: ColumnElement[bool] | None = None
) -> list[Listing]:
    """Newest first; ``visible`` (``roomscan.auth.visible_listings``) keeps the listings a viewer may see."""
    stmt = select(Listing).order_by(Listing.id.desc()).limit(limit).offset(offset)
    if visible is not None:
        stmt = stmt.where(visible)
    return list(session.scalars(stmt))


def set_decision(
    session: Session, listing: Listing, amenity: str, decision: str | None, *, taxonomy: Taxonomy, model_id: int
) -> ListingAmenities:
    """Record the host's verdict on an amenity the model reported (``confirmed``/``rejected``; ``None`` clears it).

    The decision is stored beside the model's detections, never over them: the roll-up, search and the label
    export read both. Returns the refreshed roll-up.

    Raises:
        TaxonomyError: unknown amenity. ValueError: an unknown decision, or an amenity no photo of the listing
            shows (a host confirms or rejects what the model reported, not a bare claim).
    """
    slug = taxonomy.resolve(amenity).slug
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)} (or none to clear), got {decision!r}")
    existing = session.get(AmenityDecision, (listing.id, slug))
    if decision is None:
        if existing is not None:
            session.delete(existing)
    else:
        current = listing_amenities(session, listing, model_id, taxonomy)
        reported = {a.slug for a in current.amenities if a.evidence}
        if slug not in reported and existing is None:
            raise ValueError(
                f"no photo of listing {listing.id} shows {slug} yet: a host confirms or rejects an amenity the "
                "model reported (claim it instead)"
            )
        if existing is None:
            session.add(AmenityDecision(listing_id=listing.id, amenity=slug, decision=decision))
        else:
            existing.decision = decision
    session.flush()
    session.expire(listing, ["decisions"])
    return refresh_listing_amenities(session, listing, model_id, taxonomy)


def set_claims(session: Session, listing: Listing, claimed: Iterable[str]) -> None:
    wanted = set(claimed)
    listing.claims = [c for c in listing.claims if c.amenity in wanted] + [
        ListingClaim(amenity=slug) for slug in sorted(wanted - {c.amenity for c in listing.claims})
    ]
    session.flush()


def get_photo(session: Session, photo_id: int) -> Photo:
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise NotFoundError(missing_photo(photo_id))
    return photo


def ensure_model(session: Session, info: ModelInfo) -> Model:
    """The catalog row of a detector version, created on first use."""
    model = session.scalar(select(Model).where(Model.key == info.key))
    if model is None:
        model = Model(key=info.key, backend=info.backend, name=info.name, version=info.version, taxonomy=info.taxonomy)
        try:
            with session.begin_nested():
                session.add(model)
        except IntegrityError:  # another process registered it first
            model = session.scalars(select(Model).where(Model.key == info.key)).one()
    return model


@dataclass(frozen=True)
class AddedPhoto:
    photo_id: int
    sha256: str
    filename: str | None
    new_photo: bool
    """False when these exact bytes were stored before (by any listing)."""
    newly_attached: bool
    """False when the photo was already on this listing: uploading it again changes nothing."""
    job_state: str


def add_photo(
    session: Session,
    store: PhotoStore,
    listing: Listing,
    loaded: LoadedImage,
    *,
    model_id: int,
    taxonomy: Taxonomy,
    filename: str | None = None,
    analysis: insights.PhotoAnalysis | None = None,
    analyse: bool = True,
) -> AddedPhoto:
    """Store a decoded photo by content hash, attach it to ``listing``, queue detection by ``model_id``.

    A new photo is stored with its quality and perceptual hashes (``photo_insights``): ``analysis`` when the
    caller computed it where the photo was decoded, else computed from ``loaded.image`` unless ``analyse`` is
    false (a caller without the pixels whose analysis failed: ``roomscan photos analyse`` does it later).

    The one way a photo joins a listing (CLI, API and page): when the photo's detections are already stored
    (another listing had it), the listing's roll-up is refreshed here, so search finds it at once; otherwise
    the listing is marked stale and the worker that finishes the photo refreshes it.
    Idempotent: the same bytes are stored once, attached once, and detected once per model.
    """
    store.put(loaded.sha256, loaded.data)  # file first: a row never points at a missing file
    photo = session.scalar(select(Photo).where(Photo.sha256 == loaded.sha256))
    new_photo = photo is None
    if photo is None:
        # Quality and perceptual hashes from the image already decoded, before this transaction writes (SQLite
        # holds its one write lock from the first write); a photo the analysis fails on is stored without them.
        if analysis is None and analyse:
            analysis = insights.analyse_image(loaded.image, name=filename or loaded.name)
        photo = Photo(
            sha256=loaded.sha256,
            format=loaded.format,
            width=loaded.width,
            height=loaded.height,
            size_bytes=len(loaded.data),
        )
        try:
            with session.begin_nested():
                session.add(photo)
        except IntegrityError:  # a concurrent upload of the same bytes won
            photo = session.scalars(select(Photo).where(Photo.sha256 == loaded.sha256)).one()
            new_photo = False
        if new_photo and analysis is not None:
            insights.save_photo_analysis(session, photo.id, analysis)

    attached = session.get(ListingPhoto, (listing.id, photo.id))
    if attached is None:
        position = session.scalar(
            select(func.coalesce(func.max(ListingPhoto.position), -1) + 1).where(ListingPhoto.listing_id == listing.id)
        )
        try:
            with session.begin_nested():
                session.add(ListingPhoto(listing_id=listing.id, photo_id=photo.id, position=position, filename=filename))
        except IntegrityError:  # a concurrent upload of the same bytes to this listing attached it first
            attached = session.get(ListingPhoto, (listing.id, photo.id), populate_existing=True)
    job = jobs.enqueue(session, photo.id, model_id)
    session.flush()
    if attached is None:
        if job.state == JobState.DONE:
            session.expire(listing, ["photos"])
            refresh_listing_amenities(session, listing, model_id, taxonomy)
        else:
            # Its worker may be finishing right now, before this attachment commits: a later pass refreshes it.
            listing.rollup_stale = True
            session.flush()
    return AddedPhoto(
        photo_id=photo.id,
        sha256=photo.sha256,
        filename=filename,
        new_photo=new_photo,
        newly_attached=attached is None,
        job_state=job.state,
    )


def save_detections(session: Session, photo_id: int, model_id: int, dets: Detections) -> None:
    """Replace the stored detections of one photo by one model."""
    session.execute(delete(Detection).where(Detection.photo_id == photo_id, Detection.model_id == model_id))
    if len(dets):
        assert dets.confidence is not None
        # One bulk INSERT (executemany / multi-row VALUES), not an ORM object per box: a photo may have hundreds.
        session.execute(
            insert(Detection),
            [
                {"photo_id": photo_id, "model_id": model_id, "amenity": label, "score": float(score),
                 "x1": float(box[0]), "y1": float(box[1]), "x2": float(box[2]), "y2": float(box[3])}
                for label, score, box in zip(labels_of(dets), dets.confidence, dets.xyxy)
            ],
        )
    session.flush()


def photo_detections(
    session: Session, photo_ids: Sequence[int], model_id: int, taxonomy: Taxonomy | None = None
) -> dict[int, Detections]:
    """Stored detections of each photo by one model (photos without detections map to empty ``Detections``).

    With ``taxonomy``, ``class_id`` is each amenity's index in it (drawing colours by class); else -1.
    """
    rows = session.execute(
        select(Detection.photo_id, Detection.amenity, Detection.score, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
        .where(Detection.photo_id.in_(list(photo_ids)), Detection.model_id == model_id)
        .order_by(Detection.photo_id, Detection.score.desc())
    ).all()
    grouped: dict[int, list] = {pid: [] for pid in photo_ids}
    for row in rows:
        grouped[row.photo_id].append(row)
    out = {}
    for pid, items in grouped.items():
        out[pid] = make_detections(
            np.array([[r.x1, r.y1, r.x2, r.y2] for r in items], dtype=np.float32).reshape(-1, 4),
            [r.score for r in items],
            [taxonomy.index(r.amenity) if taxonomy is not None and r.amenity in taxonomy else -1 for r in items],
            [r.amenity for r in items],
        )
    return out


def listing_amenities(session: Session, listing: Listing, model_id: int, taxonomy: Taxonomy) -> ListingAmenities:
    """A listing's amenities under one model, with evidence, computed from the stored detections and the
    host's decisions."""
    photo_ids = [lp.photo_id for lp in listing.photos]
    return roll_up(
        photo_detections(session, photo_ids, model_id),
        [c.amenity for c in listing.claims],
        taxonomy,
        decisions={d.amenity: d.decision for d in listing.decisions},
    )


def refresh_listing_amenities(session: Session, listing: Listing, model_id: int, taxonomy: Taxonomy) -> ListingAmenities:
    """Recompute the searchable roll-up rows of a listing (``listing_amenities``, and ``listing_rooms`` from its
    photos' room types), holding the listing's row lock. An unpublished listing keeps none, so search (which
    reads only these rows) never finds it.

    The lock (``SELECT ... FOR UPDATE``; SQLite serialises writers anyway) keeps two writers refreshing the
    same listing from interleaving their deletes and inserts.
    """
    session.execute(select(Listing.id).where(Listing.id == listing.id).with_for_update())
    summary = listing_amenities(session, listing, model_id, taxonomy)
    listing.rollup_stale = False
    session.execute(delete(ListingAmenity).where(ListingAmenity.listing_id == listing.id))
    session.add_all(
        ListingAmenity(
            listing_id=listing.id,
            amenity=a.slug,
            model_id=model_id,
            score=a.score,
            photo_count=a.photo_count,
            claimed=a.claimed,
            seen=a.seen,
            status=a.status,
        )
        for a in (summary.amenities if listing.published else ())
    )
    session.flush()
    insights.refresh_listing_rooms(session, listing, model_id)
    return summary


def refresh_stale_listings(session: Session, model_id: int, taxonomy: Taxonomy, *, limit: int = 100) -> int:
    """Refresh up to ``limit`` listings whose roll-up lags their photos (see ``Listing.rollup_stale``).

    Returns how many were refreshed; the caller commits.
    """
    # SKIP LOCKED (PostgreSQL): workers refreshing at the same time take different listings.
    ids = session.scalars(
        select(Listing.id).where(Listing.rollup_stale).order_by(Listing.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    for listing_id in ids:
        listing = session.get(Listing, listing_id)
        if listing is not None:
            refresh_listing_amenities(session, listing, model_id, taxonomy)
    return len(ids)


@dataclass(frozen=True)
class RemovedPhoto:
    photo_id: int
    deleted: tuple[str, ...]
    """The photo's hash when no listing uses it any more (else empty): its row is gone, its file is the caller's
    to delete after committing (:func:`delete_orphan_files`)."""


def remove_photo(
    session: Session, listing: Listing, photo_id: int, *, taxonomy: Taxonomy, model_id: int | None
) -> RemovedPhoto:
    """Take a photo off a listing; the listing's roll-up follows. A photo no other listing uses is deleted
    with its detections (the caller deletes its file after committing: :func:`delete_orphan_files`).

    Raises:
        NotFoundError: the photo is not on this listing.
    """
    attached = session.get(ListingPhoto, (listing.id, photo_id))
    if attached is None:
        raise NotFoundError(f"photo {photo_id} is not on listing {listing.id}")
    session.delete(attached)
    session.flush()
    session.expire(listing, ["photos"])
    deleted = _delete_orphan_photos(session, [photo_id])
    _follow(session, listing, model_id, taxonomy)
    return RemovedPhoto(photo_id=photo_id, deleted=tuple(deleted))


def _delete_orphan_photos(session: Session, photo_ids: Sequence[int]) -> list[str]:
    """Delete the photos among ``photo_ids`` that no listing uses (detections and jobs cascade)."""
    if not photo_ids:
        return []
    used = select(ListingPhoto.photo_id).where(ListingPhoto.photo_id.in_(list(photo_ids)))
    orphans = session.execute(
        select(Photo.id, Photo.sha256).where(Photo.id.in_(list(photo_ids)), Photo.id.not_in(used))
    ).all()
    if not orphans:
        return []
    ids = [row.id for row in orphans]
    # Their detections and jobs go by ON DELETE CASCADE (enforced on SQLite too: db.py turns foreign keys on).
    session.execute(delete(Photo).where(Photo.id.in_(ids)).execution_options(synchronize_session=False))
    session.flush()
    return [row.sha256 for row in orphans]


def delete_orphan_files(session: Session, photos: PhotoStore, sha256s: Iterable[str]) -> int:
    """After a commit that deleted photo rows: remove their files, except any whose bytes were stored again
    since. Returns how many files were removed."""
    removed = 0
    for sha256 in sha256s:
        if session.scalar(select(Photo.id).where(Photo.sha256 == sha256)) is None:
            removed += photos.delete(sha256)
    return removed


@dataclass(frozen=True)
class ProcessingState:
    """Where a listing's photos stand with one model. ``state`` is ``complete`` once nothing is queued."""

    total: int
    pending: int
    running: int
    done: int
    failed: int

    @property
    def state(self) -> str:
        if self.pending or self.running:
            return "processing"
        return "complete"


def listing_processing_state(session: Session, listing: Listing, model_id: int) -> ProcessingState:
    rows = session.execute(
        select(PhotoJob.state, func.count())
        .join(ListingPhoto, ListingPhoto.photo_id == PhotoJob.photo_id)
        .where(ListingPhoto.listing_id == listing.id, PhotoJob.model_id == model_id)
        .group_by(PhotoJob.state)
    ).all()
    counts = {JobState(state): n for state, n in rows}
    total = len(listing.photos)
    queued = sum(counts.values())
    return ProcessingState(
        total=total,
        # A photo with no job for this model yet (model just switched) counts as pending.
        pending=counts.get(JobState.PENDING, 0) + max(0, total - queued),
        running=counts.get(JobState.RUNNING, 0),
        done=counts.get(JobState.DONE, 0),
        failed=counts.get(JobState.FAILED, 0),
    )
