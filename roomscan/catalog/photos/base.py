"""The photo store's behaviour, whatever holds the bytes: keys, idempotent puts, the sweep (``PhotoStore``)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

from roomscan.errors import NotFoundError

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TEMP_PREFIX = ".incoming-"
_KNOWN_BATCH = 500
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


@dataclass(frozen=True)
class _Entry:
    """One file under a store's root, as a sweep lists it: ``key`` is ``<folder>/<name>``."""

    key: str
    mtime: float

    @property
    def folder(self) -> str:
        return self.key.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]


def _key(sha256: str) -> str:
    # The hash comes from our own hashing, but check it anyway: it becomes a path or an object key.
    if not _SHA_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


class PhotoStore:
    """Stores photo bytes by their SHA-256; storing the same bytes twice is a no-op.

    The base class owns the behaviour (idempotent puts, the sweep); a backend owns a few primitives on keys
    ``<sha[:2]>/<sha>``. ``PhotoStore(directory)`` opens a local directory, as :class:`pathlib.Path` gives a
    ``PosixPath``; for a location that may be a URL use :func:`open_photo_store`.

    Example:
        >>> photos = open_photo_store("s3://listing-photos/roomscan")  # doctest: +SKIP
        >>> photos.put(sha, data)  # doctest: +SKIP
        >>> photos.get(sha) == data  # doctest: +SKIP
        True
    """

    location: str
    """Where the photos are (a directory or a URL), for log lines."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # A subclass of Self when cls is PhotoStore itself, which mypy cannot tell.
        from roomscan.catalog.photos.local import LocalPhotoStore

        return super().__new__(LocalPhotoStore if cls is PhotoStore else cls)  # type: ignore[return-value]

    def put(self, sha256: str, data: bytes) -> None:
        """Store ``data`` under its hash. Bytes already there are kept, and marked in use again: a fresh time
        keeps a sweep from taking them as litter before this upload's row commits."""
        key = _key(sha256)
        if self._size(key) == len(data):
            self._refresh(key, data)
        else:
            self._write(key, data)

    def get(self, sha256: str) -> bytes:
        """The photo's bytes; :class:`~roomscan.errors.NotFoundError` when the store has no such photo."""
        try:
            return self._read(_key(sha256))
        except FileNotFoundError as exc:
            raise NotFoundError(f"photo file {sha256} is missing from the photo store at {self}") from exc

    def delete(self, sha256: str) -> bool:
        """Remove a photo; False when it was not there."""
        return self._remove(_key(sha256))

    def sweep(
        self, known: Callable[[Collection[str]], Collection[str]], *, grace: timedelta = SWEEP_GRACE
    ) -> SweepReport:
        """Remove ``.incoming-*`` temp files and photos whose hash ``known`` does not return, when older than
        ``grace``; younger ones may belong to an upload in flight.

        Args:
            known: given hashes (up to 500), returns those that have a catalog row.
            grace: how old litter must be to go.
        """
        cutoff = time.time() - grace.total_seconds()
        temp = orphans = size = 0
        for _, entries in itertools.groupby(self._entries(), key=lambda e: e.folder):
            candidates: dict[str, str] = {}
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX):
                    removed = self._remove_if_older(entry.key, cutoff)
                    temp += removed > 0
                    size += max(removed, 0)
                elif _SHA_RE.match(entry.name) and entry.mtime < cutoff:
                    candidates[entry.name] = entry.key
            names = sorted(candidates)
            rows = {
                sha for i in range(0, len(names), _KNOWN_BATCH) for sha in known(names[i : i + _KNOWN_BATCH])
            }
            for sha256 in sorted(set(candidates) - rows):
                # Checked again just before removing: an upload of these bytes may have refreshed it since.
                removed = self._remove_if_older(candidates[sha256], cutoff)
                orphans += removed > 0
                size += max(removed, 0)
        return SweepReport(temp_files=temp, orphan_files=orphans, bytes=size)

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # What a backend implements. Missing keys raise FileNotFoundError unless said otherwise.

    def probe(self) -> None:
        """Raise unless the store answers a cheap request (``/readyz``)."""
        raise NotImplementedError

    def _size(self, key: str) -> int | None:
        """The size of ``key``'s bytes, or None when there is none."""
        raise NotImplementedError

    def _write(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old bytes, or nothing, or all of ``data``."""
        raise NotImplementedError

    def _refresh(self, key: str, data: bytes) -> None:
        """Make ``key`` (which holds ``data``) young again; writing it again does that, where nothing cheaper
        does."""
        self._write(key, data)

    def _read(self, key: str) -> bytes:
        raise NotImplementedError

    def _remove(self, key: str) -> bool:
        """Remove ``key``; False when it was not there."""
        raise NotImplementedError

    def _entries(self) -> Iterator[_Entry]:
        """Every ``<folder>/<name>`` file under the root, grouped by folder; nothing when the root is missing."""
        raise NotImplementedError

    def _remove_if_older(self, key: str, cutoff: float) -> int:
        """Remove ``key`` if last changed before ``cutoff``: its size in bytes, or -1 when it stays."""
        raise NotImplementedError
