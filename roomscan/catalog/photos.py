"""Content-addressed photo files: ``<root>/<sha[:2]>/<sha>``. Writes are atomic (temp file + rename)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from roomscan.errors import NotFoundError

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


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
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
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
