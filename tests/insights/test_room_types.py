"""Room types of listing photos: the shipped file, loading errors, the three ways to score, and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from roomscan.detection.core import make_detections
from roomscan.insights.rooms import (
    RoomScores,
    RoomTypesError,
    combine,
    default_room_types,
    evaluate_rooms,
    load_room_types,
    photo_room_scores,
    room_text_embeddings,
    scores_from_amenities,
    scores_from_embeddings,
)
from roomscan.taxonomy import default_taxonomy

ROOMS = default_room_types()


def room_vectors(dim: int = 16, seed: int = 0) -> np.ndarray:
    """One random unit vector per room type, ``[n_rooms, dim]`` (nearly orthogonal in 16 dimensions)."""
    v = np.random.default_rng(seed).normal(size=(len(ROOMS), dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(text: np.ndarray, slug: str, noise: float = 0.3, seed: int = 1) -> np.ndarray:
    """An image embedding close to ``slug``'s text embedding."""
    return text[ROOMS.slugs.index(slug)] + noise * np.random.default_rng(seed).normal(size=text.shape[1])


def test_the_default_room_types_cover_a_rental_and_point_to_real_amenities():
    assert ROOMS.slugs == (
        "bedroom",
        "bathroom",
        "kitchen",
        "living-room",
        "dining-room",
        "exterior",
        "pool-garden",
        "balcony-view",
        "other",
    )
    assert ROOMS.fallback == "other"
    taxonomy = default_taxonomy()
    for room in ROOMS:
        assert room.prompts
        for slug in room.amenities:
            assert slug in taxonomy, f"{room.slug} names {slug!r}, which is not a default amenity"


# -- scores from embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["kitchen", "bathroom", "exterior", "balcony-view"])
def test_the_photo_embedding_near_a_rooms_text_embedding_wins(slug):
    text = room_vectors()
    scores = scores_from_embeddings(near(text, slug), text)
    assert scores.best == slug
    assert scores.source == "embeddings"
    assert sum(scores.probs) == pytest.approx(1.0)
    assert scores.margin > 0.5


def test_a_lower_temperature_sharpens_and_keeps_the_ranking():
    text = room_vectors()
    image = near(text, "kitchen", noise=0.15)
    soft, sharp = (scores_from_embeddings(image, text, temperature=t) for t in (0.5, 0.05))
    assert soft.best == sharp.best == "kitchen"
    assert sharp.scores["kitchen"] > soft.scores["kitchen"] and sharp.margin > soft.margin
    assert np.argsort(soft.probs).tolist() == np.argsort(sharp.probs).tolist()


def test_embedding_scale_does_not_matter_cosine_does():
    text = room_vectors()
    image = near(text, "bedroom")
    a = scores_from_embeddings(image, text)
    b = scores_from_embeddings(7.5 * image[None, :], 0.1 * text)
    assert a.probs == pytest.approx(b.probs)


@pytest.mark.parametrize(
    ("image", "text", "temperature", "message"),
    [
        (np.ones(768), np.ones((9, 512)), 0.01, "768 dimensions but the room text embeddings 512"),
        (np.ones(16), np.ones((3, 16)), 0.01, "3 room text embeddings for 9 room types"),
        (np.zeros(16), np.ones((9, 16)), 0.01, "all-zero"),
        (np.full(16, np.nan), np.ones((9, 16)), 0.01, "NaN"),
        (np.ones(16), np.ones((9, 16)), 0.0, "temperature must be > 0"),
    ],
)
def test_embeddings_that_do_not_fit_are_refused_with_the_reason(image, text, temperature, message):
    with pytest.raises(RoomTypesError, match=message):
        scores_from_embeddings(image, text, temperature=temperature)


def test_room_text_embeddings_average_each_rooms_normalised_prompts():
    rooms = ROOMS
    seen: list[list[str]] = []

    def encoder(prompts: list[str]) -> np.ndarray:
        seen.append(prompts)
        # Prompt i -> basis vector (i mod 4), scaled: normalisation must remove the scale.
        return np.stack([(i + 1) * np.eye(4)[i % 4] for i in range(len(prompts))])

    out = room_text_embeddings(encoder, rooms)
    assert seen == [[p for r in rooms for p in r.prompts]]
    assert out.shape == (len(rooms), 4)
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(len(rooms)), abs=1e-6)
    first = len(rooms.rooms[0].prompts)  # the bedroom's 3 prompts hit basis vectors 0, 1, 2 equally
    assert out[0] == pytest.approx(np.r_[np.ones(first), np.zeros(4 - first)] / np.sqrt(first), abs=1e-6)


# -- scores from amenities -----------------------------------------------------------------------------------


def test_a_toilet_and_a_shower_make_a_bathroom():
    dets = make_detections([[0, 0, 10, 10], [5, 5, 20, 20]], [0.6, 0.5], [0, 0], ["toilet", "shower"])
    scores = scores_from_amenities(dets, default_taxonomy())
    assert scores.best == "bathroom"
    assert scores.source == "amenities"
    assert scores.margin > 0.5
    assert sum(scores.probs) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("found", "room"),
    [
        ([("oven", 0.4, "kitchen"), ("sink", 0.5, "bathroom"), ("refrigerator", 0.3, "kitchen")], "kitchen"),
        ([("sink", 0.5, "bathroom"), ("toilet", 0.4, "bathroom")], "bathroom"),
        ([("bed", 0.5, "bedroom"), ("pillow", 0.3, "bedroom")], "bedroom"),
        ([("couch", 0.5, "living"), ("television", 0.3, "living")], "living-room"),
        ([("kitchen-dining-table", 0.6, "kitchen")], "dining-room"),
        ([("swimming-pool", 0.7, "outdoor")], "pool-garden"),
        ([("porch", 0.5, "outdoor")], "exterior"),
        ([("washing-machine", 0.5, "laundry")], "other"),
    ],
)
def test_amenities_point_to_their_room(found, room):
    assert scores_from_amenities(found).best == room


def test_no_amenities_means_other_with_low_confidence():
    for nothing in ([], make_detections(np.zeros((0, 4)), [], [], [])):
        scores = scores_from_amenities(nothing)
        assert scores.best == "other"
        assert scores.margin < 0.1
        assert max(scores.probs) < 0.2


def test_general_amenities_are_no_evidence():
    assert scores_from_amenities([("mirror", 0.9, "general")]).probs == scores_from_amenities([]).probs


def test_more_boxes_of_one_amenity_make_it_surer_but_never_past_certain():
    one = scores_from_amenities([("bed", 0.4, "bedroom")]).scores["bedroom"]
    three = scores_from_amenities([("bed", 0.4, "bedroom")] * 3).scores["bedroom"]
    certain = scores_from_amenities([("bed", 1.0, "bedroom")]).scores["bedroom"]
    assert one < three < certain
    assert scores_from_amenities([("bed", 1.0, "bedroom")] * 5).scores["bedroom"] == pytest.approx(certain)


def test_a_score_outside_zero_one_is_refused():
    with pytest.raises(RoomTypesError, match="lie in \\[0, 1\\]"):
        scores_from_amenities([("bed", 1.5, "bedroom")])


# -- combine -------------------------------------------------------------------------------------------------


def test_combine_is_a_product_of_experts():
    text = room_vectors()
    seen = scores_from_embeddings(near(text, "kitchen", noise=1.2, seed=3), text, temperature=0.2)
    found = scores_from_amenities([("oven", 0.5, "kitchen")])
    both = combine(seen, found)
    expected = np.asarray(seen.probs) * np.asarray(found.probs)
    assert both.probs == pytest.approx(expected / expected.sum())
    assert both.source == "embeddings+amenities"
    assert both.scores["kitchen"] > max(seen.scores["kitchen"], found.scores["kitchen"])


def test_combine_of_one_source_is_that_source_and_zero_weight_leaves_one_out():
    found = scores_from_amenities([("toilet", 0.5, "bathroom")])
    assert combine(found).probs == pytest.approx(found.probs)
    text = room_vectors()
    seen = scores_from_embeddings(near(text, "bedroom"), text)
    only_seen = combine(seen, found, weights=[1.0, 0.0])
    assert only_seen.probs == pytest.approx(seen.probs)
    assert only_seen.source == "embeddings"


def test_amenity_evidence_overrides_an_unsure_embedding():
    text = room_vectors()
    unsure = scores_from_embeddings(near(text, "living-room", noise=2.0, seed=5), text, temperature=1.0)
    assert unsure.margin < 0.1
    assert combine(unsure, scores_from_amenities([("toilet", 0.7, "bathroom")])).best == "bathroom"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one"),
        ({"weights": [1.0]}, "one non-negative number per score"),
        ({"weights": [1.0, -1.0]}, "non-negative"),
    ],
)
def test_combine_refuses_what_it_cannot_pool(kwargs, message):
    found = scores_from_amenities([])
    scores = () if not kwargs else (found, found)
    with pytest.raises(RoomTypesError, match=message):
        combine(*scores, **kwargs)


def test_combine_refuses_scores_over_different_room_types():
    other = RoomScores(("a", "b"), (0.5, 0.5), "embeddings")
    with pytest.raises(RoomTypesError, match="different room types"):
        combine(scores_from_amenities([]), other)


def test_photo_room_scores_use_amenities_alone_without_an_embedding_and_both_with_one():
    dets = make_detections([[0, 0, 10, 10]], [0.6], [0], ["oven"])
    alone = photo_room_scores(dets)
    assert alone == scores_from_amenities(dets)
    text = room_vectors()
    image = near(text, "dining-room", noise=0.5, seed=2)
    both = photo_room_scores(dets, image_embedding=image, room_text_embeddings=text, temperature=0.2)
    expected = combine(scores_from_embeddings(image, text, temperature=0.2), alone)
    assert both.probs == pytest.approx(expected.probs) and both.source == "embeddings+amenities"
    with pytest.raises(RoomTypesError, match="give both the image embedding and the room text embeddings"):
        photo_room_scores(dets, image_embedding=image)


def test_room_scores_round_trip_as_json():
    scores = scores_from_amenities([("bed", 0.8, "bedroom")])
    doc = scores.to_dict()
    assert doc["best"] == "bedroom" and doc["source"] == "amenities"
    assert RoomScores.from_dict(doc).probs == pytest.approx(scores.probs, abs=5e-4)


# -- loading room types --------------------------------------------------------------------------------------

GOOD_ROOM = "- {slug: attic, name: Attic, prompts: [an attic room], evidence: [bedroom]}\n"


def test_a_custom_file_loads(tmp_path):
    path = tmp_path / "rooms.yaml"
    path.write_text("fallback: attic\nrooms:\n  " + GOOD_ROOM)
    rooms = load_room_types(path)
    assert rooms.slugs == ("attic",) and rooms.fallback == "attic" and rooms.source == str(path)
    assert load_room_types(rooms) is rooms
    assert load_room_types() is default_room_types()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rooms:\n  - {slug: attic, name: Attic, prompts: [attic], evidence: [garage]}\n",
            "evidence group\\(s\\) 'garage' unknown; amenity groups are kitchen, bathroom",
        ),
        (
            "fallback: attic\nrooms:\n  " + GOOD_ROOM + "  " + GOOD_ROOM,
            "room type slug 'attic' appears twice",
        ),
        (
            "rooms:\n  - {slug: attic, name: Attic, prompts: []}\n",
            "room #1: room type 'attic' needs at least one prompt",
        ),
        ("rooms:\n  - {slug: attic, name: Attic}\n", "needs at least one prompt"),
        (
            "rooms:\n  - {slug: attic, name: Attic, prompts: ['  ']}\n",
            "'prompts' must be a list of non-empty strings",
        ),
        ("rooms:\n  " + GOOD_ROOM, "fallback 'other' is not a room type; use one of attic"),
        ("rooms:\n  - {slug: Attic!, name: Attic, prompts: [a]}\n", "must be lowercase letters"),
        ("rooms:\n  - {name: Attic, prompts: [a], colour: red}\n", "unknown key\\(s\\) colour"),
        ("rooms: []\n", "no room types"),
        ("rooms: {attic: 1}\n", "expected a mapping with a 'rooms' list"),
        ("rooms: [\n", "not valid YAML"),
        (
            "fallback: attic\nrooms:\n  " + GOOD_ROOM + "extends: default\n",
            "unknown top-level key\\(s\\) extends",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_file_room_and_problem(tmp_path, text, message):
    path = tmp_path / "rooms.yaml"
    path.write_text(text)
    with pytest.raises(RoomTypesError, match=message) as info:
        load_room_types(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RoomTypesError, match="room types file not found"):
        load_room_types(tmp_path / "nope.yaml")


# -- evaluation ----------------------------------------------------------------------------------------------


def test_evaluate_rooms_counts_accuracy_precision_recall_and_confusion():
    labels = ["kitchen", "kitchen", "bathroom", "bedroom", "bedroom", "other"]
    predictions = ["kitchen", "bathroom", "bathroom", "bedroom", "kitchen", "other"]
    report = evaluate_rooms(predictions, labels)
    assert report.count == 6
    assert report.accuracy == pytest.approx(4 / 6)
    by_room = {m.slug: m for m in report.per_room}
    assert (by_room["kitchen"].precision, by_room["kitchen"].recall) == (
        pytest.approx(0.5),
        pytest.approx(0.5),
    )
    assert (by_room["bathroom"].precision, by_room["bathroom"].recall) == (pytest.approx(0.5), 1.0)
    assert (by_room["bedroom"].precision, by_room["bedroom"].recall) == (1.0, pytest.approx(0.5))
    assert by_room["exterior"].precision is None and by_room["exterior"].recall is None
    k, b = ROOMS.slugs.index("kitchen"), ROOMS.slugs.index("bathroom")
    assert report.confusion[k][b] == 1  # one kitchen taken for a bathroom
    assert sum(map(sum, report.confusion)) == 6
    doc = report.to_dict()
    assert doc["per_room"][ROOMS.slugs.index("exterior")]["precision"] is None
    assert doc["rooms"] == list(ROOMS.slugs)


def test_evaluate_rooms_takes_room_scores_as_predictions():
    bathroom = scores_from_amenities([("toilet", 0.9, "bathroom")])
    assert evaluate_rooms([bathroom], ["bathroom"]).accuracy == 1.0


@pytest.mark.parametrize(
    ("predictions", "labels", "message"),
    [
        (["kitchen"], ["kitchen", "bedroom"], "1 predictions for 2 labels"),
        ([], [], "no photos to evaluate"),
        (["garage"], ["kitchen"], "unknown room type\\(s\\) 'garage'"),
    ],
)
def test_evaluate_rooms_refuses_mismatched_input(predictions, labels, message):
    with pytest.raises(RoomTypesError, match=message):
        evaluate_rooms(predictions, labels)


# -- with OWLv2 ----------------------------------------------------------------------------------------------


def test_owlv2_room_scores_need_the_class_heads_image_embedding_not_embed(tiny_owlv2_dir):
    """Room text embeddings through OWLv2's text tower; the image side from the class head (what integration
    needs), since ``Detector.embed`` pools the vision feature map, whose width is not the text width."""
    torch = pytest.importorskip("torch")
    from _models import make_image, tiny_taxonomy
    from transformers import Owlv2Config, Owlv2Processor

    from roomscan.backends.owlv2 import Owlv2Detector

    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu")
    tokenizer = Owlv2Processor.from_pretrained(str(tiny_owlv2_dir)).tokenizer
    config = detector.model.config

    def encode(prompts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return detector._embed_prompts(tokenizer, prompts).cpu().numpy()

    text = room_text_embeddings(encode)
    assert text.shape == (len(ROOMS), config.projection_dim)
    assert np.isfinite(text).all()

    images = [make_image((96, 64), seed=0), make_image((64, 96), seed=1)]
    pooled = detector.embed(images)
    assert pooled.shape == (2, config.vision_config.hidden_size)  # the feature map's width
    # Real checkpoints: the feature map is 768 wide (ViT-B/16), text embeddings 512: embed() does not fit.
    base = Owlv2Config()
    assert (base.vision_config.hidden_size, base.projection_dim) == (768, 512)
    with pytest.raises(RoomTypesError, match="class head's image-class embedding"):
        scores_from_embeddings(
            np.ones(base.vision_config.hidden_size), np.ones((len(ROOMS), base.projection_dim))
        )

    # The class head's image-class embeddings (dense0 of the feature map) live in the text space: the
    # detection forward pass computes them (class_predictor's second output); pooled, they score rooms.
    with torch.inference_mode():
        feature_map, _ = detector.model.image_embedder(pixel_values=detector.preprocess(images))
        b, h, w, d = feature_map.shape
        queries = torch.from_numpy(text).unsqueeze(0).expand(b, -1, -1)
        logits, class_embeds = detector.model.class_predictor(feature_map.reshape(b, h * w, d), queries)
    assert logits.shape == (b, h * w, len(ROOMS))
    assert class_embeds.shape == (b, h * w, text.shape[1])
    for patches in class_embeds.numpy():
        scores = scores_from_embeddings(patches.mean(axis=0), text)
        assert scores.slugs == ROOMS.slugs
        assert sum(scores.probs) == pytest.approx(1.0)
        assert scores.best in ROOMS.slugs
