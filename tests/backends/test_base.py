"""The ``Detector`` base class: one ``predict`` for every backend, candidate boxes as transformers picks them,
``class_probs`` aligned with the boxes, and the uncertainty hooks (``embed``, ``dropout_sampling``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from _models import make_image, tiny_taxonomy
from PIL import Image

from roomscan.backends import ModelInfo
from roomscan.backends._base import Detector, RawOutput, candidates, dropout_modules
from roomscan.backends._common import class_thresholds
from roomscan.detection import labels_of
from roomscan.detection.core import make_detections


class FakeDetector(Detector):
    """Overrides only ``_forward``: fixed boxes and probabilities over 4 model classes, the last one unknown."""

    def __init__(self, *, one_box_per_query: bool = True, **settings) -> None:
        self.taxonomy = tiny_taxonomy()  # bed, oven, sink
        self.info = ModelInfo("fake", "fake-model", "0" * 12, self.taxonomy.fingerprint())
        self.thresholds = class_thresholds(self.taxonomy, settings.pop("score_threshold", None))
        # Model classes: 0 = sink, 1 = bed, 2 = (not in the taxonomy), 3 = oven.
        self.class_map = np.array([2, 0, -1, 1])
        self.one_box_per_query = one_box_per_query
        self.seen: list[list[tuple[str, tuple[int, int]]]] = []
        for key, value in settings.items():
            setattr(self, key, value)

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        self.seen.append([(im.mode, im.size) for im in batch])
        out = []
        for image in batch:
            w, h = image.size
            boxes = np.array(
                [[0, 0, w / 2, h / 2], [1, 1, w / 2 + 1, h / 2 + 1], [w / 2, h / 2, w + 5, h + 5], [0, 0, 0, 9]],
                dtype=np.float32,
            )
            probs = np.array(
                [
                    [0.05, 0.90, 0.00, 0.02],  # bed
                    [0.10, 0.80, 0.00, 0.60],  # bed, overlapping the first; oven second best
                    [0.70, 0.00, 0.95, 0.20],  # an unknown class first, then sink
                    [0.99, 0.00, 0.00, 0.00],  # zero area
                ],
                dtype=np.float32,
            )
            out.append(RawOutput(boxes, probs))
        return out


def test_a_backend_overriding_only_forward_gets_the_full_predict():
    detector = FakeDetector(score_threshold=0.0)
    images = [make_image((80, 60), seed=1).convert("L"), make_image((40, 100), seed=2), make_image((30, 30))]
    results = detector.predict(images, batch_size=2)

    assert [len(b) for b in detector.seen] == [2, 1]  # batched
    assert all(mode == "RGB" for batch in detector.seen for mode, _ in batch)  # converted to RGB
    assert [r.metadata for r in results] == [
        {"image_size": im.size, "model": detector.info.key} for im in images
    ]
    dets = results[0]
    # One box per query, its best *taxonomy* class; the zero-area box is gone; sorted by score.
    assert labels_of(dets) == ["bed", "bed", "sink"]
    np.testing.assert_allclose(dets.confidence, [0.9, 0.8, 0.7])
    assert dets.data["class_probs"].shape == (3, 3) and dets.data["class_probs"].dtype == np.float32
    np.testing.assert_allclose(dets.data["class_probs"][0], [0.90, 0.02, 0.05])  # taxonomy order: bed, oven, sink
    np.testing.assert_allclose(dets.data["class_probs"][2], [0.00, 0.20, 0.70])  # the unknown class is dropped
    assert np.all(dets.xyxy[:, 2] <= 80) and np.all(dets.xyxy[:, 3] <= 60)  # clipped
    assert detector.predict([]) == []
    with pytest.raises(TypeError, match="not a PIL image"):
        detector.predict([np.zeros((4, 4, 3))])
    with pytest.raises(ValueError, match="batch_size"):
        detector.predict(images, batch_size=0)


def test_thresholds_nms_and_max_detections_apply_to_every_backend():
    image = make_image((80, 60))
    # tiny_taxonomy thresholds: bed 0.05, oven 0.1, sink 0.3.
    assert len(FakeDetector().predict_one(image)) == 3
    assert labels_of(FakeDetector(score_threshold=0.75).predict_one(image)) == ["bed", "bed"]
    nms = FakeDetector(score_threshold=0.0, nms_threshold=0.5).predict_one(image)
    assert labels_of(nms) == ["bed", "sink"]  # the two beds overlap
    np.testing.assert_allclose(nms.data["class_probs"][:, 2], [0.05, 0.70])  # rows follow their boxes
    capped = FakeDetector(score_threshold=0.0, max_detections=1).predict_one(image)
    assert labels_of(capped) == ["bed"] and capped.data["class_probs"].shape == (1, 3)


def test_top_k_over_queries_and_classes_gives_a_query_several_boxes():
    detector = FakeDetector(one_box_per_query=False, score_threshold=0.0)
    dets = detector.predict_one(make_image((80, 60)))
    # The 4 best (query, model class) pairs: (3, sink) .99 [zero area], (2, unknown) .95 [dropped],
    # (0, bed) .90, (1, bed) .80; then thresholds and clipping.
    assert labels_of(dets) == ["bed", "bed"]
    k5 = candidates(np.tile([[0.5, 0.4, 0.3, 0.2]], (5, 1)), np.array([2, 0, -1, 1]), 3, one_box_per_query=False)
    rows, class_ids, _ = k5
    assert rows.tolist() == [0, 1, 2, 3, 4] and class_ids.tolist() == [2] * 5  # k = number of queries


@pytest.mark.parametrize("one_box_per_query", [True, False])
def test_confidence_is_the_class_probability_of_the_box(one_box_per_query):
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (20, 4)).astype(np.float32)
    rows, class_ids, class_probs = candidates(
        probs, np.array([2, 0, -1, 1]), 3, one_box_per_query=one_box_per_query
    )
    assert class_probs.shape == (len(rows), 3)
    np.testing.assert_array_equal(class_probs, probs[rows][:, [1, 3, 0]])  # model class of each amenity
    if one_box_per_query:
        assert rows.tolist() == list(range(20))
        np.testing.assert_array_equal(class_ids, class_probs.argmax(1))
    else:
        assert len(rows) <= 20 and np.all(np.diff(class_probs[np.arange(len(rows)), class_ids]) <= 0)


def test_class_map_shorter_than_the_model_counts_the_rest_as_unknown():
    probs = np.array([[0.1, 0.2, 0.9]])
    rows, class_ids, class_probs = candidates(probs, np.array([0, 1]), 2, one_box_per_query=True)
    assert class_ids.tolist() == [1] and class_probs.tolist() == [[pytest.approx(0.1), pytest.approx(0.2)]]
    with pytest.raises(ValueError, match="class_map has 3 entries for 2 model classes"):
        candidates(np.zeros((1, 2)), np.array([0, 1, 2]), 3, one_box_per_query=True)


def test_sigmoid_top_k_equals_rt_detr_post_processing():
    from transformers import RTDetrImageProcessor
    from transformers.models.rt_detr.modeling_rt_detr import RTDetrObjectDetectionOutput

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 10, 3)).astype(np.float32)
    probs = 1 / (1 + np.exp(-logits))
    outputs = RTDetrObjectDetectionOutput(logits=torch.from_numpy(logits), pred_boxes=torch.rand(3, 10, 4))
    expected = RTDetrImageProcessor().post_process_object_detection(outputs, threshold=0.3)
    for b, want in enumerate(expected):
        rows, class_ids, class_probs = candidates(probs[b], np.arange(3), 3, one_box_per_query=False)
        scores = class_probs[np.arange(len(rows)), class_ids]
        keep = scores > 0.3
        np.testing.assert_allclose(scores[keep], want["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(class_ids[keep], want["labels"].numpy())


def test_softmax_best_class_equals_detr_post_processing():
    from transformers import DetrImageProcessor
    from transformers.models.detr.modeling_detr import DetrObjectDetectionOutput

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 10, 4)).astype(np.float32)  # 3 classes + no-object
    probs = torch.from_numpy(logits).softmax(-1)[..., :-1].numpy()
    outputs = DetrObjectDetectionOutput(logits=torch.from_numpy(logits), pred_boxes=torch.rand(2, 10, 4))
    expected = DetrImageProcessor().post_process_object_detection(outputs, threshold=0.2)
    for b, want in enumerate(expected):
        rows, class_ids, class_probs = candidates(probs[b], np.arange(3), 3, one_box_per_query=True)
        scores = class_probs[rows, class_ids]
        keep = scores > 0.2
        np.testing.assert_allclose(scores[keep], want["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(class_ids[keep], want["labels"].numpy())
        assert np.all(class_probs.sum(1) <= 1 + 1e-5)


def test_slicing_and_nms_keep_class_probs_aligned():
    probs = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.3]], dtype=np.float32)
    dets = make_detections(
        [[0, 0, 10, 10], [20, 20, 30, 30], [1, 1, 10, 10]], [0.9, 0.7, 0.6], [0, 1, 0], ["a", "b", "a"],
        class_probs=probs,
    )
    masked = dets[dets.confidence > 0.65]
    np.testing.assert_array_equal(masked.data["class_probs"], probs[:2])
    np.testing.assert_array_equal(dets[np.array([2, 0])].data["class_probs"], probs[[2, 0]])
    kept = dets.with_nms(threshold=0.5, class_agnostic=False)
    assert len(kept) == 2
    for box, row in zip(kept.xyxy, kept.data["class_probs"]):
        np.testing.assert_array_equal(row, probs[[i for i, b in enumerate(dets.xyxy) if np.all(b == box)][0]])


def test_hooks_are_clear_about_backends_without_them():
    detector = FakeDetector()
    with pytest.raises(NotImplementedError, match="fake backend has no image embedding"):
        detector.embed([make_image()])
    assert detector.embed([]).shape[0] == 0
    with pytest.raises(NotImplementedError, match="no torch model"), detector.dropout_sampling():
        pass


class TorchFake(FakeDetector):
    """A fake with a torch model: dropout (optional) between a BatchNorm and a linear layer."""

    def __init__(self, p: float) -> None:
        super().__init__(score_threshold=0.0)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Dropout(p), torch.nn.Linear(16, 8)
        ).eval()

    def _torch_module(self):
        return self.model

    def _embed(self, batch):
        with torch.inference_mode():
            pixels = np.stack([np.asarray(im, dtype=np.float32)[:2, :4, 0].reshape(-1) for im in batch])
            return self.model(torch.from_numpy(pixels) / 255).numpy()


def test_dropout_sampling_switches_on_dropout_only():
    detector = TorchFake(p=0.5)
    images = [make_image((40, 40), seed=1), make_image((40, 40), seed=2)]
    plain = detector.embed(images)
    assert np.allclose(plain, detector.embed(images))
    with detector.dropout_sampling():
        dropout, norm = detector.model[2], detector.model[1]
        assert dropout.training and not norm.training and not detector.model.training
        first, second = detector.embed(images), detector.embed(images)
        assert not np.allclose(first, second)
    assert not any(m.training for m in detector.model.modules())
    np.testing.assert_array_equal(detector.embed(images), plain)


def test_dropout_sampling_without_dropout_tells_how_to_get_it():
    with pytest.raises(ValueError, match="no dropout with p > 0.*train .*dropout > 0"), TorchFake(
        p=0.0
    ).dropout_sampling():
        pass


def test_transformers_layers_with_functional_dropout_are_switched_but_not_whole_models():
    from transformers import RTDetrV2Config, RTDetrV2ForObjectDetection

    config = RTDetrV2Config(
        backbone_config={
            "model_type": "rt_detr_resnet",
            "hidden_sizes": [8, 16, 24, 32],
            "embedding_size": 8,
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
            "out_features": ["stage2", "stage3", "stage4"],
        },
        encoder_in_channels=[16, 24, 32], encoder_hidden_dim=32, encoder_ffn_dim=64, d_model=32,
        decoder_in_channels=[32, 32, 32], decoder_ffn_dim=64, decoder_layers=2, num_queries=10, num_denoising=0,
        use_pretrained_backbone=False, dropout=0.1, attention_dropout=0.1, activation_dropout=0.1,
        decoder_attention_heads=2, encoder_attention_heads=2, decoder_n_points=2, anchor_image_size=None,
    )
    model = RTDetrV2ForObjectDetection(config).eval()
    switched = dropout_modules(model)
    names = {type(m).__name__ for m in switched}
    assert {"RTDetrV2DecoderLayer", "RTDetrV2MLP"} <= names
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in switched)
    assert not any(type(m).__name__.endswith(("Model", "Decoder", "HybridEncoder", "ForObjectDetection"))
                   for m in switched)
