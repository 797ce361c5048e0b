"""Import listings with their photos from a Parquet or CSV file, on Ray Data.

Columns: ``id`` (the listing's id where it comes from, kept as ``listings.external_id``), ``title``, and optionally
``amenities`` (claimed amenities: a list column in Parquet, ``;``-separated in CSV), ``photos`` (the same
shapes: local paths relative to ``photo_root``, or ``http(s)://`` / ``s3://`` URLs read through fsspec) and
``bedrooms`` (the declared bedroom count, 0-100; empty: none declared).

The file is read with Ray Data; the driver makes (or finds) the listings; Ray tasks fetch, decode and validate the
photos in parallel (``load_image`` with the settings' ``max_pixels``: bombs and corrupt files are refused one by
one); the driver attaches them with ``store.add_photo`` (which stores the bytes and queues detection), one
transaction per batch.

Idempotent and resumable: a listing is found again by its ``id``, and a photo source already attached to it (its
``listing_photos.filename``) is not fetched again, so a re-run after a crash only does what is missing. A bad row
(no title, an unknown amenity) or a bad photo is reported and skipped; the rest is imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import select

from roomscan.bulk._ray import quiet_ray_data, ray_session
from roomscan.catalog import store
from roomscan.catalog.insights import PhotoAnalysis
from roomscan.catalog.models import Listing, ListingPhoto
from roomscan.errors import ListingError, RoomscanError
from roomscan.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from roomscan.detection.image import LoadedImage
    from roomscan.taxonomy import Taxonomy

__all__ = ["COLUMNS", "ImportStats", "import_listings"]

COLUMNS = ("id", "title", "amenities", "photos", "bedrooms")
REQUIRED = ("id", "title")
_FILENAME_MAX = 255  # listing_photos.filename


@dataclass
class ImportStats:
    rows: int = 0
    listings_created: int = 0
    listings_found: int = 0
    """Listings of an earlier import (the same ``id``): kept as they are, their missing photos added."""
    photos_added: int = 0
    photos_present: int = 0
    """Photos already attached by an earlier import (not fetched again)."""
    photos_failed: int = 0
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)
    """One line per bad row or photo, naming the row, the column or the photo."""
    seconds: float = 0.0


@dataclass(frozen=True)
class _Row:
    where: str
    """How messages name the row: ``line 3`` of a CSV file (the header is line 1), ``row 2`` of a Parquet file."""
    external_id: str
    title: str
    amenities: tuple[str, ...]
    photos: tuple[str, ...]
    bedrooms: int | None = None


@dataclass(frozen=True)
class _CheckedPhoto:
    """What ``store.add_photo`` reads of a ``LoadedImage``: decoded and checked in a Ray task, pixels left there."""

    sha256: str
    format: str
    width: int
    height: int
    data: bytes
    name: str
    analysis: str
    """``PhotoAnalysis.to_json()`` from the task that decoded it, or "" when the analysis failed."""


# -- reading the file --------------------------------------------------------------------------------------------
def read_listings(path: Path) -> Any:
    """The file as a Ray Dataset, its columns checked. Raises RoomscanError naming the file and the column."""
    import pyarrow as pa
    import ray.data

    suffix = _check_path(path)
    if suffix == ".parquet":
        read = lambda: ray.data.read_parquet(str(path))
    elif suffix == ".csv":
        from pyarrow import csv

        types = {name: pa.string() for name in COLUMNS}
        read = lambda: ray.data.read_csv(
            str(path), convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True)
        )
    try:
        dataset = read()
        names = list(dataset.schema().names)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise RoomscanError(f"{path}: cannot be read as {suffix[1:]}: {first[-1] if first else exc}") from exc
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise RoomscanError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                            f"{', '.join(COLUMNS)} (id and title required)")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise RoomscanError(f"{path}: no {' or '.join(map(repr, missing))} column; the columns are "
                            f"{', '.join(COLUMNS)} (id and title required)")
    return dataset


def _check_path(path: Path) -> str:
    """The file's suffix, once it is known to exist and be Parquet or CSV (checked before Ray starts)."""
    if not path.is_file():
        raise RoomscanError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise RoomscanError(f"{path}: not a listings file roomscan reads; use .parquet or .csv")
    return suffix


def _items(value: Any, column: str, where: str) -> tuple[str, ...]:
    """A list cell (Parquet) or a ``;``-separated string (CSV) as clean strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts: list[Any] = value.split(";")
    elif isinstance(value, (list, tuple, np.ndarray)):
        parts = list(value)
    else:
        raise RoomscanError(f"{where}, column {column}: expected a list or a ';'-separated string, "
                            f"got {type(value).__name__} {value!r}")
    if not all(isinstance(p, str) or p is None for p in parts):
        raise RoomscanError(f"{where}, column {column}: expected text items, got {parts!r}")
    return tuple(p.strip() for p in parts if p and p.strip())


def _row(where: str, record: dict[str, Any]) -> _Row:
    raw_id = record.get("id")
    if raw_id is None or (isinstance(raw_id, float) and np.isnan(raw_id)) or not str(raw_id).strip():
        raise RoomscanError(f"{where}, column id: empty; every listing needs its id")
    where = f"{where} (id {str(raw_id).strip()})"
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        raise RoomscanError(f"{where}, column title: empty; every listing needs a title")
    return _Row(where, str(raw_id).strip()[:200], title.strip(),
                _items(record.get("amenities"), "amenities", where), _items(record.get("photos"), "photos", where),
                _bedrooms(record.get("bedrooms"), where))


def _bedrooms(value: Any, where: str) -> int | None:
    """A bedrooms cell: text in CSV, an integer (or a float, where the column has gaps) in Parquet; empty is none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    count: Any = value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            count = int(value.strip())
        except ValueError:
            count = value
    elif isinstance(value, np.integer) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        count = int(value)
    try:
        return store.check_bedrooms(count)
    except ListingError as exc:
        raise RoomscanError(f"{where}, column bedrooms: {exc}") from exc


# -- fetching photos (Ray tasks) ---------------------------------------------------------------------------------
def _read_source(source: str, photo_root: str) -> bytes | str:
    """The bytes of a photo source: a URL through fsspec, else a path under ``photo_root`` (returned as a path
    for ``load_image``, which names a missing file clearly)."""
    if "://" in source:
        import fsspec

        try:
            with fsspec.open(source, "rb") as f:
                return cast(bytes, f.read())
        except FileNotFoundError as exc:
            raise RoomscanError(f"{source}: not found") from exc
        except Exception as exc:  # network, permissions, unknown protocol: this photo only
            raise RoomscanError(f"{source}: cannot be fetched ({type(exc).__name__}: {exc})") from exc
    return str(Path(photo_root) / source)


def _fetch(batch: dict[str, np.ndarray], photo_root: str, max_pixels: int) -> dict[str, np.ndarray]:
    from roomscan.catalog.insights import analyse_image
    from roomscan.detection.image import load_image

    keys = ("sha256", "format", "width", "height", "data", "analysis", "error")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for source in batch["source"]:
        try:
            loaded = load_image(_read_source(str(source), photo_root), name=str(source), max_pixels=max_pixels)
        except RoomscanError as exc:
            values: tuple[Any, ...] = ("", "", 0, 0, b"", "", str(exc))
        else:
            # Quality and perceptual hashes here, where the pixels are (store.add_photo stores them).
            analysis = analyse_image(loaded.image, name=str(source))
            values = (loaded.sha256, loaded.format, loaded.width, loaded.height, loaded.data,
                      analysis.to_json() if analysis is not None else "", "")
        for key, value in zip(out, values, strict=True):
            out[key].append(value)
    result = {k: np.asarray(v, dtype=object) for k, v in out.items()}
    result.update({k: batch[k] for k in ("listing_id", "where", "source")})
    return result


# -- the run -----------------------------------------------------------------------------------------------------
def import_listings(
    settings: Settings,
    path: str | Path,
    *,
    photo_root: str | Path | None = None,
    ray_address: str | None = None,
    taxonomy: Taxonomy | None = None,
    model_id: int | None = None,
    batch_size: int = 16,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Import the listings of a Parquet or CSV file with their photos; see the module docstring.

    Args:
        settings: the catalog, the photo store and ``max_pixels``.
        path: the ``.parquet`` or ``.csv`` file.
        photo_root: where relative photo paths start (default: the file's folder).
        ray_address: a Ray cluster; a local Ray when None.
        taxonomy, model_id: resolve claimed amenities, and the model whose detection each photo is queued for
            (``Services.use``); default: the model ``settings`` name, loaded once here.
        batch_size: photos per fetch task and per catalog transaction.
        on_start: called with the number of photos to fetch; ``on_progress`` after each batch attached.

    Raises:
        RoomscanError: a missing file, a file that is not Parquet or CSV, unknown or missing columns.
        ModelUnavailableError: no ``model_id`` given and the model's weights are not here.
    """
    from roomscan.services import Services, load_detector

    path = Path(path)
    root = str(Path(photo_root) if photo_root is not None else path.parent)
    _check_path(path)
    stats = ImportStats()
    started = time.monotonic()
    with ray_session(ray_address):
        quiet_ray_data()
        dataset = read_listings(path)
        services = Services.open(settings)
        try:
            if taxonomy is None or model_id is None:
                detector = load_detector(settings)
                taxonomy = detector.taxonomy
                with services.sessions() as session, session.begin():
                    model_id = store.ensure_model(session, detector.info).id
                del detector
            rows = _rows(dataset, path, stats)
            tasks = _make_listings(services.sessions, rows, taxonomy, stats)
            if on_start:
                on_start(len(tasks))
            if tasks:
                _attach_photos(services, tasks, root, taxonomy, model_id, batch_size, stats, on_progress)
        finally:
            services.close()
    stats.seconds = time.monotonic() - started
    return stats


def _rows(dataset: Any, path: Path, stats: ImportStats) -> list[_Row]:
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True  # row numbers in messages
    csv = path.suffix.lower() == ".csv"
    rows, seen = [], set()
    for number, record in enumerate(dataset.iter_rows()):
        stats.rows += 1
        where = f"line {number + 2}" if csv else f"row {number + 1}"
        try:
            row = _row(where, record)
            if row.external_id in seen:
                raise RoomscanError(f"{where}, column id: {row.external_id!r} appears twice; the first is imported")
        except RoomscanError as exc:
            stats.bad_rows += 1
            stats.problems.append(str(exc))
            continue
        seen.add(row.external_id)
        rows.append(row)
    return rows


def _make_listings(sessions: sessionmaker[Session], rows: list[_Row], taxonomy: Taxonomy,
                   stats: ImportStats, chunk: int = 200) -> list[dict[str, Any]]:
    """Create the listings not yet imported (found by external id); return the photos still to attach."""
    from roomscan.errors import TaxonomyError

    tasks: list[dict[str, Any]] = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        with sessions() as session, session.begin():
            found = {l.external_id: l for l in session.scalars(
                select(Listing).where(Listing.external_id.in_([r.external_id for r in part])))}
            attached = {(lid, name) for lid, name in session.execute(
                select(ListingPhoto.listing_id, ListingPhoto.filename)
                .where(ListingPhoto.listing_id.in_([l.id for l in found.values()])))}
            for row in part:
                listing = found.get(row.external_id)
                if listing is None:
                    try:
                        with session.begin_nested():
                            listing = store.create_listing(session, row.title, row.amenities, taxonomy=taxonomy,
                                                           bedrooms=row.bedrooms)
                            listing.external_id = row.external_id
                            session.flush()
                    except (TaxonomyError, ValueError) as exc:
                        stats.bad_rows += 1
                        stats.problems.append(f"{row.where}, column amenities: {exc}")
                        continue
                    stats.listings_created += 1
                else:
                    stats.listings_found += 1
                for source in row.photos:
                    if (listing.id, source[:_FILENAME_MAX]) in attached:
                        stats.photos_present += 1
                    else:
                        tasks.append({"listing_id": listing.id, "where": row.where, "source": source})
    return tasks


def _attach_photos(services: Any, tasks: list[dict[str, Any]], root: str, taxonomy: Taxonomy, model_id: int,
                   batch_size: int, stats: ImportStats, on_progress: Callable[[ImportStats], None] | None) -> None:
    import ray.data

    blocks = max(1, min(len(tasks) // batch_size, 200))
    fetched = ray.data.from_items(tasks, override_num_blocks=blocks).map_batches(
        _fetch,  # type: ignore[arg-type]  # extra positional args come from fn_args
        fn_args=(root, services.settings.max_pixels), batch_size=batch_size, batch_format="numpy",
        num_cpus=1,
    )
    for batch in fetched.iter_batches(batch_size=batch_size, batch_format="numpy"):
        with services.sessions() as session, session.begin():
            for i in range(len(batch["source"])):
                source, error = str(batch["source"][i]), str(batch["error"][i])
                if error:
                    stats.photos_failed += 1
                    where = str(batch["where"][i])
                    stats.problems.append(f"{where}, photo {source}: {error}" if source not in error
                                          else f"{where}, column photos: {error}")
                    continue
                listing = session.get(Listing, int(batch["listing_id"][i]))
                if listing is None:  # deleted meanwhile
                    continue
                photo = _CheckedPhoto(str(batch["sha256"][i]), str(batch["format"][i]), int(batch["width"][i]),
                                      int(batch["height"][i]), bytes(batch["data"][i]), source,
                                      str(batch["analysis"][i]))
                analysis = PhotoAnalysis.from_json(photo.analysis) if photo.analysis else None
                added = store.add_photo(session, services.photos, listing, cast("LoadedImage", photo),
                                        model_id=model_id, taxonomy=taxonomy, filename=source[:_FILENAME_MAX],
                                        analysis=analysis, analyse=False)
                if added.newly_attached:
                    stats.photos_added += 1
                else:
                    stats.photos_present += 1
        if on_progress:
            on_progress(stats)
