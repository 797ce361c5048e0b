"""Assemble the FastAPI app from ``roomscan.services``: routers, error handlers, limits, the detection worker.

Example:
    >>> from roomscan.api import create_app
    >>> app = create_app()                      # doctest: +SKIP  (loads the default model on startup)
    >>> # uvicorn.run(app) - or `roomscan serve`
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from roomscan import __version__
from roomscan.api import metrics as api_metrics
from roomscan.api.auditing import AuditLog
from roomscan.api.overload import InflightLimit, install_database_handlers
from roomscan.api.ratelimit import RateLimit, RateLimits
from roomscan.api.routes import audit, health, insights, listings, photos, quality, receipts, search
from roomscan.api.sessions import SecureCookies
from roomscan.api.uploads import BodySizeLimit
from roomscan.backends import Detector
from roomscan.errors import (
    AuthenticationError,
    ImageError,
    NotFoundError,
    PermissionDeniedError,
    RoomscanError,
    TaxonomyError,
)
from roomscan.metrics import Metrics
from roomscan.services import Services, open_services
from roomscan.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None,
    *,
    detector: Detector | None = None,
    services: Services | None = None,
    start_worker: bool = True,
) -> FastAPI:
    """The roomscan web app: REST API under ``/api/v1``, pages at ``/``, health at ``/healthz``.

    Args:
        settings: limits, database, model; default from the environment (``Settings.from_env()``).
        detector: an already-loaded detector (otherwise ``settings.model`` is loaded at startup).
        services: fully built services (tests); overrides ``settings`` and ``detector``.
        start_worker: run the detection worker in a background thread while the app is up (``roomscan serve
            --no-worker`` leaves detection to ``roomscan worker`` processes).
    """
    settings = services.settings if services else (settings or Settings.from_env())
    from roomscan.catalog.marks import publishing

    publishing(settings)  # a bad ROOMSCAN_MARK_KEY/NETWORK stops start-up with its reason, not every image request
    metrics = Metrics()  # this app's own registry: apps built side by side (tests) do not collide

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # Blocking request work runs on this many threads, each with a pooled connection (overload.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        built = services or await anyio.to_thread.run_sync(lambda: open_services(settings, detector=detector))
        app.state.services = built
        metrics.watch_queue(built.sessions, built.model_id)
        if built.detector is not None:
            built.worker.on_settle = metrics.observe_job
        if start_worker:
            built.start_worker_thread()
        try:
            yield
        finally:
            if services is None:
                built.close()  # ours: threads and connections
            else:
                built.stop_threads()

    from fastapi.staticfiles import StaticFiles
    from fastapi_offline import FastAPIOffline

    from roomscan.api.web import STATIC_DIR

    # /docs and /redoc serve Swagger UI and ReDoc from the fastapi-offline package, not a CDN: they work offline.
    app = FastAPIOffline(
        favicon_url="/favicon.ico",
        title="roomscan",
        version=__version__,
        description="Amenity detection for rental listings: listings, photos, amenities, search.",
        lifespan=lifespan,
    )
    app.add_middleware(SecureCookies)  # over HTTPS every cookie is Secure, the redirect's flash note too
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(InflightLimit, limit=settings.max_inflight)  # refuses before reading a body
    # Per key, per process; before any work (a 429 is audited too).
    app.add_middleware(RateLimit, limits=RateLimits(
        settings.write_rate, settings.upload_rate, settings.api_key, storage=settings.rate_limit_storage))
    app.add_middleware(AuditLog)  # every write, refused ones (401, 429, 503 for load) too
    # Outermost: every answer, a refusal for load too, gets a request id, a latency and (JSON logs) a log line.
    app.add_middleware(api_metrics.RequestTelemetry, metrics=metrics, access_log=settings.log_format == "json")
    app.state.metrics = metrics

    # insights before photos: /photos/duplicates is not a /photos/{photo_id}.
    for router in (listings.router, insights.router, photos.router, search.router, receipts.router, audit.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(quality.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(api_metrics.router)

    from roomscan.api import pages, photo_pages, receipt_pages

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(photo_pages.router)
    app.include_router(receipt_pages.router)
    _install_error_handlers(app)
    install_database_handlers(app)
    api_metrics.instrument_errors(app)  # last: wraps the handlers above
    return app


# Most specific first: the first matching class decides the status code.
_ERROR_STATUS: tuple[tuple[type[RoomscanError], int], ...] = (
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (AuthenticationError, status.HTTP_401_UNAUTHORIZED),
    (PermissionDeniedError, status.HTTP_403_FORBIDDEN),
    (ImageError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (TaxonomyError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (RoomscanError, status.HTTP_400_BAD_REQUEST),
)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answer of the API is a ``schemas.Problem``: ``{"detail": "..."}``, plus ``errors`` for a request
    that does not match the schema. No handler echoes text it cannot encode (a lone surrogate), so none fails."""

    @app.exception_handler(RoomscanError)
    async def roomscan_error(request: Request, exc: RoomscanError) -> Response:
        code = next(c for cls, c in _ERROR_STATUS if isinstance(exc, cls))
        if not request.url.path.startswith((API_PREFIX, "/healthz")):
            from roomscan.api.web import render_error

            return render_error(request, code, encodable(str(exc)))  # a person on the web page gets a page
        return JSONResponse({"detail": encodable(str(exc))}, status_code=code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not isinstance(exc.detail, str) or encodable(exc.detail) != exc.detail:
            exc = StarletteHTTPException(exc.status_code, encodable(str(exc.detail)), exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        try:
            body = validation_problem(exc.errors())
        except Exception:  # the answer must stay a 422, whatever pydantic reported
            log.exception("could not describe a validation error")
            body = {"detail": "invalid request"}
        if not request.url.path.startswith((API_PREFIX, "/healthz")):
            from roomscan.api.web import render_error

            return render_error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, body["detail"])
        return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def validation_problem(errors: Sequence[Any]) -> dict[str, Any]:
    """A ``Problem`` body for pydantic's errors: one readable sentence per problem (``"title: Field required"``,
    ``"query.limit: ..."``) in ``detail``, and each as ``{loc, msg, type}`` in ``errors``. The input itself is left
    out: it may be huge, or text no response can encode."""
    issues = [
        {
            "loc": [p if isinstance(p, int) else encodable(str(p)) for p in err.get("loc", ())],
            "msg": encodable(str(err.get("msg", "invalid"))),
            "type": encodable(str(err.get("type", "value_error"))),
        }
        for err in errors
    ]
    parts = [f"{_where(issue['loc'])}: {issue['msg']}" for issue in issues]
    return {"detail": "; ".join(parts) or "invalid request", "errors": issues}


def _where(loc: Sequence[str | int]) -> str:
    """``body.title`` reads ``title``; ``query.limit`` and a whole ``body`` stay as they are."""
    if len(loc) > 1 and loc[0] == "body":
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "request"


def encodable(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) written as ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
