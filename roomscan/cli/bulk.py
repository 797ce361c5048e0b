"""``roomscan backfill`` and ``roomscan import``: bulk jobs on Ray Data (``roomscan.bulk``), local or on a cluster."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from roomscan.cli._common import DbOpt, DeviceOpt, ModelOpt, TaxonomyOpt
from roomscan.cli._console import err_console

RayAddressOpt = typer.Option(
    None, "--ray-address", envvar="RAY_ADDRESS",
    help="Ray cluster to run on (ray://head:10001, or auto); default: a local Ray on this machine.",
)

ListingsArg = typer.Argument(..., help="A .parquet or .csv file: columns id, title, amenities, photos.")
PhotoRootOpt = typer.Option(
    None, "--photo-root", help="Where relative photo paths start (default: the listings file's folder).",
)


def backfill(
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    listings: str | None = typer.Option(
        None, "--listings",
        help="Only these listings: an id range (100-200, or one id) or a title pattern (SQL LIKE: 'Beach%').",
    ),
    ray_address: str | None = RayAddressOpt,
    actors: int = typer.Option(1, "--actors", min=1, max=1024, help="Detector actors; each loads the model once."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=1024, help="Photos per detector call and per write to the catalog."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0, max=8.0, help="GPUs each actor reserves (0: CPU; 0.5: two actors share a GPU)."),
    db: str | None = DbOpt,
) -> None:
    """Detect, with one model, every photo it has not processed yet, on Ray (a local Ray by default).

    Idempotent and resumable: a second run does nothing, and a run stopped or killed midway finishes only what
    is missing. Workers may run at the same time: each photo is detected once. Photos that cannot be read fail
    their job with the error (`roomscan worker --retry-failed` tries them again).
    """
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from roomscan.bulk import backfill as run
    from roomscan.settings import Settings

    settings = Settings.from_env(database_url=db, model=model, taxonomy=str(taxonomy) if taxonomy else None,
                                 device=device)
    stop = threading.Event()
    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} photos/s"), TimeElapsedColumn(), console=err_console,
    )
    task: list[TaskID] = []

    def started(stats) -> None:  # type: ignore[no-untyped-def]
        if not stats.total:
            return
        err_console.print(f"backfill with {stats.model_key}: {stats.total} photo(s) to detect"
                          + (f" ({stats.queued} newly queued)" if stats.queued else ""), highlight=False)
        bar.start()
        task.append(bar.add_task("Detecting", total=stats.total, rate=0.0))

    def advanced(stats) -> None:  # type: ignore[no-untyped-def]
        bar.update(task[0], completed=stats.settled, rate=stats.photos_per_second)

    try:
        stats = run(settings, listings=listings, ray_address=ray_address, actors=actors, batch_size=batch_size,
                    gpus_per_actor=gpus_per_actor, on_start=started, on_progress=advanced, stop=stop)
    except KeyboardInterrupt:
        bar.stop()
        err_console.print("interrupted: what was written stays; run again to finish", highlight=False)
        raise typer.Exit(130) from None
    finally:
        bar.stop()
    if stats.total == 0:
        err_console.print(f"nothing to do: every selected photo is detected by {stats.model_key} (or failed)",
                          highlight=False)
        return
    parts = [f"{stats.done} photo(s) done", f"{stats.failed} failed"]
    if stats.retried:
        parts.append(f"{stats.retried} to retry")
    if stats.skipped:
        parts.append(f"{stats.skipped} taken by another worker")
    err_console.print("backfill: " + ", ".join(parts) + f" in {stats.seconds:.1f} s "
                      f"({stats.photos_per_second:.1f} photos/s)", highlight=False)
    for error in stats.errors[:5]:
        err_console.print(f"  [yellow]failed[/] {escape(error)}", highlight=False)


def import_listings(
    listings: Path = ListingsArg,
    photo_root: Path | None = PhotoRootOpt,
    ray_address: str | None = RayAddressOpt,
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    batch_size: int = typer.Option(16, "--batch-size", min=1, max=1024, help="Photos per fetch task and per write to the catalog."),
    db: str | None = DbOpt,
) -> None:
    """Import listings with their photos from a Parquet or CSV file, on Ray (a local Ray by default).

    Columns: id (the listing's id where it comes from: a re-import finds it again), title, amenities (claimed:
    a list in Parquet, ';'-separated in CSV), photos (the same: paths under --photo-root, or http(s)/s3 URLs),
    bedrooms (the declared count, 0-100; empty: none).
    Photos are fetched, decoded and checked in parallel; bad rows and bad photos are reported and skipped.
    Each photo is queued for detection (`roomscan worker` or `roomscan backfill`). Running it again only adds
    what is missing.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from roomscan.bulk import import_listings as run
    from roomscan.settings import Settings

    settings = Settings.from_env(database_url=db, model=model, taxonomy=str(taxonomy) if taxonomy else None)
    bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err_console)
    task: list[TaskID] = []

    def started(total: int) -> None:
        if total:
            bar.start()
            task.append(bar.add_task("Importing photos", total=total))

    def advanced(stats) -> None:  # type: ignore[no-untyped-def]
        bar.update(task[0], completed=stats.photos_added + stats.photos_failed)

    try:
        stats = run(settings, listings, photo_root=photo_root, ray_address=ray_address, batch_size=batch_size,
                    on_start=started, on_progress=advanced)
    finally:
        bar.stop()
    for problem in stats.problems[:50]:
        err_console.print(f"[yellow]skipped[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if len(stats.problems) > 50:
        err_console.print(f"... and {len(stats.problems) - 50} more", highlight=False)
    err_console.print(
        f"imported {stats.rows} row(s): {stats.listings_created} listing(s) created, {stats.listings_found} "
        f"already there, {stats.bad_rows} bad row(s); photos: {stats.photos_added} added, {stats.photos_present} "
        f"already there, {stats.photos_failed} refused ({stats.seconds:.1f} s)", highlight=False)
