"""DETR-family loader: fine-tuned model directories, their taxonomy, and transformers' own post-processing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from _models import make_image, tiny_taxonomy
from transformers import AutoImageProcessor, RTDetrV2ForObjectDetection

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
