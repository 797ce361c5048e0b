"""Content-addressed photo files: ``<root>/<sha[:2]>/<sha>``. Writes are atomic (temp file + rename).

An upload writes its file before its row commits, so a process killed in between leaves a file no row names (and
one killed mid-write a ``.incoming-*`` temp file). :func:`sweep_photo_store`, run when a server or worker starts,
removes such litter once it is older than a grace period; younger files may belong to an upload in flight.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from roomscan.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["SWEEP_GRACE", "PhotoStore", "SweepReport", "open_photo_store", "sweep_photo_store"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TEMP_PREFIX = ".incoming-"
SWEEP_GRACE = timedelta(minutes=10)
"""Litter younger than this is left alone: an upload (in this process or another) may still be writing it."""


@dataclass(frozen=True)
class SweepReport:
    """What a sweep removed: temp files of interrupted writes, photo files no row names, and their bytes."""

    temp_files: int = 0
    orphan_files: int = 0
    bytes: int = 0

    @property
    def removed(self) -> int:
        return self.temp_files + self.orphan_files

    def __str__(self) -> str:
        return (f"removed {self.temp_files} unfinished upload file(s) and {self.orphan_files} photo file(s) no "
                f"photo uses, {self.bytes / 1e6:.1f} MB")


class PhotoStore:
    """Stores photo bytes by their SHA-256; storing the same bytes twice is a no-op."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        # The hash comes from our own hashing, but check it anyway: it becomes a path.
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, sha256: str, data: bytes) -> Path:
        target = self.path(sha256)
        if target.exists() and target.stat().st_size == len(data):
            # In use again: a fresh time keeps a sweep from taking it as litter before this upload's row commits.
            target.touch()
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def delete(self, sha256: str) -> bool:
        """Remove a photo's file; False when it was not there."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def get(self, sha256: str) -> bytes:
        target = self.path(sha256)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"photo file {sha256} is missing from the store at {self.root}") from exc

    def sweep(
        self, known: Callable[[Collection[str]], Collection[str]], *, grace: timedelta = SWEEP_GRACE
    ) -> SweepReport:
        """Remove ``.incoming-*`` temp files and photo files whose hash ``known`` does not return, when older
        than ``grace``; younger ones may belong to an upload in flight.

        Args:
            known: given hashes (up to 500), returns those that have a catalog row.
            grace: how old litter must be to go.
        """
        cutoff = time.time() - grace.total_seconds()
        temp = orphans = size = 0
        if not self.root.is_dir():
            return SweepReport()
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            candidates: dict[str, Path] = {}
            for path in folder.iterdir():
                if path.name.startswith(_TEMP_PREFIX):
                    removed = _remove_if_older(path, cutoff)
                    temp += removed > 0
                    size += max(removed, 0)
                elif _SHA_RE.match(path.name) and _mtime(path) < cutoff:
                    candidates[path.name] = path
            if not candidates:
                continue
            names = sorted(candidates)
            rows = {sha for i in range(0, len(names), 500) for sha in known(names[i : i + 500])}
            for sha256 in set(candidates) - rows:
                # Checked again just before removing: an upload of these bytes may have touched it since.
                removed = _remove_if_older(candidates[sha256], cutoff)
                orphans += removed > 0
                size += max(removed, 0)
        return SweepReport(temp_files=temp, orphan_files=orphans, bytes=size)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _remove_if_older(path: Path, cutoff: float) -> int:
    """Remove ``path`` if last changed before ``cutoff``: its size in bytes, or -1 when it stays."""
    try:
        stat = path.stat()
        if stat.st_mtime >= cutoff:
            return -1
        path.unlink()
    except FileNotFoundError:
        return -1
    return stat.st_size


def sweep_photo_store(
    sessions: sessionmaker[Session], photos: PhotoStore, *, grace: timedelta = SWEEP_GRACE
) -> SweepReport:
    """Remove what interrupted uploads left in ``photos``: temp files, and photo files no ``photos`` row names,
    once older than ``grace``. Run on start-up (``roomscan serve``, ``roomscan worker``), which report it.

    Example:
        >>> report = sweep_photo_store(Session, PhotoStore(settings.photo_dir))  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        removed 1 unfinished upload file(s) and 2 photo file(s) no photo uses, 3.1 MB
    """
    from sqlalchemy import select

    from roomscan.catalog.models import Photo

    def known(hashes: Collection[str]) -> set[str]:
        with sessions() as session:
            return set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(list(hashes)))))

    return photos.sweep(known, grace=grace)


def open_photo_store(location: str | os.PathLike[str]) -> PhotoStore:
    """The photo store at ``location`` (``Settings.resolved_photo_store``): a local directory."""
    return PhotoStore(location)
