"""What every server-rendered page shares: templates, rendering, and the API key kept in a cookie.

A person types the API key once into a form; it is then kept in a same-site, HTTP-only cookie. A key the
server refuses (it changed: a restarted ``roomscan serve`` generates a new one) is forgotten, and the form asks
again.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Request, Response, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
KEY_COOKIE = "roomscan_api_key"
_REFUSED = (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)


def key_from(request: Request, form_key: str | None) -> str | None:
    """The key typed into the form, else the one remembered in the cookie."""
    return form_key or request.cookies.get(KEY_COOKIE)


def remember_key(response: Response, key: str | None) -> Response:
    if key:
        response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", max_age=30 * 24 * 3600)
    return response


def render(request: Request, name: str, code: int = 200, **context: object) -> HTMLResponse:
    """Render a template with what the base layout needs; a refused key is dropped so the form asks again."""
    services = request.app.state.services
    refused = code in _REFUSED
    context.setdefault("error", None)
    context["has_key"] = bool(request.cookies.get(KEY_COOKIE)) and not refused
    context["taxonomy"] = services.taxonomy
    context["model_key"] = services.model_key
    response = templates.TemplateResponse(request, name, context, status_code=code)
    if refused:
        response.delete_cookie(KEY_COOKIE, httponly=True, samesite="strict")
    return response


def render_error(request: Request, code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", code, error=message, status=code)
