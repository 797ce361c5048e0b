"""``roomscan detect``: find amenities in photos, print a table or JSON, optionally save annotated copies."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import (
    DeviceOpt,
    ImageSizeOpt,
    MinScoreOpt,
    ModelOpt,
    RecursiveOpt,
    TaxonomyOpt,
    expand_inputs,
    load_detector,
    report_bad,
)
from roomscan.cli._console import console, err_console, progress
from roomscan.errors import ImageError


def detect(
    photos: list[Path] = typer.Argument(..., help="Photos, or directories of photos.", show_default=False),
    recursive: bool = RecursiveOpt,
    model: str | None = ModelOpt,
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    image_size: int | None = ImageSizeOpt,
    min_score: float | None = MinScoreOpt,
    batch_size: int = typer.Option(4, "--batch-size", min=1, max=64, help="Photos per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: [{image, detections: [{label, score, box}]}]."),
    save_annotated: Path | None = typer.Option(None, "--save-annotated", help="Write each photo with its boxes drawn into this directory."),
) -> None:
    """Detect amenities in photos.

    Unreadable files are reported and skipped; the exit status is 1 if any input was skipped.
    """
    from roomscan.detection.core import detections_to_records
    from roomscan.detection.image import load_image

    files, problems = expand_inputs(photos, recursive=recursive)
    for path, why in problems:
        report_bad(path, ValueError(why))
    if not files:
        raise typer.Exit(1)
    detector = load_detector(model, taxonomy, device, image_size, min_score)
    if save_annotated is not None:
        save_annotated.mkdir(parents=True, exist_ok=True)

    results: list[dict[str, object]] = []
    failed = len(problems)
    with progress() as bar:
        task = bar.add_task("Detecting", total=len(files))
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            loaded = []
            for path in chunk:
                try:
                    loaded.append((path, load_image(path)))
                except ImageError as exc:
                    failed += 1
                    report_bad(path, exc)
                    results.append({"image": str(path), "error": str(exc), "detections": []})
                    bar.advance(task)
            if not loaded:
                continue
            outputs = detector.predict([photo.image for _, photo in loaded], batch_size=batch_size)
            for (path, photo), dets in zip(loaded, outputs, strict=True):
                records = detections_to_records(dets)
                results.append(
                    {
                        "image": str(path),
                        "width": photo.width,
                        "height": photo.height,
                        "detections": [{k: r[k] for k in ("label", "score", "box")} for r in records],
                    }
                )
                if save_annotated is not None:
                    _save_annotated(photo.image, dets, detector.taxonomy, save_annotated, path)
                bar.advance(task)

    order = {str(p): i for i, p in enumerate(files)}
    results.sort(key=lambda r: order.get(str(r["image"]), len(order)))
    if as_json:
        console.print_json(json.dumps(results))
    else:
        _print_table(results, detector.info.key)
    if save_annotated is not None:
        err_console.print(f"annotated photos written to {save_annotated}")
    if failed:
        raise typer.Exit(1)


def _save_annotated(image, dets, taxonomy, out_dir: Path, path: Path) -> None:  # type: ignore[no-untyped-def]
    from roomscan.detection.draw import annotate

    target = out_dir / f"{path.stem}.annotated.jpg"
    annotate(image, dets, taxonomy).save(target, "JPEG", quality=90)


def _print_table(results: list[dict[str, object]], model_key: str) -> None:
    table = Table(title=f"Amenities found ({model_key})", show_lines=False)
    table.add_column("photo")
    table.add_column("amenity")
    table.add_column("score", justify="right")
    table.add_column("box (x1, y1, x2, y2)")
    for result in results:
        dets = result["detections"]
        if result.get("error"):
            table.add_row(escape(str(result["image"])), "[red]unreadable[/]", "", "")
        elif not dets:
            table.add_row(escape(str(result["image"])), "[dim]none[/]", "", "")
        for d in dets:  # type: ignore[attr-defined]
            table.add_row(escape(str(result["image"])), d["label"], f"{d['score']:.3f}", ", ".join(f"{v:.0f}" for v in d["box"]))
    console.print(table)
