"""The audit log (table ``audit_log``): one row per write, who made it, what, when, from where and how it ended.

The API's audit middleware (``roomscan.api.audit_log``) records every write request, refused ones too; an admin
reads the log with ``GET /api/v1/audit`` or ``roomscan audit``. Rows are only ever added.

Example:
    >>> record(session, Write(action="PATCH /api/v1/listings/{listing_id}", target="/api/v1/listings/7",
    ...                       status=200, user_id=2, user_name="alice", key_prefix="rsk_AbCdEfGh",
    ...                       remote="203.0.113.9"))                                   # doctest: +SKIP
    >>> page = list_entries(session, user="alice", limit=20)                           # doctest: +SKIP
    >>> more = list_entries(session, user="alice", limit=20, before=page.next_before)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from roomscan.catalog.models import AuditEntry

__all__ = ["AuditPage", "AuditRecord", "Write", "list_entries", "record"]

MAX_PAGE = 500


@dataclass(frozen=True)
class Write:
    """A write to record. ``user_id``/``user_name``/``key_prefix`` are ``None`` when the request named no valid
    key (a 401 is recorded too)."""

    action: str
    target: str | None
    status: int | None
    user_id: int | None = None
    user_name: str | None = None
    key_prefix: str | None = None
    remote: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One row of the log, as read."""

    id: int
    at: datetime
    user_id: int | None
    user_name: str | None
    key_prefix: str | None
    action: str
    target: str | None
    detail: str | None
    remote: str | None
    status: int | None


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditRecord]
    next_before: int | None
    """Pass as ``before`` for the next (older) page; ``None`` on the last page."""


def _clip(text: str | None, size: int) -> str | None:
    return None if text is None else text[:size]


def record(session: Session, write: Write) -> AuditEntry:
    """Add ``write`` to the log (not committed). Long text is cut to its column's size: a log row is never refused."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        user_id=write.user_id,
        user_name=_clip(write.user_name, 64),
        key_prefix=_clip(write.key_prefix, 32),
        action=_clip(write.action, 64) or "",
        target=_clip(write.target, 200),
        detail=write.detail,
        remote=_clip(write.remote, 64),
        status=write.status,
    )
    session.add(entry)
    session.flush()
    return entry


def list_entries(
    session: Session,
    *,
    user: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    before: int | None = None,
) -> AuditPage:
    """The newest entries first, ``limit`` at a time (keyset: ``before`` is the previous page's ``next_before``).

    Args:
        user: only this account's writes (by the name recorded with each entry).
        since: only entries at or after this time (a naive time is taken as UTC).
        limit: 1 to 500.
        before: only entries older than this id.
    """
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if user is not None:
        stmt = stmt.where(AuditEntry.user_name == user.strip().lower())
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [
        AuditRecord(
            id=r.id, at=r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC), user_id=r.user_id, user_name=r.user_name,
            key_prefix=r.key_prefix, action=r.action, target=r.target, detail=r.detail, remote=r.remote,
            status=r.status,
        )
        for r in rows
    ]
    return AuditPage(entries, rows[-1].id if more else None)
