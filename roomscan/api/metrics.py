"""``/metrics`` (Prometheus text format) and the per-request telemetry: request id, latency, errors, access log.

``/metrics`` needs no API key and is left out of the OpenAPI schema: keep it off the public internet (scrape it
on an internal port or path; the reverse proxy should not forward it). The metrics are listed in
``roomscan.metrics``.

:class:`RequestTelemetry` is the app's outermost middleware: it gives each request an id (the client's
``X-Request-ID`` when it is a sane token, else a new one), echoes it in the response's ``X-Request-ID``, times the
request under its route template, counts error answers by kind (:func:`instrument_errors` tags the kind from the
exception handler that answered), and in JSON log mode writes one ``roomscan.access`` line per request.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import exc as sa_exc
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roomscan.api.auditing import route_template
from roomscan.catalog.db import DatabaseUnavailableError
from roomscan.errors import RoomscanError
from roomscan.logs import request_id
from roomscan.metrics import Metrics

__all__ = ["REQUEST_ID_HEADER", "RequestTelemetry", "error_kind", "instrument_errors", "router"]

access_log = logging.getLogger("roomscan.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept when it is a plain token: it lands in log lines and headers as it is.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_KIND_KEY = "roomscan.error_kind"

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; not in the schema, and needs no key: do not expose it publicly."""
    body = await run_in_threadpool(request.app.state.metrics.exposition)  # may read the catalog
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def error_kind(exc: BaseException) -> str:
    """The ``kind`` label of ``roomscan_http_errors_total`` for an exception an error handler answered."""
    if isinstance(exc, DatabaseUnavailableError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return "database_unavailable"
    if isinstance(exc, sa_exc.TimeoutError):
        return "database_busy"
    if isinstance(exc, RequestValidationError):
        return "validation"
    if isinstance(exc, StarletteHTTPException):
        return "http"
    if isinstance(exc, RoomscanError):
        return type(exc).__name__
    return "unhandled"


def instrument_errors(app: FastAPI) -> None:
    """Wrap every exception handler installed so far so it records the error's kind for :class:`RequestTelemetry`.

    Call after the handlers are installed and before the app serves (Starlette builds its middleware from
    ``app.exception_handlers`` on the first request)."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _recording(handler)


def _recording(handler: Callable[..., Any]) -> Callable[[Request, Exception], Awaitable[Any]]:
    @functools.wraps(handler)
    async def recording(request: Request, exc: Exception) -> Any:
        request.scope[_KIND_KEY] = error_kind(exc)
        answer = handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return recording


class RequestTelemetry:
    """ASGI middleware: request id, latency histogram, error counter and (``access_log``) a JSON access line.

    Args:
        app: the app inside.
        metrics: where to record.
        access_log: log one ``roomscan.access`` line per request (JSON mode; in text mode uvicorn logs them).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500  # what the client sees if the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            scope.setdefault(_KIND_KEY, "unhandled")
            raise
        finally:
            self._record(scope, status, time.perf_counter() - started, rid)
            request_id.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, rid: str) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status_class = f"{status // 100}xx"
        self.metrics.request_duration.labels(_route(scope), method, status_class).observe(seconds)
        if status >= 400:
            self.metrics.errors.labels(status_class, scope.get(_KIND_KEY, "response")).inc()
        if self.access_log:
            path = scope.get("path", "")
            access_log.log(
                logging.WARNING if status >= 500 else logging.INFO,
                "%s %s %d", method, path, status,
                extra={"method": scope["method"], "path": path, "status": status,
                       "duration_ms": round(seconds * 1000, 2), "request_id": rid},
            )


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _SANE_ID.match(text) else None
    return None


def _route(scope: Scope) -> str:
    """The matched route's full template (``/api/v1/listings/{listing_id}``; ``auditing.route_template``), a
    mount's ``.../{path}``, and ``unmatched`` for no route (a 404), so the label never takes a raw path."""
    template = route_template(scope)
    if template is None:
        return "unmatched"
    return f"{template}/{{path}}" if isinstance(scope.get("route"), Mount) else template
