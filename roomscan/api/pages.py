"""The web page: server-rendered HTML (Jinja2), no front-end build step.

Hosts create a listing and upload photos; everyone sees each photo with its boxes and the amenity checklist;
guests search by amenity. Writes need the API key (see ``web.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from roomscan.api.deps import ServicesDep, SessionDep, check_api_key
from roomscan.api.routes.photos import accept_photos
from roomscan.api.web import key_from, remember_key, render
from roomscan.catalog import store
from roomscan.catalog.search import SearchQuery, search_listings
from roomscan.errors import TaxonomyError

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "index.html", listings=store.list_listings(session, limit=50))


@router.post("/listings", response_class=HTMLResponse)
def create_listing_form(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    title: Annotated[str, Form()] = "",
    claimed: Annotated[list[str], Form()] = [],  # noqa: B006
    api_key: Annotated[str | None, Form()] = None,
) -> Response:
    key = key_from(request, api_key)
    try:
        check_api_key(services, key)
        listing = store.create_listing(session, title, claimed, taxonomy=services.taxonomy, model_id=services.model_id)
    except HTTPException as exc:
        return render(request, "index.html", exc.status_code, error=exc.detail, listings=store.list_listings(session))
    except (ValueError, TaxonomyError) as exc:  # blank title, unknown amenity
        session.rollback()
        return render(request, "index.html", 422, error=str(exc), listings=store.list_listings(session))
    session.commit()
    return remember_key(RedirectResponse(f"/listings/{listing.id}", status.HTTP_303_SEE_OTHER), key)


def _listing_context(services, session, listing_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    listing = store.get_listing(session, listing_id)
    summary = store.listing_amenities(session, listing, services.model_id, services.taxonomy)
    state = store.listing_processing_state(session, listing, services.model_id)
    return {"listing": listing, "summary": summary, "state": state}


@router.get("/listings/{listing_id}", response_class=HTMLResponse)
def listing_page(request: Request, listing_id: int, services: ServicesDep, session: SessionDep) -> HTMLResponse:
    return render(request, "listing.html", **_listing_context(services, session, listing_id))


@router.post("/listings/{listing_id}/photos", response_class=HTMLResponse)
async def upload_form(
    request: Request,
    listing_id: int,
    services: ServicesDep,
    session: SessionDep,
    files: Annotated[list[UploadFile], File()],
    api_key: Annotated[str | None, Form()] = None,
) -> Response:
    key = key_from(request, api_key)
    try:
        check_api_key(services, key)
        await accept_photos(services, session, listing_id, [f for f in files if f.filename or f.size])
    except HTTPException as exc:
        session.rollback()
        return render(
            request, "listing.html", exc.status_code, error=exc.detail, **_listing_context(services, session, listing_id)
        )
    return remember_key(RedirectResponse(f"/listings/{listing_id}", status.HTTP_303_SEE_OTHER), key)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    amenity: Annotated[list[str], Query()] = [],  # noqa: B006
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    confirmed_only: bool = False,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    page, error = None, None
    chosen: list[str] = []
    if amenity:
        try:
            chosen = sorted({services.taxonomy.resolve(a).slug for a in amenity})
            page = search_listings(
                session, SearchQuery(all_of=tuple(chosen), min_score=min_score, confirmed_only=confirmed_only, after=after)
            )
        except (TaxonomyError, ValueError) as exc:
            error = str(exc)
    return render(
        request,
        "search.html",
        422 if error else 200,
        error=error,
        page=page,
        chosen=chosen,
        min_score=min_score,
        confirmed_only=confirmed_only,
    )
