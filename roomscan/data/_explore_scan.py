"""The data report's one pass over the image files, resumable: per-image facts are appended to a cache as read.

A cache line is keyed by the image's file name, size and mtime; a file that changed is read again, a line cut
short by a crash is ignored (that image is read again), and a missing file is always checked again (cheap).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from roomscan.data import _dedup
from roomscan.data.dataset import DetectionDataset, ImageRecord
from roomscan.errors import ImageError

__all__ = ["CACHE_FILE", "ImageFacts", "ProgressFn", "read_all"]

CACHE_FILE = ".explore-cache.jsonl"
_CACHE_VERSION = 1

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances ("Reading images", "Drawing samples", ...)."""


@dataclass(frozen=True)
class ImageFacts:
    """What one read of an image file tells us (cached per file name, size and mtime)."""

    sha256: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    kind: str | None = None  # set when unreadable
    error: str | None = None


def _read_one(path: Path, name: str) -> ImageFacts:
    from roomscan.detection.image import load_image

    try:
        photo = load_image(path, name=name)
    except ImageError as exc:
        if not path.exists():
            kind = "missing"
        elif path.is_file() and path.stat().st_size == 0:
            kind = "empty"
        else:
            kind = _kind(str(exc))
        return ImageFacts(kind=kind, error=str(exc))
    return ImageFacts(photo.sha256, _dedup.phash(photo.image), photo.width, photo.height)


def _kind(message: str) -> str:
    text = message.lower()
    for needle, kind in (
        ("truncated", "truncated"),
        ("megapixels", "too large"),
        ("not an image", "not an image"),
    ):
        if needle in text:
            return kind
    return "corrupt"


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _load_cache(path: Path) -> dict[str, dict[str, Any]]:
    cache: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return cache
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that image is simply read again
        if isinstance(row, dict) and row.get("v") == _CACHE_VERSION and isinstance(row.get("file"), str):
            cache[row["file"]] = row
    return cache


def read_all(
    ds: DetectionDataset, cache_path: Path, workers: int, progress: ProgressFn | None
) -> dict[int, ImageFacts]:
    from concurrent.futures import ThreadPoolExecutor

    cache = _load_cache(cache_path)
    facts: dict[int, ImageFacts] = {}
    todo: list[ImageRecord] = []
    stamps = {im.id: _stamp(ds.path(im)) for im in ds.images}
    for im in ds.images:
        row = cache.get(im.file_name)
        if row is not None and stamps[im.id] is not None and row.get("stamp") == stamps[im.id]:
            facts[im.id] = ImageFacts(**row["facts"])
        else:
            todo.append(im)
    total, done = len(ds.images), len(facts)
    if progress:
        progress("Reading images", done, total)
    with cache_path.open("a", encoding="utf-8") as log, ThreadPoolExecutor(max(1, workers)) as pool:
        for im, fact in zip(todo, pool.map(lambda r: _read_one(ds.path(r), r.file_name), todo)):
            facts[im.id] = fact
            if stamps[im.id] is not None:  # a missing file is cheap to check again
                log.write(
                    json.dumps(
                        {
                            "v": _CACHE_VERSION,
                            "file": im.file_name,
                            "stamp": stamps[im.id],
                            "facts": asdict(fact),
                        }
                    )
                    + "\n"
                )
                log.flush()
            done += 1
            if progress:
                progress("Reading images", done, total)
    return facts
