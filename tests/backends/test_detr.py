"""DETR-family loader: fine-tuned model directories, their taxonomy, and transformers' own post-processing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from _models import build_tiny_detr, build_tiny_rtdetr, make_image, tiny_taxonomy
from transformers import AutoImageProcessor, DetrForObjectDetection, RTDetrV2ForObjectDetection

from roomscan.backends import get_detector
from roomscan.backends.detr import TAXONOMY_FILE, DetrDetector, save_model_dir
from roomscan.errors import ModelUnavailableError, TaxonomyError
from roomscan.taxonomy import Amenity, Taxonomy, default_taxonomy


@pytest.fixture
def model_copy(tiny_rtdetr_dir, tmp_path):
    """A private copy of the tiny RT-DETRv2 directory, for tests that break it."""
    return shutil.copytree(tiny_rtdetr_dir, tmp_path / "model")


def test_factory_picks_the_detr_backend_from_config(tiny_rtdetr_dir):
    detector = get_detector(str(tiny_rtdetr_dir), device="cpu")
    assert isinstance(detector, DetrDetector)
    assert detector.taxonomy.amenities == tiny_taxonomy().amenities  # read from the directory's taxonomy.yaml
    assert detector.info.backend == "detr"
    assert detector.info.name == str(tiny_rtdetr_dir.resolve())


def test_matches_the_models_own_post_processing(tiny_rtdetr_dir):
    detector = get_detector(tiny_rtdetr_dir, device="cpu")
    model = RTDetrV2ForObjectDetection.from_pretrained(str(tiny_rtdetr_dir)).eval()
    processor = AutoImageProcessor.from_pretrained(str(tiny_rtdetr_dir))
    thresholds = np.array([a.threshold for a in tiny_taxonomy()])
    images = [make_image((90, 60), seed=1), make_image((50, 120), seed=2)]
    with torch.inference_mode():
        outputs = model(**processor(images=images, return_tensors="pt"))
    refs = processor.post_process_object_detection(
        outputs, threshold=float(thresholds.min()), target_sizes=[im.size[::-1] for im in images]
    )
    for image, ref, dets in zip(images, refs, detector.predict(images)):
        scores, labels, boxes = ref["scores"].numpy(), ref["labels"].numpy(), ref["boxes"].numpy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, image.width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, image.height)
        keep = (scores >= thresholds[labels]) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-scores[keep], kind="stable")
        assert len(dets) == keep.sum() > 0
        np.testing.assert_allclose(dets.confidence, scores[keep][order], atol=1e-6)
        np.testing.assert_allclose(dets.xyxy, boxes[keep][order], atol=1e-3)
        assert dets.class_id.tolist() == labels[keep][order].tolist()  # the model's ids are taxonomy indices


def test_reports_class_ids_in_a_larger_taxonomy(tiny_rtdetr_dir):
    # The default taxonomy holds bed, oven and sink at other indices: ids follow the taxonomy, not the model.
    detector = get_detector(tiny_rtdetr_dir, taxonomy=default_taxonomy(), device="cpu", score_threshold=0.0)
    dets = detector.predict_one(make_image())
    slugs = default_taxonomy().slugs
    assert len(dets) > 0
    assert {slugs[i] for i in dets.class_id} <= {"bed", "oven", "sink"}
    assert [slugs[i] for i in dets.class_id] == list(dets.data["class_name"])


def test_a_taxonomy_without_the_models_amenities_is_refused(tiny_rtdetr_dir):
    other = Taxonomy((Amenity("bed", "Bed"),), source="beds-only")
    with pytest.raises(TaxonomyError, match="lacks amenities the model detects: oven, sink"):
        DetrDetector(tiny_rtdetr_dir, taxonomy=other, device="cpu")


def test_optional_nms_drops_overlapping_boxes(tiny_rtdetr_dir):
    plain = DetrDetector(tiny_rtdetr_dir, device="cpu", score_threshold=0.0)
    nms = DetrDetector(tiny_rtdetr_dir, device="cpu", score_threshold=0.0, nms_threshold=0.01)
    image = make_image()
    assert len(nms.predict_one(image)) <= len(plain.predict_one(image))


def test_directory_without_taxonomy_is_a_clear_error(model_copy):
    (model_copy / TAXONOMY_FILE).unlink()
    with pytest.raises(ModelUnavailableError, match="no taxonomy.yaml in the model directory"):
        get_detector(model_copy, device="cpu")


def test_labels_that_disagree_with_the_taxonomy_are_a_clear_error(model_copy):
    Taxonomy((Amenity("bed", "Bed"), Amenity("oven", "Oven"), Amenity("sauna", "Sauna")), source="x").save(
        model_copy / TAXONOMY_FILE
    )
    with pytest.raises(
        ModelUnavailableError, match="disagree .*labels not in taxonomy.yaml: sink.*no label for: sauna"
    ):
        get_detector(model_copy, device="cpu")


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("{not json", "not a readable JSON model config"),
        ('{"hello": 1}', "no 'model_type'"),
        ('{"model_type": "bert"}', "no backend for model_type 'bert'.*owlv2.*rt_detr_v2"),
    ],
)
def test_garbage_config_is_a_clear_error(model_copy, config_text, message):
    (model_copy / "config.json").write_text(config_text)
    with pytest.raises(ModelUnavailableError, match=message):
        get_detector(model_copy, device="cpu")


def test_broken_weights_are_a_clear_error(model_copy):
    (model_copy / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelUnavailableError, match="cannot load this rt_detr_v2 checkpoint"):
        get_detector(model_copy, device="cpu")


def test_nonexistent_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no such model directory"):
        get_detector(tmp_path / "nowhere" / "model", device="cpu")


def test_save_model_dir_writes_what_the_loader_reads(tiny_rtdetr_dir, tmp_path):
    model = RTDetrV2ForObjectDetection.from_pretrained(str(tiny_rtdetr_dir))
    processor = AutoImageProcessor.from_pretrained(str(tiny_rtdetr_dir))
    renamed = Taxonomy(
        (Amenity("bed", "Bed"), Amenity("sauna", "Sauna"), Amenity("oven", "Oven")), source="renamed"
    )
    out = save_model_dir(model, processor, renamed, tmp_path / "saved")
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "bed", "1": "sauna", "2": "oven"}
    assert {p.name for p in out.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        TAXONOMY_FILE,
    }
    assert get_detector(out, device="cpu").taxonomy.slugs == ["bed", "sauna", "oven"]


def test_save_model_dir_refuses_a_taxonomy_of_another_size(tiny_rtdetr_dir, tmp_path):
    model = RTDetrV2ForObjectDetection.from_pretrained(str(tiny_rtdetr_dir))
    processor = AutoImageProcessor.from_pretrained(str(tiny_rtdetr_dir))
    with pytest.raises(ValueError, match="3 labels but the taxonomy has 30 amenities"):
        save_model_dir(model, processor, default_taxonomy(), tmp_path / "bad")


@pytest.fixture(scope="module")
def softmax_dir(tmp_path_factory):
    """The original DETR (softmax scores with a no-object class), tiny and random."""
    return build_tiny_detr(tmp_path_factory.mktemp("tiny-detr"))


@pytest.fixture(scope="module")
def dropout_dir(tmp_path_factory):
    """The tiny RT-DETRv2 trained "with dropout 0.1"."""
    return build_tiny_rtdetr(tmp_path_factory.mktemp("tiny-rtdetr-dropout"), dropout=0.1)


def test_probability_kind_follows_the_model_family(tiny_rtdetr_dir, softmax_dir):
    rtdetr = get_detector(tiny_rtdetr_dir, device="cpu")
    detr = get_detector(softmax_dir, device="cpu")
    assert (rtdetr.probability_kind, rtdetr.one_box_per_query) == ("sigmoid", False)
    assert (detr.probability_kind, detr.one_box_per_query) == ("softmax", True)


def test_softmax_detr_matches_its_own_post_processing(softmax_dir):
    detector = get_detector(softmax_dir, device="cpu", score_threshold=0.0)
    model = DetrForObjectDetection.from_pretrained(str(softmax_dir)).eval()
    processor = AutoImageProcessor.from_pretrained(str(softmax_dir))
    images = [make_image((90, 60), seed=1), make_image((50, 120), seed=2)]
    for image, dets in zip(images, detector.predict(images, batch_size=1)):
        with torch.inference_mode():
            outputs = model(**processor(images=[image], return_tensors="pt"))
        ref = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[image.size[::-1]])[0]
        scores, labels, boxes = ref["scores"].numpy(), ref["labels"].numpy(), ref["boxes"].numpy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, image.width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, image.height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-scores[keep], kind="stable")
        assert len(dets) == keep.sum() > 0
        np.testing.assert_allclose(dets.confidence, scores[keep][order], atol=1e-6)
        np.testing.assert_allclose(dets.xyxy, boxes[keep][order], atol=1e-3)
        assert dets.class_id.tolist() == labels[keep][order].tolist()
        probs = dets.data["class_probs"]
        assert np.all(probs.sum(axis=1) <= 1 + 1e-5) and np.all(probs.sum(axis=1) < 1)  # the rest: no object
        np.testing.assert_array_equal(dets.class_id, probs.argmax(axis=1))  # one box per query, its best class


def test_class_probs_of_a_larger_taxonomy_are_zero_for_unknown_amenities(tiny_rtdetr_dir):
    taxonomy = default_taxonomy()
    detector = get_detector(tiny_rtdetr_dir, taxonomy=taxonomy, device="cpu", score_threshold=0.0)
    dets = detector.predict_one(make_image())
    probs = dets.data["class_probs"]
    known = [taxonomy.index(s) for s in ("bed", "oven", "sink")]
    assert probs.shape == (len(dets), len(taxonomy))
    assert np.all(np.delete(probs, known, axis=1) == 0) and np.all(probs[:, known] > 0)


@pytest.mark.parametrize("which", ["rtdetr", "detr"])
def test_embed_is_one_normalised_deterministic_vector_per_image(tiny_rtdetr_dir, softmax_dir, which):
    detector = get_detector(tiny_rtdetr_dir if which == "rtdetr" else softmax_dir, device="cpu")
    images = [make_image((96, 64), seed=1), make_image((64, 96), seed=2).convert("L"), make_image((80, 80), seed=3)]
    vectors = detector.embed(images, batch_size=1)
    assert vectors.dtype == np.float32 and vectors.shape[0] == 3 and vectors.shape[1] >= 32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(detector.embed(images, batch_size=1), vectors)
    assert not np.allclose(vectors[0], vectors[1])  # depends on the photo
    if which == "rtdetr":  # fixed-size inputs: batching changes nothing
        np.testing.assert_allclose(detector.embed(images, batch_size=3), vectors, atol=1e-5)


def test_dropout_sampling_draws_different_detections_and_stops_after(dropout_dir):
    detector = get_detector(dropout_dir, device="cpu", score_threshold=0.0)
    image = make_image(seed=2)
    before = detector.predict_one(image)
    with detector.dropout_sampling():
        assert not detector.model.training  # the model itself stays in eval mode (no denoising queries)
        assert not any(m.training for m in detector.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        first, second = detector.predict_one(image), detector.predict_one(image)
        assert not np.array_equal(first.data["class_probs"], second.data["class_probs"])
    assert not any(m.training for m in detector.model.modules())
    after = [detector.predict_one(image) for _ in range(2)]
    for dets in after:
        np.testing.assert_array_equal(dets.confidence, before.confidence)
        np.testing.assert_array_equal(dets.xyxy, before.xyxy)


def test_dropout_sampling_without_dropout_is_a_clear_error(tiny_rtdetr_dir):
    detector = get_detector(tiny_rtdetr_dir, device="cpu")
    with pytest.raises(ValueError, match="no dropout with p > 0.*dropout > 0"), detector.dropout_sampling():
        pass
    assert not any(m.training for m in detector.model.modules())
