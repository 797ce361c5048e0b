"""An OWLv2 ONNX export reports what Owlv2Detector reports on the same photos, and serves its own taxonomy only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import make_image, tiny_taxonomy

from roomscan.backends import get_detector
from roomscan.backends.onnx import METADATA_FILE, OnnxDetector, SquarePreprocessing
from roomscan.backends.owlv2 import Owlv2Detector
from roomscan.errors import ModelUnavailableError, TaxonomyError
from roomscan.taxonomy import Amenity, Taxonomy

pytest.importorskip("onnxruntime")

# Landscape, portrait, odd sizes, a grey photo and a thin strip: padding and scaling by the long side.
PHOTOS = [((96, 64), 0), ((64, 96), 1), ((97, 61), 2), ((40, 70), 3), ((300, 5), 4), ((64, 64), 5)]


def photos() -> list:
    images = [make_image(size, seed) for size, seed in PHOTOS]
    images[1] = images[1].convert("L")
    return images


@pytest.fixture(scope="module")
def exports(tiny_owlv2_dir, tmp_path_factory) -> dict[str, Path]:
    from roomscan.train.export import ExportConfig
    from roomscan.train.export_owlv2 import export_owlv2

    root = tmp_path_factory.mktemp("owl-onnx")
    return {
        "fp32": export_owlv2(tiny_owlv2_dir, root / "fp32", taxonomy=tiny_taxonomy()).path,
        "int8": export_owlv2(
            tiny_owlv2_dir, root / "int8", ExportConfig(int8=True), taxonomy=tiny_taxonomy()
        ).path,
    }


def _pair(exports, tiny_owlv2_dir, kind="fp32", **options) -> tuple[OnnxDetector, Owlv2Detector]:
    onnx = get_detector(exports[kind], device="cpu", **options)
    eager = get_detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu", **options)
    assert isinstance(onnx, OnnxDetector) and isinstance(eager, Owlv2Detector)
    return onnx, eager


def test_preprocessing_is_owlv2s_to_the_last_bit_without_torch(exports, tiny_owlv2_dir):
    onnx, eager = _pair(exports, tiny_owlv2_dir)
    assert isinstance(onnx.preprocess, SquarePreprocessing) and onnx.image_size == (64, 64)
    images = [im.convert("RGB") for im in photos()]
    np.testing.assert_array_equal(onnx.preprocess(images), eager.preprocess(images).numpy())


@pytest.mark.parametrize(
    "options",
    [{"score_threshold": 0.0}, {}, {"score_threshold": 0.0, "nms_threshold": None}],
    ids=["every-patch-with-nms", "taxonomy-thresholds", "no-nms"],
)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_fp32_detections_equal_the_eager_detectors(exports, tiny_owlv2_dir, options, batch_size):
    onnx, eager = _pair(exports, tiny_owlv2_dir, **options)
    assert onnx.nms_threshold == eager.nms_threshold  # the export's default NMS is the source detector's
    ours = onnx.predict(photos(), batch_size=batch_size)
    theirs = eager.predict(photos(), batch_size=batch_size)
    assert sum(len(d) for d in theirs) > len(theirs)  # the comparison covers real detections
    for a, b in zip(ours, theirs, strict=True):
        assert list(a.data["class_name"]) == list(b.data["class_name"])
        assert np.abs(a.confidence - b.confidence).max(initial=0) < 1e-4
        assert np.abs(a.data["class_probs"] - b.data["class_probs"]).max(initial=0) < 1e-4
        assert np.abs(a.xyxy - b.xyxy).max(initial=0) < 1e-3  # pixels
        assert a.metadata["image_size"] == b.metadata["image_size"]
        assert (a.confidence >= onnx.thresholds[a.class_id]).all()


def test_class_probs_are_sigmoids_of_each_amenitys_best_prompt(exports, tiny_owlv2_dir):
    onnx, eager = _pair(exports, tiny_owlv2_dir, score_threshold=0.0)
    dets = onnx.predict_one(make_image())
    assert dets.data["class_probs"].shape == (len(dets), 3) and onnx.probability_kind == "sigmoid"
    assert ((dets.data["class_probs"] > 0) & (dets.data["class_probs"] < 1)).all()
    np.testing.assert_array_equal(dets.confidence, dets.data["class_probs"][np.arange(len(dets)), dets.class_id])


def test_int8_runs_close_to_fp32_and_reports_its_drift(exports, tiny_owlv2_dir):
    int8, eager = _pair(exports, tiny_owlv2_dir, kind="int8", score_threshold=0.0, nms_threshold=None)
    assert int8.metadata.int8 and int8.metadata.quantization == "dynamic"
    reported = int8.metadata.checks["int8_vs_torch"]
    ours, theirs = int8.predict(photos()), eager.predict(photos())
    for a, b in zip(ours, theirs, strict=True):
        # No threshold, no NMS: every patch whose box covers the photo; boxes on the padding's edge may come or go.
        assert len(b) > 0 and abs(len(a) - len(b)) <= max(2, len(b) // 10)
        assert abs(a.confidence[0] - b.confidence[0]) < 0.1  # random tiny weights: loose; the figure is recorded
    assert 0 < reported["scores_max_abs"] < 0.1 and reported["scores_mean_abs"] <= reported["scores_max_abs"]


def test_the_export_serves_its_own_taxonomy_and_refuses_another(exports):
    own = get_detector(exports["fp32"], device="cpu")
    assert own.taxonomy.fingerprint() == tiny_taxonomy().fingerprint() == own.metadata.taxonomy
    assert own.info.backend == "onnx" and own.info.taxonomy == tiny_taxonomy().fingerprint()
    assert get_detector(exports["fp32"], taxonomy=tiny_taxonomy(), device="cpu").taxonomy.slugs == own.taxonomy.slugs
    other = Taxonomy((Amenity("bed", "Bed", prompts=("a bed",)),), source="other.yaml")
    with pytest.raises(TaxonomyError, match=r"baked into the graph.*other\.yaml.*re-export"):
        get_detector(exports["fp32"], taxonomy=other, device="cpu")
    retuned = Taxonomy(
        tuple(Amenity(a.slug, a.name, prompts=a.prompts, threshold=0.9) for a in tiny_taxonomy()), source="t"
    )
    with pytest.raises(TaxonomyError, match="--min-score"):  # thresholds are part of the taxonomy's identity
        get_detector(exports["fp32"], taxonomy=retuned, device="cpu")


def test_an_edited_taxonomy_file_is_refused(exports, tmp_path):
    edited = shutil.copytree(exports["fp32"], tmp_path / "edited")
    other = Taxonomy((Amenity("bed", "Bed", prompts=("a bed",)),), source="x")
    other.save(edited / "taxonomy.yaml")
    with pytest.raises(ModelUnavailableError, match="not the taxonomy the graph was exported with"):
        get_detector(edited, device="cpu")


def test_the_export_takes_its_size_only(exports):
    assert get_detector(exports["fp32"], device="cpu", image_size=64).image_size == (64, 64)
    with pytest.raises(ValueError, match="exported for 64x64 inputs only; re-export with --image-size 96"):
        get_detector(exports["fp32"], device="cpu", image_size=96)


def test_embed_and_dropout_sampling_say_to_use_the_source_model(exports):
    detector = get_detector(exports["fp32"], device="cpu")
    with pytest.raises(NotImplementedError, match="no image embedding.*owlv2 backend"):
        detector.embed([make_image()])
    with pytest.raises(NotImplementedError, match="PyTorch model"), detector.dropout_sampling():
        pass


def test_metadata_records_what_the_backend_relies_on(exports, tiny_owlv2_dir):
    meta = json.loads((exports["fp32"] / METADATA_FILE).read_text())
    assert meta["model_type"] == "owlv2" and meta["taxonomy"] == tiny_taxonomy().fingerprint()
    assert meta["nms_threshold"] == 0.3 and meta["dynamic_size"] is False and meta["input_size"] == [64, 64]
    eager = Owlv2Detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu")
    assert meta["source_model"] == eager.info.key


def test_serving_an_owlv2_export_imports_neither_torch_nor_transformers(exports):
    code = (
        "import sys; from PIL import Image; from roomscan.backends import get_detector; "
        f"d = get_detector({str(exports['fp32'])!r}, device='cpu', score_threshold=0.0); "
        "assert len(d.predict_one(Image.new('RGB', (80, 60), (200, 30, 90)))) > 0; "
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == ""
