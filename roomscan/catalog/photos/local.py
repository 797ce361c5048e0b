"""Photos in a local directory: ``<root>/<sha[:2]>/<sha>``, written to a temp file and renamed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from roomscan.catalog.photos.base import _TEMP_PREFIX, PhotoStore, _Entry, _key


class LocalPhotoStore(PhotoStore):
    """Photos as files in a local directory; writes go to a temp file in the same folder, then are renamed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def probe(self) -> None:
        """Raise unless the root is a directory this process can list and write (before the first photo, its
        nearest existing parent)."""
        where = self.root
        while not where.exists() and where.parent != where:
            where = where.parent
        if not where.is_dir():
            raise OSError(f"{where} is not a directory")
        if not os.access(where, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(f"{where} cannot be read and written by this process")
        with os.scandir(where) as entries:
            next(entries, None)

    def path(self, sha256: str) -> Path:
        """The file that holds (or would hold) a photo."""
        return self.root / _key(sha256)

    def _size(self, key: str) -> int | None:
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    def _write(self, key: str, data: bytes) -> None:
        target = self.root / key
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

    def _refresh(self, key: str, data: bytes) -> None:
        try:
            os.utime(self.root / key)
        except FileNotFoundError:  # swept in the meantime
            self._write(key, data)

    def _read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def _remove(self, key: str) -> bool:
        try:
            (self.root / key).unlink()
        except FileNotFoundError:
            return False
        return True

    def _entries(self) -> Iterator[_Entry]:
        if not self.root.is_dir():
            return
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in folder.iterdir():
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield _Entry(f"{folder.name}/{path.name}", mtime)

    def _remove_if_older(self, key: str, cutoff: float) -> int:
        path = self.root / key
        try:
            stat = path.stat()
            if stat.st_mtime >= cutoff:
                return -1
            path.unlink()
        except FileNotFoundError:
            return -1
        return stat.st_size
