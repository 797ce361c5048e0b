"""Match a committee's boxes on one photo into clusters: per member, a distribution over classes + "nothing".

A committee is K predictions of the same photo: K detectors, T MC-dropout passes, test-time-augmentation
variants, or teacher and student. Scores (:mod:`roomscan.active.scores`) compare the members cluster by
cluster, so the first step is deciding which boxes talk about the same object.

Matching is greedy and class-agnostic (an oven and a microwave in the same place are one object the members
disagree about, which is exactly what active learning wants to find):

1. Pool every box of every member and sort by confidence, highest first (ties: member order, then box order).
2. Each box not yet assigned seeds a new cluster.
3. Every *other* member contributes at most one box to it: its still-unassigned box with the highest IoU
   against the seed, if that IoU is at least ``iou_threshold``. A member therefore never has two boxes in one
   cluster, and every box ends up in exactly one cluster.
4. A member with no box in a cluster "saw nothing there": its distribution is one-hot on "nothing".

Each member's box becomes a distribution ``q`` over the C taxonomy classes plus "nothing" (the last column),
from its ``data["class_probs"]`` row ``p`` (``[C]``):

    q_c = p_c / max(1, sum(p)),    q_nothing = 1 - sum(q).

For a softmax row (sum <= 1, the remainder is "no object") this keeps ``p`` and puts the remainder
on "nothing"; for a sigmoid row (independent entries, the sum may exceed 1) it renormalises when the sum
passes 1, so a box that is confidently *something* leaves nothing for "nothing". A box without ``class_probs``
gets its confidence on its ``class_id`` and the rest on "nothing".

Example:
    >>> import numpy as np
    >>> from roomscan.detection.core import make_detections
    >>> a = make_detections([[0, 0, 10, 10]], [0.9], [0], ["oven"], class_probs=[[0.9, 0.1]])
    >>> b = make_detections([[1, 1, 10, 10]], [0.8], [1], ["microwave"], class_probs=[[0.2, 0.8]])
    >>> clusters = match_members([a, b])
    >>> clusters.probs.shape  # [m clusters, K members, C + 1]
    (1, 2, 3)
    >>> clusters.consensus_labels
    ('oven',)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from roomscan.detection.core import Detections

__all__ = ["Clusters", "box_iou", "match_members", "probs_to_distribution"]

CLASS_PROBS_KEY = "class_probs"
_LABEL_KEY = "class_name"  # roomscan.detection.core.LABEL_KEY, without importing supervision here


@dataclass(frozen=True, eq=False)
class Clusters:
    """One photo's committee predictions, matched into ``m`` clusters of at most one box per member.

    Attributes:
        probs: ``[m, K, C + 1]`` float64, per cluster and member a distribution over the C classes and
            "nothing" (last column); rows sum to 1. A member absent from a cluster is one-hot on "nothing".
        boxes: ``[m, K, 4]`` float64 ``xyxy``, NaN where the member has no box in the cluster.
        present: ``[m, K]`` bool, whether the member has a box in the cluster.
        confidence: ``[m, K]`` float64, the member's box confidence, 0 where absent.
        box_index: ``[m, K]`` int64, the box's index in that member's ``Detections``, -1 where absent.
        class_names: ``C`` names in taxonomy order (``"class 7"`` where no member named the class).
        key: the photo's id when the caller gave one (seeds :class:`~roomscan.active.scores.RandomScore`).
    """

    probs: np.ndarray
    boxes: np.ndarray
    present: np.ndarray
    confidence: np.ndarray
    box_index: np.ndarray
    class_names: tuple[str, ...]
    key: str | None = None

    def __post_init__(self) -> None:
        m, k, c1 = self.probs.shape
        if self.boxes.shape != (m, k, 4) or self.present.shape != (m, k) or self.confidence.shape != (m, k):
            raise ValueError("Clusters arrays disagree on the number of clusters or members")
        if self.box_index.shape != (m, k) or len(self.class_names) != c1 - 1:
            raise ValueError("Clusters: box_index or class_names has the wrong size")

    @classmethod
    def from_probs(
        cls,
        probs: np.ndarray | Sequence[Sequence[Sequence[float]]],
        *,
        boxes: np.ndarray | None = None,
        present: np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        key: str | None = None,
    ) -> Clusters:
        """Clusters straight from distributions ``[m, K, C + 1]`` (tests, replays, custom matchers).

        ``present`` defaults to every member present, ``boxes`` to the unit box ``[0, 0, 1, 1]``.
        """
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 3 or p.shape[2] < 1:
            raise ValueError(f"probs must be [m, K, C + 1], got shape {p.shape}")
        m, k, c1 = p.shape
        pres = np.ones((m, k), dtype=bool) if present is None else np.asarray(present, dtype=bool)
        if boxes is None:
            unit = np.array([0.0, 0.0, 1.0, 1.0])
            bx = np.where(pres[..., None], unit, np.nan)
        else:
            bx = np.where(pres[..., None], np.asarray(boxes, dtype=np.float64), np.nan)
        names = tuple(class_names) if class_names is not None else tuple(f"class {c}" for c in range(c1 - 1))
        return cls(
            probs=p,
            boxes=bx,
            present=pres,
            confidence=np.where(pres, 1.0 - p[..., -1], 0.0),
            box_index=np.where(pres, 0, -1),
            class_names=names,
            key=key,
        )

    def __len__(self) -> int:
        return self.probs.shape[0]

    @property
    def members(self) -> int:
        """K, the committee size."""
        return self.probs.shape[1]

    @property
    def num_classes(self) -> int:
        """C, the taxonomy size (without "nothing")."""
        return self.probs.shape[2] - 1

    @cached_property
    def mean_probs(self) -> np.ndarray:
        """``[m, C + 1]``: the committee's mean distribution per cluster (absent members say "nothing")."""
        if len(self) == 0:
            return np.zeros((0, self.num_classes + 1))
        return self.probs.mean(axis=1)

    @cached_property
    def consensus_boxes(self) -> np.ndarray:
        """``[m, 4]``: mean of the present members' boxes (every cluster has at least one)."""
        if len(self) == 0:
            return np.zeros((0, 4))
        return np.nanmean(self.boxes, axis=1)

    @cached_property
    def consensus_class(self) -> np.ndarray:
        """``[m]`` int: argmax over the C classes (not "nothing") of the mean distribution."""
        if len(self) == 0 or self.num_classes == 0:
            return np.zeros(len(self), dtype=np.int64)
        return self.mean_probs[:, :-1].argmax(axis=1)

    @cached_property
    def consensus_score(self) -> np.ndarray:
        """``[m]``: mean probability of the consensus class over all K members (few saw it: low)."""
        if len(self) == 0 or self.num_classes == 0:
            return np.zeros(len(self))
        return self.mean_probs[np.arange(len(self)), self.consensus_class]

    @property
    def consensus_labels(self) -> tuple[str, ...]:
        """The consensus class name of each cluster."""
        return tuple(self.class_names[c] for c in self.consensus_class) if self.num_classes else ()

    def member_counts(self, score_threshold: float = 0.0) -> np.ndarray:
        """``[K]`` int: how many boxes each member reported with confidence >= ``score_threshold``."""
        return (self.present & (self.confidence >= score_threshold)).sum(axis=0)

    def fingerprint(self) -> bytes:
        """A stable digest of the arrays (used when no ``key`` was given)."""
        h = hashlib.sha256()
        for arr in (self.probs, np.nan_to_num(self.boxes, nan=-1.0)):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        return h.digest()


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box ``[4]`` with each of ``boxes`` ``[n, 4]`` (identical zero-area boxes: 1)."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    same = np.all(boxes == box, axis=1)
    return np.where(same, 1.0, iou)


def probs_to_distribution(p: np.ndarray) -> np.ndarray:
    """Rows ``[n, C]`` of class probabilities -> ``[n, C + 1]`` distributions (last column "nothing").

    ``q_c = p_c / max(1, sum(p))``, ``q_nothing = 1 - sum(q)``: right for softmax rows (sum <= 1) and sigmoid
    rows (independent entries) alike. Entries are clipped to ``[0, 1]`` first.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = p / np.maximum(1.0, p.sum(axis=1, keepdims=True))
    nothing = np.clip(1.0 - q.sum(axis=1, keepdims=True), 0.0, 1.0)
    return np.concatenate([q, nothing], axis=1)


def _member_classes(dets: Detections) -> int | None:
    probs = dets.data.get(CLASS_PROBS_KEY)
    if probs is None:
        return None
    arr = np.asarray(probs)
    return int(arr.shape[1]) if arr.ndim == 2 else None


def _member_distributions(dets: Detections, index: int, num_classes: int) -> np.ndarray:
    """``[n, C + 1]`` for one member's boxes."""
    n = len(dets)
    probs = dets.data.get(CLASS_PROBS_KEY)
    if probs is not None:
        arr = np.asarray(probs, dtype=np.float64).reshape(n, num_classes)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"member {index} has non-finite class_probs")
        return probs_to_distribution(arr)
    class_id = np.asarray(dets.class_id if dets.class_id is not None else np.full(n, -1), dtype=np.int64)
    bad = (class_id < 0) | (class_id >= num_classes)
    if bad.any():
        raise ValueError(
            f"member {index} has no class_probs and class id {int(class_id[bad][0])} "
            f"outside 0..{num_classes - 1}"
        )
    conf = np.clip(_confidence(dets), 0.0, 1.0)
    out = np.zeros((n, num_classes + 1))
    out[np.arange(n), class_id] = conf
    out[:, -1] = 1.0 - conf
    return out


def _confidence(dets: Detections) -> np.ndarray:
    if dets.confidence is None:
        return np.ones(len(dets))
    return np.asarray(dets.confidence, dtype=np.float64).reshape(len(dets))


def _taxonomy_size(members: Sequence[Detections], num_classes: int | None) -> int:
    sizes = [(i, c) for i, c in enumerate(_member_classes(d) for d in members) if c is not None]
    for i, c in sizes[1:]:
        if c != sizes[0][1]:
            raise ValueError(
                f"members have different taxonomies: member {sizes[0][0]} has {sizes[0][1]} classes, "
                f"member {i} has {c}"
            )
    if sizes:
        if num_classes is not None and num_classes != sizes[0][1]:
            raise ValueError(
                f"members have different taxonomies: member {sizes[0][0]} has {sizes[0][1]} classes, "
                f"num_classes is {num_classes}"
            )
        return sizes[0][1]
    if num_classes is not None:
        return num_classes
    ids = [np.asarray(d.class_id) for d in members if d.class_id is not None and len(d)]
    return int(max(a.max() for a in ids)) + 1 if ids else 0


def _class_names(
    members: Sequence[Detections], num_classes: int, given: Sequence[str] | None
) -> tuple[str, ...]:
    if given is not None:
        if len(given) != num_classes:
            raise ValueError(f"class_names has {len(given)} names for {num_classes} classes")
        return tuple(str(n) for n in given)
    names = [f"class {c}" for c in range(num_classes)]
    for dets in members:
        labels = dets.data.get(_LABEL_KEY)
        if labels is None or dets.class_id is None:
            continue
        for cid, label in zip(np.asarray(dets.class_id), labels, strict=False):
            if 0 <= cid < num_classes and names[cid].startswith("class "):
                names[cid] = str(label)
    return tuple(names)


def match_members(
    members: Sequence[Detections],
    *,
    iou_threshold: float = 0.5,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    key: str | None = None,
) -> Clusters:
    """Cluster the committee's boxes on one photo (greedy, class-agnostic; see the module docstring).

    Args:
        members: K >= 1 predictions of the same photo, each with ``data["class_probs"]`` ``[n, C]`` when the
            backend gives it.
        iou_threshold: the IoU in ``(0, 1]`` a box needs with a cluster's seed box to join it.
        num_classes: C; needed only when no member carries ``class_probs`` (else it is checked against them).
            Without both, C is the largest ``class_id`` + 1.
        class_names: the C class names in taxonomy order; by default taken from the members' labels.
        key: the photo's id, kept on the result (seeds :class:`~roomscan.active.scores.RandomScore`).

    Returns:
        :class:`Clusters`, highest-confidence seed first.

    Raises:
        ValueError: no members, a threshold outside ``(0, 1]``, or members with different taxonomy sizes.
    """
    k = len(members)
    if k < 1:
        raise ValueError("a committee needs at least one member")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    c = _taxonomy_size(members, num_classes)
    names = _class_names(members, c, class_names)

    # The pool: every box of every member.
    owner = np.concatenate([np.full(len(d), i, dtype=np.int64) for i, d in enumerate(members)])
    local = np.concatenate([np.arange(len(d), dtype=np.int64) for d in members])
    xyxy = np.concatenate([np.asarray(d.xyxy, dtype=np.float64).reshape(-1, 4) for d in members])  # [N, 4]
    conf = np.concatenate([_confidence(d) for d in members])  # [N]
    dist = np.concatenate([_member_distributions(d, i, c) for i, d in enumerate(members)])  # [N, C + 1]
    if not np.all(np.isfinite(xyxy)):
        raise ValueError("a member has a non-finite box")

    order = np.lexsort((local, owner, -conf))  # by confidence, then member, then box
    assigned = np.zeros(len(owner), dtype=bool)
    rows: list[np.ndarray] = []  # each [K]: pool index per member, -1 where absent
    for seed in order:
        if assigned[seed]:
            continue
        row = np.full(k, -1, dtype=np.int64)
        row[owner[seed]] = seed
        assigned[seed] = True
        open_ = np.flatnonzero(~assigned & (owner != owner[seed]))  # candidates from the other members
        iou = box_iou(xyxy[seed], xyxy[open_])
        hit, iou = open_[iou >= iou_threshold], iou[iou >= iou_threshold]
        # per member the best IoU; ties go to the higher confidence, then the earlier box
        for j in np.lexsort((local[hit], -conf[hit], -iou, owner[hit])):
            if row[owner[hit[j]]] < 0:
                row[owner[hit[j]]] = hit[j]
                assigned[hit[j]] = True
        rows.append(row)

    m = len(rows)
    idx = np.stack(rows) if rows else np.zeros((0, k), dtype=np.int64)  # [m, K]
    present = idx >= 0
    safe = np.where(present, idx, 0)
    nothing = np.zeros(c + 1)
    nothing[-1] = 1.0
    if len(owner):
        probs = np.where(present[..., None], dist[safe], nothing)  # [m, K, C + 1]
        boxes = np.where(present[..., None], xyxy[safe], np.nan)  # [m, K, 4]
        confidence = np.where(present, conf[safe], 0.0)
        box_index = np.where(present, local[safe], -1)
    else:
        probs, boxes = np.zeros((m, k, c + 1)), np.zeros((m, k, 4))
        confidence, box_index = np.zeros((m, k)), np.zeros((m, k), dtype=np.int64)
    return Clusters(
        probs=probs,
        boxes=boxes,
        present=present,
        confidence=confidence,
        box_index=box_index,
        class_names=names,
        key=key,
    )
