"""``roomscan search`` and ``roomscan worker``: guests' amenity search and the detection worker, from the command
line (``roomscan listings ...`` lives in ``listings.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import load_taxonomy, open_catalog, run_worker
from roomscan.cli._common import DbOpt, DeviceOpt, JsonOpt, ModelOpt, TaxonomyOpt, load_detector
from roomscan.cli._console import console, err_console
from roomscan.errors import RoomscanError


def worker(
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue failed photos again first."),
    db: str | None = DbOpt,
) -> None:
    """Process every queued photo (e.g. after a crash or a model change) and refresh stale roll-ups, then exit.

    First clears what a crashed server or worker left: upload files no photo uses (older than 10 minutes) and
    photos a stopped worker on this host had left running.
    """
    from roomscan.catalog import store
    from roomscan.catalog.photos import sweep_photo_store

    _, sessions, photo_store = open_catalog(db)
    if (swept := sweep_photo_store(sessions, photo_store)).removed:
        err_console.print(f"photo store: {swept}", highlight=False)
    detector = load_detector(model, taxonomy, device)
    with sessions() as session:
        model_id = store.ensure_model(session, detector.info).id
        queued = store.enqueue_missing_jobs(session, model_id)
        retried = store.retry_failed_jobs(session, model_id) if retry_failed else 0
        session.commit()
    if retried:
        err_console.print(f"queued {retried} failed photo(s) again")
    if queued:
        err_console.print(f"queued {queued} photo(s) not yet seen by {detector.info.key}")
    run_worker(sessions, photo_store, detector, model_id)


def search(
    amenity: list[str] = typer.Option([], "--amenity", "-a", help="The listing must show this amenity; repeat for all-of."),
    any_amenity: list[str] = typer.Option([], "--any", help="...and at least one of these; repeat."),
    min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0, help="Each matched amenity's best score is at least this."),
    confirmed_only: bool = typer.Option(False, "--confirmed-only", help="Only amenities the host claims and a photo shows, or the host confirmed."),
    limit: int = typer.Option(20, min=1, max=100, help="Listings per page."),
    after: int | None = typer.Option(None, "--after", help="Cursor printed by the previous page."),
    taxonomy: Path | None = TaxonomyOpt,
    as_json: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """Find listings by amenity: `roomscan search --amenity swimming-pool --amenity jacuzzi`."""
    from roomscan.catalog.search import SearchQuery, search_listings

    if not amenity and not any_amenity:
        raise RoomscanError("give at least one --amenity (or --any); e.g. --amenity swimming-pool")
    tax = load_taxonomy(taxonomy)
    try:
        query = SearchQuery(
            all_of=tuple(sorted({tax.resolve(a).slug for a in amenity})),
            any_of=tuple(sorted({tax.resolve(a).slug for a in any_amenity})),
            min_score=min_score,
            confirmed_only=confirmed_only,
            limit=limit,
            after=after,
        )
    except ValueError as exc:
        raise RoomscanError(str(exc)) from exc
    _, sessions, _ = open_catalog(db)
    with sessions() as session:
        page = search_listings(session, query)
    if as_json:
        console.print_json(json.dumps({
            "hits": [{"listing_id": h.listing_id, "title": h.title, "amenities": h.amenities} for h in page.hits],
            "next_cursor": page.next_cursor,
        }))
        return
    if not page.hits:
        err_console.print("no listing matches" + (" after that cursor" if after is not None else ""))
        return
    table = Table("listing", "title", "matched amenities")
    for h in page.hits:
        matched = ", ".join(f"{tax[k].name if k in tax else k} {v:.2f}" for k, v in h.amenities.items())
        table.add_row(str(h.listing_id), escape(h.title), escape(matched))
    console.print(table)
    if page.next_cursor is not None:
        err_console.print(f"more results: --after {page.next_cursor}")
