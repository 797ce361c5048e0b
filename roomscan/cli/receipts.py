"""``roomscan receipt``: read receipt photos into expense data, in batches, and evaluate against ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer
from rich.markup import escape

from roomscan.cli._console import console, err_console, progress
from roomscan.errors import RoomscanError
from roomscan.receipts.export import CSV_COLUMNS, csv_row
from roomscan.receipts.export import ONE_VALUE_FIELDS as FIELDS

app = typer.Typer(help="Receipt photos to structured expense data (offline OCR).", no_args_is_help=True)

ENGINE_HELP = "OCR engine: rapidocr (default: PP-OCR, most accurate) or tesseract (about 2.5x faster, weaker on photos)."


def _reader(engine: str | None, date_order: str | None, no_preprocess: bool = False):  # type: ignore[no-untyped-def]
    from roomscan.receipts import PreprocessConfig, ReceiptReader

    if date_order not in (None, "dmy", "mdy"):
        raise RoomscanError(f"--date-order must be dmy or mdy, got {date_order!r}")
    config = (
        PreprocessConfig(find_paper=False, deskew=False, normalise=False, orient=False)
        if no_preprocess
        else None
    )
    return ReceiptReader(engine, preprocess=config, date_order=date_order)


@app.command("read")
def read(
    photos: list[Path] = typer.Argument(..., help="Receipt photos (JPEG, PNG, WebP...)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per photo, in a list)."),
    engine: str | None = typer.Option(None, "--engine", "-e", help=ENGINE_HELP),
    debug_dir: Path | None = typer.Option(
        None, "--debug-dir", help="Save each pre-processing step's image here."
    ),
    date_order: str | None = typer.Option(
        None, "--date-order", help="dmy or mdy for ambiguous dates like 03/04/25."
    ),
    no_preprocess: bool = typer.Option(False, "--no-preprocess", help="OCR the photo as is (a clean scan)."),
) -> None:
    """Read receipts and print their fields (merchant, date, items, totals, and whether they add up)."""
    reader = _reader(engine, date_order, no_preprocess)
    results = []
    failed = 0
    for photo in photos:
        try:
            folder = debug_dir / photo.stem if debug_dir and len(photos) > 1 else debug_dir
            receipt = reader.read(photo, debug_dir=folder)
        except RoomscanError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            failed += 1
            continue
        results.append(receipt.to_dict())
        if not as_json:
            _print_receipt(receipt)
    if as_json:
        typer.echo(json.dumps(results, indent=2, ensure_ascii=False))
    if failed:
        raise typer.Exit(2 if not results else 1)


def _print_receipt(receipt) -> None:  # type: ignore[no-untyped-def]
    d = receipt.to_dict()
    conf = d["confidence"]
    console.print(f"[bold]{escape(str(d['source']))}[/] ({d['engine']})", highlight=False)
    for name in FIELDS:
        value = d[name]
        c = conf.get("taxes" if name == "tax" else name, 0.0)
        console.print(
            f"  {name:15} {escape(str(value)) if value is not None else '-'}  [dim]({c:.2f})[/]",
            highlight=False,
        )
    for item in d["items"]:
        console.print(
            f"    {item['quantity']} x {escape(item['name']):28} {item['unit_price']:>9} {item['amount']:>9}",
            highlight=False,
        )
    check = d["check"]
    verdict = {True: "[green]adds up[/]", False: "[red]does not add up[/]", None: "[yellow]not checked[/]"}
    console.print(
        f"  check           {verdict[check['total_ok']]} {'; '.join(check['notes'])}", highlight=False
    )


@app.command("batch")
def batch(
    folder: Path = typer.Argument(..., help="A folder of receipt photos."),
    out: Path = typer.Option(Path("receipts.csv"), "--out", "-o", help="CSV to write (one row per photo)."),
    engine: str | None = typer.Option(None, "--engine", "-e", help=ENGINE_HELP),
    date_order: str | None = typer.Option(None, "--date-order", help="dmy or mdy for ambiguous dates."),
) -> None:
    """Read every receipt photo in FOLDER into one CSV; a bad file is reported and skipped."""
    from roomscan.receipts.evaluate import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise RoomscanError(f"{folder}: not a folder")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise RoomscanError(f"{folder}: no images (.jpg, .png, .webp...) to read")
    reader = _reader(engine, date_order)
    failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle, progress() as bar:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        task = bar.add_task("receipts", total=len(photos))
        for photo in photos:
            row: dict[str, object] = {"file": photo.name}
            try:
                row = csv_row(reader.read(photo).to_dict(), photo.name)
            except RoomscanError as exc:
                failed += 1
                row["error"] = str(exc)
                err_console.print(f"[yellow]skipped[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            writer.writerow(row)
            bar.advance(task)
    err_console.print(
        f"wrote {out}: {len(photos) - failed} read, {failed} skipped", highlight=False, soft_wrap=True
    )
    if failed:
        raise typer.Exit(1)  # like `roomscan detect`: the CSV is written, but not every file could be read


@app.command("evaluate")
def evaluate(
    folder: Path = typer.Argument(..., help="Receipt images with <name>.json ground truth beside each."),
    engine: str | None = typer.Option(None, "--engine", "-e", help=ENGINE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Per-field accuracy and character error rate against ground truth."""
    from roomscan.receipts.evaluate import evaluate_folder, find_pairs

    total = len(find_pairs(folder))
    reader = _reader(engine, None)
    with progress() as bar:
        task = bar.add_task("evaluating", total=total)
        report = evaluate_folder(folder, reader, on_progress=lambda _: bar.advance(task))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(f"{report.n} receipts, {report.seconds_per_receipt:.2f} s each, CER {report.cer:.4f}")
    for name, acc in report.accuracy.items():
        console.print(f"  {name:15} {acc:6.1%}", highlight=False)
    for failure in report.failures:
        err_console.print(f"[yellow]failed[/] {escape(str(failure))}", highlight=False)


@app.command("synth")
def synth(
    folder: Path = typer.Argument(..., help="Where to write generated receipts (+ ground-truth JSON)."),
    n: int = typer.Option(40, "--n", min=1, help="How many receipts."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same receipts."),
    degraded: bool = typer.Option(
        False, "--degraded", help="Photograph-like damage (table, tilt, light, blur...)."
    ),
    rotated: bool = typer.Option(
        False, "--rotated", help="Photographs turned by any angle: sideways, upside down, beyond 15 degrees."
    ),
    held_out: bool = typer.Option(
        False,
        "--held-out",
        help="The held-out split instead (36 hand-written receipts, never tuned on; --n and --seed unused).",
    ),
) -> None:
    """Generate receipts with exact ground truth, for `roomscan receipt evaluate`."""
    if held_out:
        from roomscan.receipts.holdout import write_holdout

        condition = "rotated" if rotated else "degraded" if degraded else "clean"
        paths = write_holdout(folder, condition=condition)
    else:
        from roomscan.receipts.synth import write_receipts

        paths = write_receipts(folder, n, seed=seed, degraded=degraded, rotated=rotated)
    err_console.print(f"wrote {len(paths)} receipts to {folder}", highlight=False)
