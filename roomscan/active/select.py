"""Pick the batch of photos to label next: by score, by diversity, and with a boost for rare amenities.

* :func:`top_n`: the ``budget`` highest scores (ties by id).
* :func:`k_center_greedy`: core-set selection (Sener & Savarese 2018), spread-out points in embedding space.
* :func:`uncertainty_diversity`: the top ``candidates_factor * budget`` by score, then k-center among them, so
  a batch is not ten near-copies of the same contested kitchen.
* :func:`class_balance_weights` / :func:`class_balanced`: multiply a photo's score by the rarity of the
  amenities it contains, so a contested dishwasher (92 labelled boxes) beats an equally contested staircase
  (5,981).
* :func:`select_photos`: all of it from per-photo :class:`~roomscan.active.matching.Clusters`, a "why" per
  pick.

No selector returns an id twice. A budget larger than the pool returns the whole pool, warns
(:class:`BudgetWarning`) and sets :attr:`Selection.short`.

Example:
    >>> sel = top_n({"a.jpg": 0.2, "b.jpg": 0.9, "c.jpg": 0.9}, 2)
    >>> sel.ids
    ('b.jpg', 'c.jpg')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from roomscan.active.matching import Clusters
from roomscan.active.scores import Score, get_score

__all__ = [
    "BudgetWarning",
    "Selection",
    "class_balance_weights",
    "class_balanced",
    "k_center_greedy",
    "photo_class_weight",
    "select_photos",
    "top_n",
    "uncertainty_diversity",
]

Metric = Literal["euclidean", "cosine"]
ScoresLike = Mapping[Hashable, float] | Sequence[float] | np.ndarray


class BudgetWarning(UserWarning):
    """The budget asked for more photos than the pool holds; the whole pool was returned."""


@dataclass(frozen=True)
class Selection:
    """A batch to label, in pick order.

    Attributes:
        ids: the picked photo ids (indices when the scores came as a sequence), never repeated.
        scores: each pick's score (after any class-balance weight).
        why: a short reason per pick, e.g. ``"bald 0.62 (max over 3 boxes); rare: dishwasher x4.7"``.
        short: True when the budget exceeded the pool and the whole pool was returned.
    """

    ids: tuple[Hashable, ...]
    scores: tuple[float, ...]
    why: tuple[str, ...]
    short: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.ids)

    def rows(self) -> list[tuple[Hashable, float, str]]:
        """``(id, score, why)`` per pick, in order."""
        return list(zip(self.ids, self.scores, self.why, strict=True))


def _as_pool(scores: ScoresLike) -> tuple[list[Hashable], np.ndarray]:
    if isinstance(scores, Mapping):
        ids: list[Hashable] = list(scores)
        values = np.array([float(scores[i]) for i in ids], dtype=np.float64)
    else:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        ids = list(range(len(values)))
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    return ids, values


def _check_budget(budget: int, pool: int) -> tuple[int, bool]:
    if isinstance(budget, bool) or int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a whole number >= 0, got {budget!r}")
    if budget > pool:
        warnings.warn(f"budget {budget} exceeds the pool of {pool}; returning the whole pool", BudgetWarning,
                      stacklevel=3)
        return pool, True
    return int(budget), False


def _id_order(ids: Sequence[Hashable]) -> np.ndarray:
    """Rank of each id in sorted order (ids of mixed types sort by their string form)."""
    try:
        order = sorted(range(len(ids)), key=lambda i: ids[i])  # type: ignore[arg-type,return-value]
    except TypeError:
        order = sorted(range(len(ids)), key=lambda i: (type(ids[i]).__name__, str(ids[i])))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


def top_n(scores: ScoresLike, budget: int, *, why: Mapping[Hashable, str] | None = None) -> Selection:
    """The ``budget`` highest-scored ids, highest first, ties broken by id (ascending).

    Args:
        scores: ``{id: score}``, or a sequence whose indices are the ids.
        budget: how many to pick; more than the pool returns the whole pool with a :class:`BudgetWarning`.
        why: an optional reason per id (default: ``"score 0.62"``).
    """
    ids, values = _as_pool(scores)
    n, short = _check_budget(budget, len(ids))
    order = np.lexsort((_id_order(ids), -values))[:n]
    picked = [ids[i] for i in order]
    return Selection(
        ids=tuple(picked),
        scores=tuple(float(values[i]) for i in order),
        why=tuple((why or {}).get(p, f"score {values[i]:.2f}") for p, i in zip(picked, order, strict=True)),
        short=short,
    )


def _prepare(embeddings: np.ndarray, metric: Metric) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [n, d], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or inf")
    if metric == "cosine":  # Euclidean distance of unit vectors is monotone in cosine distance
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    elif metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}; choose euclidean or cosine")
    return x


def k_center_greedy(
    embeddings: np.ndarray,
    budget: int,
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    already_selected: Iterable[int] | None = None,
    seed: int = 0,
    metric: Metric = "euclidean",
) -> np.ndarray:
    """Core-set greedy selection (Sener & Savarese 2018): each pick is the point farthest from those chosen.

    The first pick, when nothing is ``already_selected``, is the highest-scored point if ``scores`` are given,
    else a seeded random one. Ties in distance go to the higher score, then the lower index; duplicate
    embeddings are at distance 0 and come last. ``already_selected`` points (e.g. the labelled set) cover
    space but are never returned.

    Args:
        embeddings: ``[n, d]`` photo embeddings.
        budget: how many indices to return; more than the unselected pool returns it all with a
            :class:`BudgetWarning`.
        scores: ``[n]`` optional scores for the first pick and for ties.
        already_selected: indices already labelled or chosen.
        seed: seeds the first pick when there are neither scores nor already-selected points.
        metric: ``"euclidean"``, or ``"cosine"`` (Euclidean on L2-normalised rows).

    Returns:
        ``[budget]`` int64 indices in pick order, none repeated, none from ``already_selected``.
    """
    x = _prepare(embeddings, metric)  # [n, d]
    n = len(x)
    s = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if s is not None and len(s) != n:
        raise ValueError(f"scores has {len(s)} entries for {n} embeddings")
    taken = np.zeros(n, dtype=bool)
    for i in () if already_selected is None else already_selected:
        if not 0 <= int(i) < n:
            raise ValueError(f"already_selected index {i} is outside 0..{n - 1}")
        taken[int(i)] = True
    k, _ = _check_budget(budget, int((~taken).sum()))
    picks: list[int] = []
    mind = np.full(n, np.inf)  # [n] distance to the nearest chosen point
    for c in np.flatnonzero(taken):
        mind = np.minimum(mind, np.linalg.norm(x - x[c], axis=1))
    for _ in range(k):
        if not taken.any():
            if s is not None:
                first = int(np.flatnonzero(s == s.max())[0])
            else:
                first = int(np.random.default_rng(seed).integers(n))
        else:
            d = np.where(taken, -np.inf, mind)
            ties = np.flatnonzero(d == d.max())
            first = int(ties[np.argmax(s[ties])]) if s is not None else int(ties[0])
        picks.append(first)
        taken[first] = True
        mind = np.minimum(mind, np.linalg.norm(x - x[first], axis=1))
    return np.asarray(picks, dtype=np.int64)


def uncertainty_diversity(
    scores: ScoresLike,
    embeddings: np.ndarray | Mapping[Hashable, np.ndarray],
    budget: int,
    *,
    candidates_factor: float = 4.0,
    metric: Metric = "euclidean",
    why: Mapping[Hashable, str] | None = None,
) -> Selection:
    """The top ``ceil(candidates_factor * budget)`` by score, then :func:`k_center_greedy` among them.

    Uncertainty picks what the committee disputes; k-center keeps the batch from being near-duplicates of one
    disputed scene. The k-center walk starts from the highest-scored candidate, so the batch always holds the
    single most informative photo. ``candidates_factor=1`` is plain :func:`top_n` (in k-center order).

    Args:
        scores: ``{id: score}`` or a sequence (ids are indices).
        embeddings: ``{id: vector}``, or ``[n, d]`` rows in the order of ``scores``.
        budget: batch size (more than the pool: the whole pool, with a :class:`BudgetWarning`).
        candidates_factor: >= 1, how many candidates per pick go to the diversity step.
        metric: see :func:`k_center_greedy`.
        why: optional reason per id.
    """
    if candidates_factor < 1:
        raise ValueError(f"candidates_factor must be >= 1, got {candidates_factor}")
    ids, values = _as_pool(scores)
    n, short = _check_budget(budget, len(ids))
    pool = top_n(dict(zip(ids, values, strict=True)), min(len(ids), math.ceil(candidates_factor * n)))
    if isinstance(embeddings, Mapping):
        emb = np.stack([np.asarray(embeddings[i], dtype=np.float64) for i in pool.ids]) if len(pool) else None
    else:
        allx = np.asarray(embeddings, dtype=np.float64)
        if len(allx) != len(ids):
            raise ValueError(f"embeddings has {len(allx)} rows for {len(ids)} scores")
        row = {i: r for r, i in enumerate(ids)}
        emb = allx[[row[i] for i in pool.ids]] if len(pool) else None
    order = np.zeros(0, np.int64) if emb is None else k_center_greedy(emb, n, scores=np.asarray(pool.scores))
    reasons = why or {}
    picked = [pool.ids[i] for i in order]
    return Selection(
        ids=tuple(picked),
        scores=tuple(pool.scores[i] for i in order),
        why=tuple(
            f"{reasons.get(p, f'score {pool.scores[i]:.2f}')}; diverse: pick {j + 1} of top {len(pool)}"
            for j, (p, i) in enumerate(zip(picked, order, strict=True))
        ),
        short=short,
    )


def class_balance_weights(counts_per_class: Mapping[str, int], *, alpha: float = 0.5) -> dict[str, float]:
    """Rarity weight per class: ``w_c = (N / (C * max(n_c, 1))) ** alpha``.

    ``N`` is the total count, ``C`` the number of classes, so a class at the average frequency weighs 1, rarer
    classes more. ``alpha=1`` is inverse frequency, ``0`` switches balancing off; the default ``0.5`` (square
    root, as in LVIS's repeat-factor sampling) boosts without letting one rare class take the whole batch.

    Example:
        >>> w = class_balance_weights({"dishwasher": 92, "stairs": 5981})
        >>> w["dishwasher"] > 1 > w["stairs"]
        True
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if any(v < 0 for v in counts_per_class.values()):
        raise ValueError("class counts must be >= 0")
    c = len(counts_per_class)
    total = sum(counts_per_class.values())
    if c == 0 or total == 0:
        return {k: 1.0 for k in counts_per_class}
    return {k: float((total / (c * max(v, 1))) ** alpha) for k, v in counts_per_class.items()}


def photo_class_weight(classes: Iterable[str], weights: Mapping[str, float]) -> tuple[float, str | None]:
    """A photo's weight, the max over its classes, and the class that gave it.

    A class missing from ``weights`` (never labelled) weighs as much as the rarest known class; a photo with
    no classes weighs 1.
    """
    rarest = max(weights.values(), default=1.0)
    best, who = 1.0, None
    for name in classes:
        w = weights.get(name, rarest)
        if who is None or w > best:
            best, who = w, name
    return (best, who) if who is not None else (1.0, None)


def class_balanced(
    scores: Mapping[Hashable, float],
    photo_classes: Mapping[Hashable, Iterable[str]],
    weights: Mapping[str, float],
) -> dict[Hashable, float]:
    """Each photo's score times :func:`photo_class_weight` of its (consensus) classes."""
    return {i: float(s) * photo_class_weight(photo_classes.get(i, ()), weights)[0] for i, s in scores.items()}


def select_photos(
    photos: Mapping[Hashable, Clusters],
    score: str | Score,
    budget: int,
    *,
    class_counts: Mapping[str, int] | None = None,
    alpha: float = 0.5,
    min_consensus: float = 0.0,
    embeddings: Mapping[Hashable, np.ndarray] | None = None,
    candidates_factor: float = 4.0,
) -> Selection:
    """Score every photo's clusters and pick a batch, each pick with its reason.

    Args:
        photos: ``{photo id: Clusters}`` (from :func:`~roomscan.active.matching.match_members`).
        score: a :class:`~roomscan.active.scores.Score` or its registry name.
        budget: batch size.
        class_counts: labelled boxes per class name; when given, scores are multiplied by the rarity of the
            photo's consensus classes (:func:`class_balance_weights` with ``alpha``).
        alpha: see :func:`class_balance_weights`.
        min_consensus: the consensus score a cluster needs for its class to count toward the rarity boost.
        embeddings: ``{photo id: vector}``; when given, :func:`uncertainty_diversity`, else :func:`top_n`.
        candidates_factor: see :func:`uncertainty_diversity`.

    Example:
        >>> from roomscan.active.matching import Clusters
        >>> split = Clusters.from_probs([[[1.0, 0.0], [0.0, 1.0]]])  # two members: object vs nothing
        >>> photos = {"p1": split, "p2": Clusters.from_probs([[[1.0, 0.0]]])}
        >>> select_photos(photos, "bald", 1).why
        ('bald 0.69 (max over 1 box)',)
    """
    scorer = get_score(score)
    values = {pid: scorer.photo_score(c) for pid, c in photos.items()}
    why = {pid: scorer.explain(c) for pid, c in photos.items()}
    if class_counts is not None:
        weights = class_balance_weights(class_counts, alpha=alpha)
        for pid, c in photos.items():
            confident = c.consensus_score >= min_consensus
            classes = [lab for lab, ok in zip(c.consensus_labels, confident, strict=True) if ok]
            w, who = photo_class_weight(classes, weights)
            values[pid] *= w
            if who is not None and w > 1.0:
                why[pid] += f"; rare: {who} x{w:.1f}"
    if embeddings is not None:
        return uncertainty_diversity(values, embeddings, budget, candidates_factor=candidates_factor, why=why)
    return top_n(values, budget, why=why)
