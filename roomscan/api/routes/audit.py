"""``/api/v1/audit``: the audit log of writes, for admins (``roomscan.catalog.audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from roomscan.api.deps import PrincipalDep, SessionDep
from roomscan.api.schemas import ADMIN_READ, AuditEntryOut, AuditPageOut, CatalogId, Text
from roomscan.auth import require_admin
from roomscan.catalog import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditPageOut, responses=ADMIN_READ)
def read_audit_log(
    principal: PrincipalDep,
    session: SessionDep,
    user: Annotated[Text | None, Query(max_length=64, description="only this account's writes")] = None,
    since: Annotated[datetime | None, Query(description="only writes at or after this time (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
    before: Annotated[CatalogId | None, Query(description="`next_before` of the previous page")] = None,
) -> AuditPageOut:
    """Every write made through the API and the web page, newest first: who (account and key prefix), what
    (action and target), when, from where, and the answer's status; refused writes too. Admins only."""
    require_admin(principal, "reading the audit log")
    page = audit.list_entries(session, user=user, since=since, limit=limit, before=before)
    return AuditPageOut(
        entries=[
            AuditEntryOut(
                id=e.id, at=e.at.isoformat(), user=e.user_name, key_prefix=e.key_prefix, action=e.action,
                target=e.target, remote=e.remote, status=e.status, detail=e.detail,
            )
            for e in page.entries
        ],
        next_before=page.next_before,
    )
