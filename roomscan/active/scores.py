"""How informative a photo is, from its committee's disagreement: one small class per score.

Every score reads a :class:`~roomscan.active.matching.Clusters` and overrides one method, ``box_scores`` (one
value per cluster, ``[m]``); the base class turns those into ``photo_score`` by its ``aggregate`` (``"max"``,
``"mean"`` or ``"sum"``; each score documents its default, the constructor overrides it). Higher always means
more informative, every value is finite and >= 0, and a photo with no clusters scores 0: when every member saw
nothing there, the committee agrees.

The scores (registry name, per-cluster value, default aggregate):

* ``entropy``: entropy of the members' mean distribution, in nats; max.
* ``bald``: entropy of the mean minus the mean of the members' entropies; max.
* ``box-variance``: 1 - mean IoU of the present members' boxes with the consensus box; max.
* ``count``: photo-level, the variance of the members' box counts (per cluster: 1 - the fraction of members
  that reported it).
* ``least-confidence``: 1 - the largest probability of the mean distribution, "nothing" included; max.
* ``random``: the control, uniform in [0, 1), seeded by ``seed`` and the photo's key; max.

Example:
    >>> import numpy as np
    >>> from roomscan.active.matching import Clusters
    >>> agree = Clusters.from_probs([[[0.9, 0.1], [0.9, 0.1]]])  # 1 cluster, 2 members, C = 1 + "nothing"
    >>> float(BALD().photo_score(agree))
    0.0
    >>> disagree = Clusters.from_probs([[[1.0, 0.0], [0.0, 1.0]]])
    >>> round(BALD().photo_score(disagree), 4)  # log 2
    0.6931
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np

from roomscan.active.matching import Clusters

__all__ = [
    "BALD",
    "SCORES",
    "Aggregate",
    "BoxVariance",
    "CountDisagreement",
    "Entropy",
    "LeastConfidence",
    "MutualInformation",
    "RandomScore",
    "Score",
    "entropy",
    "get_score",
]

Aggregate = Literal["max", "mean", "sum"]
_AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "max": lambda s: float(np.max(s)),
    "mean": lambda s: float(np.mean(s)),
    "sum": lambda s: float(np.sum(s)),
}


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats along the last axis (``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.maximum(-terms.sum(axis=-1), 0.0)


class Score(ABC):
    """Base class: subclasses set ``name`` and ``default_aggregate`` and override :meth:`box_scores`.

    Args:
        aggregate: how cluster scores become the photo's, ``"max"``, ``"mean"`` or ``"sum"``; the class
            default when ``None``. ``max`` ranks a photo by its most contested object, ``sum`` favours busy
            photos, ``mean`` dilutes one contested object among easy ones.
    """

    name: ClassVar[str]
    default_aggregate: ClassVar[Aggregate] = "max"

    def __init__(self, *, aggregate: Aggregate | None = None) -> None:
        agg = aggregate or self.default_aggregate
        if agg not in _AGGREGATES:
            raise ValueError(f"unknown aggregate {agg!r}; choose one of {', '.join(_AGGREGATES)}")
        self.aggregate: Aggregate = agg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(aggregate={self.aggregate!r})"

    @abstractmethod
    def box_scores(self, clusters: Clusters) -> np.ndarray:
        """``[m]`` informativeness of each cluster, finite and >= 0."""

    def photo_score(self, clusters: Clusters) -> float:
        """The photo's score: ``aggregate`` of :meth:`box_scores`, 0 for a photo with no clusters."""
        if len(clusters) == 0:
            return 0.0
        return _AGGREGATES[self.aggregate](self.box_scores(clusters))

    def explain(self, clusters: Clusters) -> str:
        """A short account of the photo's score, e.g. ``"bald 0.62 (max over 3 boxes)"``."""
        m = len(clusters)
        boxes = "box" if m == 1 else "boxes"
        return f"{self.name} {self.photo_score(clusters):.2f} ({self.aggregate} over {m} {boxes})"


class Entropy(Score):
    """Entropy (nats) of the committee's mean distribution per cluster: high when the pooled members waver.

    Counts both kinds of uncertainty: members that agree on a 50/50 guess score as high as members that
    confidently contradict each other (use :class:`BALD` to tell them apart). At most ``log(C + 1)``.
    """

    name = "entropy"

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        return entropy(clusters.mean_probs)  # [m]


class BALD(Score):
    """Mutual information between prediction and committee member (Houlsby et al. 2011; baal's ``BALD``).

    ``H(mean_k q_k) - mean_k H(q_k)``: 0 when every member gives the same distribution, however unsure, and up
    to ``log(min(K, C + 1))`` when members confidently name different outcomes (a member that saw nothing
    where the others saw an oven is one of them). Never above :class:`Entropy`.
    """

    name = "bald"

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        probs = clusters.probs  # [m, K, C + 1]
        if len(clusters) == 0:
            return np.zeros(0)
        mi = entropy(probs.mean(axis=1)) - entropy(probs).mean(axis=1)  # [m]
        agree = np.all(probs == probs[:, :1], axis=(1, 2))  # exact 0, not rounding noise, when members agree
        return np.where(agree, 0.0, np.maximum(mi, 0.0))


MutualInformation = BALD


class LeastConfidence(Score):
    """``1 - max_j mean_q[j]`` over all C + 1 outcomes, "nothing" included.

    Including "nothing" means a faint box that the committee agrees is background is *not* uncertain; the
    score is high where the pooled committee cannot settle on one class, nor on whether there is an object at
    all. At most ``C / (C + 1)``.
    """

    name = "least-confidence"

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        if len(clusters) == 0:
            return np.zeros(0)
        return np.clip(1.0 - clusters.mean_probs.max(axis=1), 0.0, 1.0)


class BoxVariance(Score):
    """Localisation disagreement: ``1 - mean IoU`` of the members' boxes with the consensus (mean) box.

    By default only present members count, so a cluster one member saw scores 0 here: whether the object is
    there at all is :class:`BALD`'s and :class:`CountDisagreement`'s question, and keeping it out leaves this
    a pure localisation score. ``absent_as_miss=True`` counts an absent member as IoU 0 instead. In
    ``[0, 1]``.

    Args:
        absent_as_miss: count members without a box in the cluster as IoU 0 with the consensus.
        aggregate: see :class:`Score`.
    """

    name = "box-variance"

    def __init__(self, *, absent_as_miss: bool = False, aggregate: Aggregate | None = None) -> None:
        super().__init__(aggregate=aggregate)
        self.absent_as_miss = absent_as_miss

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        if len(clusters) == 0:
            return np.zeros(0)
        boxes, present = clusters.boxes, clusters.present  # [m, K, 4], [m, K]
        cons = clusters.consensus_boxes[:, None, :]  # [m, 1, 4]
        lo = np.maximum(boxes[..., :2], cons[..., :2])  # [m, K, 2]
        hi = np.minimum(boxes[..., 2:], cons[..., 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)  # [m, K]
        area = np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)
        c_area = np.prod(np.clip(cons[..., 2:] - cons[..., :2], 0, None), axis=-1)
        union = area + c_area - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            # zero-area boxes (union 0) count as agreeing
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)  # [m, K]
        iou = np.where(present, np.nan_to_num(iou, nan=0.0), 0.0)
        n = clusters.members if self.absent_as_miss else present.sum(axis=1)
        return np.clip(1.0 - iou.sum(axis=1) / np.maximum(n, 1), 0.0, 1.0)


class CountDisagreement(Score):
    """How much the members disagree on *how many* objects the photo holds: a photo-level score.

    ``photo_score`` is the population variance over members of the number of boxes each reported with
    confidence >= ``score_threshold`` (it overrides the base aggregate; 0 when all counts are equal, including
    a photo nobody saw anything in). ``box_scores`` gives the per-cluster view for explanations and box-level
    use: ``1 -`` the fraction of members that reported the cluster above the threshold.

    Args:
        score_threshold: the confidence a box needs to count.
    """

    name = "count"

    def __init__(self, *, score_threshold: float = 0.5, aggregate: Aggregate | None = None) -> None:
        super().__init__(aggregate=aggregate)
        self.score_threshold = score_threshold

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        if len(clusters) == 0:
            return np.zeros(0)
        seen = clusters.present & (clusters.confidence >= self.score_threshold)  # [m, K]
        return 1.0 - seen.mean(axis=1)

    def photo_score(self, clusters: Clusters) -> float:
        if len(clusters) == 0:
            return 0.0
        return float(np.var(clusters.member_counts(self.score_threshold).astype(np.float64)))

    def explain(self, clusters: Clusters) -> str:
        counts = clusters.member_counts(self.score_threshold)
        lo, hi = (int(counts.min()), int(counts.max())) if len(counts) else (0, 0)
        return f"{self.name} {self.photo_score(clusters):.2f} (members report {lo}-{hi} boxes)"


class RandomScore(Score):
    """The control: a uniform draw in ``[0, 1)`` per cluster, the same for the same ``seed`` and photo.

    The photo is identified by ``clusters.key`` (give ``match_members(..., key=photo_id)``), or by a digest of
    its arrays when it has none. Like every score, a photo with no clusters scores 0.

    Args:
        seed: the experiment's seed.
    """

    name = "random"

    def __init__(self, seed: int = 0, *, aggregate: Aggregate | None = None) -> None:
        super().__init__(aggregate=aggregate)
        self.seed = seed

    def box_scores(self, clusters: Clusters) -> np.ndarray:
        ident = clusters.key.encode() if clusters.key is not None else clusters.fingerprint()
        photo = int.from_bytes(hashlib.sha256(ident).digest()[:8], "little")
        return np.random.default_rng([self.seed, photo]).random(len(clusters))


SCORES: dict[str, type[Score]] = {
    "entropy": Entropy,
    "bald": BALD,
    "box-variance": BoxVariance,
    "count": CountDisagreement,
    "least-confidence": LeastConfidence,
    "random": RandomScore,
}


def get_score(name: str | Score, **kwargs: object) -> Score:
    """A score by registry name (``"bald"``...) and constructor arguments; a :class:`Score` passes through.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(name, Score):
        return name
    try:
        cls = SCORES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown score {name!r}; choose one of {', '.join(SCORES)}") from None
    return cls(**kwargs)  # type: ignore[arg-type]
