"""Quality from hosts' decisions (``roomscan.catalog.quality``): precision with a Wilson interval, the
threshold that reaches a target precision, a weekly trend, per model and amenity; the decided cases others use
as labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _models import tiny_taxonomy
from sqlalchemy import select

from roomscan.catalog.models import (
    AmenityDecision,
    Detection,
    JobState,
    Listing,
    ListingPhoto,
    Model,
    Photo,
    PhotoJob,
)
from roomscan.catalog.quality import best_threshold, decided_cases, quality_report, wilson_interval
from roomscan.errors import NotFoundError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday of ISO week 2026-W49


class Catalog:
    """Rows written directly, so every score and date is known."""

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        self.session = session
        self._photos = 0

    def model(self, key: str, taxonomy: str | None = None) -> int:
        fingerprint = taxonomy or tiny_taxonomy().fingerprint()
        m = Model(key=key, backend="owlv2", name=key, version="v1", taxonomy=fingerprint)
        self.session.add(m)
        self.session.flush()
        return m.id

    def listing(self, photos: int = 1) -> tuple[int, list[int]]:
        listing = Listing(title="Flat")
        self.session.add(listing)
        self.session.flush()
        ids = []
        for position in range(photos):
            self._photos += 1
            photo = Photo(sha256=f"{self._photos:064x}", format="JPEG", width=100, height=80, size_bytes=10)
            self.session.add(photo)
            self.session.flush()
            self.session.add(ListingPhoto(listing_id=listing.id, photo_id=photo.id, position=position))
            ids.append(photo.id)
        self.session.flush()
        return listing.id, ids

    def box(self, photo_id: int, model_id: int, amenity: str, score: float) -> None:
        self.session.add(Detection(photo_id=photo_id, model_id=model_id, amenity=amenity, score=score,
                                   x1=1, y1=1, x2=20, y2=20))

    def decide(self, listing_id: int, amenity: str, decision: str, at: datetime = NOW) -> None:
        self.session.add(
            AmenityDecision(listing_id=listing_id, amenity=amenity, decision=decision, decided_at=at)
        )

    def processed(self, listing_id: int, model_id: int) -> None:
        """The model's jobs on the listing's photos are done."""
        for lp in self.session.scalars(select(ListingPhoto).where(ListingPhoto.listing_id == listing_id)):
            self.session.add(PhotoJob(photo_id=lp.photo_id, model_id=model_id, state=JobState.DONE))

    def case(self, model_id: int, amenity: str, score: float, decision: str, at: datetime = NOW) -> int:
        """A one-photo listing whose ``amenity`` box scores ``score``, decided ``decision``."""
        listing_id, (photo_id,) = self.listing()
        self.box(photo_id, model_id, amenity, score)
        self.decide(listing_id, amenity, decision, at)
        return listing_id


@pytest.fixture
def world(catalog):  # type: ignore[no-untyped-def]
    _, sessions = catalog
    with sessions() as session:
        yield Catalog(session)


def report(world, **options):  # type: ignore[no-untyped-def]
    world.session.flush()
    return quality_report(world.session, taxonomy=tiny_taxonomy(), now=NOW, **options)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [(8, 10, 0.490, 0.943), (10, 10, 0.722, 1.0), (0, 5, 0.0, 0.434), (1, 2, 0.095, 0.905), (0, 0, 0.0, 1.0)],
)
def test_wilson_interval_matches_hand_computed_values(successes, n, low, high):
    assert [round(v, 3) for v in wilson_interval(successes, n)] == [low, high]


def test_wilson_interval_refuses_more_successes_than_trials():
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(3, 2)


@pytest.mark.parametrize(
    ("cases", "target", "threshold", "kept_confirmed", "kept_cases"),
    [
        # 0.9 -> 1/1, 0.8 -> 2/2, 0.7 -> 2/3, 0.6 -> 3/4: the lowest reaching 0.75 is 0.6
        ([(0.9, True), (0.8, True), (0.7, False), (0.6, True)], 0.75, 0.6, 3, 4),
        ([(0.9, True), (0.8, True), (0.7, False), (0.6, True)], 0.8, 0.8, 2, 2),
        # precision is not monotonic: a lower threshold can reach the target after a higher one missed it
        ([(0.9, False), (0.5, True), (0.4, True), (0.3, True)], 0.75, 0.3, 3, 4),
        ([(0.9, False), (0.5, True)], 0.9, None, 0, 0),  # not reachable
        # a threshold keeps both cases of one score, or neither
        ([(0.5, True), (0.5, False)], 0.9, None, 0, 0),
        ([], 0.9, None, 0, 0),
    ],
)
def test_best_threshold_is_the_lowest_score_reaching_the_target(
    cases, target, threshold, kept_confirmed, kept_cases
):
    advice = best_threshold(cases, target)
    assert (advice.threshold, advice.kept_confirmed, advice.kept_cases) == (
        threshold, kept_confirmed, kept_cases)
    assert advice.reachable == (threshold is not None)
    if advice.reachable:
        assert advice.precision >= target


def test_precision_interval_and_threshold_per_amenity(world):
    m = world.model("owlv2:a")
    scores = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.4]
    verdicts = ["confirmed"] * 4 + ["rejected"] + ["confirmed"] * 3 + ["rejected", "confirmed"]  # 8 of 10
    for score, verdict in zip(scores, verdicts, strict=True):
        world.case(m, "bed", score, verdict)
    world.case(m, "oven", 0.5, "rejected")

    (model,) = report(world).models
    bed, oven = model.amenities
    assert (bed.amenity, bed.decisions, bed.confirmed, bed.rejected) == ("bed", 10, 8, 2)
    assert bed.precision == pytest.approx(0.8)
    assert (round(bed.low, 3), round(bed.high, 3)) == (0.490, 0.943)
    # >= 0.8: 4/4; >= 0.75: 4/5; >= 0.6: 7/8 = 0.875; >= 0.4: 8/10. Target 0.85: the lowest is 0.6, keeping 7.
    advice = report(world, target_precision=0.85).models[0].amenities[0].threshold
    assert (advice.threshold, advice.kept_confirmed, advice.kept_cases) == (0.6, 7, 8)
    assert bed.threshold.threshold == 0.8 and bed.threshold.kept_confirmed == 4  # target 0.9
    assert bed.current_threshold == tiny_taxonomy()["bed"].threshold
    assert (oven.decisions, oven.precision, oven.threshold.reachable) == (1, 0.0, False)
    assert (model.total.decisions, model.total.confirmed) == (11, 8)


def test_models_are_kept_apart(world):
    a, b = world.model("owlv2:a"), world.model("detr:b", taxonomy="other")
    listing_id, (p1, p2) = world.listing(photos=2)
    world.box(p1, a, "sink", 0.9)
    world.box(p2, b, "sink", 0.35)
    world.box(p2, b, "sink", 0.4)  # two boxes: the case scores the best
    world.decide(listing_id, "sink", "rejected")
    bed_listing = world.case(a, "bed", 0.7, "confirmed")
    world.case(a, "oven", 0.6, "confirmed")
    world.processed(bed_listing, b)  # b saw the bed listing's photo and found no bed: a miss, not judged

    by_key = {m.key: m for m in report(world).models}
    assert set(by_key) == {"owlv2:a", "detr:b"}
    assert [(r.amenity, r.decisions, r.confirmed) for r in by_key["owlv2:a"].amenities] == [
        ("bed", 1, 1), ("oven", 1, 1), ("sink", 1, 0)]
    assert [(r.amenity, r.decisions) for r in by_key["detr:b"].amenities] == [("sink", 1)]
    # the bed decision: b processed that listing and found no bed; b never processed the oven listing
    assert (by_key["detr:b"].unscored, by_key["owlv2:a"].unscored) == (1, 0)
    assert by_key["owlv2:a"].taxonomy_matches and not by_key["detr:b"].taxonomy_matches

    (only_b,) = report(world, model_id=b).models
    assert only_b.key == "detr:b" and only_b.total.decisions == 1


def test_weekly_series_buckets_by_iso_week_of_the_decision(world):
    m = world.model("owlv2:a")
    monday = datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC)  # W49 starts
    world.case(m, "bed", 0.9, "confirmed", at=monday)
    world.case(m, "bed", 0.9, "rejected", at=NOW)
    world.case(m, "bed", 0.9, "confirmed", at=monday - timedelta(seconds=2))  # Sunday: W48
    world.case(m, "bed", 0.9, "confirmed", at=NOW - timedelta(weeks=3))  # W46
    world.case(m, "bed", 0.9, "confirmed", at=NOW - timedelta(weeks=10))  # outside the last 4 weeks

    r = report(world, weeks=4)
    assert r.weeks == ("2026-W46", "2026-W47", "2026-W48", "2026-W49")
    weekly = r.models[0].amenities[0].weekly
    assert [(w.week, w.decisions, w.confirmed) for w in weekly] == [
        ("2026-W46", 1, 1), ("2026-W47", 0, 0), ("2026-W48", 1, 1), ("2026-W49", 2, 1)]
    assert weekly[1].precision is None and weekly[3].precision == 0.5
    assert weekly[0].start.isoformat() == "2026-11-09"
    assert r.models[0].total.decisions == 5  # the weekly window does not limit the totals; `since` does
    assert report(world, since=monday).models[0].total.decisions == 2
    assert report(world, since=monday.replace(tzinfo=None)).models[0].total.decisions == 2  # naive is UTC


def test_no_decisions_give_an_empty_report(world):
    m = world.model("owlv2:a")
    _, (photo_id,) = world.listing()
    world.box(photo_id, m, "bed", 0.9)
    r = report(world)
    assert r.models == () and len(r.weeks) == 8
    assert report(world, model_id=m).models == ()
    assert not r.to_dict()["models"]


def test_an_unknown_model_is_named(world):
    with pytest.raises(NotFoundError, match="no model 999"):
        report(world, model_id=999)


def test_amenity_filter_and_minimum_decisions(world):
    m = world.model("owlv2:a")
    for verdict in ("confirmed", "confirmed", "rejected"):
        world.case(m, "bed", 0.8, verdict)
    world.case(m, "oven", 0.8, "confirmed")

    assert [r.amenity for r in report(world, min_decisions=2).models[0].amenities] == ["bed"]
    assert report(world, min_decisions=2).models[0].total.decisions == 4
    only_oven = report(world, amenities={"oven"}).models[0]
    assert [r.amenity for r in only_oven.amenities] == ["oven"] and only_oven.total.decisions == 1


@pytest.mark.parametrize(("option", "value"), [("target_precision", 0.0), ("target_precision", 1.5),
                                                ("weeks", -1), ("min_decisions", 0)])
def test_bad_options_say_what_is_wrong(world, option, value):
    with pytest.raises(ValueError, match=option.split("_")[0]):
        report(world, **{option: value})


def test_decided_cases_are_labels_with_the_photos_that_show_the_amenity(world):
    m = world.model("owlv2:a")
    taxonomy = tiny_taxonomy()  # sink threshold 0.3
    listing_id, (p1, p2, p3) = world.listing(photos=3)
    world.box(p1, m, "sink", 0.5)
    world.box(p2, m, "sink", 0.2)  # below the threshold: not shown to the host
    world.box(p3, m, "sink", 0.8)
    world.box(p3, m, "oven", 0.8)
    world.decide(listing_id, "sink", "confirmed")
    world.decide(listing_id, "bed", "rejected")  # no bed box by this model
    world.decide(listing_id, "jacuzzi", "confirmed")  # not in this taxonomy
    world.session.flush()

    cases = {c.amenity: c for c in decided_cases(world.session, m, taxonomy)}
    assert set(cases) == {"bed", "sink"}
    sink = cases["sink"]
    assert (sink.listing_id, sink.decision, sink.best_score, sink.photo_ids) == (
        listing_id, "confirmed", 0.8, (p3, p1))
    assert sink.decided_at.tzinfo is not None
    assert (cases["bed"].best_score, cases["bed"].photo_ids) == (None, ())
