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

import os
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from roomscan.catalog.photos.base import SWEEP_GRACE, PhotoStore, SweepReport
from roomscan.catalog.photos.local import LocalPhotoStore
from roomscan.catalog.photos.objects import ObjectPhotoStore, S3PhotoStore, _import_fsspec
from roomscan.errors import RoomscanError

if TYPE_CHECKING:
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
    """Remove what interrupted uploads left in ``photos``: temp files, and files no ``photos`` or ``photo_marks`` row
    names (a deleted photo's marked copy, or one a new key replaced), once
    older than ``grace``. Run on start-up (``roomscan serve``, ``roomscan worker``), which report it.

    Example:
        >>> report = sweep_photo_store(Session, open_photo_store(settings.resolved_photo_store))  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        removed 1 unfinished upload file(s) and 2 photo file(s) no photo uses, 3.1 MB
    """
    from sqlalchemy import select

    from roomscan.catalog.models import Photo, PhotoMark

    def known(hashes: Collection[str]) -> set[str]:
        names = list(hashes)
        with sessions() as session:  # a photo's bytes, or a marked copy served in its place (catalog.marks)
            return set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(names)))) | set(
                session.scalars(select(PhotoMark.marked_sha256).where(PhotoMark.marked_sha256.in_(names))))

    return photos.sweep(known, grace=grace)
