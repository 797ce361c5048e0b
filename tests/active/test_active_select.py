"""Batch selection: order and ties, no duplicates, k-center spread, budgets past the pool, class balance."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from roomscan.active import (
    BudgetWarning,
    Clusters,
    class_balance_weights,
    class_balanced,
    k_center_greedy,
    match_members,
    photo_class_weight,
    select_photos,
    top_n,
    uncertainty_diversity,
)
from roomscan.detection.core import make_detections


def test_top_n_highest_first_ties_by_id():
    sel = top_n({"c": 0.5, "a": 0.5, "b": 0.9, "d": 0.1}, 3)
    assert sel.ids == ("b", "a", "c")
    assert sel.scores == (0.9, 0.5, 0.5)
    assert not sel.short and len(sel) == 3 and list(sel) == ["b", "a", "c"]


def test_top_n_on_a_sequence_uses_indices():
    assert top_n([0.1, 0.7, 0.7, 0.3], 2).ids == (1, 2)


def test_budget_past_the_pool_returns_the_pool_and_warns():
    with pytest.warns(BudgetWarning, match="budget 5 exceeds the pool of 2"):
        sel = top_n({"a": 1.0, "b": 2.0}, 5)
    assert sel.ids == ("b", "a") and sel.short


@pytest.mark.parametrize("budget", [-1, 1.5])
def test_bad_budget_is_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        top_n([0.1], budget)


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        top_n([0.1, float("nan")], 1)


def test_selectors_never_return_a_photo_twice():
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        for _ in range(100):
            n = int(rng.integers(0, 30))
            scores = {f"p{i}": float(v) for i, v in enumerate(rng.integers(0, 3, n) / 2)}  # many ties
            emb = rng.normal(size=(n, 3)).round(0)  # many duplicate embeddings
            budget = int(rng.integers(0, n + 5))
            diverse = uncertainty_diversity(scores, emb, budget, candidates_factor=2)
            for sel in (top_n(scores, budget), diverse):
                assert len(set(sel.ids)) == len(sel.ids) == min(budget, n)
            already = rng.choice(n, size=min(n, 3), replace=False) if n else []
            picks = k_center_greedy(emb, budget, already_selected=already, seed=1)
            assert len(set(picks.tolist())) == len(picks) == min(budget, n - len(already))
            assert not set(picks.tolist()) & set(np.asarray(already).tolist())


def test_k_center_takes_one_point_from_each_tight_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    emb = np.concatenate([c + rng.normal(scale=0.5, size=(10, 2)) for c in centres])
    for kwargs in ({}, {"scores": rng.uniform(size=30)}, {"seed": 5}, {"metric": "euclidean"}):
        picks = k_center_greedy(emb, 3, **kwargs)
        assert sorted(p // 10 for p in picks) == [0, 1, 2]


def test_k_center_starts_from_the_highest_score_and_skips_the_labelled_region():
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0], [5.0, 5.0]])
    assert k_center_greedy(emb, 1, scores=[0, 0, 0, 0.9, 0])[0] == 3
    picks = k_center_greedy(emb, 2, already_selected=[0, 2])
    assert picks[0] == 4  # farthest from the labelled points


def test_k_center_on_duplicates_and_cosine():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    picks = k_center_greedy(emb, 4, scores=[0.9, 0.1, 0.2, 0.3], metric="cosine")
    # [1,0], [1,0] and [2,0] are one direction: after [0,3], the rest are all at cosine distance 0
    assert picks.tolist()[:2] == [0, 3] and sorted(picks.tolist()) == [0, 1, 2, 3]
    with pytest.warns(BudgetWarning):
        assert len(k_center_greedy(emb, 10)) == 4


def test_uncertainty_diversity_prefers_spread_among_the_uncertain():
    # four near-identical uncertain photos, one different and slightly less uncertain, one certain far away
    emb = {"a": [0, 0], "b": [0, 0.1], "c": [0.1, 0], "d": [0.1, 0.1], "e": [5, 5], "f": [100, 100]}
    scores = {"a": 0.9, "b": 0.89, "c": 0.88, "d": 0.87, "e": 0.8, "f": 0.0}
    assert top_n(scores, 2).ids == ("a", "b")
    sel = uncertainty_diversity(scores, emb, 2, candidates_factor=2.5)
    assert sel.ids == ("a", "e")  # candidates: the top 5; "f" is far away but never one of them
    assert uncertainty_diversity(scores, emb, 2, candidates_factor=3).ids == ("a", "f")
    assert "diverse" in sel.why[1]


def test_class_balance_weights_formula():
    w = class_balance_weights({"dishwasher": 92, "stairs": 5981, "oven": 1000}, alpha=1.0)
    total = 92 + 5981 + 1000
    assert w["dishwasher"] == pytest.approx(total / (3 * 92))
    assert w["stairs"] == pytest.approx(total / (3 * 5981))
    assert class_balance_weights({"a": 10, "b": 1000}, alpha=0.0) == {"a": 1.0, "b": 1.0}
    assert photo_class_weight(["stairs", "dishwasher"], w) == (w["dishwasher"], "dishwasher")
    assert photo_class_weight([], w) == (1.0, None)
    assert photo_class_weight(["sauna"], w)[0] == max(w.values())  # never labelled: as rare as the rarest


def test_class_balance_ranks_a_rare_class_photo_above_an_equally_uncertain_common_one():
    counts = {"dishwasher": 92, "stairs": 5981}
    weights = class_balance_weights(counts)
    scores = {"kitchen.jpg": 0.5, "hall.jpg": 0.5}
    boosted = class_balanced(scores, {"kitchen.jpg": ["dishwasher"], "hall.jpg": ["stairs"]}, weights)
    assert top_n(boosted, 1).ids == ("kitchen.jpg",)

    def photo(cls, key):  # two members, same box, a 50/50 split between the class and nothing vs confident
        names = ["dishwasher", "stairs"]
        probs = np.zeros((1, 2), dtype=np.float32)
        probs[0, cls] = 0.9
        sure = make_detections([[0, 0, 10, 10]], [0.9], [cls], [names[cls]], class_probs=probs)
        unsure = make_detections([[0, 0, 10, 10]], [0.3], [cls], [names[cls]], class_probs=probs / 3)
        return match_members([sure, unsure], key=key, class_names=names)

    photos = {"hall.jpg": photo(1, "hall.jpg"), "kitchen.jpg": photo(0, "kitchen.jpg")}
    plain = select_photos(photos, "bald", 2)
    assert plain.scores[0] == pytest.approx(plain.scores[1]) and plain.ids == ("hall.jpg", "kitchen.jpg")
    sel = select_photos(photos, "bald", 2, class_counts=counts)
    assert sel.ids == ("kitchen.jpg", "hall.jpg")
    assert sel.why[0].startswith("bald ") and "(max over 1 box)" in sel.why[0]
    assert "rare: dishwasher" in sel.why[0]
    assert "rare" not in sel.why[1]


def test_select_photos_with_embeddings_uses_diversity():
    agree = Clusters.from_probs([[[1.0, 0.0], [1.0, 0.0]]])
    split = Clusters.from_probs([[[1.0, 0.0], [0.0, 1.0]]])
    photos = {"p1": split, "p2": split, "p3": agree, "p4": Clusters.from_probs([[[0.9, 0.1], [0.2, 0.8]]])}
    emb = {"p1": [0.0, 0.0], "p2": [0.0, 0.0], "p3": [9.0, 9.0], "p4": [5.0, 5.0]}
    sel = select_photos(photos, "bald", 2, embeddings=emb, candidates_factor=1.5)
    assert sel.ids == ("p1", "p4")  # p2 duplicates p1; p3 is not among the top 3
