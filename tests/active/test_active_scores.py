"""Disagreement scores: hand-computed values, BALD's bounds, and one contract every registered score keeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roomscan.active import (
    BALD,
    SCORES,
    BoxVariance,
    Clusters,
    CountDisagreement,
    Entropy,
    LeastConfidence,
    MutualInformation,
    RandomScore,
    Score,
    get_score,
    match_members,
)
from roomscan.detection.core import make_detections

NAMES = ["oven", "microwave", "dishwasher"]
C = len(NAMES)


def dets(boxes, probs):
    probs = np.asarray(probs, dtype=np.float32).reshape(len(boxes), C)
    cls = probs.argmax(axis=1) if len(boxes) else np.zeros(0, dtype=int)
    return make_detections(
        np.asarray(boxes, dtype=float).reshape(-1, 4),
        probs.max(axis=1) if len(boxes) else [],
        cls,
        [NAMES[c] for c in cls],
        class_probs=probs,
    )


def test_entropy_and_bald_of_two_confident_opposite_members_by_hand():
    # one cluster, two members, C = 1 class + "nothing"
    cl = Clusters.from_probs([[[0.9, 0.1], [0.1, 0.9]]])
    h_mean = -(0.5 * math.log(0.5) + 0.5 * math.log(0.5))  # mean is [0.5, 0.5]
    h_member = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # 0.325083 for each member
    assert Entropy().photo_score(cl) == pytest.approx(h_mean)
    assert Entropy().photo_score(cl) == pytest.approx(0.693147, abs=1e-6)
    assert BALD().photo_score(cl) == pytest.approx(h_mean - h_member)
    assert BALD().photo_score(cl) == pytest.approx(0.368064, abs=1e-6)


def test_least_confidence_by_hand():
    cl = Clusters.from_probs([[[0.6, 0.3, 0.1], [0.4, 0.3, 0.3]]])  # mean [0.5, 0.3, 0.2]
    assert LeastConfidence().photo_score(cl) == pytest.approx(0.5)


def test_bald_is_exactly_zero_when_members_agree():
    row = [0.37, 0.21, 0.11, 0.31]  # unsure, but all members equally so
    cl = Clusters.from_probs([[row, row, row]])
    assert BALD().photo_score(cl) == 0.0
    assert Entropy().photo_score(cl) > 1.0  # entropy still sees the (shared) uncertainty


def test_bald_is_near_its_maximum_for_confident_disagreement():
    eps = 1e-6
    k = C + 1  # each member sure of a different outcome, "nothing" included
    probs = np.full((1, k, k), eps / (k - 1))
    probs[0, np.arange(k), np.arange(k)] = 1 - eps
    assert BALD().photo_score(Clusters.from_probs(probs)) == pytest.approx(math.log(k), abs=1e-3)


def test_bald_never_exceeds_entropy():
    rng = np.random.default_rng(1234)
    for _ in range(200):
        m, k, c1 = rng.integers(1, 6), rng.integers(1, 8), rng.integers(2, 12)
        alpha = rng.uniform(0.05, 3.0)
        cl = Clusters.from_probs(rng.dirichlet(np.full(c1, alpha), (m, k)))
        bald, ent = BALD().box_scores(cl), Entropy().box_scores(cl)
        assert (bald >= 0).all() and (bald <= ent + 1e-12).all()


def test_a_member_that_saw_nothing_where_others_saw_an_oven_is_disagreement():
    oven = [[0.95, 0.0, 0.0]]
    cl = match_members([dets([[0, 0, 10, 10]], oven), dets([[0, 0, 10, 10]], oven), dets([], [])])
    assert cl.present.tolist() == [[True, True, False]]
    assert BALD().photo_score(cl) > 0.1


def test_box_variance_by_hand():
    a, b = [0, 0, 10, 10], [0, 0, 10, 20]  # consensus [0, 0, 10, 15]: IoUs 100/150 and 150/200
    probs = [[[0.9, 0.1], [0.9, 0.1], [0.0, 1.0]]]
    cl = Clusters.from_probs(probs, boxes=[[a, b, a]], present=[[True, True, False]])
    assert BoxVariance().photo_score(cl) == pytest.approx(1 - (2 / 3 + 0.75) / 2)
    assert BoxVariance(absent_as_miss=True).photo_score(cl) == pytest.approx(1 - (2 / 3 + 0.75) / 3)
    single = Clusters.from_probs([[[0.9, 0.1], [0.0, 1.0]]], boxes=[[a, a]], present=[[True, False]])
    assert BoxVariance().photo_score(single) == 0.0  # one box: nothing to disagree about where


def test_count_disagreement_by_hand():
    # members report 2, 1 and 1 boxes above 0.5: variance of [2, 1, 1] = 2/9
    m0 = dets([[0, 0, 10, 10], [50, 50, 60, 60]], [[0.9, 0, 0], [0.8, 0, 0]])
    m1 = dets([[0, 0, 10, 10], [50, 50, 60, 60]], [[0.9, 0, 0], [0.3, 0, 0]])  # second below the threshold
    m2 = dets([[0, 0, 10, 10]], [[0.9, 0, 0]])
    cl = match_members([m0, m1, m2])
    score = CountDisagreement(score_threshold=0.5)
    assert score.photo_score(cl) == pytest.approx(2 / 9)
    np.testing.assert_allclose(score.box_scores(cl), [0.0, 2 / 3])
    assert "members report 1-2 boxes" in score.explain(cl)


@pytest.mark.parametrize(("aggregate", "expected"), [("max", 0.5), ("mean", 0.3), ("sum", 0.9)])
def test_aggregates(aggregate, expected):
    cl = Clusters.from_probs([[[0.5, 0.5]], [[0.7, 0.3]], [[0.9, 0.1]]])  # least confidence 0.5, 0.3, 0.1
    assert LeastConfidence(aggregate=aggregate).photo_score(cl) == pytest.approx(expected)


def test_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="max, mean, sum"):
        Entropy(aggregate="median")  # type: ignore[arg-type]


def test_random_score_is_stable_per_seed_and_photo():
    cl = Clusters.from_probs(np.full((4, 2, 3), 1 / 3), key="photo-17")
    same = Clusters.from_probs(np.full((4, 2, 3), 1 / 3), key="photo-17")
    other = Clusters.from_probs(np.full((4, 2, 3), 1 / 3), key="photo-18")
    np.testing.assert_array_equal(RandomScore(3).box_scores(cl), RandomScore(3).box_scores(same))
    assert RandomScore(3).photo_score(cl) != RandomScore(4).photo_score(cl)
    assert RandomScore(3).photo_score(cl) != RandomScore(3).photo_score(other)
    unkeyed = Clusters.from_probs(np.full((4, 2, 3), 1 / 3))
    assert RandomScore(3).photo_score(unkeyed) == RandomScore(3).photo_score(unkeyed)


def test_registry():
    assert set(SCORES) == {"entropy", "bald", "box-variance", "count", "least-confidence", "random"}
    assert MutualInformation is BALD
    assert isinstance(get_score("bald"), BALD)
    assert get_score("random", seed=5).seed == 5  # type: ignore[attr-defined]
    assert get_score("entropy", aggregate="sum").aggregate == "sum"
    inst = Entropy()
    assert get_score(inst) is inst
    with pytest.raises(ValueError, match="unknown score 'variance'; choose one of entropy, bald, box-varia"):
        get_score("variance")


# --- the contract every registered score keeps ---------------------------------------------------------


def _random_clusters(seed: int) -> Clusters:
    rng = np.random.default_rng(seed)
    members = []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.integers(0, 7))
        xy = rng.uniform(0, 60, (n, 2))
        probs = rng.dirichlet(np.full(C + 1, 0.5), n)[:, :C] if n else np.zeros((0, C))
        members.append(dets(np.hstack([xy, xy + rng.uniform(4, 25, (n, 2))]), probs))
    return match_members(members, key=f"photo-{seed}")


def _agreement() -> Clusters:
    boxes, probs = [[0, 0, 10, 10], [40, 40, 60, 70]], [[1.0, 0, 0], [0, 1.0, 0]]
    return match_members([dets(boxes, probs) for _ in range(3)], key="agree")


def _disagreement() -> Clusters:
    return match_members(
        [
            dets([[0, 0, 10, 10], [40, 40, 60, 70]], [[1.0, 0, 0], [0, 1.0, 0]]),
            dets([[0, 0, 12, 14]], [[0, 1.0, 0]]),
            dets([[2, 1, 10, 13]], [[0, 0, 1.0]]),
        ],
        key="disagree",
    )


@pytest.fixture(params=sorted(SCORES))
def score(request) -> Score:
    return get_score(request.param)


class TestEveryScore:
    def test_box_scores_are_finite_non_negative_one_per_cluster(self, score: Score):
        for seed in range(25):
            cl = _random_clusters(seed)
            s = score.box_scores(cl)
            assert s.shape == (len(cl),)
            assert np.isfinite(s).all() and (s >= 0).all()
            p = score.photo_score(cl)
            assert isinstance(p, float) and math.isfinite(p) and p >= 0
            assert isinstance(score.explain(cl), str)

    def test_a_photo_with_no_clusters_scores_zero(self, score: Score):
        empty = match_members([dets([], []), dets([], [])])
        assert len(empty) == 0
        assert score.box_scores(empty).shape == (0,)
        assert score.photo_score(empty) == 0.0


# the random control measures no disagreement, so it is left out here
@pytest.mark.parametrize("name", sorted(set(SCORES) - {"random"}))
def test_agreement_scores_zero_and_no_higher_than_disagreement(name: str):
    score = get_score(name)
    agree, disagree = _agreement(), _disagreement()
    assert score.photo_score(agree) == pytest.approx(0.0, abs=1e-9)
    assert score.photo_score(agree) <= score.photo_score(disagree)
    assert score.photo_score(disagree) > 0
