"""FastAPI dependencies: the services, a database session per request, and who a write acts as."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy.orm import Session

from roomscan.auth import Principal, authenticate, require_change, require_see
from roomscan.catalog import store
from roomscan.catalog.models import Listing
from roomscan.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from roomscan.services import Services


async def get_services(request: Request) -> Services:
    # async: a plain attribute read needs no thread (sync dependencies queue for the server's threads).
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def check_api_key(services: Services, supplied: str | None, request: Request | None = None) -> Principal:
    """The principal ``supplied`` signs in as (``roomscan.auth.authenticate``); 401 for none, an unknown or a
    revoked key. With ``request``, it is kept in ``request.state.principal`` (the audit log and rate limits read
    it)."""
    with services.sessions() as session:
        try:
            principal = authenticate(session, supplied, bootstrap_key=services.settings.api_key)
        except AuthenticationError as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "X-API-Key"}
            ) from None
    if request is not None:
        request.state.principal = principal
    return principal


def require_api_key(
    request: Request, services: ServicesDep, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
) -> Principal:
    return check_api_key(services, x_api_key, request)


def optional_principal(
    request: Request, services: ServicesDep, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
) -> Principal | None:
    """For reads: anonymous without a key; with one, who it signs in as (401 if it is unknown or revoked, rather
    than silently reading as a guest)."""
    return None if x_api_key is None else check_api_key(services, x_api_key, request)


ApiKeyDep = Depends(require_api_key)
PrincipalDep = Annotated[Principal, Depends(require_api_key)]
"""Who the request acts as; writes take it, and check what it may change with ``roomscan.auth``."""
ViewerDep = Annotated[Principal | None, Depends(optional_principal)]
"""Who reads (``None``: a guest); reads of an unpublished listing or its photos need its owner's or an admin's key."""


def visible_listing(viewer: Principal | None, session: Session, listing_id: int) -> Listing:
    """The listing, if ``viewer`` may see it; otherwise 404, worded as for a missing one (``auth.require_see``)."""
    listing = store.get_listing(session, listing_id)
    require_see(viewer, listing)
    return listing


def editable_listing(principal: Principal, session: Session, listing_id: int) -> Listing:
    """The listing, if ``principal`` may change it: 404 when it does not exist or is another host's unpublished
    listing, 403 when it is another host's published one (``roomscan.auth.require_change``). Every write route
    and page takes its listing through here."""
    listing = store.get_listing(session, listing_id)
    require_change(principal, listing)
    return listing


def check_can_change(
    services: Services, supplied: str | None, listing: Listing, request: Request | None = None
) -> Principal:
    """For the page's forms: the principal ``supplied`` signs in as, if it may change ``listing``; otherwise an
    ``HTTPException`` (401; 403 for another host's listing, 404 if it is also unpublished) that the form shows."""
    principal = check_api_key(services, supplied, request)
    try:
        require_change(principal, listing)
    except PermissionDeniedError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return principal
