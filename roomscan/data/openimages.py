"""Build a roomscan dataset from Open Images V7: the taxonomy's classes, up to N images per class.

Steps: fetch (or take local) annotation CSVs -> stream the rows of the taxonomy's MIDs -> pick images per class,
rarest class first, deterministically -> download images with a thread pool -> verify each with ``load_image``
-> write roomscan's format (``DetectionDataset.save``).

A run resumes: each image is written to ``<id>.jpg.part`` and renamed once verified; ``manifest.json`` records
done and failed images, and done files that are still present are never fetched again (failed ones are retried).

Sources (override with ``base_url``/``images_url`` or ``ROOMSCAN_OPENIMAGES_URL``/``ROOMSCAN_OPENIMAGES_IMAGES_URL``,
e.g. for a mirror)::

    {base_url}/v6/oidv6-train-annotations-bbox.csv          (~2.3 GB)
    {base_url}/v5/validation-annotations-bbox.csv, v5/test-annotations-bbox.csv
    {base_url}/v7/oidv7-class-descriptions-boxable.csv
    {images_url}/{split}/{ImageID}.jpg                       (the CVDF bucket on S3)

Example:
    >>> result = prepare_openimages("data/oi-val", split="validation", max_per_class=50)  # doctest: +SKIP
    >>> result.done, result.failed
    (1312, 4)
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from roomscan.data.dataset import IMAGES_DIR, DetectionDataset, ImageRecord, write_json_atomic
from roomscan.data.formats import Box, build_dataset
from roomscan.data.formats.openimages import iter_boxes, read_class_descriptions
from roomscan.detection.core import labels_of
from roomscan.errors import ImageError, RoomscanError
from roomscan.taxonomy import Taxonomy, load_taxonomy

BASE_URL = "https://storage.googleapis.com/openimages"
IMAGES_URL = "https://open-images-dataset.s3.amazonaws.com"
ANNOTATION_PATHS = {
    "train": "v6/oidv6-train-annotations-bbox.csv",
    "validation": "v5/validation-annotations-bbox.csv",
    "test": "v5/test-annotations-bbox.csv",
}
CLASSES_PATH = "v7/oidv7-class-descriptions-boxable.csv"
MANIFEST = "manifest.json"
ATTRIBUTION = "attribution.csv"
_ATTRIBUTION_COLUMNS = ("ImageID", "OriginalURL", "OriginalLandingURL", "License", "Author", "Title")
SPLITS = tuple(ANNOTATION_PATHS)

__all__ = ["DownloadError", "OpenImagesResult", "prepare_openimages", "select_images"]


class DownloadError(RoomscanError):
    """Open Images files could not be fetched; the message says which and how to proceed."""


@dataclass(frozen=True)
class OpenImagesResult:
    """What a run produced: the dataset directory, images done/failed/skipped (already present), per-class counts."""

    path: Path
    selected: int
    done: int
    failed: int
    skipped: int
    per_class: dict[str, int]
    failures: dict[str, str]


def _offline_hint(what: str, url: str, reason: object) -> DownloadError:
    return DownloadError(
        f"could not fetch {what} from {url} ({reason}). Run on a connected machine, or download the Open Images "
        "CSVs elsewhere and pass them with --annotations FILE --classes FILE (and set ROOMSCAN_OPENIMAGES_URL / "
        "ROOMSCAN_OPENIMAGES_IMAGES_URL to a reachable mirror for the images)"
    )


def _fetch_file(
    url: str, dest: Path, what: str, *, timeout: float, on_bytes: Callable[[int, int | None], None] | None = None
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, renamed when complete; an existing ``dest`` is reused.

    An interrupted download resumes from the ``.part`` file's length when the server honours ``Range`` (Google
    storage does); otherwise it starts over.
    """
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resumed = have > 0 and resp.status == 206
            length = resp.headers.get("Content-Length")
            total = (int(length) + (have if resumed else 0)) if length and length.isdigit() else None
            done = have if resumed else 0
            with part.open("ab" if resumed else "wb") as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    done += len(chunk)
                    if on_bytes is not None:
                        on_bytes(done, total)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file (a crash just before the rename)
            os.replace(part, dest)
            return dest
        raise _offline_hint(what, url, getattr(exc, "reason", exc)) from exc
    except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # HTTPException covers IncompleteRead: the connection dropped mid-file; the .part is kept for a resume.
        raise _offline_hint(what, url, getattr(exc, "reason", exc)) from exc
    if total is not None and done != total:
        raise DownloadError(f"{url}: the download stopped at {done} of {total} bytes; run the command again to resume")
    os.replace(part, dest)
    return dest


def select_images(
    boxes_by_image: dict[str, list[tuple[str, tuple[float, float, float, float], int]]],
    slugs: list[str],
    max_per_class: int,
    seed: int = 0,
) -> list[str]:
    """Pick up to ``max_per_class`` images for each class, rarest class first; returns sorted image ids.

    An image picked for one class counts for every class it shows, so a class already covered by earlier picks
    takes fewer (or none); each class thus gets ``min(max_per_class, available)`` images or more through
    co-occurrence, and the total is at most ``max_per_class * len(slugs)``. Candidates are ordered by a seeded
    hash, so the choice is reproducible and not biased by ImageID order.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for image_id, items in boxes_by_image.items():
        for slug in {s for s, _, _ in items}:
            by_class[slug].append(image_id)
    chosen: set[str] = set()
    count: dict[str, int] = defaultdict(int)
    for slug in sorted(slugs, key=lambda s: (len(by_class[s]), s)):
        candidates = sorted(by_class[slug], key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
        for image_id in candidates:
            if count[slug] >= max_per_class:
                break
            if image_id in chosen:
                continue
            chosen.add(image_id)
            for s in {s for s, _, _ in boxes_by_image[image_id]}:
                count[s] += 1
    return sorted(chosen)


class _Manifest:
    """``manifest.json``: ``{image_id: {"status": "done"|"failed", ...}}``, saved atomically and thread-safely."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.entries: dict[str, dict[str, object]] = {}
        if path.is_file():
            try:
                self.entries = dict(json.loads(path.read_text()).get("images", {}))
            except (ValueError, AttributeError):
                self.entries = {}  # a torn manifest: files on disk are re-verified instead
        self._last = 0.0

    def set(self, image_id: str, entry: dict[str, object]) -> None:
        with self.lock:
            self.entries[image_id] = entry
            if time.monotonic() - self._last > 2.0:
                self.save_locked()

    def save(self) -> None:
        with self.lock:
            self.save_locked()

    def save_locked(self) -> None:
        write_json_atomic(self.path, {"version": 1, "images": self.entries})
        self._last = time.monotonic()


def _download_image(url: str, dest: Path, *, timeout: float, max_pixels: int) -> dict[str, object]:
    from roomscan.detection.image import load_image

    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except urllib.error.HTTPError as exc:
        return {"status": "failed", "error": f"HTTP {exc.code} from {url}"}
    except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # HTTPException covers IncompleteRead (a connection dropped mid-image): recorded, retried next run.
        return {"status": "failed", "error": f"could not fetch {url} ({getattr(exc, 'reason', exc)!r})", "network": True}
    part.write_bytes(data)
    try:
        photo = load_image(part, name=url, max_pixels=max_pixels)
    except ImageError as exc:
        part.unlink(missing_ok=True)
        return {"status": "failed", "error": str(exc)}
    os.replace(part, dest)
    return {"status": "done", "sha256": photo.sha256, "width": photo.width, "height": photo.height}


def _verify_existing(dest: Path, entry: dict[str, object] | None, max_pixels: int) -> dict[str, object] | None:
    """A done entry for a file already on disk, or None when it must be (re)downloaded."""
    from roomscan.detection.image import load_image

    if not dest.is_file():
        return None
    if entry and entry.get("status") == "done" and entry.get("width") and entry.get("size") == dest.stat().st_size:
        return entry
    try:
        photo = load_image(dest, max_pixels=max_pixels)
    except ImageError:
        dest.unlink(missing_ok=True)
        return None
    return {"status": "done", "sha256": photo.sha256, "width": photo.width, "height": photo.height}


def _write_attribution(images_csv: Path, keep: set[str], dest: Path) -> None:
    """Copy the licence/author columns of the kept images from the official image list (streamed)."""
    import csv

    from roomscan.data.formats import fail

    try:
        with images_csv.open(newline="", encoding="utf-8") as src, dest.open("w", newline="", encoding="utf-8") as out:
            reader = csv.DictReader(src)
            if not reader.fieldnames or "ImageID" not in reader.fieldnames:
                raise fail(images_csv, "line 1", "no ImageID column; expected the Open Images image list")
            writer = csv.writer(out)
            writer.writerow(_ATTRIBUTION_COLUMNS)
            for row in reader:
                if row.get("ImageID") in keep:
                    writer.writerow([row.get(c) or "" for c in _ATTRIBUTION_COLUMNS])
    except FileNotFoundError as exc:
        raise RoomscanError(f"{images_csv}: file not found") from exc


def prepare_openimages(
    out: str | os.PathLike[str],
    *,
    split: str = "validation",
    max_per_class: int = 100,
    taxonomy: str | os.PathLike[str] | Taxonomy | None = None,
    annotations: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    images_csv: str | os.PathLike[str] | None = None,
    workers: int = 8,
    base_url: str | None = None,
    images_url: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    max_pixels: int = 50_000_000,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> OpenImagesResult:
    """Download an Open Images subset for the taxonomy's classes into a roomscan dataset at ``out``.

    Args:
        out: the dataset directory (created; rerun with the same arguments to resume).
        split: ``train``, ``validation`` or ``test``.
        max_per_class: images to pick per class (see :func:`select_images`).
        taxonomy: amenities with Open Images MIDs (default: the 30 built-in amenities).
        annotations, classes: local copies of the box CSV and class descriptions (no annotation download then).
        images_csv: the split's image list (``*-images-with-rotation.csv``: ImageID, OriginalURL, License,
            Author...); when given, ``attribution.csv`` records the licence and author of every image kept.
        workers: parallel image downloads.
        base_url, images_url: where the CSVs and images live (default Google storage and the CVDF S3 bucket).
        cache_dir: where downloaded CSVs are kept (default ``out/.cache``).
        timeout: seconds per request.
        on_progress: ``on_progress(stage, done, total)``: stage ``annotations`` counts bytes of the CSV download
            (total 0 when unknown), stage ``images`` counts images.

    Raises:
        DownloadError: a CSV could not be fetched, or no image could be (offline); the message says what to do.
        DatasetError: a malformed CSV (file and line named).
    """
    if split not in SPLITS:
        raise RoomscanError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if max_per_class < 1:
        raise RoomscanError(f"--max-per-class must be at least 1, got {max_per_class}")
    tax = load_taxonomy(taxonomy)
    mids = {a.mid: a.slug for a in tax if a.mid}
    if not mids:
        raise RoomscanError(f"{tax.source}: no amenity has an Open Images id ('mid'); nothing to select")
    base = (base_url or os.environ.get("ROOMSCAN_OPENIMAGES_URL") or BASE_URL).rstrip("/")
    img_base = (images_url or os.environ.get("ROOMSCAN_OPENIMAGES_IMAGES_URL") or IMAGES_URL).rstrip("/")
    root = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else root / ".cache"
    images_dir = root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)

    if annotations is None:
        url = f"{base}/{ANNOTATION_PATHS[split]}"
        annotations = _fetch_file(
            url, cache / Path(url).name, f"the {split} box annotations", timeout=timeout,
            on_bytes=(lambda done, total: on_progress("annotations", done, total or 0)) if on_progress else None,
        )
        if classes is None:
            url = f"{base}/{CLASSES_PATH}"
            classes = _fetch_file(url, cache / Path(url).name, "the class descriptions", timeout=timeout)
    if classes is not None:
        known = read_class_descriptions(classes)
        unknown = sorted(m for m in mids if m not in known)
        if unknown:
            raise RoomscanError(f"{classes}: these taxonomy MIDs are not Open Images boxable classes: {', '.join(unknown)}")

    boxes_by_image: dict[str, list[tuple[str, tuple[float, float, float, float], int]]] = defaultdict(list)
    for image_id, mid, box, group in iter_boxes(annotations, keep=mids.__contains__):
        boxes_by_image[image_id].append((mids[mid], box, group))
    selected = select_images(boxes_by_image, [mids[m] for m in mids], max_per_class, seed)

    manifest = _Manifest(root / MANIFEST)
    todo, skipped = [], 0
    for image_id in selected:
        entry = _verify_existing(images_dir / f"{image_id}.jpg", manifest.entries.get(image_id), max_pixels)
        if entry is not None:
            manifest.entries[image_id] = {**entry, "size": (images_dir / f"{image_id}.jpg").stat().st_size}
            skipped += 1
        else:
            todo.append(image_id)
    total, done_n = len(selected), skipped
    network_failures = 0
    if on_progress:
        on_progress("images", done_n, total)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {
                pool.submit(_download_image, f"{img_base}/{split}/{i}.jpg", images_dir / f"{i}.jpg",
                            timeout=timeout, max_pixels=max_pixels): i
                for i in todo
            }
            try:
                for fut in as_completed(futures):
                    image_id = futures[fut]
                    entry = fut.result()
                    network_failures += bool(entry.pop("network", False))
                    if entry["status"] == "done":
                        entry["size"] = (images_dir / f"{image_id}.jpg").stat().st_size
                    manifest.set(image_id, entry)
                    done_n += 1
                    if on_progress:
                        on_progress("images", done_n, total)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        manifest.save()
    if todo and network_failures == len(todo) and skipped == 0:
        raise _offline_hint(f"any of {len(todo)} images", f"{img_base}/{split}/", "no connection")

    ok = [i for i in selected if manifest.entries.get(i, {}).get("status") == "done"]
    records, boxes = [], {}
    for n, image_id in enumerate(ok, start=1):
        entry = manifest.entries[image_id]
        w, h = int(entry["width"]), int(entry["height"])  # type: ignore[call-overload]
        records.append(ImageRecord(n, f"{image_id}.jpg", w, h))
        boxes[n] = [Box((x1 * w, y1 * h, x2 * w, y2 * h), slug, iscrowd=group)
                    for slug, (x1, y1, x2, y2), group in boxes_by_image[image_id]]
    dataset: DetectionDataset = build_dataset(images_dir, tax, records, boxes)
    dataset.save(root)
    if images_csv is not None:
        _write_attribution(Path(images_csv), set(ok), root / ATTRIBUTION)
    per_class: dict[str, int] = defaultdict(int)
    for _, dets in dataset:
        for slug in set(labels_of(dets)):
            per_class[slug] += 1
    failures = {i: str(e.get("error")) for i, e in manifest.entries.items() if i in set(selected) and e.get("status") == "failed"}
    return OpenImagesResult(root, len(selected), len(ok), len(failures), skipped, dict(per_class), failures)
