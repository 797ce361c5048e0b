"""``roomscan audit``: the audit log of writes (``roomscan.catalog.audit``), read from the catalog directly."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import open_catalog
from roomscan.cli._common import DbOpt, JsonOpt
from roomscan.cli._console import console
from roomscan.errors import RoomscanError


def audit(
    user: str | None = typer.Option(None, "--user", help="Only this account's writes."),
    since: str | None = typer.Option(
        None, "--since", help="Only writes at or after this time: ISO 8601, like 2026-12-01 or 2026-12-01T09:30Z."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Most entries to show, newest first."),
    json_out: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """Show who changed what, when and from where: every write made through the API and the web page (refused
    ones too), newest first.
    """
    from roomscan.catalog import audit as audit_log

    start = _parse_since(since) if since else None
    services = open_catalog(db)
    try:
        with services.sessions() as session:
            page = audit_log.list_entries(session, user=user, since=start, limit=limit)
    finally:
        services.close()
    if json_out:
        rows = [
            {"id": e.id, "at": e.at.isoformat(), "user": e.user_name, "key_prefix": e.key_prefix,
             "action": e.action, "target": e.target, "remote": e.remote, "status": e.status, "detail": e.detail}
            for e in page.entries
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("at (UTC)", "user", "key", "action", "target", "from", "status")
    for e in page.entries:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"), escape(e.user_name or "-"), escape(e.key_prefix or "-"),
            escape(e.action), escape(e.target or ""), escape(e.remote or "-"), str(e.status or "-"),
        )
    console.print(table)
    if not page.entries:
        console.print("no entries", highlight=False)


def _parse_since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())  # Python 3.11 reads a trailing Z
    except ValueError:
        raise RoomscanError(f"--since must be an ISO 8601 time like 2026-12-01T09:30Z, got {text!r}") from None
