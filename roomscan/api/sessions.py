"""Signed-in browsers: server-side sessions and the CSRF tokens of the page's forms.

A person signs in once with an API key (``/signin``); the browser then holds only a random session token in a
cookie (``HttpOnly``, ``SameSite=Lax``, ``Path=/``, ``Secure`` over HTTPS or with ``ROOMSCAN_SECURE_COOKIES=1``
behind a proxy that terminates TLS). The catalog keeps the token's SHA-256 (table ``web_sessions``), never the
token or the key. A session ends after :data:`LIFETIME`, on sign-out, or as soon as the key it was made with is
revoked (checked on every request).

Every state-changing form carries the session's CSRF token (hidden field ``csrf_token``, or the ``X-CSRF-Token``
header from the page's script), compared in constant time: a cookie a browser sends on its own never changes
anything. A form post may instead carry the API key itself (field ``api_key``): it signs in that one request and
needs no CSRF token, since nothing ambient authorises it. The JSON API never reads these cookies.

:func:`page_principal` is the one way a page handler learns who acts; who may change what stays in
``roomscan.auth``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request, Response, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import delete, select

from roomscan.api.deps import check_api_key
from roomscan.auth import Principal, hash_key, require_change
from roomscan.catalog.models import ApiKey, Listing, Role, User, WebSession
from roomscan.errors import NotFoundError, PermissionDeniedError
from roomscan.services import Services

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LIFETIME",
    "SignedIn",
    "end_session",
    "page_can_change",
    "page_principal",
    "signed_in",
    "start_session",
]

COOKIE = "roomscan_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LIFETIME = timedelta(hours=12)
_BOOTSTRAP = "bootstrap"
_UNSET = object()


@dataclass(frozen=True)
class SignedIn:
    """The session a request's cookie names: who, and the CSRF token its forms carry."""

    principal: Principal
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _key_name(services: Services, principal: Principal) -> str:
    """What the session records of its key: the prefix, or for ``ROOMSCAN_API_KEY`` a fingerprint of it (a new
    bootstrap key then ends the sessions made with the old one)."""
    if principal.key_prefix == _BOOTSTRAP:
        return f"{_BOOTSTRAP}:{hash_key(services.settings.api_key or '')[:16]}"
    return principal.key_prefix or ""


def _key_still_valid(services: Services, session, key_name: str) -> bool:  # type: ignore[no-untyped-def]
    if key_name.startswith(f"{_BOOTSTRAP}:"):
        bootstrap = services.settings.api_key
        if not bootstrap:
            return False
        return hmac.compare_digest(key_name, f"{_BOOTSTRAP}:{hash_key(bootstrap)[:16]}")
    revoked = session.execute(select(ApiKey.revoked_at).where(ApiKey.prefix == key_name)).first()
    return revoked is not None and revoked[0] is None


def secure_cookies(request: Request) -> bool:
    """Mark cookies ``Secure`` over HTTPS, or always with ``ROOMSCAN_SECURE_COOKIES=1`` (TLS ended at a proxy)."""
    forced = os.environ.get("ROOMSCAN_SECURE_COOKIES", "").strip().lower() in {"1", "true", "yes", "on"}
    return forced or request.url.scheme == "https"


class SecureCookies:
    """ASGI middleware: over HTTPS (or with ``ROOMSCAN_SECURE_COOKIES=1``), every cookie the app sets is
    ``Secure``, including those set where no request is at hand (the one-time flash note of a redirect)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not secure_cookies(Request(scope)):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value + b"; Secure") if name.lower() == b"set-cookie" and not _has_secure(value)
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


def _has_secure(cookie: bytes) -> bool:
    return any(part.strip().lower() == b"secure" for part in cookie.split(b";")[1:])


def signed_in(request: Request) -> SignedIn | None:
    """The live session the request's cookie names, or ``None`` (no cookie, unknown, expired, or its key revoked).

    Looked up once per request (kept in ``request.state``)."""
    cached = getattr(request.state, "web_session", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    found = None
    token = request.cookies.get(COOKIE)
    if token:
        services: Services = request.app.state.services
        with services.sessions() as session:
            row = session.execute(
                select(WebSession, User).join(User, User.id == WebSession.user_id)
                .where(WebSession.id == _digest(token))
            ).first()
            if row is not None:
                web, user = row
                if _aware(web.expires_at) > datetime.now(UTC) and _key_still_valid(services, session, web.key_prefix):
                    prefix = _BOOTSTRAP if web.key_prefix.startswith(f"{_BOOTSTRAP}:") else web.key_prefix
                    found = SignedIn(Principal(user.id, user.name, Role(user.role), prefix), web.csrf_token)
                else:  # over: forget it now
                    session.execute(delete(WebSession).where(WebSession.id == web.id))
                    session.commit()
    request.state.web_session = found
    return found


def start_session(services: Services, principal: Principal, request: Request, response: Response) -> None:
    """Record a new session for ``principal`` and hand its token to the browser in ``response``'s cookie."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with services.sessions() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        old = request.cookies.get(COOKIE)
        if old:  # signing in again replaces the browser's session (no fixation on an old token)
            session.execute(delete(WebSession).where(WebSession.id == _digest(old)))
        session.add(WebSession(
            id=_digest(token), user_id=principal.user_id, key_prefix=_key_name(services, principal),
            csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=now + LIFETIME,
        ))
        session.commit()
    response.set_cookie(
        COOKIE, token, max_age=int(LIFETIME.total_seconds()), path="/", httponly=True, samesite="lax",
        secure=secure_cookies(request),
    )
    request.state.web_session = _UNSET


def end_session(services: Services, request: Request, response: Response) -> None:
    """Forget the request's session in the catalog and in the browser."""
    token = request.cookies.get(COOKIE)
    if token:
        with services.sessions() as session:
            session.execute(delete(WebSession).where(WebSession.id == _digest(token)))
            session.commit()
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(request))
    request.state.web_session = None


def page_principal(
    request: Request, services: Services, *, form_key: str | None = None, csrf_token: str | None = None
) -> Principal:
    """Who a page's form post acts as: the ``api_key`` typed into it, else the session with its CSRF token.

    Raises:
        HTTPException: 401 with no (or a wrong) key and no session; 403 when the CSRF token is missing or wrong.
    """
    if form_key:
        return check_api_key(services, form_key, request)
    current = signed_in(request)
    if current is None:
        ended = " Your session has ended." if request.cookies.get(COOKIE) else ""
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"Sign in with an API key first.{ended} Nothing was changed.")
    supplied = csrf_token or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), current.csrf_token.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form did not carry this session's security token (CSRF), so nothing was changed. "
            "Reload the page and try again.",
        )
    request.state.principal = current.principal
    return current.principal


def page_viewer(request: Request) -> Principal | None:
    """Who reads a page: the signed-in account, or ``None`` for a guest (reads need no CSRF token)."""
    current = signed_in(request)
    return current.principal if current is not None else None


def page_can_change(
    request: Request,
    services: Services,
    listing: Listing,
    *,
    form_key: str | None = None,
    csrf_token: str | None = None,
) -> Principal:
    """:func:`page_principal`, if it may change ``listing`` (``roomscan.auth.require_change``); 403 otherwise
    (404 when the listing is another host's unpublished one)."""
    principal = page_principal(request, services, form_key=form_key, csrf_token=csrf_token)
    try:
        require_change(principal, listing)
    except PermissionDeniedError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return principal
