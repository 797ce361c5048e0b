"""``roomscan search`` and ``roomscan worker``: guests' amenity search and the detection worker, from the command
line (``roomscan listings ...`` lives in ``listings.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import load_taxonomy, open_catalog, run_worker, use_model
from roomscan.cli._common import DbOpt, DeviceOpt, JsonOpt, ModelOpt, TaxonomyOpt
from roomscan.cli._console import console, err_console
from roomscan.errors import RoomscanError


def worker(
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue failed photos again first."),
    watch: bool = typer.Option(
        False, "--watch", "-w",
        help="Keep running: take new photos as they arrive until Ctrl-C or SIGTERM (which finish the batch in hand "
        "first). Run one per machine or GPU against a shared PostgreSQL catalog.",
    ),
    batch_size: int = typer.Option(4, "--batch-size", min=1, max=256, help="Photos per detector call."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, max=60.0, help="With --watch: seconds between looks at an empty queue."),
    db: str | None = DbOpt,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535,
        help="With --watch: serve Prometheus metrics (queue depth, job latency, photos processed) at "
        "http://0.0.0.0:PORT/metrics. Keep the port off the public internet.",
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", envvar="ROOMSCAN_LOG_FORMAT",
        help="text (default) or json: one JSON object per line.",
    ),
) -> None:
    """Process every queued photo (e.g. after a crash or a model change) and refresh stale roll-ups, then exit;
    with --watch, keep serving the queue.

    First clears what a crashed server or worker left: upload files no photo uses (older than 10 minutes) and
    photos a stopped worker on this host had left running. Any number of workers, on any number of machines, can
    share one catalog: each photo is detected once.
    """
    from roomscan.catalog import jobs
    from roomscan.logs import setup_logging
    from roomscan.settings import Settings

    if metrics_port is not None and not watch:
        raise RoomscanError("--metrics-port needs --watch: a worker that exits when the queue is empty is not scraped")
    log_format = Settings.from_env(log_format=log_format).log_format  # validated: text or json
    setup_logging(log_format)
    services = open_catalog(db)
    use_model(services, model, taxonomy, device)
    recovered = services.recover()
    if recovered.swept.removed:
        err_console.print(f"photo store: {recovered.swept}", highlight=False)
    if retry_failed:
        with services.sessions() as session, session.begin():
            retried = jobs.retry_failed(session, services.model_id)  # type: ignore[arg-type]
        if retried:
            err_console.print(f"queued {retried} failed photo(s) again")
    if not watch:
        run_worker(services, batch_size=batch_size)
        return
    _watch(services, batch_size, poll, metrics_port=metrics_port, log_format=log_format)


def _watch(  # type: ignore[no-untyped-def]
    services, batch_size: int, poll: float, *, metrics_port: int | None = None, log_format: str = "text"
) -> None:
    """Serve the queue until SIGINT/SIGTERM, printing a line a minute while there is work."""
    import signal
    import threading
    import time

    from sqlalchemy.engine import make_url

    from roomscan.logs import announcer

    say = announcer(log_format, err_console, "roomscan.worker")
    on_settle = None
    if metrics_port is not None:
        from roomscan.metrics import Metrics

        metrics = Metrics()
        metrics.watch_queue(services.sessions, services.model_id)
        metrics.serve(metrics_port)
        on_settle = metrics.observe_job
        say(f"metrics at http://0.0.0.0:{metrics_port}/metrics", markup=False)
    worker = services.new_worker(batch_size=batch_size, on_settle=on_settle)
    stop = threading.Event()

    def stopping(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        say("stopping after the batch in hand (again to stop at once)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    catalog = make_url(services.settings.resolved_database_url).render_as_string(hide_password=True)
    say(f"worker {worker.holder}: detecting with {services.model_key}, catalog {catalog}, photos "
        f"{services.photos}; Ctrl-C stops", markup=False)
    last = [time.monotonic(), 0]

    def report(n: int) -> None:
        if time.monotonic() - last[0] >= 60:
            s = worker.stats
            say(f"{s.done} photo(s) done, {s.failed} failed, {s.refreshed} roll-up(s) refreshed "
                f"({s.done - last[1]} in the last minute)")
            last[:] = [time.monotonic(), s.done]

    worker.run_forever(stop, poll_seconds=poll, on_batch=report)
    s = worker.stats
    say(f"stopped: {s.done} photo(s) done, {s.failed} failed, {s.retried} to retry")


def search(
    amenity: list[str] = typer.Option([], "--amenity", "-a", help="The listing must show this amenity; repeat for all-of."),
    any_amenity: list[str] = typer.Option([], "--any", help="...and at least one of these; repeat."),
    min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0, help="Each matched amenity's best score is at least this."),
    confirmed_only: bool = typer.Option(False, "--confirmed-only", help="Only amenities the host claims and a photo shows, or the host confirmed."),
    limit: int = typer.Option(20, min=1, max=100, help="Listings per page."),
    after: int | None = typer.Option(None, "--after", help="Cursor printed by the previous page."),
    room: str | None = typer.Option(
        None, "--room", help="A photo of the listing shows this room type (bathroom, kitchen...; ROOMSCAN_ROOM_TYPES "
        "names your own list). Alone or with amenities.",
    ),
    taxonomy: Path | None = TaxonomyOpt,
    as_json: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """Find listings by amenity and room type: `roomscan search --amenity swimming-pool --amenity jacuzzi`,
    `roomscan search --room bathroom`."""
    from roomscan.catalog.search import SearchQuery, search_listings
    from roomscan.insights.rooms import load_room_types
    from roomscan.settings import Settings

    if not amenity and not any_amenity and room is None:
        raise RoomscanError("give at least one --amenity (or --any, or --room); e.g. --amenity swimming-pool")
    if room is not None:
        room = load_room_types(Settings.from_env().room_types)[room].slug  # an unknown one lists the valid ones
    tax = load_taxonomy(taxonomy)
    try:
        query = SearchQuery(
            all_of=tuple(sorted({tax.resolve(a).slug for a in amenity})),
            any_of=tuple(sorted({tax.resolve(a).slug for a in any_amenity})),
            min_score=min_score,
            confirmed_only=confirmed_only,
            limit=limit,
            after=after,
            room=room,
        )
    except ValueError as exc:
        raise RoomscanError(str(exc)) from exc
    with open_catalog(db).sessions() as session:
        page = search_listings(session, query)
    if as_json:
        console.print_json(json.dumps({
            "hits": [{"listing_id": h.listing_id, "title": h.title, "amenities": h.amenities,
                      **({"room": room, "room_score": h.room_score} if room else {})} for h in page.hits],
            "next_cursor": page.next_cursor,
        }))
        return
    if not page.hits:
        err_console.print("no listing matches" + (" after that cursor" if after is not None else ""))
        return
    table = Table("listing", "title", "matched amenities", *([f"{room} photo"] if room else []))
    for h in page.hits:
        matched = ", ".join(f"{tax[k].name if k in tax else k} {v:.2f}" for k, v in h.amenities.items())
        shown = [f"{h.room_score:.2f}" if h.room_score is not None else ""] if room else []
        table.add_row(str(h.listing_id), escape(h.title), escape(matched), *shown)
    console.print(table)
    if page.next_cursor is not None:
        err_console.print(f"more results: --after {page.next_cursor}")
