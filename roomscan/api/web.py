"""What every server-rendered page shares: templates, rendering (with who is signed in), and flash notes.

Signing in keeps a server-side session (``sessions.py``): the browser holds a random token, never the API key.
Pages show edit actions only to someone who may change what they show (``roomscan.auth.can_change``); every form
that changes something carries the session's CSRF token.

A page POST that succeeds answers ``303 See Other`` (post/redirect/get: reloading never submits twice); what it
did ("Listing created", which photos were stored and which refused) travels to the next page in a short-lived
flash cookie, shown once.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from roomscan.api.sessions import signed_in
from roomscan.auth import can_change
from roomscan.catalog.models import Listing
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Taxonomy

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"
LEGACY_KEY_COOKIE = "roomscan_api_key"
"""Where the page once kept the raw key: never read any more, deleted from any browser that still sends it."""
FLASH_COOKIE = "roomscan_flash"
# Browsers keep cookies up to 4 KB; a flash larger than this drops its per-file details and keeps the counts.
_FLASH_MAX = 3000


def redirect(url: str, **flash: Any) -> Response:
    """``303 See Other`` to ``url`` (post/redirect/get), carrying a flash note.

    Example:
        >>> redirect("/listings/7", text="Listing created.").status_code
        303
    """
    response = RedirectResponse(url, status.HTTP_303_SEE_OTHER)
    if flash:
        set_flash(response, flash)
    return response


def set_flash(response: Response, note: dict[str, Any]) -> None:
    """Keep ``note`` (``text`` and optionally ``upload``: an upload account) for the next page rendered."""
    value = _encode(note)
    if len(value) > _FLASH_MAX and "upload" in note:
        upload = note["upload"]
        value = _encode({**note, "upload": {"counts": upload.get("counts", {}), "truncated": True}})
    response.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="strict", max_age=60)


def _encode(note: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(note, separators=(",", ":")).encode()).decode()


def _read_flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        note = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, binascii.Error):
        return None
    return note if isinstance(note, dict) else None


def render(request: Request, name: str, code: int = 200, **context: object) -> HTMLResponse:
    """Render a template with what the base layout needs: who is signed in (``user``, ``csrf_token``) and
    ``may_change(listing)``, which decides whether edit actions are shown."""
    services = request.app.state.services
    current = signed_in(request)
    user = current.principal if current else None
    context.setdefault("error", None)
    context.setdefault("form", {})
    context["user"] = user
    context["csrf_token"] = current.csrf_token if current else ""
    context["may_change"] = lambda listing: _may_change(user, listing)
    context["taxonomy"] = services.taxonomy
    context["model_key"] = services.model_key
    context["name_of"] = amenity_namer(services.taxonomy)
    # A page fetched by the page's own script (live refresh) leaves the flash for the page the person loads.
    live = request.headers.get("x-roomscan-live") == "1"
    context["flash"] = None if live else _read_flash(request)
    response = templates.TemplateResponse(request, name, context, status_code=code)
    if LEGACY_KEY_COOKIE in request.cookies:
        response.delete_cookie(LEGACY_KEY_COOKIE, httponly=True, samesite="strict")
    if context["flash"] is not None:
        response.delete_cookie(FLASH_COOKIE, httponly=True, samesite="strict")
    return response


def _may_change(user: Any, listing: Listing | None) -> bool:
    return user is not None and listing is not None and can_change(user, listing)


def render_error(request: Request, code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", code, error=message, status=code)


def amenity_namer(taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    """A function slug -> display name ("swimming-pool" -> "Swimming pool"); an unknown slug stays as it is."""

    def name_of(slug: str) -> str:
        try:
            return taxonomy.resolve(slug).name
        except TaxonomyError:
            return slug

    return name_of


def query_url(path: str, **params: Any) -> str:
    """``path`` with a query string; list values repeat their key and ``None``/``False`` values are left out."""
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or item is False:
                continue
            pairs.append((key, "true" if item is True else item))
    return f"{path}?{urlencode(pairs)}" if pairs else path
