"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from roomscan.backends import Detector
from roomscan.cli._console import err_console
from roomscan.detection.image import IMAGE_SUFFIXES
from roomscan.errors import ImageError

ModelOpt = typer.Option(None, "--model", "-m", envvar="ROOMSCAN_MODEL", help="Detector: a name (owlv2), a Hugging Face id, or a local model directory (default: owlv2).")
TaxonomyOpt = typer.Option(None, "--taxonomy", envvar="ROOMSCAN_TAXONOMY", help="Amenity taxonomy YAML (default: the 30 built-in amenities).", exists=False)
DeviceOpt = typer.Option(None, "--device", envvar="ROOMSCAN_DEVICE", help="cpu, cuda or auto (default: auto).")
ImageSizeOpt = typer.Option(None, "--image-size", help="Detector input size in pixels (OWLv2: 960 native; 640 is ~2.8x faster on CPU).")
MinScoreOpt = typer.Option(None, "--min-score", min=0.0, max=1.0, help="Override every amenity's threshold with this minimum score.")
DbOpt = typer.Option(None, "--db", envvar="ROOMSCAN_DATABASE_URL", help="Catalog database URL (default: an SQLite file in $ROOMSCAN_HOME).")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
RecursiveOpt = typer.Option(False, "--recursive", "-r", help="Also take photos from sub-folders of a directory.")


def expand_inputs(paths: list[Path], *, recursive: bool = False) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to process (directories expanded to their images, sorted) and inputs that cannot be used.

    What a directory holds besides photos is not lost silently: other files and (without ``recursive``)
    sub-folders come back as one note per directory, for the caller to print.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            entries = sorted(path.rglob("*") if recursive else path.iterdir())
            found = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            others = [p for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES]
            folders = [] if recursive else [p for p in entries if p.is_dir()]
            if not found:
                problems.append((path, "directory has no image files (.jpg, .png, .webp...)"
                                 + ("; it has sub-folders: add --recursive" if folders else "")))
            files.extend(found)
            if others:
                kinds = ", ".join(sorted({p.suffix.lower() or "(no extension)" for p in others}))
                note_skipped(path, f"{len(others)} file(s) that are not photos ({kinds})")
            if folders and found:
                note_skipped(path, f"{len(folders)} sub-folder(s); add --recursive to include them")
        elif path.exists():
            files.append(path)
        else:
            problems.append((path, "no such file or directory"))
    return files, problems


def note_skipped(path: Path, what: str) -> None:
    err_console.print(f"[dim]skipped in {escape(str(path))}: {escape(what)}[/]", highlight=False, soft_wrap=True)


def load_detector(
    model: str | None,
    taxonomy: Path | None,
    device: str | None,
    image_size: int | None = None,
    min_score: float | None = None,
) -> Detector:
    """Load the detector the options (else the environment) name, with a spinner (``services.load_detector``);
    ``ModelUnavailableError`` propagates to ``main`` (clear message)."""
    from roomscan.backends import resolve_model
    from roomscan.services import load_detector as load
    from roomscan.settings import Settings

    # taxonomy None lets the backend decide (a fine-tuned model directory brings its own taxonomy.yaml).
    settings = Settings.from_env(model=model, taxonomy=str(taxonomy) if taxonomy is not None else None, device=device)
    kwargs: dict[str, Any] = {}
    if image_size is not None:
        kwargs["image_size"] = image_size
    if min_score is not None:
        kwargs["score_threshold"] = min_score
    # Fetch the weights first, outside the spinner, so a first run's download shows its own progress bars.
    resolved = resolve_model(settings.model)
    with err_console.status(f"Loading model {settings.model}…"):
        return load(settings, resolved=resolved, **kwargs)


def report_bad(path: Path | str, exc: Exception) -> None:
    prefix = "" if isinstance(exc, ImageError) and str(path) in str(exc) else f"{path}: "
    err_console.print(f"[yellow]skipped[/] {escape(prefix + str(exc))}", highlight=False, soft_wrap=True)
