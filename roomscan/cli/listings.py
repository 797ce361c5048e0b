"""``roomscan listings ...``: create, read, edit and delete listings, attach and remove photos, record hosts'
decisions and export them as training labels."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import load_taxonomy, open_catalog, run_worker, use_model
from roomscan.cli._common import (
    DbOpt,
    DeviceOpt,
    JsonOpt,
    ModelOpt,
    RecursiveOpt,
    TaxonomyOpt,
    expand_inputs,
    report_bad,
)
from roomscan.cli._console import console, err_console
from roomscan.errors import ImageError, RoomscanError
from roomscan.listing import AmenityStatus, Decision

listings_app = typer.Typer(help="Create listings, attach photos, read and edit their amenities.", no_args_is_help=True)
photos_app = typer.Typer(help="Photos of a listing.", no_args_is_help=True)
listings_app.add_typer(photos_app, name="photos")

ListingArg = typer.Argument(..., help="The listing's id (`roomscan listings list` shows them).", show_default=False)
ClaimOpt = typer.Option(
    [], "--claim", "-c", help="An amenity the host claims: slug, name or synonym (`hot tub`); repeat."
)
BedroomsOpt = typer.Option(
    None, "--bedrooms", help="How many bedrooms the listing has (0-100); the tour notes fewer bedroom photos.",
    show_default=False,
)
_STYLE = {AmenityStatus.CONFIRMED: "green", AmenityStatus.UNVERIFIED: "yellow", AmenityStatus.DISCOVERED: "cyan",
          AmenityStatus.REJECTED: "red"}


@listings_app.command("add")
def listings_add(
    title: str = typer.Argument(..., help="Listing title.", show_default=False),
    claim: list[str] = ClaimOpt,
    owner: str | None = typer.Option(None, "--owner", help="The host account that owns it (default: the admin)."),
    unpublished: bool = typer.Option(
        False, "--unpublished", help="Keep it to its owner and admins: not in search, 404 to everyone else."
    ),
    bedrooms: int | None = BedroomsOpt,
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Create a listing; prints its id."""
    from roomscan import auth
    from roomscan.catalog import store

    tax = load_taxonomy(taxonomy)
    slugs = sorted({tax.resolve(c).slug for c in claim})
    if not title.strip():
        raise RoomscanError("a listing needs a non-empty title")
    store.check_bedrooms(bedrooms)  # before opening the catalog
    services = open_catalog(db)
    sessions = services.sessions
    with sessions() as session:
        owner_id = auth.get_user(session, owner).id if owner else None
        listing = store.create_listing(session, title, slugs, owner_id=owner_id, published=not unpublished,
                                       bedrooms=bedrooms)
        session.commit()
        note = "" if bedrooms is None else f", {_bedrooms(bedrooms)}"
        note += " (unpublished)" if unpublished else ""
        console.print(f"created listing {listing.id}: {listing.title}{note}", highlight=False, markup=False)


@listings_app.command("list")
def listings_list(
    limit: int = typer.Option(50, min=1, max=1000, help="How many listings to show."),
    offset: int = typer.Option(0, min=0, help="Skip this many (newest first)."),
    db: str | None = DbOpt,
) -> None:
    """Newest listings first."""
    from roomscan.catalog import store

    services = open_catalog(db)
    sessions = services.sessions
    table = Table("id", "title", "photos", "claimed", "published")
    with sessions() as session:
        for listing in store.list_listings(session, limit=limit, offset=offset):
            table.add_row(str(listing.id), escape(listing.title), str(len(listing.photos)),
                          ", ".join(c.amenity for c in listing.claims), "yes" if listing.published else "[bold]no[/]")
    console.print(table)


@listings_app.command("show")
def listings_show(
    listing_id: int = ListingArg,
    taxonomy: Path | None = TaxonomyOpt,
    as_json: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """A listing's amenities (confirmed / unverified / discovered / rejected) with the photos that show them, and
    its photos: room type, quality problems, other listings showing the same picture, the suggested photo order
    and cover, and what the photos leave out."""
    from roomscan.catalog import insights, store
    from roomscan.cli.photos import operator
    from roomscan.insights.rooms import load_room_types

    tax = load_taxonomy(taxonomy)
    services = open_catalog(db)
    rooms = load_room_types(services.settings.room_types)
    sessions = services.sessions
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        model = services.catalog_model(session, listing_id)
        model_id = model.id if model else -1
        summary = store.listing_amenities(session, listing, model_id, tax)
        state = store.listing_processing_state(session, listing, model_id)
        names = {lp.photo_id: lp.filename or f"photo {lp.photo_id}" for lp in listing.photos}
        found = insights.listing_insights(session, listing, model.id if model else None, viewer=operator(),
                                          room_types=rooms, taxonomy=tax)
    # A claim is not "unverified" while the photos that may show it are still being detected.
    pending = state.state == "processing"
    if as_json:
        console.print_json(json.dumps({
            "id": listing.id,
            "title": listing.title,
            "published": listing.published,
            "bedrooms": listing.bedrooms,
            "model": model.key if model else None,
            "processing": {"state": state.state, "total": state.total, "done": state.done,
                           "pending": state.pending, "failed": state.failed},
            "amenities": [
                {"slug": a.slug, "name": a.name, "status": a.status, "decision": a.decision, "score": a.score,
                 "photo_count": a.photo_count,
                 "evidence": [{"photo_id": e.photo_id, "file": names.get(e.photo_id), "box": list(e.box),
                               "score": e.score} for e in a.evidence]}
                for a in summary.amenities
            ],
            **{key: value for key, value in found.to_dict().items() if key not in ("listing_id", "model_id")},
        }))
        return
    hidden = ", [bold]unpublished[/]: not in search" if not listing.published else ""
    declared = "" if listing.bedrooms is None else f"{_bedrooms(listing.bedrooms)} declared, "
    console.print(f"[bold]{escape(listing.title)}[/] (listing {listing.id}{hidden}), {declared}{state.total} photos, "
                  f"model {escape(model.key) if model else 'none yet'}: {state.state}", highlight=False)
    table = Table("amenity", "status", "best score", "photos", "evidence (photo: box)")
    for a in summary.amenities:
        ev = "; ".join(f"{escape(names.get(e.photo_id, str(e.photo_id)))}: {', '.join(f'{v:.0f}' for v in e.box)}"
                       for e in a.evidence[:3])
        status = "checking" if pending and a.status == AmenityStatus.UNVERIFIED else a.status
        label = f"[{_STYLE.get(status, 'dim')}]{status}[/]" + (" (host)" if a.decision else "")
        table.add_row(escape(a.name), label, f"{a.score:.2f}", str(a.photo_count), ev)
    console.print(table)
    _print_photo_insights(found, names)


def _bedrooms(count: int) -> str:
    return f"{count} bedroom{'s' * (count != 1)}"


def _print_photo_insights(found, names: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
    """Each photo's room, quality and duplicates, then the suggested tour and completeness notes."""
    if not found.photos:
        return
    table = Table("photo", "room", "quality", "problems", "also on listings")
    for p in found.photos:
        room = f"{p.room.best} {p.room.scores[p.room.best]:.2f}" if p.room else "[dim]not typed yet[/]"
        if p.quality is None:
            quality, problems = "[dim]not analysed[/]", "[dim]`roomscan photos analyse`[/]"
        else:
            quality = f"{p.quality.score:.0f}/100"
            problems = "; ".join(escape(i.message) for i in p.quality.issues) or "[green]none[/]"
        also = ", ".join(dict.fromkeys(str(d.listing_id) for d in p.duplicates))
        if p.hidden_duplicates:
            also += (", " if also else "") + f"{p.hidden_duplicates} not shown"
        table.add_row(escape(names.get(p.photo_id, str(p.photo_id))), room, quality, problems,
                      f"[red]{also}[/]" if also else "")
    console.print(table)
    if found.tour is None:
        console.print("[dim]suggested tour: once the photos are detected and analysed[/]")
        return
    cover = names.get(found.tour.cover, str(found.tour.cover))
    order = ", ".join(escape(names.get(s.photo_id, str(s.photo_id))) for s in found.tour.stops)
    console.print(f"suggested cover: {escape(cover)}; order: {order}", highlight=False)
    if found.left_out:
        console.print(f"[dim]not in the tour yet: {', '.join(escape(names.get(i, str(i))) for i in found.left_out)}[/]")
    for note in found.tour.notes:
        console.print(f"[yellow]note:[/] {escape(note.message)}", highlight=False)


@listings_app.command("edit")
def listings_edit(
    listing_id: int = ListingArg,
    title: str | None = typer.Option(None, "--title", help="The new title."),
    claim: list[str] = ClaimOpt,
    no_claims: bool = typer.Option(False, "--no-claims", help="Withdraw every claim."),
    published: bool | None = typer.Option(
        None, "--publish/--unpublish",
        help="Publish it, or keep it to its owner and admins (left out of search, 404 to everyone else).",
    ),
    bedrooms: int | None = BedroomsOpt,
    clear_bedrooms: bool = typer.Option(False, "--clear-bedrooms", help="Declare no bedroom count any more."),
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Change a listing's title, its claims (--claim replaces the whole set), whether it is published or its
    bedroom count; the amenities follow."""
    from roomscan.catalog import store

    if (title is None and not claim and not no_claims and published is None and bedrooms is None
            and not clear_bedrooms):
        raise RoomscanError("nothing to change: give --title, --claim (repeat), --no-claims, --publish, --unpublish, "
                            "--bedrooms or --clear-bedrooms")
    if claim and no_claims:
        raise RoomscanError("--claim and --no-claims contradict each other: give one")
    if bedrooms is not None and clear_bedrooms:
        raise RoomscanError("--bedrooms and --clear-bedrooms contradict each other: give one")
    store.check_bedrooms(bedrooms)  # before opening the catalog
    tax = load_taxonomy(taxonomy)
    services = open_catalog(db)
    sessions = services.sessions
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        model = services.catalog_model(session, listing_id)
        try:
            store.update_listing(session, listing, title=title, claimed=[] if no_claims else (claim or None),
                                 published=published,
                                 bedrooms=None if clear_bedrooms else store.UNCHANGED if bedrooms is None else bedrooms,
                                 taxonomy=tax, model_id=model.id if model else None)
        except ValueError as exc:
            raise RoomscanError(str(exc)) from exc
        session.commit()
        claims = ", ".join(c.amenity for c in listing.claims) or "none"
        shown = "" if listing.bedrooms is None else f", {_bedrooms(listing.bedrooms)}"
        shown += "" if listing.published else ", unpublished"
        console.print(f"listing {listing.id}: {listing.title} (claims: {claims}{shown})", highlight=False, markup=False)


@listings_app.command("delete")
def listings_delete(
    listing_id: int = ListingArg,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    db: str | None = DbOpt,
) -> None:
    """Delete a listing, its claims and decisions; photos no other listing uses are deleted too."""
    from roomscan.catalog import store

    services = open_catalog(db)
    sessions, photo_store = services.sessions, services.photos
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        if not yes and not typer.confirm(f"Delete listing {listing.id} ({listing.title}) and its photos?"):
            raise typer.Exit(1)
        deleted = store.delete_listing(session, listing)
        session.commit()
        store.delete_orphan_files(session, photo_store, deleted)
    err_console.print(f"deleted listing {listing_id} ({len(deleted)} photo(s) no other listing used)")


@listings_app.command("decide")
def listings_decide(
    listing_id: int = ListingArg,
    amenity: str = typer.Argument(..., help="Slug, name or synonym of an amenity the model reported.",
                                  show_default=False),
    decision: str = typer.Argument(..., help="confirmed, rejected, or clear (withdraw the decision).",
                                   show_default=False),
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Record the host's verdict on an amenity the model reported (kept beside the model's detections)."""
    from roomscan.catalog import store

    if decision not in (*Decision, "clear"):
        raise RoomscanError(f"DECISION must be confirmed, rejected or clear, got {decision!r}")
    tax = load_taxonomy(taxonomy)
    services = open_catalog(db)
    sessions = services.sessions
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        model = services.catalog_model(session, listing_id)
        if model is None:
            raise RoomscanError(f"no photo of listing {listing_id} has been detected yet: nothing to decide on")
        try:
            summary = store.set_decision(session, listing, amenity, None if decision == "clear" else decision,
                                         taxonomy=tax, model_id=model.id)
        except ValueError as exc:
            raise RoomscanError(str(exc)) from exc
        session.commit()
    slug = tax.resolve(amenity).slug
    row = next((a for a in summary.amenities if a.slug == slug), None)
    console.print(f"listing {listing_id}: {slug} is now {row.status if row else 'not reported'}", highlight=False)


@listings_app.command("export-labels")
def listings_export_labels(
    out: Path = typer.Argument(..., help="A new (or empty) folder for the dataset.", show_default=False),
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Export hosts' decisions as training labels: a roomscan dataset of the boxes hosts confirmed, plus
    decisions.jsonl with every verdict (rejections are the model's false positives)."""
    from roomscan.catalog.labels import export_decisions

    tax = load_taxonomy(taxonomy)
    services = open_catalog(db)
    sessions, photo_store = services.sessions, services.photos
    with sessions() as session:
        model = services.catalog_model(session)
        if model is None:
            raise RoomscanError("the catalog has no detections yet: nothing to export")
        summary = export_decisions(session, photo_store, model.id, tax, out)
    err_console.print(f"exported {summary.decisions} decision(s): {summary.images} photo(s), {summary.boxes} "
                      f"confirmed box(es) from {model.key} -> {out}", highlight=False)
    for conflict in summary.conflicts:
        err_console.print(f"[yellow]left out[/] {escape(conflict)}: one listing confirmed it, another rejected it")


@photos_app.command("add")
def photos_add(
    listing_id: int = ListingArg,
    photos: list[Path] = typer.Argument(..., help="Photos or directories of photos.", show_default=False),
    recursive: bool = RecursiveOpt,
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    process: bool = typer.Option(True, "--process/--no-process", help="Run detection now (else leave it queued for `roomscan worker` or the server)."),
    db: str | None = DbOpt,
) -> None:
    """Attach photos to a listing (stored by content hash, so adding one twice changes nothing) and detect."""
    from roomscan.catalog import store
    from roomscan.detection.image import load_image

    files, problems = expand_inputs(photos, recursive=recursive)
    for path, why in problems:
        report_bad(path, ValueError(why))
    services = open_catalog(db)
    sessions, photo_store, settings = services.sessions, services.photos, services.settings
    with sessions() as session:
        store.get_listing(session, listing_id)  # fail before loading the model
    use_model(services, model, taxonomy, device)
    detector, model_id = services.detector, services.model_id
    assert detector is not None and model_id is not None
    added, already, skipped = 0, 0, len(problems)
    with sessions() as session:
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
            if not result.newly_attached:
                already += 1
                err_console.print(f"[dim]{escape(str(path))}: listing {listing_id} already has this photo[/]")
        session.commit()
    summary = f"{added} photo(s) added to listing {listing_id}"
    if already:
        summary += f", {already} already there"
    if skipped:
        summary += f", {skipped} skipped"
    err_console.print(summary, highlight=False)
    if process:
        run_worker(services)
    if skipped:
        raise typer.Exit(1)


@photos_app.command("remove")
def photos_remove(
    listing_id: int = ListingArg,
    photo: str = typer.Argument(..., help="The photo's id, or its file name on this listing.", show_default=False),
    taxonomy: Path | None = TaxonomyOpt,
    db: str | None = DbOpt,
) -> None:
    """Take a photo off a listing; its amenities roll up again without it."""
    from roomscan.catalog import store

    tax = load_taxonomy(taxonomy)
    services = open_catalog(db)
    sessions, photo_store = services.sessions, services.photos
    with sessions() as session:
        listing = store.get_listing(session, listing_id)
        by_name = {lp.filename: lp.photo_id for lp in listing.photos if lp.filename}
        if photo in by_name:
            photo_id = by_name[photo]
        elif photo.isdigit():
            photo_id = int(photo)
        else:
            names = ", ".join(sorted(by_name)) or "none"
            raise RoomscanError(f"listing {listing_id} has no photo named {photo!r} (its photos: {names})")
        model = services.catalog_model(session, listing_id)
        removed = store.remove_photo(session, listing, photo_id, taxonomy=tax, model_id=model.id if model else None)
        session.commit()
        store.delete_orphan_files(session, photo_store, removed.deleted)
    err_console.print(f"removed photo {photo_id} from listing {listing_id}", highlight=False)
