from __future__ import annotations

import numpy as np

from roomscan.detection.core import make_detections
from roomscan.listing import roll_up
from roomscan.taxonomy import default_taxonomy

TAX = default_taxonomy()  # thresholds: swimming-pool 0.2, oven 0.2, bed 0.25


def dets(*rows):
    """rows of (label, score, box)"""
    if not rows:
        return make_detections(np.zeros((0, 4)), [], [], [])
    return make_detections([r[2] for r in rows], [r[1] for r in rows], [TAX.index(r[0]) for r in rows], [r[0] for r in rows])


def test_claimed_and_seen_is_confirmed_claimed_unseen_is_unverified_seen_unclaimed_is_discovered():
    photos = {
        1: dets(("swimming-pool", 0.7, (0, 0, 10, 10)), ("oven", 0.3, (5, 5, 9, 9))),
        2: dets(("swimming-pool", 0.5, (1, 1, 8, 8))),
    }
    summary = roll_up(photos, claimed=["swimming-pool", "jacuzzi"], taxonomy=TAX)
    assert [a.slug for a in summary.confirmed] == ["swimming-pool"]
    assert [a.slug for a in summary.unverified] == ["jacuzzi"]
    assert [a.slug for a in summary.discovered] == ["oven"]


def test_best_score_photo_count_and_evidence_best_first():
    photos = {
        1: dets(("swimming-pool", 0.5, (0, 0, 10, 10)), ("swimming-pool", 0.6, (20, 20, 30, 30))),
        2: dets(("swimming-pool", 0.9, (1, 1, 8, 8))),
        3: dets(),
    }
    (pool,) = roll_up(photos, claimed=[], taxonomy=TAX).amenities
    assert pool.score == 0.9
    assert pool.photo_count == 2
    assert [(e.photo_id, e.score) for e in pool.evidence] == [(2, 0.9), (1, 0.6), (1, 0.5)]
    assert pool.evidence[0].box == (1, 1, 8, 8)


def test_thresholds_apply_a_sub_threshold_detection_does_not_confirm_a_claim():
    photos = {1: dets(("bed", 0.24, (0, 0, 10, 10)), ("oven", 0.1, (0, 0, 5, 5)))}
    summary = roll_up(photos, claimed=["bed"], taxonomy=TAX)
    (bed,) = summary.amenities  # the oven below its threshold is neither seen nor listed
    assert bed.status == "unverified" and not bed.seen
    assert bed.score == 0.24 and bed.threshold == 0.25 and bed.evidence == ()


def test_no_photos_everything_claimed_is_unverified():
    summary = roll_up({}, claimed=["oven", "bed"], taxonomy=TAX)
    assert {a.slug: a.status for a in summary.amenities} == {"oven": "unverified", "bed": "unverified"}
