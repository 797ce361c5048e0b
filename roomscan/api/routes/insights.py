"""Listing photo insights: each photo's room type, quality and duplicates on other listings, the suggested photo
tour (``/api/v1/listings/{id}/insights``), and the same picture across the catalog (``/api/v1/photos/duplicates``).

What a caller learns follows ``roomscan.auth``: a listing it may not see is 404; duplicates on listings it may
not see are never linked, only counted, and a guest without a key is not even told the count.

Example:
    ``GET /api/v1/listings/7/insights?max_distance=8`` ->
    ``{"photos": [{"photo_id": 3, "room": {"best": "bathroom", ...}, "quality": {"issues": [...]},
    "duplicates": [{"listing_id": 12, "page_url": "/listings/12", ...}]}], "tour": {"cover": 5, ...}}``
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from roomscan.api.deps import ServicesDep, SessionDep, ViewerDep, visible_listing
from roomscan.api.schemas import (
    LISTINGS,
    READ,
    CatalogId,
    ClusterListingOut,
    ClusterPhotoOut,
    CompletenessNoteOut,
    Cursor,
    DuplicateClusterOut,
    DuplicateClustersOut,
    DuplicateOut,
    ListingInsightsOut,
    PhotoInsightsOut,
    QualityIssueOut,
    QualityOut,
    RoomOut,
    TourOut,
    TourStopOut,
)
from roomscan.auth import Principal, can_see
from roomscan.catalog import insights
from roomscan.catalog.models import Listing
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE
from roomscan.insights.quality import PhotoQuality
from roomscan.insights.rooms import RoomScores, RoomTypes, RoomTypesError, load_room_types
from roomscan.insights.tour import Tour
from roomscan.services import Services

router = APIRouter(tags=["insights"])

MaxDistance = Annotated[
    int,
    Query(
        ge=0,
        le=32,
        description="bits within which two photos count as the same picture (0: identical hashes; the default "
        f"{DEFAULT_MAX_DISTANCE} catches resized, re-encoded and slightly cropped copies)",
    ),
]


def room_types(services: Services) -> RoomTypes:
    """The room types photos are typed with (``Settings.room_types``), read once per file."""
    return _room_types(services.settings.room_types)


@functools.lru_cache(maxsize=8)
def _room_types(path: str | None) -> RoomTypes:
    return load_room_types(path)


def room_name(rooms: RoomTypes, slug: str) -> str:
    """A room type's display name; a slug the room types no longer hold stays as it is."""
    try:
        return rooms[slug].name
    except RoomTypesError:
        return slug


def room_out(scores: RoomScores | None, rooms: RoomTypes) -> RoomOut | None:
    if scores is None:
        return None
    doc = scores.to_dict()
    return RoomOut(
        best=scores.best,
        name=room_name(rooms, scores.best),
        probability=round(scores.scores[scores.best], 4),
        margin=doc["margin"],
        source=scores.source,
        scores=doc["scores"],
    )


def quality_out(quality: PhotoQuality | None) -> QualityOut | None:
    if quality is None:
        return None
    doc = quality.to_dict()
    return QualityOut(
        **{k: doc[k] for k in QualityOut.model_fields if k != "issues"},
        issues=[QualityIssueOut(**issue) for issue in doc["issues"]],
    )


def tour_out(tour: Tour | None) -> TourOut | None:
    if tour is None:
        return None
    doc = tour.to_dict()
    return TourOut(
        order=doc["order"],
        cover=doc["cover"],
        stops=[TourStopOut(**stop) for stop in doc["stops"]],
        notes=[CompletenessNoteOut(**note) for note in doc["notes"]],
    )


def listing_urls(listing_id: int) -> dict[str, str]:
    """Where another listing is read: in this API and on the web page."""
    from roomscan.api.main import API_PREFIX

    return {"api_url": f"{API_PREFIX}/listings/{listing_id}", "page_url": f"/listings/{listing_id}"}


def read_insights(
    services: Services, session: Session, listing: Listing, viewer: Principal | None, max_distance: int
) -> insights.ListingInsights:
    """``catalog.insights.listing_insights`` for the served model and room types (the page reads it too)."""
    return insights.listing_insights(
        session,
        listing,
        services.model_id,
        viewer=viewer,
        room_types=room_types(services),
        taxonomy=services.taxonomy,
        max_distance=max_distance,
    )


@router.get("/listings/{listing_id}/insights", response_model=ListingInsightsOut, responses=READ)
def listing_insights(
    listing_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    viewer: ViewerDep,
    max_distance: MaxDistance = DEFAULT_MAX_DISTANCE,
) -> ListingInsightsOut:
    """Each photo's room type, quality (with plain reasons) and the other listings showing the same picture, and
    the suggested photo tour: order, cover photo and what the photos leave out.

    Room types appear once the model has seen a photo (poll ``GET /listings/{id}/amenities`` for its progress).
    Duplicates on listings the caller may not see are counted (``hidden_duplicates``), never linked.
    """
    listing = visible_listing(viewer, session, listing_id)
    found = read_insights(services, session, listing, viewer, max_distance)
    rooms = room_types(services)
    return ListingInsightsOut(
        listing_id=listing.id,
        model=services.model_key,
        max_distance=max_distance,
        photos=[
            PhotoInsightsOut(
                photo_id=p.photo_id,
                position=p.position,
                filename=p.filename,
                room=room_out(p.room, rooms),
                quality=quality_out(p.quality),
                duplicates=[
                    DuplicateOut(**d.to_dict(), **listing_urls(d.listing_id)) for d in p.duplicates
                ],
                hidden_duplicates=None if viewer is None else p.hidden_duplicates,
            )
            for p in found.photos
        ],
        tour=tour_out(found.tour),
        left_out_of_tour=list(found.left_out),
    )


CLUSTERS_TTL = 30.0
"""Seconds a caller's duplicate clusters are reused: finding them walks the whole catalog's index."""
_cluster_cache: dict[tuple[str, int, object], tuple[float, list[insights.DuplicateCluster]]] = {}
_cluster_lock = threading.Lock()


def _clusters(session: Session, max_distance: int, viewer: Principal | None) -> list[insights.DuplicateCluster]:
    """``catalog.insights.duplicate_clusters``, reused for :data:`CLUSTERS_TTL` seconds per catalog, distance and
    who may see what; one computation at a time (requests arriving meanwhile wait for it and share it)."""
    who: object = None if viewer is None else "admin" if viewer.is_admin else viewer.user_id
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), max_distance, who)
    with _cluster_lock:
        now = time.monotonic()
        for stale in [k for k, (at, _) in _cluster_cache.items() if now - at > CLUSTERS_TTL]:
            del _cluster_cache[stale]
        if key not in _cluster_cache:
            found = insights.duplicate_clusters(session, max_distance=max_distance, viewer=viewer)
            _cluster_cache[key] = (time.monotonic(), found)
        return _cluster_cache[key][1]


@router.get("/photos/duplicates", response_model=DuplicateClustersOut, responses=LISTINGS)
def duplicates(
    session: SessionDep,
    viewer: ViewerDep,
    max_distance: MaxDistance = DEFAULT_MAX_DISTANCE,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[Cursor | None, Query(description="`next_after` of the previous page")] = None,
) -> DuplicateClustersOut:
    """Groups of photos that are the same picture on two or more listings, across the catalog.

    An admin sees every group. Others see the groups on listings they may see, with only those listings and
    their photos; a host is told how many more listings (which it may not see) share the picture, a guest without
    a key only sees groups of two or more published listings. Ordered by each group's first photo id; page with
    ``after=next_after``.

    The groups are found across the whole catalog (about 0.2 ms per stored photo), so an answer is kept for
    30 s per caller and ``max_distance``: a photo stored meanwhile shows up in at most that long.
    """
    found = _clusters(session, max_distance, viewer)
    # The groups may be up to CLUSTERS_TTL old: who may see each listing, and its title, are read now (a listing
    # unpublished since is not shown to those who may no longer see it).
    wanted = sorted({ref.listing_id for c in found for p in c.photos for ref in p.listings})
    current: dict[int, Listing] = {}
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start:start + 1000]
        current.update((x.id, x) for x in session.scalars(select(Listing).where(Listing.id.in_(chunk))))
    seen = {i for i, x in current.items() if can_see(viewer, x)}
    admin = viewer is not None and viewer.is_admin
    clusters = []
    for cluster in found:
        listing_ids = sorted({ref.listing_id for p in cluster.photos for ref in p.listings} & seen)
        if len(listing_ids) < (2 if viewer is None else 1):
            continue  # a guest learns nothing about listings it may not see, not even that they exist
        photos = [(p, [ref for ref in p.listings if ref.listing_id in seen]) for p in cluster.photos]
        clusters.append(
            DuplicateClusterOut(
                photos=[
                    ClusterPhotoOut(
                        photo_id=p.photo_id,
                        listings=[
                            ClusterListingOut(
                                listing_id=ref.listing_id,
                                title=current[ref.listing_id].title,
                                **listing_urls(ref.listing_id),
                            )
                            for ref in refs
                        ],
                    )
                    for p, refs in photos
                    if refs or admin
                ],
                listing_ids=listing_ids,
                hidden_listings=None if viewer is None else cluster.hidden_listings,
            )
        )
    clusters.sort(key=lambda c: c.photos[0].photo_id)
    if after is not None:
        clusters = [c for c in clusters if c.photos[0].photo_id > after]
    page = clusters[:limit]
    more = len(clusters) > limit
    return DuplicateClustersOut(
        max_distance=max_distance, clusters=page, next_after=page[-1].photos[0].photo_id if more else None
    )
