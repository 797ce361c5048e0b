"""OWLv2 backend: the cached-text-query path equals transformers' full forward, and boxes land on the photo."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _models import make_image, tiny_taxonomy
from transformers import Owlv2ForObjectDetection, Owlv2Processor

from roomscan.backends.owlv2 import Owlv2Detector
from roomscan.detection import labels_of
from roomscan.taxonomy import Amenity, Taxonomy

# One prompt per amenity, so a detection's class is the prompt transformers' post-processing reports.
ONE_PROMPT = Taxonomy(
    (
        Amenity("bed", "Bed", prompts=("a bed",)),
        Amenity("oven", "Oven", prompts=("an oven",)),
        Amenity("sink", "Sink", prompts=("a sink",)),
    ),
    source="one-prompt",
)


@pytest.fixture(scope="module")
def reference(tiny_owlv2_dir):
    model = Owlv2ForObjectDetection.from_pretrained(str(tiny_owlv2_dir)).eval()
    return model, Owlv2Processor.from_pretrained(str(tiny_owlv2_dir))


@pytest.mark.parametrize("image_size", [None, 96, 32])
def test_cached_text_queries_match_the_full_forward(tiny_owlv2_dir, reference, image_size):
    model, processor = reference
    taxonomy = tiny_taxonomy()
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=taxonomy, device="cpu", image_size=image_size)
    prompts = [p for a in taxonomy for p in a.prompts]
    images = [make_image((90, 60), seed=1), make_image((40, 70), seed=2)]
    pixels = detector.preprocess(images)
    tokens = processor(text=[prompts] * len(images), return_tensors="pt")
    with torch.inference_mode():
        expected = model(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            pixel_values=pixels,
            interpolate_pos_encoding=image_size is not None,
        )
        logits, boxes = detector.raw_outputs(pixels)
    side = detector.image_size // 8
    assert logits.shape == (2, side * side, len(prompts))
    torch.testing.assert_close(logits, expected.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(boxes, expected.pred_boxes, atol=1e-4, rtol=1e-4)


def test_amenity_score_is_its_best_prompt(tiny_owlv2_dir):
    taxonomy = tiny_taxonomy()
    detector = Owlv2Detector(
        tiny_owlv2_dir,
        taxonomy=taxonomy,
        device="cpu",
        score_threshold=0.0,
        nms_threshold=None,
        max_detections=10_000,
    )
    image = make_image((64, 64), seed=3)  # square: no box lies wholly in the padding
    with torch.inference_mode():
        logits, _ = detector.raw_outputs(detector.preprocess([image]))
    probs = logits[0].sigmoid().numpy()  # [n_patches, n_prompts]
    # Prompt columns of each amenity, in taxonomy order: bed 0-1, oven 2, sink 3-5.
    per_class = np.stack([probs[:, 0:2].max(1), probs[:, 2], probs[:, 3:6].max(1)], axis=1)
    dets = detector.predict_one(image)
    assert sorted(dets.confidence.tolist()) == pytest.approx(sorted(per_class.max(1).tolist()), abs=1e-6)
    assert set(dets.class_id.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("size", [(90, 60), (45, 100)])
def test_boxes_match_transformers_post_processing_on_a_non_square_photo(tiny_owlv2_dir, reference, size):
    model, processor = reference
    detector = Owlv2Detector(
        tiny_owlv2_dir,
        taxonomy=ONE_PROMPT,
        device="cpu",
        score_threshold=0.0,
        nms_threshold=None,
        max_detections=10_000,
    )
    image = make_image(size, seed=4)
    pixels = detector.preprocess([image])
    tokens = processor(text=[["a bed", "an oven", "a sink"]], return_tensors="pt")
    with torch.inference_mode():
        outputs = model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels
        )
    ref = processor.post_process_grounded_object_detection(
        outputs, threshold=0.0, target_sizes=[image.size[::-1]]
    )[0]
    width, height = size
    boxes = ref["boxes"].numpy().copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    on_photo = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = np.argsort(-ref["scores"].numpy()[on_photo], kind="stable")

    dets = detector.predict_one(image)
    assert len(dets) == on_photo.sum() > 0
    np.testing.assert_allclose(dets.xyxy, boxes[on_photo][order], atol=1e-3)
    np.testing.assert_allclose(dets.confidence, ref["scores"].numpy()[on_photo][order], atol=1e-6)
    assert dets.class_id.tolist() == ref["labels"].numpy()[on_photo][order].tolist()


def test_boxes_scale_by_the_long_side_of_the_photo(tiny_owlv2_dir):
    # The model sees the photo padded bottom/right to a square: a normalised box maps to pixels by max(w, h).
    detector = Owlv2Detector(
        tiny_owlv2_dir,
        taxonomy=ONE_PROMPT,
        device="cpu",
        score_threshold=0.0,
        nms_threshold=None,
        max_detections=10_000,
    )
    image = make_image((100, 40), seed=5)
    with torch.inference_mode():
        logits, boxes = detector.raw_outputs(detector.preprocess([image]))
    cx, cy, w, h = boxes[0].numpy().T
    manual = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * 100
    manual[:, [1, 3]] = manual[:, [1, 3]].clip(0, 40)
    manual[:, [0, 2]] = manual[:, [0, 2]].clip(0, 100)
    best = logits[0].sigmoid().max(-1).values.numpy()
    dets = detector.predict_one(image)
    for box, score in zip(dets.xyxy, dets.confidence):
        i = int(np.argmin(np.abs(best - score)))
        np.testing.assert_allclose(box, manual[i], atol=1e-3)


def test_preprocessing_matches_the_image_processor(tiny_owlv2_dir, reference):
    _, processor = reference
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu")
    image = make_image((160, 100), seed=6)
    ours = detector.preprocess([image])[0].numpy()
    theirs = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0].numpy()
    assert ours.shape == theirs.shape == (3, 64, 64)
    # Same layout (photo top-left, zero padding below) and nearly the same pixels (PIL vs SciPy resampling).
    assert np.abs(ours - theirs).mean() < 0.1
    np.testing.assert_allclose(ours[:, 48:, :], theirs[:, 48:, :], atol=1e-5)


def test_image_size_must_fit_the_patch_grid(tiny_owlv2_dir):
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu", image_size=100)


def test_long_prompts_are_truncated_with_a_warning(tiny_owlv2_dir, caplog):
    long = "a very long description of a bathroom sink with two taps and a mirror above it"
    taxonomy = Taxonomy((Amenity("sink", "Sink", prompts=(long,)),), source="long")
    with caplog.at_level(logging.WARNING, logger="roomscan.backends.owlv2"):
        detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=taxonomy, device="cpu", score_threshold=0.0)
    assert "truncated" in caplog.text
    assert labels_of(detector.predict_one(make_image()))[0] == "sink"


def test_default_model_key_has_no_settings_suffix(tiny_owlv2_dir):
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu")
    assert detector.info.backend == "owlv2"
    assert (
        detector.info.key
        == f"owlv2:{tiny_owlv2_dir.resolve()}@{detector.info.version[:12]}+{ONE_PROMPT.fingerprint()}"
    )
    assert Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu", image_size=32).info.key.endswith(
        "/size=32"
    )


def test_class_probs_are_each_amenitys_best_prompt_for_the_box(tiny_owlv2_dir):
    taxonomy = tiny_taxonomy()
    detector = Owlv2Detector(
        tiny_owlv2_dir,
        taxonomy=taxonomy,
        device="cpu",
        score_threshold=0.0,
        nms_threshold=None,
        max_detections=10_000,
    )
    assert (detector.probability_kind, detector.one_box_per_query) == ("sigmoid", True)
    image = make_image((64, 64), seed=3)
    with torch.inference_mode():
        logits, _ = detector.raw_outputs(detector.preprocess([image]))
    probs = logits[0].sigmoid().numpy()
    per_class = np.stack([probs[:, 0:2].max(1), probs[:, 2], probs[:, 3:6].max(1)], axis=1)  # [n_patches, 3]
    dets = detector.predict_one(image)
    got = dets.data["class_probs"]
    assert got.shape == (len(dets), 3) == per_class.shape
    # Every patch's row appears once (the order follows the scores).
    np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], per_class[np.lexsort(per_class.T[::-1])], atol=1e-6)
    np.testing.assert_array_equal(dets.confidence, got.max(axis=1))


def test_embed_pools_the_photos_patches(tiny_owlv2_dir):
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu")
    images = [make_image((90, 60), seed=1), make_image((40, 70), seed=2).convert("RGBA"), make_image(seed=3)]
    vectors = detector.embed(images, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (3, detector.model.config.vision_config.hidden_size)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(detector.embed(images, batch_size=1), vectors, atol=1e-5)  # batch-independent
    assert not np.allclose(vectors[0], vectors[1])
    # Only the patches that cover the photo count: the 90x60 photo fills 64x43 pixels, rows 0-5 of the 8x8 grid.
    with torch.inference_mode():
        grid, _ = detector.model.image_embedder(pixel_values=detector.preprocess(images[:1]))
    manual = grid[0, :6, :8].mean(dim=(0, 1)).numpy()
    np.testing.assert_allclose(vectors[0], manual / np.linalg.norm(manual), atol=1e-5)


def test_dropout_sampling_needs_a_model_with_dropout(tiny_owlv2_dir):
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=ONE_PROMPT, device="cpu")
    with pytest.raises(ValueError, match="no dropout with p > 0"), detector.dropout_sampling():
        pass
