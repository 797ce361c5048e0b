"""``/api/v1/search``: find listings by amenity and by the rooms their photos show."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from roomscan.api.deps import ServicesDep, SessionDep
from roomscan.api.routes.insights import room_types
from roomscan.api.routes.listings import resolve_amenities
from roomscan.api.schemas import LIST, Cursor, SearchHitOut, SearchOut, Text
from roomscan.catalog.search import SearchQuery, search_listings
from roomscan.insights.rooms import RoomTypesError
from roomscan.services import Services

router = APIRouter(tags=["search"])


def resolve_room(services: Services, room: str | None) -> str | None:
    """A room type slug checked against the served room types; 422 naming the valid ones."""
    if room is None:
        return None
    try:
        return room_types(services)[room].slug
    except RoomTypesError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"room: {exc}") from exc


@router.get("/search", response_model=SearchOut, responses=LIST)
def search(
    services: ServicesDep,
    session: SessionDep,
    amenity: Annotated[list[Text], Query(description="the listing must show every one of these")] = [],  # noqa: B006
    any_amenity: Annotated[list[Text], Query(alias="any", description="...and at least one of these")] = [],  # noqa: B006
    room: Annotated[
        Text | None,
        Query(max_length=100, description="a room type slug (bathroom, kitchen...): the listing must have a photo "
              "of that room", examples=["bathroom"]),
    ] = None,
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    confirmed_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="cursor from the previous page's next_cursor")] = None,
) -> SearchOut:
    """Listings whose photos show the given amenities (and a room, if given), by listing id; page with
    ``after=next_cursor``.

    Example: ``GET /api/v1/search?amenity=swimming-pool&amenity=jacuzzi&min_score=0.3``, or
    ``GET /api/v1/search?room=bathroom&amenity=bathtub``
    """
    slug = resolve_room(services, room)
    if not amenity and not any_amenity and slug is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "give at least one amenity or a room: ?amenity=swimming-pool (or ?any=..., or ?room=bathroom)",
        )
    try:
        query = SearchQuery(
            all_of=tuple(resolve_amenities(services.taxonomy, amenity)),
            any_of=tuple(resolve_amenities(services.taxonomy, any_amenity)),
            min_score=min_score,
            confirmed_only=confirmed_only,
            limit=limit,
            after=after,
            room=slug,
        )
    except ValueError as exc:  # e.g. more amenities than one search may combine
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    page = search_listings(session, query)
    return SearchOut(
        hits=[
            SearchHitOut(listing_id=h.listing_id, title=h.title, amenities=h.amenities, room_score=h.room_score)
            for h in page.hits
        ],
        next_cursor=page.next_cursor,
    )
