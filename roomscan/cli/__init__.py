"""The ``roomscan`` command line (Typer). One module per command group; this one assembles them.

Errors a user can fix (:class:`~roomscan.errors.RoomscanError`) print one clear line and exit with status 2.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from roomscan import __version__
from roomscan.cli import active, audit, bulk, catalog_cmds, detect, export, listings, models, receipts, serve, users
from roomscan.cli import photos as photos_cmds
from roomscan.cli import classifier, quality, radioactive, rooms
from roomscan.cli import sweep as sweep_cmds
from roomscan.cli import train as train_cmds
from roomscan.cli._console import err_console
from roomscan.cli.data import data_app
from roomscan.cli.distill import distill as distill_cmd
from roomscan.errors import RoomscanError


def _consistent_help() -> None:
    """Help reads like every Unix tool's: argument names in upper case (``LISTING_ID``, ``PHOTOS...``), and no
    ``<bool>`` beside a flag, which takes no value. Typer's defaults are lower case and ``--json <bool>``."""
    from typer.core import TyperArgument, TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx):  # type: ignore[no-untyped-def]
        return None if self.is_flag else shown(self, ctx)

    def display_name_raw(self: TyperArgument) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    TyperArgument.display_name_raw = property(display_name_raw)  # type: ignore[assignment,method-assign]

    # A command's later paragraphs flow like its first (Typer keeps the docstring's line breaks there), except a
    # paragraph of list items or one marked \b, which keep theirs.
    from typer import rich_utils

    def fix_linebreaks(paragraphs: list[str], markup_mode: str) -> str:
        def flow(paragraph: str) -> str:
            lines = paragraph.splitlines()
            if paragraph.startswith("\b") or any(line.lstrip().startswith(("- ", "* ")) for line in lines):
                return paragraph
            return " ".join(line.strip() for line in lines)

        return "\n\n".join(flow(p) for p in paragraphs)

    rich_utils._fix_linebreaks = fix_linebreaks  # type: ignore[assignment]


_consistent_help()

app = typer.Typer(
    name="roomscan",
    help="Turn listing photos into trustworthy amenity data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("detect")(detect.detect)
app.add_typer(listings.listings_app, name="listings")
app.add_typer(photos_cmds.app, name="photos")
app.add_typer(users.users_app, name="users")
app.command("search")(catalog_cmds.search)
app.command("audit")(audit.audit)
app.command("quality")(quality.quality)
app.command("worker")(catalog_cmds.worker)
app.command("backfill")(bulk.backfill)
app.command("import")(bulk.import_listings)
app.command("serve")(serve.serve)
app.add_typer(models.app, name="models")
app.command("export")(export.export)
app.add_typer(data_app, name="data")
app.add_typer(receipts.app, name="receipt")
app.command("train")(train_cmds.train)
app.command("evaluate")(train_cmds.evaluate)
app.command("evaluate-rooms")(rooms.evaluate_rooms_command)
app.add_typer(train_cmds.runs_app, name="runs")
app.add_typer(sweep_cmds.app, name="sweep")
app.add_typer(active.app, name="active")
app.command("distill")(distill_cmd)
app.command("mark")(radioactive.mark)
app.command("verify")(radioactive.verify)
app.command("train-classifier")(classifier.train_classifier_command)


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
