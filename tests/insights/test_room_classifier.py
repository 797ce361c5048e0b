"""Room type from the detection forward pass: OWLv2 carries the photo's text-space embedding; others use amenities."""

from __future__ import annotations

import numpy as np
import pytest
from _models import make_image, tiny_taxonomy

from roomscan.detection.core import make_detections
from roomscan.insights import default_room_types, photo_room_scores, scores_from_embeddings
from roomscan.insights.classify import RoomClassifier

ROOMS = default_room_types()


@pytest.fixture(scope="module")
def owlv2(tiny_owlv2_dir):
    pytest.importorskip("torch")
    from roomscan.backends.owlv2 import Owlv2Detector

    return Owlv2Detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu")


def test_owlv2_detections_carry_the_class_heads_pooled_embedding(owlv2):
    """The embedding in ``metadata`` is the mean of the class head's image-class embeddings over the patches
    that cover the photo (not the padding), computed in the detection pass itself."""
    import torch

    images = [make_image((96, 64), seed=0), make_image((64, 96), seed=1)]
    dets = owlv2.predict(images, batch_size=2)
    patch = owlv2.model.config.vision_config.patch_size
    with torch.inference_mode():
        _, _, class_embeds = owlv2._heads(owlv2.preprocess(images))
    side = owlv2.image_size // patch
    grid = class_embeds.numpy().reshape(2, side, side, -1)
    # 96x64 fills every column and 2/3 of the rows of the square; 64x96 the reverse.
    expected = [grid[0, : -(-side * 2 // 3), :].mean(axis=(0, 1)), grid[1, :, : -(-side * 2 // 3)].mean(axis=(0, 1))]
    for d, want in zip(dets, expected):
        got = d.metadata["image_embedding"]
        assert got.shape == (owlv2.model.config.projection_dim,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Batching does not change an image's embedding.
    alone = owlv2.predict([images[1]], batch_size=1)[0].metadata["image_embedding"]
    np.testing.assert_allclose(alone, dets[1].metadata["image_embedding"], rtol=1e-4, atol=1e-5)


def test_owlv2_text_embeddings_are_the_query_space(owlv2):
    prompts = [p for a in owlv2.taxonomy for p in a.prompts]
    text = owlv2.text_embeddings(prompts)
    assert text.shape == (len(prompts), owlv2.model.config.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(text, owlv2._query_embeds.numpy(), rtol=1e-5, atol=1e-6)
    assert owlv2.text_embeddings([]).shape == (0, owlv2.model.config.projection_dim)


def test_classifier_on_owlv2_combines_the_embedding_with_amenities(owlv2):
    rooms = RoomClassifier(owlv2)
    assert rooms.uses_embeddings and rooms.source == "embedding+amenities"
    dets = owlv2.predict([make_image((80, 80), seed=3)])[0]
    scores = rooms.scores(dets)
    assert scores.slugs == ROOMS.slugs
    assert sum(scores.probs) == pytest.approx(1.0, abs=1e-6)
    # Exactly what the pure function gives from the same embedding and the room prompts' text embeddings.
    text = np.stack([owlv2.text_embeddings(r.prompts).mean(axis=0) for r in ROOMS])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    want = photo_room_scores(
        dets, image_embedding=dets.metadata["image_embedding"], room_text_embeddings=text, taxonomy=owlv2.taxonomy
    )
    np.testing.assert_allclose(scores.probs, want.probs, rtol=1e-4, atol=1e-6)
    assert "embedding" in scores.source


def test_classifier_follows_the_embedding_when_amenities_are_silent(owlv2):
    """A photo whose embedding points at the kitchen's prompts is typed kitchen with no amenity found."""
    rooms = RoomClassifier(owlv2)
    kitchen = ROOMS.slugs.index("kitchen")
    empty = make_detections(np.zeros((0, 4)), [], [], [], metadata={"image_embedding": rooms._room_text[kitchen]})
    assert rooms.scores(empty).best == "kitchen"
    zero_shot = scores_from_embeddings(rooms._room_text[kitchen], rooms._room_text)
    assert zero_shot.best == "kitchen"


def test_classifier_without_an_embedding_uses_amenities_alone(owlv2):
    """Stored detections re-scored (no embedding) or a mismatched one fall back to the amenity evidence."""
    rooms = RoomClassifier(owlv2)
    toilet = make_detections(
        np.array([[0, 0, 10, 10]], dtype=float), [0.9], [2], ["sink"], metadata={}
    )
    alone = photo_room_scores(toilet, taxonomy=owlv2.taxonomy)
    np.testing.assert_allclose(rooms.scores(toilet).probs, alone.probs)
    toilet.metadata["image_embedding"] = np.ones(7, dtype=np.float32)  # wrong width
    np.testing.assert_allclose(rooms.scores(toilet).probs, alone.probs)
    assert rooms.scores(toilet).best == "bathroom"


def test_classifier_on_a_detector_without_text_uses_amenities(tiny_rtdetr_dir):
    pytest.importorskip("torch")
    from roomscan.backends import get_detector

    detector = get_detector(str(tiny_rtdetr_dir), device="cpu")
    assert not detector.has_text_embeddings
    with pytest.raises(NotImplementedError, match="no text embeddings"):
        detector.text_embeddings(["a kitchen"])
    rooms = RoomClassifier(detector)
    assert not rooms.uses_embeddings and rooms.source == "amenities"
    dets = detector.predict([make_image((64, 64), seed=0)])[0]
    assert "image_embedding" not in dets.metadata
    scores = rooms.scores(dets)
    assert scores.slugs == ROOMS.slugs and scores.source == "amenities"
