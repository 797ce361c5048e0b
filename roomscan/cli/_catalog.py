"""What the catalog commands share: opening the catalog, the taxonomy, the model whose results to read, the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roomscan.cli._console import err_console, progress


def open_catalog(db: str | None):  # type: ignore[no-untyped-def]
    """``(settings, session factory, photo store)`` for ``--db`` (else the environment's catalog)."""
    from roomscan.catalog.db import open_catalog as open_db
    from roomscan.catalog.photos import PhotoStore
    from roomscan.settings import Settings

    settings = Settings.from_env(database_url=db)
    _, sessions = open_db(settings.resolved_database_url)
    return settings, sessions, PhotoStore(settings.photo_dir)


def load_taxonomy(path: Path | None):  # type: ignore[no-untyped-def]
    from roomscan.settings import Settings
    from roomscan.taxonomy import load_taxonomy as load

    return load(path if path is not None else Settings.from_env().taxonomy)


def catalog_model(session: Any, listing_id: int | None = None):  # type: ignore[no-untyped-def]
    """The model whose results a command reads without loading a detector: the one of the listing's stored
    roll-up, else the newest in the catalog; ``None`` in an empty catalog."""
    from sqlalchemy import func, select

    from roomscan.catalog.models import ListingAmenity, Model

    model_id = None
    if listing_id is not None:
        model_id = session.scalar(
            select(func.max(ListingAmenity.model_id)).where(ListingAmenity.listing_id == listing_id)
        )
    model_id = model_id or session.scalar(select(func.max(Model.id)))
    return session.get(Model, model_id) if model_id else None


def run_worker(sessions, photo_store, detector, model_id: int) -> None:  # type: ignore[no-untyped-def]
    """Detect every queued photo with a progress bar, refresh stale roll-ups, and print a summary."""
    from roomscan.worker import DetectionWorker

    worker = DetectionWorker(sessions, photo_store, detector, model_id, detector.taxonomy)
    if reclaimed := worker.reclaim_orphans():
        err_console.print(f"took over {reclaimed} photo(s) a stopped worker had left running", highlight=False)
    total, stale = worker.pending_count(), worker.stale_count()
    if total == 0 and stale == 0:
        err_console.print(f"nothing to do: no photo is waiting for {detector.info.key}", highlight=False)
        return
    if total:
        with progress() as bar:
            task = bar.add_task("Detecting", total=total)
            stats = worker.run_until_idle(on_progress=lambda n: bar.advance(task, n))
    else:
        stats = worker.run_until_idle()
    parts = [f"{stats.done} photo(s) done", f"{stats.failed} failed"]
    if stats.retried:
        parts.append(f"{stats.retried} to retry")
    if stats.refreshed:
        parts.append(f"{stats.refreshed} listing roll-up(s) refreshed")
    err_console.print("detected: " + ", ".join(parts), highlight=False)
    if stats.failed:
        err_console.print("failed photos keep their error (`roomscan listings show ID`); "
                          "`roomscan worker --retry-failed` tries them again", highlight=False)
