"""The pipeline behind ``roomscan active rank``: rank unlabelled photos by how much a committee disagrees.

Read top to bottom, :func:`rank` is: gather the pool (a folder of images, or the catalog's photos; see
:mod:`roomscan.active.pool`, whose names this module re-exports), let the committee predict each photo in chunks,
match its members' boxes (:func:`~roomscan.active.match_members`), score and select a batch
(:func:`~roomscan.active.select_photos`: top-N, or uncertainty + k-center diversity on the committee's embeddings,
optionally weighted by class rarity), then write the outputs (:mod:`roomscan.active.outputs`).

In the catalog, photos that show an amenity its listing's host **rejected** (table ``amenity_decisions``)
while a model's stored detections of that photo include it are known model errors: they rank first, whatever
their score, and their "why" says so.

Example:
    >>> committee = Committee.build([model_a, model_b], tta=True)  # doctest: +SKIP
    >>> result = rank(committee, "photos/", budget=50, diversity=True, out_dir="batch-3")  # doctest: +SKIP
    >>> result.photos[0].why  # doctest: +SKIP
    'bald 0.61 (max over 4 boxes); diverse: pick 1 of top 200'
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from roomscan.active.matching import Clusters, match_members
from roomscan.active.pool import PhotoPool, PoolPhoto, RankError, catalog_pool, folder_pool
from roomscan.active.scores import SCORES, get_score
from roomscan.active.select import BudgetWarning, select_photos
from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from roomscan.active.committee import Committee
    from roomscan.services import Services
    from roomscan.taxonomy import Taxonomy

__all__ = [
    "ConsensusBox",
    "PhotoPool",
    "PoolPhoto",
    "RankError",
    "RankResult",
    "RankedPhoto",
    "SkippedPhotosWarning",
    "catalog_pool",
    "consensus_class_counts",
    "dataset_class_counts",
    "folder_pool",
    "rank",
]

#: Scores that compare members: with a single member they are 0 for every photo.
DISAGREEMENT_SCORES = ("bald", "box-variance", "count")


class SkippedPhotosWarning(UserWarning):
    """Some photos of the pool could not be read and were left out (the message lists them)."""


@dataclass(frozen=True)
class ConsensusBox:
    """A box most members reported: the mean of their boxes, the committee's class and mean probability."""

    label: str
    class_id: int
    score: float
    xyxy: tuple[float, float, float, float]
    agreement: float  # the share of members with a box here


@dataclass(frozen=True)
class RankedPhoto:
    """One pick, in rank order (1 = label first)."""

    rank: int
    id: str | int
    label: str
    ref: str
    width: int
    height: int
    score: float
    scores: Mapping[str, float]
    why: str
    consensus: tuple[ConsensusBox, ...]
    clusters: Clusters = field(repr=False, compare=False)
    known_error: bool = False


@dataclass(frozen=True)
class RankResult:
    """What :func:`rank` chose and why.

    Attributes:
        photos: the picks, best first.
        pool_size: photos ranked (read and predicted).
        skipped: ``(photo, reason)`` of photos that could not be read.
        score: the score's registry name.
        budget: the budget asked for.
        short: the budget exceeded the pool, which was returned whole.
        committee: :meth:`Committee.describe`.
        members: each member's name, in order (the contact sheet's legend).
        model_version: :attr:`Committee.version`.
        taxonomy: the committee's taxonomy.
        files: the files written to ``out_dir`` (empty without one).
    """

    photos: tuple[RankedPhoto, ...]
    pool_size: int
    skipped: tuple[tuple[str, str], ...]
    score: str
    budget: int
    short: bool
    committee: str
    members: tuple[str, ...]
    model_version: str
    taxonomy: Taxonomy = field(repr=False)
    class_counts: Mapping[str, int] | None = None
    files: tuple[Path, ...] = ()


# -- class counts --------------------------------------------------------------------------------------------
def dataset_class_counts(path: str | os.PathLike[str], taxonomy: Taxonomy) -> dict[str, int]:
    """Labelled boxes per amenity slug of ``taxonomy`` in a roomscan dataset (amenities it lacks count 0).

    Labels the taxonomy does not know are left out with a :class:`UserWarning` naming them.
    """
    from roomscan.data.dataset import DetectionDataset
    from roomscan.detection.core import labels_of
    from roomscan.errors import TaxonomyError

    dataset = DetectionDataset.load(path)
    counts = dict.fromkeys(taxonomy.slugs, 0)
    unknown: dict[str, int] = {}
    for _, dets in dataset:
        for slug in labels_of(dets):
            name = dataset.taxonomy.resolve(slug).name if slug in dataset.taxonomy else slug
            try:
                ours = taxonomy.resolve(slug).slug
            except TaxonomyError:
                try:
                    ours = taxonomy.resolve(name).slug
                except TaxonomyError:
                    unknown[slug] = unknown.get(slug, 0) + 1
                    continue
            counts[ours] += 1
    if unknown:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(unknown.items()))
        warnings.warn(
            f"{path}: labels outside the committee's taxonomy were not counted: {listed}", stacklevel=2
        )
    return counts


def consensus_class_counts(
    photos: Mapping[Hashable, Clusters], *, min_agreement: float = 0.5
) -> dict[str, int]:
    """Boxes per class the committee agrees on over the pool (clusters ``min_agreement`` of members saw)."""
    counts: dict[str, int] = {}
    for clusters in photos.values():
        for name in clusters.class_names:
            counts.setdefault(name, 0)
        agreed = clusters.present.mean(axis=1) >= min_agreement if len(clusters) else np.zeros(0, bool)
        for label, ok in zip(clusters.consensus_labels, agreed, strict=True):
            if ok:
                counts[label] += 1
    return counts


def consensus_boxes(clusters: Clusters, *, min_agreement: float = 0.5) -> tuple[ConsensusBox, ...]:
    """The clusters at least ``min_agreement`` of the members reported, most confident first."""
    if len(clusters) == 0:
        return ()
    agreement = clusters.present.mean(axis=1)  # [m]
    keep = np.flatnonzero(agreement >= min_agreement)
    keep = keep[np.argsort(-clusters.consensus_score[keep], kind="stable")]
    return tuple(
        ConsensusBox(
            label=clusters.consensus_labels[j],
            class_id=int(clusters.consensus_class[j]),
            score=float(clusters.consensus_score[j]),
            xyxy=tuple(float(v) for v in clusters.consensus_boxes[j]),  # type: ignore[arg-type]
            agreement=float(agreement[j]),
        )
        for j in keep
    )


# -- the pipeline --------------------------------------------------------------------------------------------
def _as_pool(source: Any) -> PhotoPool:
    if isinstance(source, PhotoPool):
        return source
    if isinstance(source, (str, os.PathLike)):
        return folder_pool(source)
    if hasattr(source, "sessions") and hasattr(source, "photos"):
        return catalog_pool(source)
    raise TypeError(f"source must be a folder, Services or a PhotoPool, not {type(source).__name__}")


def _text_key(photo_id: str | int) -> str:
    """The photo's id as UTF-8-encodable text (the random score hashes it): a file name that is not UTF-8
    (surrogate escapes) gets ``\\xe9`` for its stray bytes; every other id is unchanged."""
    return str(photo_id).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _url_quoted(ref: str, image_prefix: str) -> str:
    """``ref`` percent-encoded when ``image_prefix`` makes ``data.image`` a URL (``?d=``, ``https://``), as Label
    Studio's local-files storage writes it: a name with ``%``, ``&``, ``#`` or a space would otherwise break it."""
    from urllib.parse import quote

    # surrogateescape: a file name that is not UTF-8 (a Windows zip's "caf\xe9.jpg") keeps its own bytes
    return quote(ref, safe="/", errors="surrogateescape") if "?" in image_prefix or "://" in image_prefix else ref


def rank(
    committee: Committee,
    source: str | os.PathLike[str] | Services | PhotoPool,
    *,
    score: str = "bald",
    budget: int,
    diversity: bool = False,
    class_balance: bool = False,
    class_counts: Mapping[str, int] | str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 4,
    chunk_size: int = 32,
    iou_threshold: float = 0.5,
    min_agreement: float = 0.5,
    image_prefix: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> RankResult:
    """Rank a pool of photos by the committee's disagreement and pick ``budget`` of them to label.

    Args:
        committee: the members (:class:`~roomscan.active.committee.Committee`).
        source: a folder of images (recursive), ``Services`` (the catalog), or a :class:`PhotoPool`.
        score: a registry name of :data:`~roomscan.active.SCORES` (``bald``, ``entropy``...).
        budget: how many photos to pick; more than the pool warns (:class:`BudgetWarning`) and takes it all.
        diversity: pick by uncertainty then k-center on the committee's embeddings (no near-duplicates).
        class_balance: weight scores by the rarity of each photo's consensus classes; the counts come from
            ``class_counts``, else from the committee's own consensus over the pool.
        class_counts: labelled boxes per amenity slug, or a roomscan dataset folder to count them in (implies
            ``class_balance``).
        out_dir: where to write ``ranking.csv/json``, the contact sheet and Label Studio files (created).
        batch_size: images per forward pass; ``chunk_size``: images read and predicted at a time.
        iou_threshold: IoU for matching members' boxes; ``min_agreement``: the share of members a box needs to
            be a consensus box (and to count toward consensus class counts).
        image_prefix: put before each photo's ``ref`` in Label Studio's ``data.image``
            (``/data/local-files/?d=rooms/``, ``https://roomscan.example``).
        progress: called ``(photos done, pool size)`` after each chunk.

    Raises:
        RankError: an empty or missing folder, an empty catalog, no readable photo, a disagreement score
            with a one-member committee, a bad budget.
    """
    scorer = get_score(score)
    if committee.size == 1 and scorer.name in DISAGREEMENT_SCORES:
        raise RankError(
            f"score {scorer.name!r} measures disagreement between members, and this committee has one: add "
            "models (--model), MC dropout (--mc-dropout T) or test-time augmentation (--tta), or use entropy"
        )
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise RankError(f"budget must be a whole number of photos >= 1, got {budget!r}")
    if out_dir is not None:
        from roomscan.active.outputs import check_out_dir

        check_out_dir(out_dir)  # before the committee's long pass, not after it
    pool = _as_pool(source)
    taxonomy = committee.taxonomy
    if class_counts is not None and not isinstance(class_counts, Mapping):
        class_counts = dataset_class_counts(class_counts, taxonomy)  # a bad dataset fails before ranking too

    clusters: dict[str | int, Clusters] = {}
    sizes: dict[str | int, tuple[int, int]] = {}
    embeddings: dict[Hashable, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    by_id = {p.id: p for p in pool.photos}
    for start in range(0, len(pool.photos), chunk_size):
        chunk = pool.photos[start : start + chunk_size]
        loaded = []
        for photo in chunk:
            try:
                loaded.append((photo, photo.load()))
            except RoomscanError as exc:  # ImageError: unreadable, corrupt, truncated...
                skipped.append((photo.label, str(exc)))
            except OSError as exc:  # the photo store could not give the bytes
                skipped.append((photo.label, f"cannot be read ({exc})"))
        if loaded:
            images = [im for _, im in loaded]
            predictions = committee.predict(images, batch_size=batch_size)
            vectors = committee.embed(images, batch_size=batch_size) if diversity else None
            for i, ((photo, image), members) in enumerate(zip(loaded, predictions, strict=True)):
                clusters[photo.id] = match_members(
                    members, iou_threshold=iou_threshold, class_names=taxonomy.slugs, key=_text_key(photo.id)
                )
                sizes[photo.id] = image.size
                if vectors is not None:
                    embeddings[photo.id] = vectors[i]
        if progress is not None:
            progress(min(start + chunk_size, len(pool.photos)), len(pool.photos))

    if skipped:
        listed = "; ".join(f"{label}: {why}" for label, why in skipped)
        warnings.warn(
            f"skipped {len(skipped)} unreadable photo(s): {listed}", SkippedPhotosWarning, stacklevel=2
        )
    if not clusters:
        raise RankError(
            f"{pool.source}: none of the {len(pool.photos)} photo(s) could be read; nothing to rank"
        )

    short = budget > len(clusters)
    if short:
        warnings.warn(
            f"budget {budget} exceeds the pool of {len(clusters)} readable photo(s); ranking the whole pool",
            BudgetWarning,
            stacklevel=2,
        )
    n = min(int(budget), len(clusters))

    counts: Mapping[str, int] | None = None
    if class_counts is not None:
        counts = (
            class_counts
            if isinstance(class_counts, Mapping)
            else dataset_class_counts(class_counts, taxonomy)
        )
    elif class_balance:
        counts = consensus_class_counts(
            cast("Mapping[Hashable, Clusters]", clusters), min_agreement=min_agreement
        )

    # Known model errors first (by score), then the selection among the rest.
    known = [pid for pid in clusters if pid in pool.known_errors]
    known.sort(key=lambda pid: (-scorer.photo_score(clusters[pid]), str(pid)))
    first = known[:n]
    picks: list[tuple[str | int, float, str, bool]] = [
        (
            pid,
            scorer.photo_score(clusters[pid]),
            f"{pool.known_errors[pid]}; {scorer.explain(clusters[pid])}",
            True,
        )
        for pid in first
    ]
    rest: dict[Hashable, Clusters] = {pid: c for pid, c in clusters.items() if pid not in pool.known_errors}
    if n - len(first) > 0 and rest:
        selection = select_photos(
            rest,
            scorer,
            n - len(first),
            class_counts=counts,
            min_consensus=0.0,
            embeddings={pid: embeddings[pid] for pid in rest} if diversity else None,
        )
        picks += [(cast("str | int", pid), s, why, False) for pid, s, why in selection.rows()]

    registry = {name: get_score(name) for name in SCORES}
    ranked = tuple(
        RankedPhoto(
            rank=r,
            id=pid,
            label=by_id[pid].label,
            ref=image_prefix + _url_quoted(by_id[pid].ref, image_prefix),
            width=sizes[pid][0],
            height=sizes[pid][1],
            score=float(value),
            scores={name: float(s.photo_score(clusters[pid])) for name, s in registry.items()},
            why=why,
            consensus=consensus_boxes(clusters[pid], min_agreement=min_agreement),
            clusters=clusters[pid],
            known_error=is_known,
        )
        for r, (pid, value, why, is_known) in enumerate(picks, start=1)
    )
    result = RankResult(
        photos=ranked,
        pool_size=len(clusters),
        skipped=tuple(skipped),
        score=scorer.name,
        budget=int(budget),
        short=short,
        committee=committee.describe(),
        members=tuple(m.name for m in committee.members),
        model_version=committee.version,
        taxonomy=taxonomy,
        class_counts=dict(counts) if counts is not None else None,
    )
    if out_dir is not None:
        from dataclasses import replace

        from roomscan.active.outputs import write_outputs

        files = write_outputs(result, out_dir, load=lambda photo: by_id[photo.id].load())
        result = replace(result, files=files)
    return result
