"""Rate limits per API key on writes and, counted apart, on uploads: beyond them a request is answered 429 with
``Retry-After``, before any of its work is done.

- A write is what the audit log records (``auditing.is_write``): POST/PUT/PATCH/DELETE under ``/api/v1`` and the
  page forms' POSTs. An upload is a photo upload (``.../listings/{id}/photos``, the page's ``.../photos/file``) or
  a receipt read (``.../receipts``); it counts against ``Settings.upload_rate`` only, every other write against
  ``Settings.write_rate``.
- Who: the key sent in ``X-API-Key``, named by its prefix (the prefix its principal and the audit log carry);
  without that header (the page's forms) the client's address.
- What counts: a request that signed in as a host. Admins are exempt (they run imports and repairs; an admin key
  is guarded by who holds it, not by a rate). A request refused for its key (401) changes nothing and costs one
  indexed lookup: it is audited, not counted.
- The counts are a moving window kept by the ``limits`` library in ``Settings.rate_limit_storage``: by default
  this server process's memory (each process of a server run with several workers counts on its own, and a
  restart forgets them); ``redis://…`` shares them across processes and machines. A storage without moving
  windows (memcached) counts in fixed windows. If the storage stops answering, requests pass (logged): a rate
  limit is not worth refusing every write for. The check comes before the request and the count after it, so
  requests in flight at once may pass the limit by a few.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

from fastapi import status
from fastapi.responses import JSONResponse, Response
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from roomscan.api.auditing import client_address, is_write, principal_of
from roomscan.auth import key_prefix
from roomscan.errors import RoomscanError

__all__ = ["RateLimit", "RateLimits", "is_upload"]

log = logging.getLogger(__name__)

_UPLOAD = re.compile(r"^(?:/api/v1)?(?:/listings/[^/]+/photos(?:/file)?|/receipts)/?$")


def is_upload(method: str, path: str) -> bool:
    return method == "POST" and _UPLOAD.match(path) is not None


@dataclass(frozen=True)
class Refusal:
    kind: str
    retry_after: int
    detail: str


class RateLimits:
    """The write and upload limits of one server process.

    Args:
        write_rate: e.g. ``"120/minute"`` (``Settings.write_rate``).
        upload_rate: e.g. ``"30/minute"`` (``Settings.upload_rate``).
        bootstrap_key: ``Settings.api_key``, named ``bootstrap`` rather than by its first characters.
        storage: ``Settings.rate_limit_storage``, a ``limits`` storage URI.

    Raises:
        RoomscanError: an unknown storage URI, or one whose client library is not installed.
    """

    def __init__(
        self, write_rate: str, upload_rate: str, bootstrap_key: str | None = None, *, storage: str = "memory://"
    ) -> None:
        self.rates: dict[str, tuple[RateLimitItem, str]] = {
            "write": (parse(write_rate), "ROOMSCAN_WRITE_RATE"),
            "upload": (parse(upload_rate), "ROOMSCAN_UPLOAD_RATE"),
        }
        self.bootstrap_key = bootstrap_key
        try:
            backend = storage_from_string(storage)
        except ConfigurationError as exc:
            raise RoomscanError(
                f"ROOMSCAN_RATE_LIMIT_STORAGE={storage!r} cannot be used: {exc}. Use memory:// (each process counts "
                "on its own) or redis://HOST:6379 (shared; pip install redis)"
            ) from None
        self.storage = backend
        moving = isinstance(backend, MovingWindowSupport)
        self.limiter = MovingWindowRateLimiter(backend) if moving else FixedWindowRateLimiter(backend)
        self._storage_down = False

    def who(self, request: Request) -> str:
        """Whose count a request is: ``key <prefix>``, else ``address <client>``."""
        key = request.headers.get("x-api-key")
        if key:
            return "key bootstrap" if key == self.bootstrap_key else f"key {key_prefix(key)}"
        return f"address {client_address(request.scope) or 'unknown'}"

    def check(self, kind: str, who: str) -> Refusal | None:
        """``None`` if ``who`` may make one more ``kind`` request now; else why not and for how long."""
        item, setting = self.rates[kind]
        try:
            allowed = self.limiter.test(item, kind, who)
            reset_at, _ = (0.0, 0) if allowed else self.limiter.get_window_stats(item, kind, who)
        except Exception as exc:  # a shared storage that does not answer: let the request through
            self._storage_trouble(exc)
            return None
        self._storage_down = False
        if allowed:
            return None
        wait = max(1, math.ceil(reset_at - time.time()))
        plural = "uploads" if kind == "upload" else "writes"
        return Refusal(kind, wait, f"too many {plural} with {who}: the limit is {item.amount} per "
                                   f"{_window(item)} ({setting}); retry in {wait} s")

    def count(self, kind: str, who: str) -> None:
        try:
            self.limiter.hit(self.rates[kind][0], kind, who)
        except Exception as exc:
            self._storage_trouble(exc)

    def _storage_trouble(self, exc: Exception) -> None:
        if not self._storage_down:  # once per outage, not per request
            log.warning("rate-limit storage does not answer (%s); requests pass unlimited until it does", exc)
        self._storage_down = True


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


class RateLimit:
    """ASGI middleware applying :class:`RateLimits` to every write request.

    Args:
        app: the app inside.
        limits: the process's counts.
    """

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or not is_write(scope["method"], path):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        kind = "upload" if is_upload(scope["method"], path) else "write"
        who = self.limits.who(request)
        refusal = self.limits.check(kind, who)
        if refusal is not None:
            await _refuse(request, refusal)(scope, receive, send)
            return
        scope.setdefault("state", {})  # the dict request.state writes into: the principal lands here
        try:
            await self.app(scope, receive, send)
        finally:
            principal = principal_of(scope)
            if principal is not None and not principal.is_admin:
                self.limits.count(kind, who)


def _refuse(request: Request, refusal: Refusal) -> Response:
    headers = {"Retry-After": str(refusal.retry_after)}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": refusal.detail}, status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                            headers=headers)
    from roomscan.api.web import render_error  # a person on the web page gets a page

    page = render_error(request, status.HTTP_429_TOO_MANY_REQUESTS, refusal.detail)
    page.headers.update(headers)
    return page
