"""Content-addressed photo bytes: ``<root>/<sha[:2]>/<sha>``, in a local directory or on object storage.

:func:`open_photo_store` opens the store ``Settings.resolved_photo_store`` names: a local directory
(:class:`LocalPhotoStore`), an ``s3://bucket/prefix`` URL (:class:`S3PhotoStore`, also for S3-compatible servers
such as MinIO or Ceph) or any other fsspec URL (:class:`ObjectPhotoStore`, e.g. ``memory://photos``). Every store
behaves the same: storing the same bytes twice is a no-op, a photo is never visible half-written under its key
(temp file + rename; on S3 a single PUT), and a missing photo raises :class:`~roomscan.errors.NotFoundError`.

An upload writes its photo before its row commits, so a process killed in between leaves a photo no row names (and
one killed mid-write an ``.incoming-*`` temp file). :func:`sweep_photo_store`, run when a server or worker starts,
removes such litter once it is older than a grace period; younger files may belong to an upload in flight.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from roomscan.errors import NotFoundError, RoomscanError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "SWEEP_GRACE",
    "LocalPhotoStore",
    "ObjectPhotoStore",
    "PhotoStore",
    "S3PhotoStore",
    "SweepReport",
    "open_photo_store",
    "sweep_photo_store",
]

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


class LocalPhotoStore(PhotoStore):
    """Photos as files in a local directory; writes go to a temp file in the same folder, then are renamed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

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


class ObjectPhotoStore(PhotoStore):
    """Photos on any fsspec filesystem (``memory://``, ``gcs://``, ...): writes go to a temp key, then are moved.

    Args:
        fs: the filesystem.
        root: the store's root on ``fs`` (``bucket/prefix``), without the protocol.
        location: the URL it was opened from, for log lines.
    """

    def __init__(self, fs: AbstractFileSystem, root: str, *, location: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.location = location

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _size(self, key: str) -> int | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type", "file") == "file" else None

    def _write(self, key: str, data: bytes) -> None:
        folder = key.rpartition("/")[0]
        target = self._path(key)
        tmp = self._path(f"{folder}/{_TEMP_PREFIX}{uuid.uuid4().hex}")
        self.fs.makedirs(self._path(folder), exist_ok=True)
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        except BaseException:
            try:
                self.fs.rm_file(tmp)
            except FileNotFoundError:
                pass
            raise

    def _read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def _remove(self, key: str) -> bool:
        # Checked first: deleting a missing object is no error on S3.
        if self._size(key) is None:
            return False
        self.fs.rm_file(self._path(key))
        return True

    def _entries(self) -> Iterator[_Entry]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        prefix = f"{self.root}/"
        entries = []
        for path, info in found.items():
            key = path[len(prefix):] if path.startswith(prefix) else ""
            if key.count("/") == 1 and info.get("type", "file") == "file":
                entries.append(_Entry(key, self._mtime(path, info)))
        yield from sorted(entries, key=lambda e: e.key)

    def _remove_if_older(self, key: str, cutoff: float) -> int:
        path = self._path(key)
        try:
            info = self.fs.info(path)
            if self._mtime(path, info) >= cutoff:
                return -1
            self.fs.rm_file(path)
        except FileNotFoundError:
            return -1
        return int(info["size"])

    def _mtime(self, path: str, info: dict[str, Any]) -> float:
        """When ``path`` was last written, from its listing where the filesystem puts it there."""
        for field in ("mtime", "LastModified", "modified", "updated", "created"):
            value = info.get(field)
            if isinstance(value, datetime):
                return value.timestamp()
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                return datetime.fromisoformat(value).timestamp()
        return float(self.fs.modified(path).timestamp())


class S3PhotoStore(ObjectPhotoStore):
    """Photos in an S3 bucket (or on an S3-compatible server): a single PUT is atomic, so no temp keys; a
    server-side copy onto itself marks a photo in use again without sending its bytes.

    Opened by :meth:`open`, which takes endpoint, credentials and region from the standard AWS environment.
    """

    endpoint: str | None = None
    """The S3 endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), None for AWS itself."""

    @classmethod
    def open(cls, url: str) -> S3PhotoStore:
        """Open ``s3://bucket/prefix`` and check once that the bucket is there and readable, so that a wrong
        bucket, credentials or endpoint is reported now, as a :class:`~roomscan.errors.RoomscanError`."""
        fsspec = _import_fsspec(url, "s3fs")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        options: dict[str, Any] = {
            # Credentials are read when a filesystem is made: a cached one could hold stale ones.
            "skip_instance_cache": True,
            # Other processes add and remove photos: a cached listing would hide them.
            "use_listings_cache": False,
        }
        if endpoint:
            options["endpoint_url"] = endpoint  # older s3fs/botocore ignore the variables
        fs, root = fsspec.core.url_to_fs(url, **options)
        store = cls(fs, root, location=url)
        store.endpoint = endpoint
        store._probe()
        return store

    def __str__(self) -> str:
        return f"{self.location} at {self.endpoint}" if self.endpoint else self.location

    def _probe(self) -> None:
        from botocore.exceptions import BotoCoreError, NoCredentialsError

        bucket, prefix, _ = self.fs.split_path(self.root)
        where = f"photo store {self}"
        try:
            self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except FileNotFoundError as exc:
            raise RoomscanError(
                f"{where}: bucket {bucket!r} does not exist; create it, or set ROOMSCAN_PHOTO_STORE to "
                "s3://<an existing bucket>/<prefix> (and AWS_ENDPOINT_URL_S3 for an S3-compatible server)"
            ) from exc
        except PermissionError as exc:
            raise RoomscanError(
                f"{where}: access denied ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to keys that "
                f"may list, read and write bucket {bucket!r} (and AWS_DEFAULT_REGION to its region)"
            ) from exc
        except NoCredentialsError as exc:
            raise RoomscanError(f"{where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from exc
        except (BotoCoreError, OSError) as exc:
            raise RoomscanError(
                f"{where}: cannot reach {self.endpoint or 'S3'} ({exc}); check AWS_ENDPOINT_URL_S3 or "
                "AWS_ENDPOINT_URL (an S3-compatible server's URL, e.g. http://minio:9000) and the network"
            ) from exc

    def _write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def _refresh(self, key: str, data: bytes) -> None:
        bucket, path, _ = self.fs.split_path(self._path(key))
        try:
            self.fs.call_s3(
                "copy_object",
                Bucket=bucket,
                Key=path,
                CopySource={"Bucket": bucket, "Key": path},
                MetadataDirective="REPLACE",  # S3 refuses a copy onto itself that changes nothing
                Metadata={"roomscan-in-use": str(int(time.time()))},
            )
        except FileNotFoundError:  # swept in the meantime
            self._write(key, data)


def _import_fsspec(url: str, package: str) -> Any:
    try:
        import fsspec

        if package != "fsspec":
            __import__(package)
    except ImportError as exc:
        raise RoomscanError(
            f"photo store {url} needs {exc.name or package}; install it with pip install 'roomscan[storage]'"
        ) from exc
    return fsspec


def open_photo_store(location: str | os.PathLike[str]) -> PhotoStore:
    """The photo store at ``location`` (``Settings.resolved_photo_store``, ``ROOMSCAN_PHOTO_STORE``).

    Args:
        location: a local directory, ``s3://bucket/prefix`` (endpoint, credentials and region from
            ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
            ``AWS_DEFAULT_REGION``), or any other fsspec URL.

    Raises:
        RoomscanError: the store cannot be used: a missing bucket, bad credentials, an unreachable endpoint, an
            unknown protocol or a missing package; the message says what to set.

    Example:
        >>> photos = open_photo_store(settings.resolved_photo_store)  # doctest: +SKIP
        >>> log.info("photo store %s", photos)  # doctest: +SKIP
    """
    text = os.fspath(location)
    if "://" not in text:
        return LocalPhotoStore(text)
    protocol = text.partition("://")[0].lower()
    if protocol in {"s3", "s3a"}:
        return S3PhotoStore.open(text)
    fsspec = _import_fsspec(text, "fsspec")
    try:
        fs, root = fsspec.core.url_to_fs(text)
        fs.makedirs(root, exist_ok=True)
    except ImportError as exc:
        raise RoomscanError(f"photo store {text} needs {exc.name or 'a package fsspec names'}: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise RoomscanError(f"photo store {text} cannot be opened ({exc}); check ROOMSCAN_PHOTO_STORE") from exc
    return ObjectPhotoStore(fs, root, location=text)


def sweep_photo_store(
    sessions: sessionmaker[Session], photos: PhotoStore, *, grace: timedelta = SWEEP_GRACE
) -> SweepReport:
    """Remove what interrupted uploads left in ``photos``: temp files, and photos no ``photos`` row names, once
    older than ``grace``. Run on start-up (``roomscan serve``, ``roomscan worker``), which report it.

    Example:
        >>> report = sweep_photo_store(Session, open_photo_store(settings.resolved_photo_store))  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        removed 1 unfinished upload file(s) and 2 photo file(s) no photo uses, 3.1 MB
    """
    from sqlalchemy import select

    from roomscan.catalog.models import Photo

    def known(hashes: Collection[str]) -> set[str]:
        with sessions() as session:
            return set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(list(hashes)))))

    return photos.sweep(known, grace=grace)
