"""What every detector backend must do, checked on each real backend (tiny random models, real code paths).

A new backend adds one entry to ``BACKENDS`` and must pass this class unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from _models import make_image, tiny_taxonomy

from roomscan.backends import Detector, ModelInfo, get_detector
from roomscan.detection import labels_of

BACKENDS = ["owlv2", "rtdetr", "onnx"]


@pytest.fixture(scope="module")
def model_dirs(tiny_owlv2_dir, tiny_rtdetr_dir, tmp_path_factory) -> dict[str, str]:
    from roomscan.train.export import export_onnx

    onnx_dir = export_onnx(tiny_rtdetr_dir, tmp_path_factory.mktemp("contract-onnx") / "tiny-onnx").path
    return {"owlv2": str(tiny_owlv2_dir), "rtdetr": str(tiny_rtdetr_dir), "onnx": str(onnx_dir)}


@pytest.fixture(scope="module")
def build(model_dirs) -> Callable[..., Detector]:
    cache: dict[tuple, Detector] = {}

    def _build(backend: str, **kwargs) -> Detector:
        key = (backend, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = get_detector(model_dirs[backend], taxonomy=tiny_taxonomy(), device="cpu", **kwargs)
        return cache[key]

    return _build


@pytest.mark.parametrize("backend", BACKENDS)
class TestDetectorContract:
    def test_one_detections_per_image_in_order(self, build, backend):
        detector = build(backend, score_threshold=0.0)
        images = [make_image((96, 64), seed=i) for i in range(3)] + [make_image((40, 70), seed=9)]
        results = detector.predict(images, batch_size=2)
        assert len(results) == len(images)
        assert [r.metadata["image_size"] for r in results] == [im.size for im in images]
        assert detector.predict([]) == []

    def test_reports_detections_at_threshold_zero(self, build, backend):
        # Other suites (API, CLI, worker) rely on this: tiny model + score_threshold=0 finds something.
        dets = build(backend, score_threshold=0.0).predict_one(make_image())
        assert len(dets) > 0

    @pytest.mark.parametrize("size", [(96, 64), (64, 96), (1, 1), (5, 300), (300, 5), (97, 61)])
    def test_boxes_inside_the_image_and_well_formed(self, build, backend, size):
        dets = build(backend, score_threshold=0.0).predict_one(make_image(size))
        width, height = size
        assert dets.xyxy.dtype == np.float32 and dets.xyxy.shape == (len(dets), 4)
        x1, y1, x2, y2 = dets.xyxy.T
        assert np.all((0 <= x1) & (x1 <= x2) & (x2 <= width))
        assert np.all((0 <= y1) & (y1 <= y2) & (y2 <= height))

    def test_labels_and_class_ids_come_from_the_taxonomy(self, build, backend):
        detector = build(backend, score_threshold=0.0)
        dets = detector.predict_one(make_image(seed=3))
        taxonomy = detector.taxonomy
        assert set(labels_of(dets)) <= set(taxonomy.slugs)
        assert [taxonomy.slugs[i] for i in dets.class_id] == labels_of(dets)

    def test_scores_are_probabilities_sorted_high_to_low(self, build, backend):
        dets = build(backend, score_threshold=0.0).predict_one(make_image(seed=4))
        assert np.all((dets.confidence >= 0) & (dets.confidence <= 1))
        assert np.all(np.diff(dets.confidence) <= 0)

    def test_per_amenity_thresholds_are_respected(self, build, backend):
        detector = build(backend)
        thresholds = np.array([a.threshold for a in detector.taxonomy])
        for seed in range(3):
            dets = detector.predict_one(make_image(seed=seed))
            assert np.all(dets.confidence >= thresholds[dets.class_id])

    def test_score_threshold_overrides_every_amenity(self, build, backend):
        everything = build(backend, score_threshold=0.0).predict_one(make_image(seed=5))
        cut = float(np.median(everything.confidence))
        dets = build(backend, score_threshold=cut).predict_one(make_image(seed=5))
        assert len(dets) > 0 and np.all(dets.confidence >= cut)
        assert len(dets) <= len(everything)

    def test_max_detections_caps_the_output(self, build, backend):
        dets = build(backend, score_threshold=0.0, max_detections=2).predict_one(make_image())
        assert 0 < len(dets) <= 2

    def test_batching_gives_the_same_result_as_one_by_one(self, build, backend):
        detector = build(backend, score_threshold=0.0)
        images = [make_image((96, 64), seed=1), make_image((50, 80), seed=2), make_image((64, 64), seed=3)]
        batched = detector.predict(images, batch_size=3)
        single = [detector.predict_one(im) for im in images]
        for a, b in zip(batched, single):
            assert labels_of(a) == labels_of(b)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
            np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)

    def test_metadata_names_the_model(self, build, backend):
        detector = build(backend, score_threshold=0.0)
        dets = detector.predict_one(make_image())
        assert isinstance(detector.info, ModelInfo)
        assert {k: v for k, v in dets.metadata.items() if k != "image_embedding"} == {
            "image_size": (96, 64),
            "model": detector.info.key,
        }
        # Backends with a text tower add the photo's text-space embedding (room types read it); others do not.
        assert ("image_embedding" in dets.metadata) == detector.has_text_embeddings
        assert detector.info.taxonomy == tiny_taxonomy().fingerprint()

    def test_another_input_size_works_and_changes_the_key(self, build, backend):
        default = build(backend, score_threshold=0.0)
        resized = build(backend, score_threshold=0.0, image_size=96)
        dets = resized.predict_one(make_image((80, 60)))
        assert len(dets) > 0 and np.all(dets.xyxy[:, 2] <= 80) and np.all(dets.xyxy[:, 3] <= 60)
        assert resized.info.key != default.info.key

    def test_rejects_what_is_not_an_image(self, build, backend):
        with pytest.raises(TypeError, match="not a PIL image"):
            build(backend).predict([np.zeros((4, 4, 3))])
        with pytest.raises(ValueError, match="batch_size"):
            build(backend).predict([make_image()], batch_size=0)

    def test_accepts_non_rgb_images(self, build, backend):
        grey = make_image().convert("L")
        rgba = make_image().convert("RGBA")
        detector = build(backend, score_threshold=0.0)
        assert all(len(d) > 0 for d in detector.predict([grey, rgba]))

    def test_factory_passes_instances_through(self, build, backend):
        detector = build(backend)
        assert get_detector(detector) is detector

    def test_class_probs_give_every_amenity_a_probability(self, build, backend):
        detector = build(backend, score_threshold=0.0)
        assert detector.probability_kind in ("softmax", "sigmoid")
        for dets in detector.predict([make_image(seed=6), make_image((40, 70), seed=7)]):
            probs = dets.data["class_probs"]
            assert probs.dtype == np.float32 and probs.shape == (len(dets), len(detector.taxonomy))
            assert len(dets) > 0 and np.all((probs >= 0) & (probs <= 1))
            np.testing.assert_array_equal(dets.confidence, probs[np.arange(len(dets)), dets.class_id])
            if detector.probability_kind == "softmax":
                assert np.all(probs.sum(axis=1) <= 1 + 1e-5)
            kept = dets[dets.confidence >= np.median(dets.confidence)]
            kept_probs = kept.data["class_probs"]
            np.testing.assert_array_equal(kept.confidence, kept_probs[np.arange(len(kept)), kept.class_id])
