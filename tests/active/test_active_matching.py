"""Matching a committee's boxes: overlap, disjoint, one box per member, class-agnostic, taxonomy sizes."""

from __future__ import annotations

import numpy as np
import pytest

from roomscan.active import Clusters, match_members, probs_to_distribution
from roomscan.detection.core import make_detections

C = 3  # oven, microwave, dishwasher
NAMES = ["oven", "microwave", "dishwasher"]


def dets(boxes, conf, cls, probs=None):
    labels = [NAMES[c] for c in cls]
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float32)
        probs = probs.reshape(len(boxes), -1) if len(boxes) else probs.reshape(0, C)
    extras = {} if probs is None else {"class_probs": probs}
    return make_detections(np.asarray(boxes, dtype=float).reshape(-1, 4), conf, cls, labels, **extras)


def onehot(c, p=0.9, n=C):
    row = np.zeros(n)
    row[c] = p
    return row


def test_overlapping_boxes_of_two_members_make_one_cluster():
    a = dets([[0, 0, 10, 10]], [0.9], [0], [onehot(0)])
    b = dets([[1, 1, 10, 10]], [0.8], [0], [onehot(0, 0.8)])
    cl = match_members([a, b])
    assert len(cl) == 1 and cl.members == 2 and cl.present.all()
    np.testing.assert_allclose(cl.consensus_boxes[0], [0.5, 0.5, 10, 10])
    assert cl.consensus_labels == ("oven",)
    np.testing.assert_allclose(cl.consensus_score, [0.85])


def test_disjoint_boxes_make_two_clusters_with_absent_members():
    a = dets([[0, 0, 10, 10]], [0.9], [0], [onehot(0)])
    b = dets([[50, 50, 60, 60]], [0.8], [1], [onehot(1, 0.8)])
    cl = match_members([a, b])
    assert len(cl) == 2
    np.testing.assert_array_equal(cl.present, [[True, False], [False, True]])  # highest confidence seed first
    assert np.isnan(cl.boxes[0, 1]).all() and np.isnan(cl.boxes[1, 0]).all()
    np.testing.assert_allclose(cl.probs[0, 1], [0, 0, 0, 1])  # absent member: one-hot "nothing"
    np.testing.assert_allclose(cl.probs[1, 0], [0, 0, 0, 1])
    assert cl.box_index[0, 0] == 0 and cl.box_index[0, 1] == -1


def test_a_member_never_has_two_boxes_in_one_cluster():
    a = dets([[0, 0, 10, 10], [0, 0, 10, 11]], [0.9, 0.85], [0, 0], [onehot(0), onehot(0)])
    b = dets([[0, 0, 10, 10]], [0.8], [0], [onehot(0)])
    cl = match_members([a, b])
    assert len(cl) == 2
    assert cl.present.sum(axis=0).tolist() == [2, 1]  # member a's two boxes in two clusters
    assert (cl.present.sum(axis=1) <= 2).all()
    # b joins the seed (a's first box), a's duplicate is left on its own
    np.testing.assert_array_equal(cl.present, [[True, True], [True, False]])


def test_matching_is_class_agnostic():
    oven = dets([[0, 0, 10, 10]], [0.9], [0], [onehot(0)])
    microwave = dets([[0, 0, 10, 10]], [0.9], [1], [onehot(1)])
    cl = match_members([oven, microwave])
    assert len(cl) == 1 and cl.present.all()


def test_best_iou_box_of_each_member_joins():
    a = dets([[0, 0, 10, 10]], [0.9], [0])
    b = dets([[0, 0, 10, 14], [0, 0, 10, 11]], [0.95, 0.3], [0, 0])
    cl = match_members([a, b], iou_threshold=0.5)
    # b's 0.95 box seeds; a's box joins it; b's other box stays alone
    assert len(cl) == 2
    np.testing.assert_array_equal(cl.box_index, [[0, 0], [-1, 1]])


def test_iou_threshold_separates():
    a = dets([[0, 0, 10, 10]], [0.9], [0])
    b = dets([[5, 0, 15, 10]], [0.8], [0])  # IoU 1/3
    assert len(match_members([a, b], iou_threshold=0.5)) == 2
    assert len(match_members([a, b], iou_threshold=0.3)) == 1


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([0.7, 0.2, 0.0], [0.7, 0.2, 0.0, 0.1]),  # softmax: the remainder is "nothing"
        ([0.9, 0.6, 0.5], [0.45, 0.3, 0.25, 0.0]),  # sigmoid summing past 1: renormalised, no "nothing"
        ([0.0, 0.0, 0.0], [0, 0, 0, 1.0]),
    ],
)
def test_class_probs_become_distributions(p, expected):
    np.testing.assert_allclose(probs_to_distribution(np.array([p]))[0], expected)
    a = dets([[0, 0, 10, 10]], [0.9], [0], [p])
    np.testing.assert_allclose(match_members([a]).probs[0, 0], expected, atol=1e-7)


def test_a_box_without_class_probs_puts_its_confidence_on_its_class():
    a = dets([[0, 0, 10, 10]], [0.8], [2])
    cl = match_members([a], num_classes=C)
    np.testing.assert_allclose(cl.probs[0, 0], [0, 0, 0.8, 0.2], atol=1e-7)
    assert cl.class_names[2] == "dishwasher"


def test_different_taxonomies_are_refused_with_both_sizes():
    a = dets([[0, 0, 10, 10]], [0.9], [0], [np.zeros(30)])
    b = dets([[0, 0, 10, 10]], [0.9], [0], [np.zeros(30)])
    c = dets([[0, 0, 10, 10]], [0.9], [0], [np.zeros(31)])
    with pytest.raises(ValueError, match="member 0 has 30 classes, member 2 has 31"):
        match_members([a, b, c])


@pytest.mark.parametrize("kwargs", [{"iou_threshold": 0.0}, {"iou_threshold": 1.5}])
def test_bad_threshold_is_refused(kwargs):
    with pytest.raises(ValueError, match="iou_threshold"):
        match_members([dets([[0, 0, 1, 1]], [0.5], [0])], **kwargs)


def test_no_members_is_refused():
    with pytest.raises(ValueError, match="at least one member"):
        match_members([])


def test_members_that_saw_nothing_give_no_clusters():
    empty = make_detections(np.zeros((0, 4)), [], [], [], class_probs=np.zeros((0, C), dtype=np.float32))
    cl = match_members([empty, empty])
    assert len(cl) == 0 and cl.probs.shape == (0, 2, C + 1) and cl.num_classes == C


def test_every_box_lands_in_exactly_one_cluster():
    rng = np.random.default_rng(0)
    members = []
    for _ in range(4):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, 80, (n, 2))
        wh = rng.uniform(5, 30, (n, 2))
        probs = rng.dirichlet(np.ones(C + 1), n)[:, :C]
        members.append(dets(np.hstack([xy, xy + wh]), rng.uniform(0, 1, n), rng.integers(0, C, n), probs))
    cl = match_members(members)
    for k, m in enumerate(members):
        assert sorted(cl.box_index[cl.present[:, k], k].tolist()) == list(range(len(m)))
    assert isinstance(cl, Clusters)
    np.testing.assert_allclose(cl.probs.sum(axis=2), 1.0)
