"""FastAPI dependencies: the services, a database session per request, and the API-key guard."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy.orm import Session

from roomscan.services import Services


async def get_services(request: Request) -> Services:
    # async: a plain attribute read needs no thread (sync dependencies queue for the server's threads).
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def check_api_key(services: Services, supplied: str | None) -> None:
    """Raise 401/403 unless ``supplied`` matches the configured key (constant-time comparison)."""
    expected = services.settings.api_key
    if not expected:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "writes are disabled: the server has no API key; set ROOMSCAN_API_KEY and restart",
        )
    if not supplied:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong API key")


def require_api_key(
    services: ServicesDep, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
) -> None:
    check_api_key(services, x_api_key)


ApiKeyDep = Depends(require_api_key)
