"""The audit middleware: every write request, through the API or a page form, leaves one ``audit_log`` row.

A write is a POST, PUT, PATCH or DELETE under ``/api/v1``, or any POST to the web pages (their forms). Each is
recorded after its answer, with:

- who: the principal the request signed in as (``request.state.principal``, set by ``deps.check_api_key``), or
  none when it was refused before signing in (a 401, a 429, a 503 for load: those are recorded too);
- what: ``action`` is the method and the matched route template (``PATCH /api/v1/listings/{listing_id}``),
  ``target`` the path with its ids, ``detail`` the request id (``X-Request-ID``, for the access log);
- from where: the client address of the connection (``remote``). No header such as ``X-Forwarded-For`` is read
  here: behind a reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips <proxy>`` so that the
  connection's address is the client's;
- how it ended: the response status (500 if the app raised).

A failure to record is logged and never changes the answer. The row is written on a worker thread, not the event
loop.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roomscan.catalog.audit import Write, record
from roomscan.logs import request_id

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_write(method: str, path: str) -> bool:
    """Whether a request is a write the audit log (and the rate limits) count."""
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        return method in WRITE_METHODS
    return method == "POST"  # the pages change things only through form POSTs


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def route_template(scope: Scope) -> str | None:
    """The matched route's full path template (``/api/v1/listings/{listing_id}``) once the router has run;
    ``None`` when no route matched.

    A route included under a prefix knows only its own part (``/listings/{listing_id}``): the prefix is what the
    request's path holds before that part, filled in with the path's parameters."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str) or not template:
        return None
    params = scope.get("path_params") or {}
    filled = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
    path = scope.get("path", "")
    if filled != path and path.endswith(filled):
        return path[: len(path) - len(filled)] + template
    return template


_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")


def principal_of(scope: Scope) -> Any:
    state = scope.get("state")
    return state.get("principal") if isinstance(state, dict) else None


class AuditLog:
    """ASGI middleware recording every write request in the catalog's audit log.

    Args:
        app: the app inside.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_write(scope["method"], scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # the dict request.state writes into: the principal lands here
        status = 500  # what the client sees if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            await self._record(scope, status)

    async def _record(self, scope: Scope, status: int) -> None:
        principal = principal_of(scope)
        path = scope.get("path", "")
        template = route_template(scope) or path
        write = Write(
            action=f"{scope['method']} {template}",
            target=path,
            status=status,
            user_id=getattr(principal, "user_id", None),
            user_name=getattr(principal, "name", None),
            key_prefix=getattr(principal, "key_prefix", None),
            remote=client_address(scope),
            detail=f"request {request_id.get()}" if request_id.get() else None,
        )
        app = scope.get("app")
        services = getattr(getattr(app, "state", None), "services", None)
        if services is None:
            log.error("audit log: no services to record %s %s (%d)", scope["method"], path, status)
            return
        try:
            await run_in_threadpool(_store, services, write)
        except Exception:  # the answer is sent: a lost audit row is logged, never turned into an error
            log.exception("audit log: could not record %s %s (%d)", scope["method"], path, status)


def _store(services: Any, write: Write) -> None:
    with services.sessions() as session:
        record(session, write)
        session.commit()
