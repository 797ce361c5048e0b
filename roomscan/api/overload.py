"""Staying up when there is too much to do or the database is gone: answer 503 with ``Retry-After``, never hang.

Three guards, all installed by ``create_app``:

- :class:`InflightLimit` lets ``Settings.max_inflight`` requests in at once and answers the rest 503 at once;
  health checks always pass, so an orchestrator can tell "busy" from "dead".
- The blocking work of admitted requests (database, files, decoding) runs on at most ``Settings.threads``
  threads (the lifespan sets anyio's limiter), and the catalog's pool holds a connection for each of them
  (``Settings.db_pool_size``): a burst queues for threads on the event loop, which keeps serving.
- :func:`install_database_handlers`: a catalog that cannot be reached (server down, pool exhausted for
  ``Settings.db_pool_timeout`` seconds) is a 503 naming the cause: JSON for the API, a page for people.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Receive, Scope, Send

from roomscan.catalog.db import DatabaseUnavailableError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
# Never refused for load: liveness and readiness must answer while the server is busy.
EXEMPT_PATHS = ("/healthz", "/readyz", "/api/v1/healthz", "/api/v1/readyz", "/metrics")


class InflightLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in progress; the next ones get 503 and ``Retry-After``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            response = JSONResponse(
                {"detail": f"the server is busy ({self.limit} requests in progress); retry in a few seconds"},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        # One event loop: the check above and this increment cannot interleave with another request's.
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


def _unavailable(request: Request, detail: str) -> Response:
    """JSON for the API and health checks; a page, with the same reason, for a person on the web page."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if not request.url.path.startswith(("/api/", "/healthz", "/readyz")):
        from roomscan.api.web import render_error

        page = render_error(request, status.HTTP_503_SERVICE_UNAVAILABLE, detail)
        page.headers.update(headers)
        return page
    return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)


def install_database_handlers(app: FastAPI) -> None:
    """Database trouble answers 503 (JSON, with ``Retry-After``) instead of a bare 500."""

    @app.exception_handler(sa_exc.TimeoutError)
    async def pool_exhausted(request: Request, exc: sa_exc.TimeoutError) -> Response:
        log.warning("no catalog connection free: %s", exc)
        return _unavailable(request, "the server is busy (no database connection free); retry in a few seconds")

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    async def database_down(request: Request, exc: sa_exc.DBAPIError) -> Response:
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
        log.error("catalog database error: %s", reason)
        return _unavailable(request, f"the catalog database is unavailable ({reason}); retry later")

    @app.exception_handler(DatabaseUnavailableError)
    async def catalog_unavailable(request: Request, exc: DatabaseUnavailableError) -> Response:
        return _unavailable(request, str(exc))
