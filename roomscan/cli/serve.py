"""``roomscan serve``: the REST API, the web page and (unless ``--no-worker``) a background detection worker."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import typer

from roomscan.cli._common import DbOpt, DeviceOpt, ImageSizeOpt, ModelOpt, TaxonomyOpt, load_detector
from roomscan.cli._console import err_console


def serve(
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    image_size: int | None = ImageSizeOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port to listen on."),
    worker: bool = typer.Option(
        True, "--worker/--no-worker",
        help="Detect uploaded photos in this process; --no-worker leaves them to `roomscan worker --watch` "
        "processes (on this or other machines, sharing the catalog).",
    ),
    db: str | None = DbOpt,
    log_format: str | None = typer.Option(
        None, "--log-format", envvar="ROOMSCAN_LOG_FORMAT",
        help="text (default) or json: one JSON object per line, each request's with its X-Request-ID.",
    ),
) -> None:
    """Serve the API (/api/v1, OpenAPI at /openapi.json) and the web page.

    The model is loaded before the server starts, so a missing model fails here with instructions. Write
    endpoints need ROOMSCAN_API_KEY; if it is unset, a random key is generated and printed for this run.
    """
    import uvicorn

    from roomscan.api import create_app
    from roomscan.logs import announcer, setup_logging
    from roomscan.settings import Settings

    settings = Settings.from_env(
        database_url=db, model=model, taxonomy=str(taxonomy) if taxonomy else None, log_format=log_format
    )
    setup_logging(settings.log_format)
    say = announcer(settings.log_format, err_console, "roomscan.serve")
    detector = load_detector(model, taxonomy, device, image_size)  # fails fast, with instructions, if missing
    if not settings.api_key:
        key = secrets.token_urlsafe(24)
        settings = Settings.from_env(
            database_url=db, model=model, api_key=key, taxonomy=settings.taxonomy, log_format=settings.log_format
        )
        say(f"ROOMSCAN_API_KEY is not set; write requests need this key for this run: [bold]{key}[/]",
            level=logging.WARNING)
    from sqlalchemy.engine import make_url

    catalog = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    say(f"model {detector.info.key}; catalog {catalog}", markup=False)
    say(f"open http://{host}:{port}/ (API docs at /docs)")
    if not worker:
        say("no detection in this process: run `roomscan worker --watch` beside it")
    app = create_app(settings, detector=detector, start_worker=worker)
    if settings.log_format == "json":
        # Logging is ours (setup_logging); roomscan's middleware logs each request, so uvicorn's access log is off.
        uvicorn.run(app, host=host, port=port, log_level="info", log_config=None, access_log=False)
    else:
        uvicorn.run(app, host=host, port=port, log_level="info")
