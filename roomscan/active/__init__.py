"""Active learning by committee disagreement: which photos to label next.

A committee (K detectors, T MC-dropout passes, test-time augmentations, or teacher and student) predicts each
photo; :func:`match_members` matches the members' boxes into clusters, a :class:`Score` turns each photo's
disagreement into a number (higher = more informative), and :mod:`roomscan.active.select` picks a batch.
numpy only.

Example:
    >>> from roomscan.detection.core import make_detections
    >>> teacher = make_detections([[0, 0, 10, 10]], [0.9], [0], ["oven"], class_probs=[[0.9, 0.05]])
    >>> student = make_detections([[0, 0, 10, 10]], [0.8], [1], ["microwave"], class_probs=[[0.1, 0.8]])
    >>> photos = {"p1": match_members([teacher, student], key="p1")}
    >>> select_photos(photos, "bald", 1).ids
    ('p1',)
"""

from __future__ import annotations

from roomscan.active.matching import Clusters, box_iou, match_members, probs_to_distribution
from roomscan.active.scores import (
    BALD,
    SCORES,
    BoxVariance,
    CountDisagreement,
    Entropy,
    LeastConfidence,
    MutualInformation,
    RandomScore,
    Score,
    entropy,
    get_score,
)
from roomscan.active.select import (
    BudgetWarning,
    Selection,
    class_balance_weights,
    class_balanced,
    k_center_greedy,
    photo_class_weight,
    select_photos,
    top_n,
    uncertainty_diversity,
)
from roomscan.active.committee import Committee, CommitteeError, Member
from roomscan.active.rank import RankedPhoto, RankError, RankResult

__all__ = [
    "BALD",
    "SCORES",
    "BoxVariance",
    "BudgetWarning",
    "Clusters",
    "CountDisagreement",
    "Entropy",
    "LeastConfidence",
    "MutualInformation",
    "RandomScore",
    "Score",
    "Selection",
    "box_iou",
    "class_balance_weights",
    "class_balanced",
    "entropy",
    "get_score",
    "k_center_greedy",
    "match_members",
    "photo_class_weight",
    "probs_to_distribution",
    "select_photos",
    "top_n",
    "uncertainty_diversity",
    "Committee",
    "CommitteeError",
    "Member",
    "RankError",
    "RankResult",
    "RankedPhoto",
]
