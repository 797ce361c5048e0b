"""The same photo in several listings: near-identical stored photos, found through their perceptual hashes.

Every analysed photo has five 64-bit hashes in ``photo_insights`` (``insights.phash.photo_hashes``). Lookups go
through one :class:`~roomscan.insights.dupindex.HammingIndex` per catalog and process, built from
``photo_insights`` on first use (measured on SQLite, shared 2-core machine: 1.8 s for 100k photos, then a lookup
p50 0.8 ms, p99 1.3 ms) and caught up on every use: rows stamped at or after the newest seen are added, and every
:data:`RECHECK_SECONDS` the rows of the last :data:`LOOKBACK` are read again, so a transaction that committed late
is not skipped; a row rewritten under an id the index holds (SQLite may reuse the id of a deleted photo) replaces
the old one. Photos deleted since are not looked for: every match is checked
against ``photo_insights`` (whose rows go with their photo) before it is returned, and dropped from the index if
gone.

Two photos are "the same" when any hash of one lies within ``max_distance`` bits of any hash of the other
(:data:`~roomscan.insights.phash.DEFAULT_MAX_DISTANCE`, 8: resizes, JPEG re-encodes and 5% crops fall within it
on generated rooms; see ``insights/phash.py``). Treat a match as "look at these two", not as proof.

Example:
    >>> find_duplicates(session, 42)  # doctest: +SKIP
    [Match(id=815, distance=2)]
    >>> [c.to_dict() for c in duplicate_clusters(session, viewer=None)]  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roomscan.catalog.models import Listing, ListingPhoto, PhotoInsight
from roomscan.errors import NotFoundError
from roomscan.insights.dupindex import HammingIndex, Match
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE, N_HASHES, check_hash

if TYPE_CHECKING:
    from roomscan.auth import Principal

__all__ = [
    "LOOKBACK",
    "ClusterPhoto",
    "DuplicateCluster",
    "ListingRef",
    "duplicate_clusters",
    "find_duplicates",
    "near_copies",
    "photo_hashes_of",
    "to_signed",
    "to_unsigned",
]

LOOKBACK = timedelta(minutes=1)
"""How far before the newest row it has seen the index looks again for rows (every :data:`RECHECK_SECONDS`): a
transaction that wrote ``photo_insights`` rows (stamped when written) and committed up to this much later is still
caught. Uploads and ``photos analyse`` commit within seconds; a row committed later than this is found after a
restart of the process."""
RECHECK_SECONDS = 10.0
"""Between these re-reads of the look-back window, a catch-up reads only rows stamped at or after the newest
seen (one range of ``ix_photo_insights_computed_at``): after a burst of writes (a backfill), lookups stay cheap."""
_HASH_COLUMNS = tuple(getattr(PhotoInsight, f"hash{i}") for i in range(N_HASHES))
_CHUNK = 50_000


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed BIGINT a database stores."""
    value = check_hash(value)
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    """A stored signed BIGINT back to the unsigned 64-bit hash."""
    return value + (1 << 64) if value < 0 else value


def photo_hashes_of(session: Session, photo_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """The stored hashes (unsigned) of each photo that has been analysed."""
    ids = list(photo_ids)
    if not ids:
        return {}
    rows = session.execute(select(PhotoInsight.photo_id, *_HASH_COLUMNS).where(PhotoInsight.photo_id.in_(ids)))
    return {row[0]: tuple(to_unsigned(h) for h in row[1:]) for row in rows}


class _CatalogIndex:
    """One catalog's index and what it needs to catch up (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index = HammingIndex()
        self.loaded = False
        self.known = np.zeros(0, np.int64)  # sorted ids of the first load
        self.added: set[int] = set()  # ids added since
        self.recent: dict[int, Any] = {}  # id -> computed_at of rows in the look-back window, already handled
        self.watermark: datetime | None = None
        self.rechecked = 0.0  # time.monotonic() of the last look-back re-read

    def _is_known(self, photo_id: int) -> bool:
        if photo_id in self.added:
            return True
        i = int(np.searchsorted(self.known, photo_id))
        return i < len(self.known) and int(self.known[i]) == photo_id

    def load(self, session: Session) -> None:
        # The newest stamp first: rows written while the table is read are re-read by the next catch-up.
        self.watermark = session.scalar(select(func.max(PhotoInsight.computed_at)))
        self.rechecked = time.monotonic()
        ids: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        result = session.execute(select(PhotoInsight.photo_id, *_HASH_COLUMNS).execution_options(yield_per=_CHUNK))
        for chunk in result.partitions():
            block = np.array(chunk, dtype=np.int64).reshape(-1, 1 + N_HASHES)  # [rows, id + 5 signed hashes]
            ids.append(np.repeat(block[:, 0], N_HASHES))
            hashes.append(block[:, 1:].view(np.uint64).ravel())  # two's complement: the signed value's bits
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        self.index = HammingIndex.build(all_ids, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64))
        self.known = np.unique(all_ids)
        self.loaded = True

    def catch_up(self, session: Session) -> None:
        if not self.loaded:
            self.load(session)
        stmt = select(PhotoInsight.photo_id, PhotoInsight.computed_at, *_HASH_COLUMNS)
        if self.watermark is None:
            rows = session.execute(stmt).all()
        elif time.monotonic() - self.rechecked >= RECHECK_SECONDS:
            self.rechecked = time.monotonic()
            rows = session.execute(stmt.where(PhotoInsight.computed_at >= self.watermark - LOOKBACK)).all()
        else:
            rows = session.execute(stmt.where(PhotoInsight.computed_at >= self.watermark)).all()
        new_ids: list[int] = []
        new_hashes: list[int] = []
        replaced: list[int] = []
        for photo_id, stamp, *signed in rows:
            if self.recent.get(photo_id) == stamp:
                continue
            hashes_u = [to_unsigned(h) for h in signed]
            if self._is_known(photo_id):
                if any(m.id == photo_id for m in self.index.search(hashes_u[0], 0)):
                    self.recent[photo_id] = stamp
                    continue  # the same photo analysed again: same hashes
                replaced.append(photo_id)
            self.added.add(photo_id)
            new_ids.extend([photo_id] * N_HASHES)
            new_hashes.extend(hashes_u)
            self.recent[photo_id] = stamp
            if self.watermark is None or stamp > self.watermark:
                self.watermark = stamp
        if replaced:
            self.index.remove(replaced)
        if new_ids:
            self.index.add(new_ids, new_hashes)
        if self.watermark is not None:
            cutoff = self.watermark - LOOKBACK
            self.recent = {k: v for k, v in self.recent.items() if v >= cutoff}


_indexes: dict[str, _CatalogIndex] = {}
_indexes_lock = threading.Lock()


def _catalog_index(session: Session) -> _CatalogIndex:
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    with _indexes_lock:
        entry = _indexes.get(url)
        if entry is None:
            entry = _indexes[url] = _CatalogIndex()
    return entry


def _search(
    session: Session, queries: Mapping[int, Sequence[int]], max_distance: int
) -> dict[int, list[Match]]:
    """Matches (ids of existing photos) of each query photo's hashes, the photo itself included when present."""
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not 0 <= max_distance <= 32:
        raise ValueError(f"max_distance must be a whole number of bits from 0 to 32, got {max_distance!r}")
    entry = _catalog_index(session)
    with entry.lock:
        entry.catch_up(session)
        found = {key: entry.index.search(list(hashes), max_distance) for key, hashes in queries.items()}
    matched = {m.id for matches in found.values() for m in matches}
    alive: set[int] = set()
    ids = sorted(matched)
    for start in range(0, len(ids), 1000):
        alive |= set(session.scalars(select(PhotoInsight.photo_id).where(PhotoInsight.photo_id.in_(ids[start:start + 1000]))))
    if gone := matched - alive:
        with entry.lock:
            entry.index.remove(sorted(gone))
    return {key: [m for m in matches if m.id in alive] for key, matches in found.items()}


def find_duplicates(
    session: Session, photo: int | Sequence[int], max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[Match]:
    """Stored photos near-identical to ``photo``: a photo id (itself left out) or a photo's hashes
    (``insights.phash.photo_hashes``, unsigned), nearest first.

    Raises:
        NotFoundError: the photo has no analysis (not stored, or stored before 0009: ``roomscan photos analyse``).
        ValueError: a bad hash or ``max_distance`` (0..32).
    """
    if isinstance(photo, int) and not isinstance(photo, bool):
        hashes = photo_hashes_of(session, [photo]).get(photo)
        if hashes is None:
            raise NotFoundError(
                f"photo {photo} has no perceptual hashes: it does not exist, or was stored before they were "
                "computed (run `roomscan photos analyse`)"
            )
        return [m for m in _search(session, {photo: hashes}, max_distance)[photo] if m.id != photo]
    if isinstance(photo, bool):
        raise ValueError(f"give a photo id or its hashes, got {photo!r}")  # noqa: TRY004 - one error for bad input
    hashes = tuple(check_hash(h, "photo hash") for h in photo)
    if not hashes:
        raise ValueError("give a photo id or at least one of its hashes")
    return _search(session, {0: hashes}, max_distance)[0]


def near_copies(
    session: Session, photo_ids: Iterable[int], max_distance: int = DEFAULT_MAX_DISTANCE
) -> dict[int, list[Match]]:
    """For each analysed photo of ``photo_ids``: the stored photos near-identical to it, itself included at
    distance 0 (what ``catalog.insights.listing_insights`` reads); photos without hashes are left out."""
    return _search(session, dict(photo_hashes_of(session, photo_ids)), max_distance)


@dataclass(frozen=True)
class ListingRef:
    """A listing a photo appears on."""

    listing_id: int
    title: str

    def to_dict(self) -> dict[str, Any]:
        return {"listing_id": self.listing_id, "title": self.title}


@dataclass(frozen=True)
class ClusterPhoto:
    """One photo of a cluster and the listings it is on that the viewer may see."""

    photo_id: int
    listings: tuple[ListingRef, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"photo_id": self.photo_id, "listings": [ref.to_dict() for ref in self.listings]}


@dataclass(frozen=True)
class DuplicateCluster:
    """Photos that are the same picture (linked by near-identical pairs, transitively), on two or more listings.

    Attributes:
        photos: the photos, by id; a photo on no listing the viewer may see has no listing refs.
        listing_ids: the distinct listings the viewer may see, ascending.
        hidden_listings: how many more listings show these photos, which the viewer may not see.
    """

    photos: tuple[ClusterPhoto, ...]
    listing_ids: tuple[int, ...]
    hidden_listings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "photos": [p.to_dict() for p in self.photos],
            "listing_ids": list(self.listing_ids),
            "hidden_listings": self.hidden_listings,
        }


def duplicate_clusters(
    session: Session, *, max_distance: int = DEFAULT_MAX_DISTANCE, viewer: Principal | None
) -> list[DuplicateCluster]:
    """Every group of the same picture across listings: a photo on two or more listings, or near-identical
    photos on different listings. Ordered by their first photo id.

    ``viewer`` (``roomscan.auth``; ``None`` is anonymous): links only to listings it may see; a cluster whose
    other listings it may not see is reported with their count (``hidden_listings``), one it sees no listing of
    is left out. Cost: one index search per analysed photo (100k photos: 50 s on a shared 2-core machine).
    """
    from roomscan.auth import can_see

    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    analysed = session.execute(select(PhotoInsight.photo_id, *_HASH_COLUMNS).order_by(PhotoInsight.photo_id)).all()
    queries = {row[0]: tuple(to_unsigned(h) for h in row[1:]) for row in analysed}
    for own, matches in _search(session, queries, max_distance).items():
        for match in matches:
            a, b = find(own), find(match.id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    # Photos on several listings, analysed or not (the same bytes stored once).
    shared = set(session.scalars(
        select(ListingPhoto.photo_id).group_by(ListingPhoto.photo_id).having(func.count() > 1)
    ))
    groups: dict[int, list[int]] = {}
    for photo_id in {*parent, *shared}:
        groups.setdefault(find(photo_id), []).append(photo_id)
    candidates = [sorted(g) for g in groups.values() if len(g) > 1 or g[0] in shared]
    if not candidates:
        return []
    wanted = sorted({p for g in candidates for p in g})
    on: dict[int, list[Listing]] = {}
    for start in range(0, len(wanted), 1000):
        rows = session.execute(
            select(ListingPhoto.photo_id, Listing)
            .join(Listing, Listing.id == ListingPhoto.listing_id)
            .where(ListingPhoto.photo_id.in_(wanted[start:start + 1000]))
            .order_by(ListingPhoto.listing_id)
        ).all()
        for photo_id, listing in rows:
            on.setdefault(photo_id, []).append(listing)
    clusters = []
    for group in sorted(candidates, key=lambda g: g[0]):
        listings = {lst.id: lst for p in group for lst in on.get(p, [])}
        if len(listings) < 2:
            continue  # near-copies within one listing, or photos no listing uses any more
        visible = {i for i, lst in listings.items() if can_see(viewer, lst)}
        if not visible:
            continue
        photos = tuple(
            ClusterPhoto(p, tuple(ListingRef(lst.id, lst.title) for lst in on.get(p, []) if lst.id in visible))
            for p in group
        )
        clusters.append(DuplicateCluster(photos, tuple(sorted(visible)), len(listings) - len(visible)))
    return clusters
