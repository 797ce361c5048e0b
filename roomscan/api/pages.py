"""The web page: server-rendered HTML (Jinja2), no front-end build step.

Hosts create, edit and delete listings and confirm or reject what the model reported; everyone sees the amenity
checklist with a link to the photo that shows each amenity, each photo's room type, quality warnings and the other
listings showing the same picture, and the suggested photo tour; guests search by amenity and room. Photos (upload, photo view,
thumbnails) are in ``photo_pages.py``. Writes need a signed-in session and its CSRF token (``sessions.py``; ``/signin``
and ``/signout`` are here); a write that succeeds redirects (303), one that fails shows the form again with what
was typed.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from roomscan.api.deps import ServicesDep, SessionDep, check_api_key
from roomscan.api.routes.insights import read_insights, room_name, room_types
from roomscan.api.routes.search import resolve_room
from roomscan.api.schemas import CatalogId, Cursor, Text
from roomscan.api.sessions import (
    end_session,
    page_can_change,
    page_principal,
    page_viewer,
    secure_cookies,
    signed_in,
    start_session,
)
from roomscan.api.web import query_url, redirect, render
from roomscan.auth import Principal, require_see, visible_listings
from roomscan.catalog import store
from roomscan.catalog.insights import photo_rooms
from roomscan.catalog.models import MAX_BEDROOMS, Listing
from roomscan.catalog.search import SearchQuery, search_listings
from roomscan.errors import ListingError, TaxonomyError
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE
from roomscan.listing import Decision, Evidence
from roomscan.services import Services

router = APIRouter(include_in_schema=False)

DECISIONS: dict[str, Decision | None] = {**{d.value: d for d in Decision}, "clear": None}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "index.html", listings=_visible_listings(request, session))


def _visible_listings(request: Request, session: Session) -> list[Listing]:
    """The newest 50 listings the reader may see (published ones; their own unpublished ones too)."""
    return store.list_listings(session, limit=50, visible=visible_listings(page_viewer(request)))


VISIBILITY = {"published": True, "unpublished": False}
"""The page's publish choice: a select (not a checkbox, whose absence could not be told from "leave as is")."""


def _published(visibility: str | None) -> bool | None:
    if visibility is None or visibility == "":
        return None
    if visibility not in VISIBILITY:
        raise ValueError(f"visibility must be published or unpublished, got {visibility!r}")
    return VISIBILITY[visibility]


def _bedrooms(value: str | None) -> int | None:
    """The form's number field: a count 0-100, or none declared when empty. Like the claims, the edit form states
    the whole listing (FastAPI reads an empty field as an absent one, so the two cannot mean different things)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        raise ListingError(
            f"bedrooms must be a whole number from 0 to {MAX_BEDROOMS}, got {text!r}; "
            "leave it empty when the listing declares no count"
        ) from None
    return store.check_bedrooms(count)


@router.post("/listings", response_class=HTMLResponse)
def create_listing_form(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    title: Annotated[Text, Form()] = "",
    claimed: Annotated[list[Text], Form()] = [],  # noqa: B006
    visibility: Annotated[str | None, Form()] = None,
    bedrooms: Annotated[str | None, Form()] = None,
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        principal = page_principal(request, services, form_key=api_key, csrf_token=csrf_token)
        published = _published(visibility)
        listing = store.create_listing(
            session, title, claimed, taxonomy=services.taxonomy, model_id=services.model_id,
            owner_id=principal.user_id, published=True if published is None else published,
            bedrooms=_bedrooms(bedrooms),
        )
    except (HTTPException, ValueError, TaxonomyError) as exc:  # wrong key, blank title, bad count, unknown amenity
        session.rollback()
        code, message = _failure(exc)
        form = {"title": title, "claimed": set(claimed), "visibility": visibility, "bedrooms": bedrooms}
        return render(
            request, "index.html", code, error=message, form=form, listings=_visible_listings(request, session)
        )
    session.commit()
    return redirect(f"/listings/{listing.id}", text=f"Listing “{listing.title}” created.")


SIGNIN_COOKIE = "roomscan_signin"
"""Login CSRF guard: the sign-in form's one-time token, also held in this cookie (another site can neither read
it nor set it, so it cannot sign a visitor in to the attacker's account)."""


def _signin_form(request: Request, code: int = 200, **context: Any) -> HTMLResponse:
    """The sign-in page with a fresh form token, set in its cookie too (double submit)."""
    token = secrets.token_urlsafe(32)
    response = render(request, "signin.html", code, signin_token=token, **context)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path="/signin", httponly=True, samesite="strict",
                        secure=secure_cookies(request))
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str = "/") -> HTMLResponse:
    return _signin_form(request, next=_local(next))


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    services: ServicesDep,
    api_key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    signin_token: Annotated[str, Form()] = "",
) -> Response:
    """Sign in with an API key: a server-side session (the cookie holds a random token, never the key). The form's
    token must match its cookie: a sign-in posted from another site is refused (403)."""
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(signin_token.encode("utf-8", "surrogatepass"), expected.encode()):
        message = "this sign-in form has expired or was not sent from this site; sign in again"
        return _signin_form(request, 403, error=message, next=_local(next))
    try:
        principal = check_api_key(services, api_key, request)
    except HTTPException as exc:
        return _signin_form(request, exc.status_code, error=exc.detail, next=_local(next))
    response = redirect(_local(next), text=f"Signed in as {principal.name}.")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    start_session(services, principal, request, response)
    return response


@router.post("/signout", response_class=HTMLResponse)
def signout(
    request: Request, services: ServicesDep, csrf_token: Annotated[str | None, Form()] = None
) -> Response:
    if signed_in(request) is not None:
        try:
            page_principal(request, services, csrf_token=csrf_token)
        except HTTPException as exc:
            return render(request, "error.html", exc.status_code, error=exc.detail, status=exc.status_code)
    response = redirect("/", text="Signed out.")
    end_session(services, request, response)
    return response


def _local(url: str) -> str:
    """Where to go after signing in: a path on this site only (never ``//elsewhere`` or a full URL)."""
    local = url.startswith("/") and not url.startswith(("//", "/\\", "/signin"))
    return url if local else "/"


@router.get("/listings/{listing_id}", response_class=HTMLResponse)
def listing_page(
    request: Request, listing_id: CatalogId, services: ServicesDep, session: SessionDep
) -> HTMLResponse:
    return render(request, "listing.html", **listing_context(services, session, listing_id, page_viewer(request)))


@router.post("/listings/{listing_id}/edit", response_class=HTMLResponse)
def edit_listing_form(
    request: Request,
    listing_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    title: Annotated[Text, Form()] = "",
    claimed: Annotated[list[Text], Form()] = [],  # noqa: B006
    visibility: Annotated[str | None, Form()] = None,
    bedrooms: Annotated[str | None, Form()] = None,
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    listing = store.get_listing(session, listing_id)
    try:
        page_can_change(request, services, listing, form_key=api_key, csrf_token=csrf_token)
        store.update_listing(
            session,
            listing,
            title=title,
            claimed=claimed,
            published=_published(visibility),
            bedrooms=_bedrooms(bedrooms),
            taxonomy=services.taxonomy,
            model_id=services.model_id,
        )
    except (HTTPException, ValueError, TaxonomyError) as exc:
        session.rollback()
        code, message = _failure(exc)
        form = {"title": title, "claimed": set(claimed), "visibility": visibility, "bedrooms": bedrooms,
                "editing": True}
        return listing_error(request, services, session, listing_id, code, message, form=form)
    session.commit()
    return redirect(f"/listings/{listing_id}", text="Listing saved.")


@router.post("/listings/{listing_id}/delete", response_class=HTMLResponse)
def delete_listing_form(
    request: Request,
    listing_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    listing = store.get_listing(session, listing_id)
    try:
        page_can_change(request, services, listing, form_key=api_key, csrf_token=csrf_token)
    except HTTPException as exc:
        return listing_error(request, services, session, listing_id, exc.status_code, exc.detail)
    title = listing.title
    orphans = store.delete_listing(session, listing)
    session.commit()
    store.delete_orphan_files(session, services.photos, orphans)  # photos no other listing uses
    return redirect("/", text=f"Listing “{title}” deleted.")


@router.post("/listings/{listing_id}/amenities/{amenity}/decision", response_class=HTMLResponse)
def decision_form(
    request: Request,
    listing_id: CatalogId,
    amenity: Text,
    services: ServicesDep,
    session: SessionDep,
    decision: Annotated[str, Form()],
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """The host confirms or rejects an amenity (or clears the decision); the model's output stays as it was."""
    listing = store.get_listing(session, listing_id)
    try:
        page_can_change(request, services, listing, form_key=api_key, csrf_token=csrf_token)
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; use confirmed, rejected or clear")
        slug = services.taxonomy.resolve(amenity).slug
        store.set_decision(
            session,
            listing,
            slug,
            DECISIONS[decision],
            taxonomy=services.taxonomy,
            model_id=services.model_id,
        )
    except (HTTPException, ValueError, TaxonomyError) as exc:
        session.rollback()
        code, message = _failure(exc)
        return listing_error(request, services, session, listing_id, code, message)
    session.commit()
    name = services.taxonomy.resolve(slug).name
    text = {Decision.CONFIRMED: f"{name}: confirmed by you.", Decision.REJECTED: f"{name}: rejected by you."}.get(
        decision, f"{name}: your decision is cleared; the model's report stands."
    )
    return redirect(f"/listings/{listing_id}#amenity-{slug}", text=text)


def listing_error(
    request: Request,
    services: Services,
    session: Session,
    listing_id: int,
    code: int,
    message: object,
    **context: Any,
) -> HTMLResponse:
    """The listing page again, with the error and whatever the person typed (``form``), after a refused write;
    a listing hidden from the reader is a plain 404 instead (nothing of it is shown)."""
    viewer = page_viewer(request)
    return render(
        request, "listing.html", code, error=message, **context,
        **listing_context(services, session, listing_id, viewer),
    )


def listing_context(
    services: Services, session: Session, listing_id: int, viewer: Principal | None
) -> dict[str, Any]:
    """What ``listing.html`` shows: the listing, its amenity roll-up with evidence, processing state, and each
    photo's insights (room type, quality, duplicates on listings ``viewer`` may see) with the suggested tour.

    Raises:
        NotFoundError: no such listing, or one hidden from ``viewer`` (unpublished and not theirs).
    """
    listing = store.get_listing(session, listing_id)
    require_see(viewer, listing)
    summary = store.listing_amenities(session, listing, services.model_id, services.taxonomy)
    state = store.listing_processing_state(session, listing, services.model_id)
    found = read_insights(services, session, listing, viewer, DEFAULT_MAX_DISTANCE)
    return {
        "listing": listing,
        "summary": summary,
        "state": state,
        "insights": found,
        "photo_insights": {p.photo_id: p for p in found.photos},
        "room_name": functools.partial(room_name, room_types(services)),
        # A guest is told nothing about listings it may not see, not even how many share a photo.
        "show_hidden": viewer is not None,
    }


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    amenity: Annotated[list[Text], Query(description="all of these")] = [],  # noqa: B006
    any_: Annotated[list[Text], Query(alias="any", description="at least one of these")] = [],  # noqa: B006
    room: Annotated[Text, Query(max_length=100, description="a room type slug; empty: any room")] = "",
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    confirmed_only: bool = False,
    after: Annotated[Cursor | None, Query()] = None,
) -> HTMLResponse:
    page, error, evidence = None, None, {}
    room_photos: dict[int, int | None] = {}
    all_of: list[str] = []
    any_of: list[str] = []
    if amenity or any_ or room:
        try:
            room_slug = resolve_room(services, room or None)
            all_of = [services.taxonomy.resolve(a).slug for a in amenity]
            any_of = [services.taxonomy.resolve(a).slug for a in any_]
            page = search_listings(
                session,
                SearchQuery(
                    all_of=tuple(all_of),
                    any_of=tuple(any_of),
                    min_score=min_score,
                    confirmed_only=confirmed_only,
                    after=after,
                    room=room_slug,
                ),
            )
        except HTTPException as exc:  # an unknown room
            error = str(exc.detail)
        except (TaxonomyError, ValueError) as exc:
            error = str(exc)
        else:
            evidence = {
                hit.listing_id: _best_evidence(services, session, hit.listing_id, hit.amenities)
                for hit in page.hits
            }
            if room_slug is not None:
                room_photos = {hit.listing_id: _room_photo(services, session, hit.listing_id, room_slug)
                               for hit in page.hits}
    params = {
        "amenity": all_of,
        "any": any_of,
        "room": room or None,
        "min_score": min_score or None,
        "confirmed_only": confirmed_only,
    }
    rooms = room_types(services)
    return render(
        request,
        "search.html",
        422 if error else 200,
        error=error,
        page=page,
        all_of=set(all_of),
        any_of=set(any_of),
        rooms=rooms,
        room=room,
        room_name=functools.partial(room_name, rooms),
        min_score=min_score,
        confirmed_only=confirmed_only,
        evidence=evidence,
        room_photos=room_photos,
        next_url=query_url("/search", **params, after=page.next_cursor)
        if page and page.next_cursor
        else None,
    )


def _best_evidence(
    services: Services, session: Session, listing_id: int, matched: dict[str, float]
) -> tuple[str, Evidence] | None:
    """The strongest box, among the matched amenities, of a search hit: what its thumbnail shows."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        return None
    summary = store.listing_amenities(session, listing, services.model_id, services.taxonomy)
    candidates = [(a.slug, a.evidence[0]) for a in summary.amenities if a.slug in matched and a.evidence]
    return max(candidates, key=lambda c: c[1].score, default=None)


def _room_photo(services: Services, session: Session, listing_id: int, room: str) -> int | None:
    """The listing's photo most likely of ``room`` (among those whose best room type it is): a room search
    hit's thumbnail."""
    listing = session.get(Listing, listing_id)
    if listing is None or services.model_id is None:
        return None
    scores = photo_rooms(session, [lp.photo_id for lp in listing.photos], services.model_id)
    of_room = [(s.scores[room], photo_id) for photo_id, s in scores.items() if s.best == room]
    return max(of_room)[1] if of_room else None


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and message a failed page write shows: the key's 401/403, else 422 for what was typed."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    return 422, str(exc)
