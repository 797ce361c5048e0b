"""Photos on object storage: any fsspec filesystem (``ObjectPhotoStore``) and S3 or S3-compatible servers
(``S3PhotoStore``: one PUT per photo, endpoint and credentials from the standard AWS variables)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

from roomscan.catalog.photos.base import _TEMP_PREFIX, PhotoStore, _Entry


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

    def probe(self) -> None:
        """Raise unless the root answers a listing (a prefix nothing was written under yet counts)."""
        try:
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            pass

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
        store.probe()
        return store

    def __str__(self) -> str:
        return f"{self.location} at {self.endpoint}" if self.endpoint else self.location

    def probe(self) -> None:
        """One small listing of the prefix: a missing bucket, refused keys or an unreachable endpoint raise a
        ``RoomscanError`` saying what to set."""
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
