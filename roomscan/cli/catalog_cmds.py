"""``roomscan listings ...``, ``roomscan search`` and ``roomscan worker``: the catalog from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import (
    DbOpt,
    DeviceOpt,
    ModelOpt,
    TaxonomyOpt,
    expand_inputs,
    load_detector,
    report_bad,
)
from roomscan.cli._console import console, err_console, progress
from roomscan.errors import ImageError, RoomscanError

listings_app = typer.Typer(help="Create listings, attach photos, read their amenities.", no_args_is_help=True)
photos_app = typer.Typer(help="Photos of a listing.", no_args_is_help=True)
listings_app.add_typer(photos_app, name="photos")


def _open(db: str | None):  # type: ignore[no-untyped-def]
    from roomscan.catalog.db import open_catalog
    from roomscan.catalog.photos import PhotoStore
    from roomscan.settings import Settings

    settings = Settings.from_env(database_url=db)
    _, sessions = open_catalog(settings.resolved_database_url)
    return settings, sessions, PhotoStore(settings.photo_dir)


def _taxonomy(path: Path | None):  # type: ignore[no-untyped-def]
    from roomscan.settings import Settings
    from roomscan.taxonomy import load_taxonomy

    return load_taxonomy(path if path is not None else Settings.from_env().taxonomy)


@listings_app.command("add")
def listings_add(
    title: str = typer.Argument(..., help="Listing title."),
    claim: list[str] = typer.Option([], "--claim", "-c", help="An amenity the host claims (slug or name); repeat."),
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Create a listing; prints its id."""
    from roomscan.catalog import store

    tax = _taxonomy(taxonomy)
    slugs = sorted({tax.resolve(c).slug for c in claim})
    if not title.strip():
        raise RoomscanError("a listing needs a non-empty title")
    _, sessions, _ = _open(db)
    with sessions() as session:
        listing = store.create_listing(session, title, slugs)
        session.commit()
        console.print(f"created listing {listing.id}: {listing.title}", highlight=False, markup=False)


@listings_app.command("list")
def listings_list(
    limit: int = typer.Option(50, min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    db: str | None = DbOpt,
) -> None:
    """Newest listings first."""
    from roomscan.catalog import store

    _, sessions, _ = _open(db)
    table = Table("id", "title", "photos", "claimed")
    with sessions() as session:
        for listing in store.list_listings(session, limit=limit, offset=offset):
            table.add_row(str(listing.id), escape(listing.title), str(len(listing.photos)), ", ".join(c.amenity for c in listing.claims))
    console.print(table)


@listings_app.command("show")
def listings_show(
    listing_id: int = typer.Argument(...),
    taxonomy: Path | None = TaxonomyOpt,
    as_json: bool = typer.Option(False, "--json"),
    db: str | None = DbOpt,
) -> None:
    """A listing's amenities (confirmed / unverified / discovered) with their photo evidence."""
    from sqlalchemy import func, select

    from roomscan.catalog import store
    from roomscan.catalog.models import ListingAmenity, Model

    tax = _taxonomy(taxonomy)
    _, sessions, _ = _open(db)
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        # The model whose roll-up is stored for this listing, else the newest one in the catalog.
        model_id = session.scalar(
            select(func.max(ListingAmenity.model_id)).where(ListingAmenity.listing_id == listing_id)
        ) or session.scalar(select(func.max(Model.id)))
        model = session.get(Model, model_id) if model_id else None
        summary = store.listing_amenities(session, listing, model_id or -1, tax)
        state = store.listing_processing_state(session, listing, model_id or -1)
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "id": listing.id,
                        "title": listing.title,
                        "model": model.key if model else None,
                        "processing": {"state": state.state, "total": state.total, "done": state.done,
                                       "pending": state.pending, "failed": state.failed},
                        "amenities": [
                            {"slug": a.slug, "status": a.status, "score": a.score, "photo_count": a.photo_count,
                             "evidence": [{"photo_id": e.photo_id, "box": list(e.box), "score": e.score} for e in a.evidence]}
                            for a in summary.amenities
                        ],
                    }
                )
            )
            return
        console.print(f"[bold]{escape(listing.title)}[/] (listing {listing.id}), {state.total} photos, "
                      f"model {model.key if model else 'none yet'}: {state.state}", highlight=False)
        table = Table("amenity", "status", "best score", "photos", "evidence (photo: box)")
        style = {"confirmed": "green", "unverified": "yellow", "discovered": "cyan"}
        for a in summary.amenities:
            ev = "; ".join(f"{e.photo_id}: {', '.join(f'{v:.0f}' for v in e.box)}" for e in a.evidence[:3])
            table.add_row(escape(a.name), f"[{style[a.status]}]{a.status}[/]", f"{a.score:.2f}", str(a.photo_count), ev)
        console.print(table)


@photos_app.command("add")
def photos_add(
    listing_id: int = typer.Argument(...),
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", help="Photos or directories of photos."),
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    process: bool = typer.Option(True, "--process/--no-process", help="Run detection now (else leave it queued for `roomscan worker` or the server)."),
    db: str | None = DbOpt,
) -> None:
    """Attach photos to a listing (stored by content hash, so adding one twice changes nothing) and detect."""
    from roomscan.catalog import store
    from roomscan.detection.image import load_image

    files, problems = expand_inputs(photos)
    for path, why in problems:
        report_bad(path, ValueError(why))
    settings, sessions, photo_store = _open(db)
    with sessions() as session:
        store.get_listing(session, listing_id)  # fail before loading the model
    detector = load_detector(model, taxonomy, device)
    added, skipped = 0, len(problems)
    with sessions() as session:
        model_id = store.ensure_model(session, detector.info).id
        listing = store.get_listing(session, listing_id)
        for path in files:
            try:
                photo = load_image(path, max_pixels=settings.max_pixels)
            except ImageError as exc:
                skipped += 1
                report_bad(path, exc)
                continue
            result = store.add_photo(
                session, photo_store, listing, photo, model_id=model_id, taxonomy=detector.taxonomy, filename=path.name
            )
            added += result.newly_attached
        session.commit()
    err_console.print(f"{added} photo(s) added to listing {listing_id}" + (f", {skipped} skipped" if skipped else ""))
    if process:
        _run_worker(sessions, photo_store, detector, model_id)
    if skipped:
        raise typer.Exit(1)


def _run_worker(sessions, photo_store, detector, model_id: int) -> None:  # type: ignore[no-untyped-def]
    from roomscan.worker import DetectionWorker

    worker = DetectionWorker(sessions, photo_store, detector, model_id, detector.taxonomy)
    total = worker.pending_count()
    if total == 0:
        return
    with progress() as bar:
        task = bar.add_task("Detecting", total=total)
        stats = worker.run_until_idle(on_progress=lambda n: bar.advance(task, n))
    err_console.print(f"detected: {stats.done} photo(s) done, {stats.failed} failed")


def worker(
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue failed photos again first."),
    db: str | None = DbOpt,
) -> None:
    """Process every queued photo (e.g. after a crash or a model change), then exit."""
    from roomscan.catalog import store

    _, sessions, photo_store = _open(db)
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
    _run_worker(sessions, photo_store, detector, model_id)


def search(
    amenity: list[str] = typer.Option([], "--amenity", "-a", help="The listing must show this amenity; repeat for all-of."),
    any_amenity: list[str] = typer.Option([], "--any", help="...and at least one of these; repeat."),
    min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0),
    confirmed_only: bool = typer.Option(False, "--confirmed-only", help="Only amenities the host claims and a photo shows."),
    limit: int = typer.Option(20, min=1, max=100),
    after: int | None = typer.Option(None, "--after", help="Cursor printed by the previous page."),
    taxonomy: Path | None = TaxonomyOpt,
    as_json: bool = typer.Option(False, "--json"),
    db: str | None = DbOpt,
) -> None:
    """Find listings by amenity: `roomscan search --amenity swimming-pool --amenity jacuzzi`."""
    from roomscan.catalog.search import SearchQuery, search_listings

    if not amenity and not any_amenity:
        raise RoomscanError("give at least one --amenity (or --any); e.g. --amenity swimming-pool")
    tax = _taxonomy(taxonomy)
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
    _, sessions, _ = _open(db)
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
        table.add_row(str(h.listing_id), escape(h.title), ", ".join(f"{k} {v:.2f}" for k, v in h.amenities.items()))
    console.print(table)
    if page.next_cursor is not None:
        err_console.print(f"more results: --after {page.next_cursor}")
