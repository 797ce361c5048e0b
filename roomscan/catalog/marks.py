"""Publishing radioactive-data marked copies: the catalog keeps each photo's original and serves a marked copy on
public image URLs, so a model trained on scraped listing photos can later be shown to have seen them.

The operator sets ``ROOMSCAN_MARK_KEY`` (a :class:`~roomscan.radioactive.MarkingKey` ``.npz``) and
``ROOMSCAN_MARK_NETWORK`` (the marking network it was made with); both stay on the server and no route serves
them. ``roomscan photos mark`` (resumable) marks every photo on a published listing that has no mark under the
current key, with the key's one "set" carrier (``ROOMSCAN_MARK_SET`` picks one when the key has several): listing
photos carry no class labels a scraper's model would share, so one carrier for all published photos is what the
paper calls marking a set. The marked copy goes into the photo store like any photo bytes (content-addressed) and
a ``photo_marks`` row records it with its PSNR and L-infinity distance. Marking takes seconds per photo on a CPU,
so it never runs in an upload request.

Who gets what (:func:`served_copy`): a photo's owners (the hosts of listings showing it) and admins get the
original; everyone else gets the marked copy once it exists, the original until then. Detection, duplicates and
training exports read the original (``Photo.sha256``) as before. A new key (another :func:`key_fingerprint`) makes
old marks stale: they are no longer served, and the next ``photos mark`` replaces them.

Example:
    >>> pub = publishing(settings)                                              # doctest: +SKIP
    >>> stats = mark_pending(session, photos, pub, pub.load_network())          # doctest: +SKIP
    >>> served_copy(session, photo, pub, user_id=None, is_admin=False).marked   # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from roomscan.catalog.models import Listing, ListingPhoto, Photo, PhotoMark
from roomscan.catalog.photos import PhotoStore
from roomscan.errors import NotFoundError, PermissionDeniedError
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey
from roomscan.settings import Settings

if TYPE_CHECKING:
    from roomscan.radioactive.network import MarkingNetwork

log = logging.getLogger(__name__)

__all__ = [
    "MarkStats",
    "Publishing",
    "Served",
    "key_fingerprint",
    "mark_pending",
    "pending_count",
    "publishing",
    "served_copy",
]

MARKABLE_FORMATS = ("JPEG", "PNG")  # what roomscan.radioactive.mark_files writes back in the same format
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png"}


def key_fingerprint(key: MarkingKey) -> str:
    """SHA-256 of what a mark depends on: the carriers, their names and the marking network's identity (not the
    list of files a key records, which grows as files are marked)."""
    h = hashlib.sha256()
    h.update(json.dumps([key.network.architecture, key.network.weights_sha256, list(key.names)]).encode())
    h.update(key.carriers.astype("<f8").tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Publishing:
    """The marking key the catalog publishes with (read once from ``Settings``; never served).

    Attributes:
        key: the marking key.
        network_path: the marking network file (loaded only to mark: :meth:`load_network`).
        carrier: the key's carrier every published photo is marked with.
        fingerprint: :func:`key_fingerprint` of ``key``; marks made under another are stale.
    """

    key: MarkingKey
    network_path: Path
    carrier: str
    fingerprint: str

    def load_network(self) -> MarkingNetwork:
        """The marking network, checked to be the one the key was made with (needs torch).

        Raises:
            RadioactiveError: a missing or foreign file, or a network other than the key's.
        """
        from roomscan.radioactive.network import load_network, network_identity

        try:
            network = load_network(self.network_path)
            self.key.check_network(network_identity(network))
        except RadioactiveError as exc:
            raise RadioactiveError(f"ROOMSCAN_MARK_NETWORK: {exc}") from None
        return network


@functools.lru_cache(maxsize=8)
def publishing(settings: Settings) -> Publishing | None:
    """What ``settings`` publish with, or ``None`` when marked copies are off. Read once per settings: restart
    the server after replacing the key file.

    Raises:
        RadioactiveError: the key file is missing or not a marking key, the network file is missing, or the
            carrier to use is ambiguous or unknown; the message names the setting.
    """
    if not settings.publishes_marked:
        return None
    assert settings.mark_key is not None and settings.mark_network is not None
    try:
        key = MarkingKey.load(settings.mark_key)
    except RadioactiveError as exc:
        raise RadioactiveError(f"ROOMSCAN_MARK_KEY: {exc}") from None
    network_path = Path(settings.mark_network).expanduser()
    if not network_path.is_file():
        raise RadioactiveError(f"ROOMSCAN_MARK_NETWORK: {network_path}: no such marking network file; give the "
                               "network file the key was made with")
    if settings.mark_set is not None:
        if settings.mark_set not in key.names:
            raise RadioactiveError(f"ROOMSCAN_MARK_SET: the key {settings.mark_key} has no carrier "
                                   f"{settings.mark_set!r}; it has {list(key.names)}")
        carrier = settings.mark_set
    elif len(key.names) == 1:
        carrier = key.names[0]
    else:
        raise RadioactiveError(f"ROOMSCAN_MARK_SET: the key {settings.mark_key} has {len(key.names)} carriers "
                               f"({', '.join(key.names)}); set ROOMSCAN_MARK_SET to the one published photos are "
                               "marked with")
    return Publishing(key, network_path, carrier, key_fingerprint(key))


# -- what to mark ----------------------------------------------------------------------------------------------


def _on_published_listing() -> object:
    return (select(ListingPhoto.photo_id).join(Listing, Listing.id == ListingPhoto.listing_id)
            .where(Listing.published.is_(True)))


def _pending(fingerprint: str, *, retry_skipped: bool):  # type: ignore[no-untyped-def]
    """Photos on a published listing without a mark under ``fingerprint`` (or, ``retry_skipped``, with only a
    note that they could not be marked)."""
    current = and_(PhotoMark.photo_id == Photo.id, PhotoMark.key_fingerprint == fingerprint)
    missing = PhotoMark.photo_id.is_(None)
    if retry_skipped:
        missing = or_(missing, PhotoMark.marked_sha256.is_(None))
    return (select(Photo.id).outerjoin(PhotoMark, current)
            .where(Photo.id.in_(_on_published_listing()), missing))  # type: ignore[arg-type]


def pending_count(session: Session, fingerprint: str, *, retry_skipped: bool = False) -> int:
    """How many published photos still need a mark under the key ``fingerprint`` names."""
    return int(session.scalar(select(func.count()).select_from(
        _pending(fingerprint, retry_skipped=retry_skipped).subquery())) or 0)


@dataclass
class MarkStats:
    """What a :func:`mark_pending` run did. ``skipped``: photos that cannot be marked (recorded, not tried again
    under this key unless asked); ``failed``: photos whose file could not be read (tried again next run)."""

    marked: int = 0
    skipped: int = 0
    failed: int = 0
    psnrs: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return sum(self.psnrs) / len(self.psnrs) if self.psnrs else math.nan


def mark_pending(
    session: Session,
    photos: PhotoStore,
    pub: Publishing,
    network: MarkingNetwork,
    *,
    limit: int | None = None,
    retry_skipped: bool = False,
    steps: int = 60,
    on_progress: Callable[[int], None] | None = None,
) -> MarkStats:
    """Mark the published photos that have no mark under ``pub``'s key, oldest first, committing each one (stop
    at any time; a rerun goes on). Each marked copy keeps its photo's format, size, EXIF and JPEG quality and
    meets the key's L-infinity bound and PSNR floor (``roomscan.radioactive.mark_files``).

    Args:
        limit: mark at most this many photos.
        retry_skipped: try again photos recorded as impossible to mark under this key.
        steps: optimisation steps per photo (``mark_images``).
        on_progress: called with 1 after each photo.
    """
    from roomscan.radioactive.network import network_identity

    pub.key.check_network(network_identity(network))  # once here; each photo then uses the plain carriers
    row = pub.key.names.index(pub.carrier)
    stats = MarkStats()
    last_id = 0
    while limit is None or stats.marked + stats.skipped + stats.failed < limit:
        query = _pending(pub.fingerprint, retry_skipped=retry_skipped).where(Photo.id > last_id)
        photo_id = session.scalar(query.order_by(Photo.id).limit(1))
        session.commit()  # no transaction held while the photo is marked
        if photo_id is None:
            break
        last_id = photo_id
        photo = session.get(Photo, photo_id)
        if photo is None:  # deleted meanwhile
            continue
        outcome = _mark_one(photos, photo, pub, network, row, steps)
        if isinstance(outcome, NotFoundError):
            stats.failed += 1
            stats.errors.append(f"photo {photo_id}: {outcome}")
        else:
            try:
                session.merge(outcome)
                session.commit()
            except IntegrityError:  # the photo was deleted while it was being marked; its copy is swept later
                session.rollback()
                continue
            if outcome.marked_sha256 is None:
                stats.skipped += 1
                stats.errors.append(f"photo {photo_id}: {outcome.note}")
            else:
                stats.marked += 1
                stats.psnrs.append(float(outcome.psnr or 0.0))
        if on_progress is not None:
            on_progress(1)
    return stats


def _mark_one(
    photos: PhotoStore, photo: Photo, pub: Publishing, network: MarkingNetwork, row: int, steps: int
) -> PhotoMark | NotFoundError:
    from roomscan.radioactive.files import mark_files

    def skipped(note: str) -> PhotoMark:
        return PhotoMark(photo_id=photo.id, key_fingerprint=pub.fingerprint, carrier=pub.carrier, note=note)

    if photo.format not in MARKABLE_FORMATS:
        return skipped(f"a {photo.format} photo: marked copies are written as JPEG or PNG only")
    try:
        data = photos.get(photo.sha256)
    except NotFoundError as exc:
        return exc
    key = pub.key
    with tempfile.TemporaryDirectory(prefix="roomscan-mark-") as tmp:
        source = Path(tmp, "in", f"photo{_EXTENSIONS[photo.format]}")
        source.parent.mkdir()
        source.write_bytes(data)
        try:
            result = mark_files(
                [source], Path(tmp, "out"), [row], key.carriers, network, root=source.parent,
                epsilon=key.epsilon, psnr_floor=key.psnr_floor, steps=steps,
                augment=key.augment if key.augment is not None else False, seed=key.seed + photo.id,
            )  # fmt: skip
        except RadioactiveError as exc:  # a mode marking cannot write back (greyscale JPEG, palette PNG...)
            return skipped(str(exc).replace(str(source), f"photo {photo.id}"))
        if not result.files:
            return skipped(result.skipped[0].reason)
        marked = result.files[0]
        copy = Path(marked.output).read_bytes()
    photos.put(marked.sha256_marked, copy)  # before the row commits; the start-up sweep clears litter
    return PhotoMark(photo_id=photo.id, key_fingerprint=pub.fingerprint, carrier=pub.carrier,
                     marked_sha256=marked.sha256_marked, psnr=marked.psnr, linf=marked.linf)


# -- what to serve ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """Which bytes an image URL serves a reader: the photo's original or its marked copy (``sha256`` in the
    photo store). ``personal``: chosen because of who asks (an owner or admin), so shared caches must not keep
    it."""

    sha256: str
    marked: bool
    personal: bool = False


def may_have_original(session: Session, photo_id: int, *, user_id: int | None, is_admin: bool) -> bool:
    """Admins, and hosts of a listing showing the photo (published or not), get its original."""
    if is_admin:
        return True
    if user_id is None:
        return False
    owned = (select(ListingPhoto.listing_id).join(Listing, Listing.id == ListingPhoto.listing_id)
             .where(ListingPhoto.photo_id == photo_id, Listing.owner_id == user_id))
    return bool(session.scalar(select(owned.exists())))


def served_copy(
    session: Session,
    photo: Photo,
    pub: Publishing | None,
    *,
    user_id: int | None,
    is_admin: bool,
    original: bool = False,
) -> Served:
    """What the photo's public image URLs give this reader (visibility is checked before, by the caller).

    Args:
        pub: :func:`publishing` of the settings; ``None``: marking is off and everyone gets the original.
        user_id, is_admin: the reader (``None``: a guest).
        original: the reader asks for the original (``?original=1``).

    Raises:
        PermissionDeniedError: ``original`` asked by someone who is neither an owner nor an admin.
    """
    if pub is None:
        return Served(photo.sha256, marked=False)
    if may_have_original(session, photo.id, user_id=user_id, is_admin=is_admin):
        return Served(photo.sha256, marked=False, personal=True)
    if original:
        raise PermissionDeniedError(f"photo {photo.id}: only the hosts of its listings and admins may have the "
                                    "original file; leave out original=1")
    sha = session.scalar(select(PhotoMark.marked_sha256).where(
        PhotoMark.photo_id == photo.id, PhotoMark.key_fingerprint == pub.fingerprint))
    return Served(sha, marked=True) if sha else Served(photo.sha256, marked=False)


def read_served(session: Session, photos: PhotoStore, photo: Photo, served: Served) -> tuple[bytes, Served]:
    """The served bytes. A marked copy gone from the store (its file removed by hand, or as another photo's
    bytes) is forgotten, so the next ``photos mark`` makes it again, and the original is served meanwhile."""
    try:
        return photos.get(served.sha256), served
    except NotFoundError:
        if not served.marked:
            raise
    log.warning("photo %d: its marked copy %s is missing from the photo store; serving the original until "
                "`roomscan photos mark` marks it again", photo.id, served.sha256)
    session.execute(delete(PhotoMark).where(PhotoMark.photo_id == photo.id))
    session.commit()
    fallback = Served(photo.sha256, marked=False)
    return photos.get(fallback.sha256), fallback
