"""What the catalog commands share: their ``Services`` (``roomscan.services``), the taxonomy, the worker's run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from roomscan.cli._console import err_console, progress

if TYPE_CHECKING:
    from roomscan.services import Services
    from roomscan.taxonomy import Taxonomy


def open_catalog(db: str | None) -> Services:
    """The catalog and photo store of ``--db`` (else the environment's), no model loaded."""
    from roomscan.services import Services
    from roomscan.settings import Settings

    return Services.open(Settings.from_env(database_url=db))


def use_model(services: Services, model: str | None, taxonomy: Path | None, device: str | None) -> int:
    """Load the detector the options name (with a spinner) and make it the services' model: registered in the
    catalog, with every photo it has not processed queued. Returns how many photos were queued."""
    from roomscan.cli._common import load_detector

    return services.use(load_detector(model, taxonomy, device))


def load_taxonomy(path: Path | None) -> Taxonomy:
    from roomscan.settings import Settings
    from roomscan.taxonomy import load_taxonomy as load

    return load(path if path is not None else Settings.from_env().taxonomy)


def run_worker(services: Services, *, batch_size: int | None = None) -> None:
    """Detect every queued photo with a progress bar, refresh stale roll-ups, and print a summary."""
    worker = services.new_worker(**({"batch_size": batch_size} if batch_size else {}))
    if reclaimed := worker.reclaim_orphans():
        err_console.print(f"took over {reclaimed} photo(s) a stopped worker had left running", highlight=False)
    total, stale = worker.pending_count(), worker.stale_count()
    if total == 0 and stale == 0:
        err_console.print(f"nothing to do: no photo is waiting for {services.model_key}", highlight=False)
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
