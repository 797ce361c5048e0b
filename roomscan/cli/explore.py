"""``roomscan data explore``: the data report (look at the data before training on it)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import TaskID

from roomscan.cli._console import console, err_console, progress


def explore_cmd(
    dataset: Path = typer.Argument(
        ...,
        help="The dataset: a roomscan, YOLO, VOC or Open Images folder, or a COCO / Label Studio .json (detected as data convert does).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory for report.html and summary.json (created if needed)."
    ),
    samples_per_class: int = typer.Option(6, "--samples", min=0, max=50, help="Sample thumbnails per class."),
    near_duplicate_distance: int = typer.Option(
        6,
        "--near-distance",
        min=0,
        max=64,
        help="Perceptual-hash bits (of 64) within which two images are near-duplicates.",
    ),
    from_format: str | None = typer.Option(
        None, "--from", help="Source format (roomscan, coco, yolo, voc, openimages or labelstudio); detected if omitted."
    ),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Where the images are, for COCO, Open Images and Label Studio sources (Label Studio upload and s3:// paths are found here by name)."
    ),
    annotations: str = typer.Option(
        "latest", "--annotations", help="Label Studio: which annotations of a task count: latest (ground truth if flagged, else the latest not cancelled), first, or all."
    ),
    workers: int = typer.Option(2, "--workers", min=1, max=32, help="Threads decoding images."),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Exit 1 when any file is unreadable, a box is degenerate or out of bounds, a size disagrees, or files are duplicated.",
    ),
) -> None:
    """Profile a dataset: class balance, box sizes, image sizes, duplicates, unreadable files, bad boxes, samples.

    Writes one self-contained OUT/report.html (charts embedded) and OUT/summary.json; prints the findings.
    An interrupted run resumes where it stopped (per-image results are cached in OUT).
    """
    from roomscan.data.explore import explore

    with progress() as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = explore(
            dataset,
            out,
            samples_per_class=samples_per_class,
            near_duplicate_distance=near_duplicate_distance,
            workers=workers,
            progress=on_progress,
            fmt=from_format,
            image_root=image_root,
            annotations=annotations,
        )
    err_console.print(
        f"[bold]{report.num_images:,} images, {report.num_boxes:,} boxes.[/] What to look at:",
        highlight=False,
    )
    for finding in report.findings:
        err_console.print(f"  • {finding}", highlight=False, markup=False)
    for bad in report.unreadable[:10]:
        err_console.print(f"[yellow]unreadable[/] {escape(bad.reason)}", highlight=False, soft_wrap=True)
    if len(report.unreadable) > 10:
        err_console.print(
            f"  ... and {len(report.unreadable) - 10} more unreadable files (see the report)", highlight=False
        )
    console.print(report.report_html, highlight=False, soft_wrap=True)
    problems = (
        report.unreadable
        or report.degenerate_boxes
        or report.out_of_bounds_boxes
        or report.size_mismatches
        or report.exact_duplicates
    )
    if strict and problems:
        raise typer.Exit(1)
