"""``/api/v1/search``: find listings by amenity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from roomscan.api.deps import ServicesDep, SessionDep
from roomscan.api.routes.listings import resolve_amenities
from roomscan.api.schemas import LIST, Cursor, SearchHitOut, SearchOut, Text
from roomscan.catalog.search import SearchQuery, search_listings

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchOut, responses=LIST)
def search(
    services: ServicesDep,
    session: SessionDep,
    amenity: Annotated[list[Text], Query(description="the listing must show every one of these")] = [],  # noqa: B006
    any_amenity: Annotated[list[Text], Query(alias="any", description="...and at least one of these")] = [],  # noqa: B006
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    confirmed_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="cursor from the previous page's next_cursor")] = None,
) -> SearchOut:
    """Listings whose photos show the given amenities, by listing id; page with ``after=next_cursor``.

    Example: ``GET /api/v1/search?amenity=swimming-pool&amenity=jacuzzi&min_score=0.3``
    """
    if not amenity and not any_amenity:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give at least one amenity: ?amenity=swimming-pool (or ?any=...)"
        )
    try:
        query = SearchQuery(
            all_of=tuple(resolve_amenities(services.taxonomy, amenity)),
            any_of=tuple(resolve_amenities(services.taxonomy, any_amenity)),
            min_score=min_score,
            confirmed_only=confirmed_only,
            limit=limit,
            after=after,
        )
    except ValueError as exc:  # e.g. more amenities than one search may combine
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    page = search_listings(session, query)
    return SearchOut(
        hits=[SearchHitOut(listing_id=h.listing_id, title=h.title, amenities=h.amenities) for h in page.hits],
        next_cursor=page.next_cursor,
    )
