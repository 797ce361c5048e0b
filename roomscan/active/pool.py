"""The photos ``roomscan active rank`` ranks: a folder of images, or the catalog's photos with its known model errors.

:func:`folder_pool` and :func:`catalog_pool` gather a :class:`PhotoPool` of :class:`PoolPhoto` (an id, a label, a
Label Studio reference and a loader of its pixels). In the catalog, photos that show an amenity its listing's host
**rejected** (table ``amenity_decisions``) while a model's stored detections of that photo include it are known
model errors (:attr:`PhotoPool.known_errors`). :class:`RankError` is the error of the whole ranking
(:mod:`roomscan.active.rank`, which re-exports these names).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from PIL import Image

    from roomscan.services import Services

__all__ = [
    "CATALOG_IMAGE_URL",
    "PhotoPool",
    "PoolPhoto",
    "RankError",
    "catalog_pool",
    "folder_pool",
]

CATALOG_IMAGE_URL = "/api/v1/photos/{id}/image"


class RankError(RoomscanError, ValueError):
    """Nothing to rank (an empty folder, no readable photo, an empty catalog) or options that cannot work."""


@dataclass(frozen=True)
class PoolPhoto:
    """One candidate photo.

    Attributes:
        id: the photo's path relative to the folder (POSIX), or its catalog photo id.
        label: how to show it: the file's path, or ``"photo 12"``.
        ref: ``data.image`` for Label Studio: the relative path, or the API's image URL for a catalog photo.
        load: reads its pixels (RGB); raises :class:`~roomscan.errors.ImageError` when it cannot.
    """

    id: str | int
    label: str
    ref: str
    load: Callable[[], Image.Image] = field(repr=False, compare=False)


@dataclass(frozen=True)
class PhotoPool:
    """The photos to rank, and the known model errors among them (photo id -> why)."""

    photos: tuple[PoolPhoto, ...]
    source: str
    known_errors: Mapping[str | int, str] = field(default_factory=dict)



# -- the pool ------------------------------------------------------------------------------------------------
def folder_pool(folder: str | os.PathLike[str]) -> PhotoPool:
    """Every image file (by extension) under ``folder``, recursively, sorted by path.

    Raises:
        RankError: the folder is missing, or holds no image files.
    """
    from roomscan.detection.image import IMAGE_SUFFIXES, load_image

    root = Path(folder)
    if not root.is_dir():
        raise RankError(f"{root}: no such folder; --images takes a folder of photos")
    files = sorted(p for p in _walk(root) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RankError(
            f"{root}: no image files in it or its sub-folders (looked for {', '.join(IMAGE_SUFFIXES)}); "
            "point --images at the folder of unlabelled photos"
        )

    def loader(path: Path) -> Callable[[], Image.Image]:
        return lambda: load_image(path).image

    photos = tuple(
        PoolPhoto(p.relative_to(root).as_posix(), str(p), p.relative_to(root).as_posix(), loader(p))
        for p in files
    )
    return PhotoPool(photos, str(root))


def _walk(root: Path) -> list[Path]:
    """Every file under ``root``, following linked sub-folders (``rglob`` skips them) but each real folder once,
    so a link back up the tree cannot loop."""
    seen: set[str] = set()
    out: list[Path] = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        out.extend(Path(folder) / name for name in names)
    return out


def catalog_pool(services: Services) -> PhotoPool:
    """Every photo attached to a listing, by photo id, read from the photo store; with the known model errors.

    A photo is a known model error when its listing's host rejected an amenity (``amenity_decisions``,
    ``rejected``) that a model's stored detections of that photo include.

    Raises:
        RankError: the catalog has no photos.
    """
    from sqlalchemy import select

    from roomscan.catalog.models import AmenityDecision, Detection, ListingPhoto, Photo
    from roomscan.detection.image import load_image
    from roomscan.listing import Decision

    with services.sessions() as session:
        rows = session.execute(
            select(Photo.id, Photo.sha256)
            .where(Photo.id.in_(select(ListingPhoto.photo_id)))
            .order_by(Photo.id)
        ).all()
        rejected = session.execute(
            select(ListingPhoto.photo_id, AmenityDecision.listing_id, AmenityDecision.amenity)
            .join(ListingPhoto, ListingPhoto.listing_id == AmenityDecision.listing_id)
            .join(
                Detection,
                (Detection.photo_id == ListingPhoto.photo_id)
                & (Detection.amenity == AmenityDecision.amenity),
            )
            .where(AmenityDecision.decision == Decision.REJECTED)
            .distinct()
            .order_by(ListingPhoto.photo_id, AmenityDecision.listing_id, AmenityDecision.amenity)
        ).all()
    if not rows:
        raise RankError(
            "the catalog has no photos to rank; add listings' photos first (`roomscan listings photos add`)"
        )
    store = services.photos

    def loader(photo_id: int, sha256: str) -> Callable[[], Image.Image]:
        return lambda: load_image(store.get(sha256), name=f"photo {photo_id}").image

    errors: dict[str | int, list[str]] = {}
    for photo_id, listing_id, amenity in rejected:
        errors.setdefault(photo_id, []).append(f"{amenity} on listing {listing_id}")
    known = {
        pid: f"known model error: the host rejected {', '.join(items)}, which a model detected in this photo"
        for pid, items in errors.items()
    }
    photos = tuple(
        PoolPhoto(pid, f"photo {pid}", CATALOG_IMAGE_URL.format(id=pid), loader(pid, sha))
        for pid, sha in rows
    )
    return PhotoPool(photos, f"catalog {services.settings.resolved_database_url}", known)
