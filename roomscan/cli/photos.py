"""``roomscan photos ...``: the catalog's photos across listings: analyse the ones stored before their quality and
perceptual hashes were computed, list the same picture used by several listings, and make the radioactive-data
marked copies public image URLs serve (``mark``). (A listing's own photos are ``roomscan listings photos ...``.)"""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import open_catalog
from roomscan.cli._common import DbOpt, JsonOpt
from roomscan.cli._console import console, err_console, progress
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE

app = typer.Typer(help="Photos across listings: quality and duplicate analysis, marked copies for publishing.",
                  no_args_is_help=True)

MaxDistanceOpt = typer.Option(
    DEFAULT_MAX_DISTANCE, "--max-distance", "-k", min=0, max=32,
    help="Bits within which two photos' perceptual hashes make them the same picture (resized, re-encoded or "
    "cropped by up to 5% stays within 8; distinct generated rooms lie 12 or more apart).",
)


def operator():  # type: ignore[no-untyped-def]
    """Who the command line reads as: the operator, who sees every listing (unpublished ones too)."""
    from roomscan.auth import Principal
    from roomscan.catalog.models import Role

    return Principal(0, "operator", Role.ADMIN, None)


@app.command("analyse")
def analyse(
    limit: int | None = typer.Option(None, "--limit", min=1, help="Analyse at most this many photos, then stop."),
    db: str | None = DbOpt,
) -> None:
    """Compute the quality checks and perceptual hashes of photos stored before roomscan computed them on upload.

    Resumable: it saves every 50 photos, so stop it at any time (Ctrl-C) and run it again to go on. Photos whose
    file is missing or unreadable are named and tried again next time.
    """
    from roomscan.catalog.insights import analyse_missing, missing_analysis_count

    services = open_catalog(db)
    with services.sessions() as session:
        missing = missing_analysis_count(session)
        if missing == 0:
            err_console.print("nothing to do: every stored photo is analysed")
            return
        total = min(missing, limit) if limit else missing
        with progress() as bar:
            task = bar.add_task("Analysing", total=total)
            stats = analyse_missing(session, services.photos, limit, lambda n: bar.advance(task, n),
                                    max_pixels=services.settings.max_pixels)
    left = missing - stats.analysed
    err_console.print(f"analysed {stats.analysed} photo(s), {stats.failed} failed"
                      + (f"; {left} still to analyse" if left else ""), highlight=False)
    for error in (stats.errors or [])[:20]:
        err_console.print(f"[yellow]skipped[/] {escape(error)}")
    if stats.failed > 20:
        err_console.print(f"... and {stats.failed - 20} more", highlight=False)
    if stats.failed:
        raise typer.Exit(1)


@app.command("duplicates")
def duplicates(
    max_distance: int = MaxDistanceOpt,
    as_json: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """List pictures used by more than one listing (the same photo, or a near-copy), with their listings.

    A near-copy is the photo resized, re-encoded or cropped slightly (by up to 5%). Photos stored before hashes were computed are left out until `roomscan photos analyse` has run.
    """
    from roomscan.catalog.insights import duplicate_clusters, missing_analysis_count

    services = open_catalog(db)
    with services.sessions() as session:
        clusters = duplicate_clusters(session, max_distance=max_distance, viewer=operator())
        missing = missing_analysis_count(session)
    if as_json:
        console.print_json(json.dumps({
            "max_distance": max_distance,
            "clusters": [c.to_dict() for c in clusters],
            "unanalysed_photos": missing,
        }))
        return
    if missing:
        err_console.print(f"{missing} photo(s) have no hashes yet and are left out: run `roomscan photos analyse`",
                          highlight=False)
    if not clusters:
        err_console.print(f"no picture is on more than one listing (max distance {max_distance} bits)",
                          highlight=False)
        return
    table = Table("cluster", "photo", "on listings")
    for number, cluster in enumerate(clusters, start=1):
        for i, photo in enumerate(cluster.photos):
            listings = ", ".join(f"{ref.listing_id} ({escape(ref.title)})" for ref in photo.listings)
            table.add_row(str(number) if i == 0 else "", str(photo.photo_id), listings or "[dim]none[/]")
    console.print(table)
    err_console.print(f"{len(clusters)} picture(s) on more than one listing", highlight=False)


@app.command("mark")
def mark(
    limit: int | None = typer.Option(None, "--limit", min=1, help="Mark at most this many photos, then stop."),
    retry_skipped: bool = typer.Option(
        False, "--retry-skipped", help="Try again photos recorded as impossible to mark under the current key."),
    steps: int = typer.Option(60, "--steps", min=1, max=1000, help="Optimisation steps per photo."),
    db: str | None = DbOpt,
) -> None:
    """Make radioactive-data marked copies of the photos on published listings, which public image URLs then
    serve (owners and admins still get the originals).

    Needs ROOMSCAN_MARK_KEY (the marking key) and ROOMSCAN_MARK_NETWORK (the marking network it was made with);
    neither is ever served. Only photos without a mark under the current key are marked: after a key change,
    every photo is marked again. Resumable: each photo is saved as it is done, so stop it at any time (Ctrl-C) and
    run it again to go on. Photos that cannot be marked (not JPEG or PNG, or a JPEG whose re-encoding alone breaks
    the bounds) are named and keep being served as they are.
    """
    from roomscan.catalog.marks import mark_pending, pending_count, publishing
    from roomscan.errors import RoomscanError

    services = open_catalog(db)
    pub = publishing(services.settings)
    if pub is None:
        raise RoomscanError("publishing marked copies is off: set ROOMSCAN_MARK_KEY (a marking key, e.g. from "
                            "`roomscan mark`) and ROOMSCAN_MARK_NETWORK (the marking network it was made with)")
    with services.sessions() as session:
        pending = pending_count(session, pub.fingerprint, retry_skipped=retry_skipped)
        if pending == 0:
            err_console.print("nothing to do: every photo on a published listing has a mark under this key")
            return
        network = pub.load_network()
        total = min(pending, limit) if limit else pending
        with progress() as bar:
            task = bar.add_task("Marking", total=total)
            stats = mark_pending(session, services.photos, pub, network, limit=limit,
                                 retry_skipped=retry_skipped, steps=steps, on_progress=lambda n: bar.advance(task, n))
    left = pending - stats.marked - stats.skipped
    psnr = f" (mean PSNR {stats.mean_psnr:.1f} dB)" if stats.marked else ""
    err_console.print(f"marked {stats.marked} photo(s){psnr}, {stats.skipped} cannot be marked, {stats.failed} "
                      f"failed" + (f"; {left} still to mark" if left > 0 else ""), highlight=False)
    for error in stats.errors[:20]:
        err_console.print(f"[yellow]not marked[/] {escape(error)}")
    if len(stats.errors) > 20:
        err_console.print(f"... and {len(stats.errors) - 20} more", highlight=False)
    if stats.failed:
        raise typer.Exit(1)
