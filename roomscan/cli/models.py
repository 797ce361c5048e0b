"""``roomscan models list|pull``: the known detectors and their local availability; fetch weights."""

from __future__ import annotations

import typer
from rich.table import Table

from roomscan.cli._console import console, err_console

app = typer.Typer(help="Detector weights: list known models, download them.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Known model names, their Hugging Face ids, and whether the weights are on this machine."""
    from roomscan.backends import list_models

    table = Table("name", "backend", "local", "description")
    table.add_column("hub id", no_wrap=True)
    for m in list_models():
        table.add_row(m.name, m.backend, "[green]yes[/]" if m.cached else "[dim]no[/]", m.description, m.hub_id)
    console.print(table)


@app.command("pull")
def pull(name: str = typer.Argument("owlv2", help="A known name (see `roomscan models list`) or a Hugging Face id.")) -> None:
    """Download a model's weights into the Hugging Face cache (needs internet; shows progress)."""
    from roomscan.backends import pull_model

    path = pull_model(name)
    err_console.print(f"[green]ready:[/] {name} at {path}", highlight=False)
