"""The ``roomscan`` command line (Typer). One module per command group; this one assembles them.

Errors a user can fix (:class:`~roomscan.errors.RoomscanError`) print one clear line and exit with status 2.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from roomscan import __version__
from roomscan.cli import catalog_cmds, detect, export, models, receipts, serve
from roomscan.cli import sweep as sweep_cmds
from roomscan.cli import train as train_cmds
from roomscan.cli._console import err_console
from roomscan.cli.data import data_app
from roomscan.errors import RoomscanError

app = typer.Typer(
    name="roomscan",
    help="Turn listing photos into trustworthy amenity data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("detect")(detect.detect)
app.add_typer(catalog_cmds.listings_app, name="listings")
app.command("search")(catalog_cmds.search)
app.command("worker")(catalog_cmds.worker)
app.command("serve")(serve.serve)
app.add_typer(models.app, name="models")
app.command("export")(export.export)
app.add_typer(data_app, name="data")
app.add_typer(receipts.app, name="receipt")
app.command("train")(train_cmds.train)
app.command("evaluate")(train_cmds.evaluate)
app.add_typer(train_cmds.runs_app, name="runs")
app.add_typer(sweep_cmds.app, name="sweep")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Turn listing photos into trustworthy amenity data."""


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="roomscan", standalone_mode=True)
    except RoomscanError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
