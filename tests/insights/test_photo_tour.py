"""The photo tour of a listing: order, cover photo and completeness notes, on constructed listings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roomscan.errors import TaxonomyError
from roomscan.insights.rooms import RoomScores, RoomType, RoomTypes, RoomTypesError, default_room_types
from roomscan.insights.tour import TourPhoto, suggest_tour

ROOMS = default_room_types()


def room(slug: str, sure: float = 0.8) -> RoomScores:
    probs = np.full(len(ROOMS), (1 - sure) / (len(ROOMS) - 1))
    probs[ROOMS.slugs.index(slug)] = sure
    return RoomScores.from_probs(ROOMS.slugs, probs, "embeddings")


def photo(photo_id: str, slug: str, quality: float, *problems: str) -> TourPhoto:
    return TourPhoto(photo_id, room(slug), quality, tuple(problems))


def test_a_bright_living_room_is_the_cover_over_a_dark_exterior_and_opens_the_tour():
    tour = suggest_tour([photo("ext", "exterior", 20, "dark"), photo("liv", "living-room", 85)])
    assert tour.cover == "liv"
    assert tour.order == ["liv", "ext"]


def test_a_good_exterior_is_the_cover_and_opens_the_tour():
    tour = suggest_tour([photo("liv", "living-room", 80), photo("ext", "exterior", 85)])
    assert tour.cover == "ext"
    assert tour.order == ["ext", "liv"]


def test_a_photo_with_a_quality_problem_is_never_the_cover_when_another_exists():
    tour = suggest_tour([photo("ext", "exterior", 95, "tilted"), photo("bath", "bathroom", 30)])
    assert tour.cover == "bath"
    flagged_only = suggest_tour(
        [photo("ext", "exterior", 60, "blurry"), photo("bath", "bathroom", 90, "dark")]
    )
    assert flagged_only.cover == "ext"  # all flagged: preference x quality decides (0.6 vs 0.36)


def test_rooms_follow_the_documented_order_and_each_room_stays_together_best_first():
    photos = [
        photo("bath1", "bathroom", 70),
        photo("bed1", "bedroom", 50),
        photo("other1", "other", 90),
        photo("pool1", "pool-garden", 60),
        photo("kit1", "kitchen", 40),
        photo("bed2", "bedroom", 80),
        photo("view1", "balcony-view", 60),
        photo("din1", "dining-room", 60),
        photo("liv1", "living-room", 75),
        photo("ext1", "exterior", 30),
        photo("liv2", "living-room", 65),
        photo("kit2", "kitchen", 95, "blurry"),
    ]
    tour = suggest_tour(photos)
    assert tour.cover == "liv1"
    assert tour.order == [
        "liv1",
        "liv2",
        "ext1",
        "kit1",
        "kit2",
        "din1",
        "bed2",
        "bed1",
        "bath1",
        "view1",
        "pool1",
        "other1",
    ]  # the flagged kitchen photo follows the unflagged one despite its higher quality
    assert [s.room for s in tour.stops][:3] == ["living-room", "living-room", "exterior"]


def test_the_tour_opens_with_the_exterior_when_the_cover_is_another_room():
    # The bathroom photo is sharper but a bathroom makes a poor cover; a pool cover does not open the tour.
    photos = [photo("bath", "bathroom", 100), photo("pool", "pool-garden", 60), photo("ext", "exterior", 40)]
    tour = suggest_tour(photos)
    assert tour.cover == "pool"  # 0.9 x 0.6 beats 1.0 x 0.4 and 0.4 x 1.0
    assert tour.order == ["ext", "bath", "pool"]


def test_uncertain_room_scores_lower_the_cover_preference():
    sure = TourPhoto("sure", room("exterior", sure=0.95), 70)
    unsure = TourPhoto("unsure", room("exterior", sure=0.3), 72)
    assert suggest_tour([unsure, sure]).cover == "sure"


@pytest.mark.parametrize(
    ("photos", "kwargs", "messages"),
    [
        (
            [photo("b", "bedroom", 60), photo("k", "kitchen", 60)],
            {},
            ["no bathroom photo"],
        ),
        (
            [photo("k", "kitchen", 60), photo("w", "bathroom", 60)],
            {},
            ["no bedroom photo"],
        ),
        (
            [photo("b", "bedroom", 60), photo("w", "bathroom", 60)],
            {"bedrooms": 2},
            ["2 bedrooms declared, 1 bedroom photo"],
        ),
        (
            [photo("w", "bathroom", 60)],
            {"bedrooms": 1},
            ["1 bedroom declared, 0 bedroom photos"],
        ),
        (
            [photo("l", "living-room", 60), photo("w", "bathroom", 60)],
            {"bedrooms": 0},
            [],  # a studio: no bedroom photo expected
        ),
        (
            [photo("b", "bedroom", 60), photo("w", "bathroom", 60)],
            {"claims": ["swimming-pool", "Oven", "mirror"]},
            ["claims a swimming pool but no outdoor photo", "claims an oven but no kitchen photo"],
        ),
        (
            [photo("b", "bedroom", 60), photo("w", "bathroom", 60), photo("e", "exterior", 60)],
            {"claims": ["pool", "tv"]},
            ["claims a television but no living room photo"],  # the pool may be in the exterior photo
        ),
        ([], {"bedrooms": 1}, ["no photos"]),
    ],
)
def test_completeness_notes(photos, kwargs, messages):
    assert [n.message for n in suggest_tour(photos, **kwargs).notes] == messages


def test_notes_carry_codes_and_slugs_for_the_page_and_api():
    tour = suggest_tour([photo("b", "bedroom", 60)], claims=["hot tub"], bedrooms=3)
    assert [(n.code, n.room, n.amenity) for n in tour.notes] == [
        ("missing-room", "bathroom", None),
        ("bedrooms-unshown", "bedroom", None),
        ("claim-unshown", None, "jacuzzi"),
    ]


def test_the_tour_is_json():
    tour = suggest_tour([photo("ext", "exterior", 20, "dark"), photo("liv", "living-room", 85)], bedrooms=1)
    doc = json.loads(json.dumps(tour.to_dict()))
    assert doc["cover"] == "liv" and doc["order"] == ["liv", "ext"]
    assert doc["stops"][1] == {"photo_id": "ext", "room": "exterior", "quality": 20.0, "problems": ["dark"]}
    assert {n["code"] for n in doc["notes"]} == {"missing-room", "bedrooms-unshown"}


def test_no_photos_give_an_empty_tour():
    tour = suggest_tour([])
    assert tour.cover is None and tour.order == []


def test_custom_room_types_come_before_other():
    rooms = RoomTypes((*ROOMS.rooms, RoomType("attic", "Attic", ("an attic",))), source="custom")

    def scored(slug: str) -> RoomScores:
        probs = np.full(len(rooms), 0.01)
        probs[rooms.slugs.index(slug)] = 1.0
        return RoomScores.from_probs(rooms.slugs, probs, "embeddings")

    photos = [TourPhoto(s[0], scored(s), 50) for s in ("other", "attic", "pool-garden")]
    assert suggest_tour(photos, room_types=rooms).order == [
        "p",
        "a",
        "o",
    ]  # no exterior or living room: the pool cover keeps its place


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: TourPhoto("x", room("bedroom"), 120), ValueError, "quality must be a number from 0 to 100"),
        (
            lambda: suggest_tour([photo("x", "bedroom", 50), photo("x", "bathroom", 50)]),
            ValueError,
            "repeated",
        ),
        (
            lambda: suggest_tour([photo("x", "bedroom", 50)], bedrooms=-1),
            ValueError,
            "bedrooms must be a count",
        ),
        (
            lambda: suggest_tour([photo("x", "bedroom", 50)], claims=["helipad"]),
            TaxonomyError,
            "unknown amenity",
        ),
        (
            lambda: suggest_tour([TourPhoto("x", RoomScores(("a", "b"), (0.5, 0.5), "embeddings"), 50)]),
            RoomTypesError,
            "scored over room types",
        ),
    ],
)
def test_bad_input_is_refused_with_the_reason(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_quality_from_assess_photo_feeds_the_tour():
    """The quality engineer's verdict plugs in as it is: score and problem codes."""
    from _models import make_image
    from PIL import Image

    from roomscan.insights.quality import assess_photo

    dark = Image.fromarray((np.asarray(make_image((1024, 768), seed=3)) * 0.08).astype("uint8"))
    bright = make_image((1024, 768), seed=4)
    verdicts = {name: assess_photo(image) for name, image in (("ext", dark), ("liv", bright))}
    assert verdicts["ext"].problem_codes and not verdicts["liv"].problem_codes
    photos = [
        TourPhoto(name, room(slug), v.score, v.problem_codes)
        for (name, v), slug in zip(verdicts.items(), ("exterior", "living-room"))
    ]
    assert suggest_tour(photos).cover == "liv"
