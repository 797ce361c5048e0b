"""``roomscan data``: convert datasets between formats, build the Open Images amenity subset, and ``explore``
(the data report, :mod:`roomscan.cli.explore`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from roomscan.cli._common import TaxonomyOpt
from roomscan.cli._console import console, err_console, progress
from roomscan.cli.explore import explore_cmd

data_app = typer.Typer(help="Datasets: convert between formats, fetch the Open Images amenity subset, profile a dataset.", no_args_is_help=True)

FORMAT_HELP = "roomscan, coco, yolo, voc, openimages or labelstudio"


@data_app.command("convert")
def convert_cmd(
    src: Path = typer.Argument(..., help="The source dataset: a folder or a COCO / Label Studio .json file."),
    out: Path = typer.Argument(..., help="The output folder (must be empty or absent unless --force)."),
    to: str = typer.Option(..., "--to", help=f"Output format: {FORMAT_HELP}."),
    from_format: str | None = typer.Option(None, "--from", help=f"Source format ({FORMAT_HELP}); detected if omitted."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help="Map the labels onto this taxonomy YAML (default: the source's own classes)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty OUT."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Where the images are, for COCO, Open Images and Label Studio sources (Label Studio upload and s3:// paths are found here by name)."
    ),
    annotations: str = typer.Option(
        "latest", "--annotations", help="Label Studio: which annotations of a task count: latest (ground truth if flagged, else the latest not cancelled), first, or all."
    ),
) -> None:
    """Convert a detection dataset; images are hard-linked (or copied) into OUT.

    Example: roomscan data convert export.json --to yolo datasets/rooms-yolo
    """
    from roomscan.data.convert import convert, detect_format

    fmt = from_format or detect_format(src)
    with progress() as bar:
        task = bar.add_task(f"{fmt} -> {to}: images", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        dataset = convert(src, to, out, from_format=fmt, taxonomy=taxonomy, force=force, on_image=step,
                          image_root=image_root, annotations=annotations)
    if fmt == "labelstudio":
        err_console.print(f"Label Studio annotations used: {annotations} (see --annotations)", highlight=False)
    from roomscan.data.dataset import skipped_lines

    for line in skipped_lines(dataset.skipped):
        err_console.print(f"[yellow]skipped:[/] {escape(line)}", highlight=False, soft_wrap=True)
    missing = sum(not dataset.path(im).is_file() for im in dataset.images)
    if missing:
        err_console.print(f"[yellow]warning:[/] {missing} image file(s) were missing under {dataset.images_dir}", highlight=False)
    console.print(
        f"wrote {len(dataset)} images, {dataset.num_boxes} boxes, {len(dataset.taxonomy)} classes as {to} to {out}",
        highlight=False,
    )


@data_app.command("openimages")
def openimages_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (rerun to resume)."),
    split: str = typer.Option("validation", "--split", help="train, validation or test."),
    max_per_class: int = typer.Option(100, "--max-per-class", min=1, help="Images to pick per class."),
    taxonomy: Path | None = TaxonomyOpt,
    annotations: Path | None = typer.Option(None, "--annotations", help="Local box annotations CSV (skips its download)."),
    classes: Path | None = typer.Option(None, "--classes", help="Local class descriptions CSV."),
    images_csv: Path | None = typer.Option(None, "--images-csv", help="The split's image list CSV, for attribution.csv."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel image downloads."),
    timeout: float = typer.Option(30.0, "--timeout", min=1.0, help="Seconds per request."),
) -> None:
    """Download the Open Images images of the taxonomy's classes into a roomscan dataset.

    Example: roomscan data openimages --split validation --max-per-class 50 --out data/oi-val
    """
    from roomscan.data.openimages import prepare_openimages

    with progress() as bar:
        tasks: dict[str, object] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "annotations CSV (bytes)" if stage == "annotations" else "images"
                tasks[stage] = bar.add_task(f"Open Images {split}: {label}", total=None)
            bar.update(tasks[stage], completed=done, total=total or None)  # type: ignore[arg-type]

        result = prepare_openimages(
            out, split=split, max_per_class=max_per_class, taxonomy=taxonomy, annotations=annotations,
            classes=classes, images_csv=images_csv, workers=workers, timeout=timeout, on_progress=step,
        )
    for image_id, error in sorted(result.failures.items())[:10]:
        err_console.print(f"[yellow]failed[/] {escape(f'{image_id}: {error}')}", highlight=False, soft_wrap=True)
    if result.failed:
        err_console.print(f"{result.failed} image(s) failed; rerun the same command to retry them", highlight=False)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.per_class.items()))
    console.print(
        f"{result.done} of {result.selected} images in {result.path} ({result.skipped} already present); {counts}",
        highlight=False,
    )


data_app.command("explore")(explore_cmd)
