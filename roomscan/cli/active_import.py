"""``roomscan active import``: bring the labels people made in Label Studio back into a roomscan dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import JsonOpt
from roomscan.cli._console import console, err_console
from roomscan.cli.active import app

if TYPE_CHECKING:
    from roomscan.active.labelstudio_import import ImportReport


@app.command("import")
def import_cmd(
    export: Path = typer.Argument(..., help="The Label Studio export: the JSON (or JSON_MIN) file of an image project with rectangle labels."),
    into: Path = typer.Option(..., "--into", help="The roomscan dataset to merge into (images/, annotations.json, taxonomy.yaml); an absent or empty folder starts one (needs --taxonomy)."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help="Resolve labels through this taxonomy YAML (it may add synonyms); its amenities must be the dataset's, in order. Required for a new dataset."),
    label_map: list[str] = typer.Option([], "--map", metavar="LABEL=SLUG", help="Map an export label onto an amenity: --map 'Coffee machine=coffee-maker' (repeatable)."),
    images_root: Path | None = typer.Option(None, "--images-root", "--image-root", help="Where the export's photos are (upload, URL and local-files paths are found here by name; --image-root as in data convert); default: images/ beside the export, else its folder."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Leave out boxes whose label the taxonomy does not know, instead of stopping."),
    strict: bool = typer.Option(False, "--strict", help="Stop on a photo that is neither in the dataset nor found, or was labelled at another shape, instead of skipping its task."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    json_out: bool = JsonOpt,
) -> None:
    """Merge a Label Studio export into a dataset: labelled photos already in it get their boxes replaced by the
    person's, new photos are copied in.

    Photos are matched by name, then by content. Of several annotations on a task the latest one not cancelled
    counts (or the one flagged ground truth); tasks nobody labelled, or whose annotations were all cancelled,
    change nothing. Importing the same export twice changes nothing. The dataset is never left half-written.

    Example: roomscan active import project-3.json --into data/rooms --map "Coffee machine=coffee-maker"
    """
    from roomscan.active.labelstudio_import import import_labelstudio, parse_label_map
    from roomscan.data.dataset import DatasetError

    try:
        report = import_labelstudio(
            export, into, taxonomy=taxonomy, label_map=parse_label_map(label_map), images_root=images_root,
            skip_unknown=skip_unknown, strict=strict, dry_run=dry_run,
        )
    except OSError as exc:  # a read-only or full disk, an unreadable photo: the import undid what it had placed
        raise DatasetError(f"could not import into {into}: {exc}; the dataset is as it was (check the folder's "
                           f"permissions and free space, then run the import again)") from exc
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    _print_report(report)


def _print_report(report: ImportReport) -> None:
    for line in report.notes:
        err_console.print(f"[yellow]export:[/] {escape(line)}", highlight=False, soft_wrap=True)
    for ref in report.missing_images[:10]:
        err_console.print(f"[yellow]missing photo, task skipped:[/] {escape(ref)}", highlight=False, soft_wrap=True)
    if len(report.missing_images) > 10:
        err_console.print(f"... and {len(report.missing_images) - 10} more; --images-root DIR says where they are", highlight=False)
    for message in report.size_mismatches:
        err_console.print(f"[yellow]shape mismatch, task skipped:[/] {escape(message)}", highlight=False, soft_wrap=True)
    for old, new in report.renamed:
        err_console.print(f"a different photo is already called {escape(old)}: added as {escape(new)}", highlight=False)

    labels = sorted(set(report.boxes_added) | set(report.boxes_removed))
    table = Table("amenity", "boxes added", "boxes removed", title="Boxes by amenity" if labels else None)
    for slug in labels:
        table.add_row(slug, str(report.boxes_added.get(slug, 0)), str(report.boxes_removed.get(slug, 0)))
    if labels:
        console.print(table)
    summary = Table("", "count", show_header=False, box=None)
    rows = [
        ("images added", len(report.images_added)),
        ("images updated (boxes replaced)", len(report.images_updated)),
        ("images unchanged", report.images_unchanged),
        ("tasks skipped: photo missing", len(report.missing_images)),
        ("tasks skipped: shape mismatch", len(report.size_mismatches)),
        ("tasks not labelled (none, or all cancelled)", report.unlabelled_tasks),
        ("cancelled annotations ignored", report.cancelled_annotations),
        ("boxes with unknown labels left out", sum(report.unknown_labels.values())),
        ("boxes clipped to the image", report.boxes_clipped),
        ("boxes dropped: outside the image", report.boxes_outside),
        ("boxes dropped: degenerate", report.boxes_degenerate),
    ]
    for name, n in rows:
        if n or name.startswith("images"):
            summary.add_row(name, str(n))
    console.print(summary)
    if report.dry_run:
        verdict = "dry run: nothing written" + ("" if report.changed else " (and nothing would change)")
    else:
        verdict = f"wrote {report.dataset}" if report.written else f"nothing to change in {report.dataset}"
    console.print(verdict, highlight=False)
