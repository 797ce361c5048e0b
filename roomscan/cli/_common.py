"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from roomscan.backends._base import Detector
from roomscan.cli._console import err_console
from roomscan.detection.image import IMAGE_SUFFIXES
from roomscan.errors import ImageError, RoomscanError

ModelOpt = typer.Option(None, "--model", "-m", help="Detector: a name (owlv2), a Hugging Face id, or a local model directory. Default: $ROOMSCAN_MODEL or owlv2.")
TaxonomyOpt = typer.Option(None, "--taxonomy", help="Amenity taxonomy YAML (default: the 30 built-in amenities).", exists=False)
DeviceOpt = typer.Option(None, "--device", envvar="ROOMSCAN_DEVICE", help="cpu, cuda or auto (default: auto).")
ImageSizeOpt = typer.Option(None, "--image-size", help="Detector input size in pixels (OWLv2: 960 native; 640 is ~2.8x faster on CPU).")
MinScoreOpt = typer.Option(None, "--min-score", min=0.0, max=1.0, help="Override every amenity's threshold with this minimum score.")
DbOpt = typer.Option(None, "--db", help="Catalog database URL (default: $ROOMSCAN_DATABASE_URL or an SQLite file in $ROOMSCAN_HOME).")


def expand_inputs(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to process (directories expanded to their images, sorted) and inputs that cannot be used."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((path, "directory has no image files (.jpg, .png, .webp...)"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append((path, "no such file or directory"))
    return files, problems


def load_detector(
    model: str | None,
    taxonomy: Path | None,
    device: str | None,
    image_size: int | None = None,
    min_score: float | None = None,
) -> Detector:
    """Load the detector with a spinner; ``ModelUnavailableError`` propagates to ``main`` (clear message)."""
    from roomscan.backends import get_detector
    from roomscan.settings import Settings

    settings = Settings.from_env()
    spec = model or settings.model
    # A path, or None: then the backend decides (a fine-tuned model directory brings its own taxonomy.yaml).
    tax = taxonomy if taxonomy is not None else settings.taxonomy
    kwargs: dict[str, Any] = {}
    if image_size is not None:
        kwargs["image_size"] = image_size
    if min_score is not None:
        kwargs["score_threshold"] = min_score
    from roomscan.backends._hub import resolve_model

    # Fetch the weights first, outside the spinner, so a first run's download shows its own progress bars.
    resolved = resolve_model(spec)
    with err_console.status(f"Loading model {spec}…"):
        try:
            return get_detector(resolved, taxonomy=tax, device=device or settings.device, **kwargs)
        except ValueError as exc:  # e.g. --device cuda on a machine without a GPU, a bad --image-size
            if isinstance(exc, RoomscanError):
                raise
            raise RoomscanError(str(exc)) from exc


def report_bad(path: Path | str, exc: Exception) -> None:
    prefix = "" if isinstance(exc, ImageError) and str(path) in str(exc) else f"{path}: "
    err_console.print(f"[yellow]skipped[/] {escape(prefix + str(exc))}", highlight=False, soft_wrap=True)
