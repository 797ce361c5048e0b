"""Committees: each member's boxes in the original photo's pixels, members that differ, clear errors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from _models import build_tiny_rtdetr, make_image, tiny_taxonomy
from PIL import Image

from roomscan.active.committee import Committee, CommitteeError, thumbnail_embedding
from roomscan.backends import Detector, ModelInfo, get_detector
from roomscan.backends._base import RawOutput
from roomscan.taxonomy import Amenity, Taxonomy


class BlobDetector(Detector):
    """Finds the one bright-red rectangle of a photo: its box follows the pixels, so views can be checked."""

    def __init__(self, taxonomy: Taxonomy | None = None, name: str = "blob") -> None:
        self.taxonomy = taxonomy or tiny_taxonomy()
        self.info = ModelInfo("fake", name, "0" * 12, self.taxonomy.fingerprint())
        self.thresholds = np.zeros(len(self.taxonomy), dtype=np.float32)
        self.class_map = np.arange(len(self.taxonomy))

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        out = []
        for image in batch:
            arr = np.asarray(image, dtype=np.int64)
            ys, xs = np.nonzero((arr[..., 0] > 200) & (arr[..., 1] < 60))
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 1, 1]
            probs = np.full((1, len(self.taxonomy)), 0.1, dtype=np.float32)
            probs[0, 1] = 0.9
            out.append(RawOutput(np.array([box], dtype=np.float32), probs))
        return out


def red_box_image(size=(80, 60), box=(10, 20, 30, 44)) -> Image.Image:
    arr = np.full((size[1], size[0], 3), 90, dtype=np.uint8)
    x1, y1, x2, y2 = box
    arr[y1:y2, x1:x2] = (255, 0, 0)
    return Image.fromarray(arr)


def test_tta_maps_flipped_and_rescaled_boxes_back_to_the_original_pixels():
    committee = Committee.build(BlobDetector(), tta=True, tta_scale=0.5)
    assert [m.augmentation for m in committee.members] == ["none", "hflip", "rescale"]
    [members] = committee.predict([red_box_image()])
    original, flipped, rescaled = members
    assert original.xyxy.tolist() == [[10, 20, 30, 44]]
    assert flipped.xyxy.tolist() == [[10, 20, 30, 44]]  # exactly: found at x 50..70 in the flipped view
    # within the 2-pixel grid of a half-size view
    assert np.allclose(rescaled.xyxy, [[10, 20, 30, 44]], atol=2)
    for dets in members:
        assert dets.metadata["image_size"] == (80, 60)
        assert dets.data["class_probs"].shape == (1, 3)
        assert dets.data["class_name"].tolist() == ["oven"]


def test_members_are_named_and_counted_detector_by_view_by_sample():
    a, b = BlobDetector(name="runs/a"), BlobDetector(name="runs/b")
    committee = Committee.build([a, b], tta=True)
    assert committee.size == 6
    assert [m.name for m in committee.members[:3]] == ["a", "a/hflip", "a/rescale"]
    assert "6 members: 2 models (a, b) x 3 views" in committee.describe()
    out = committee.predict([red_box_image(), red_box_image(box=(0, 0, 8, 8))], batch_size=1)
    assert len(out) == 2 and all(len(per_image) == 6 for per_image in out)
    assert out[1][0].xyxy.tolist() == [[0, 0, 8, 8]]


def test_different_taxonomies_are_refused_naming_models_and_amenities():
    other = Taxonomy(
        (Amenity("bed", "Bed"), Amenity("oven", "Oven"), Amenity("bathtub", "Bathtub")), source="x"
    )
    with pytest.raises(CommitteeError) as info:
        Committee.build([BlobDetector(name="teacher"), BlobDetector(other, name="student")])
    message = str(info.value)
    assert "teacher" in message and "student" in message
    assert "only teacher has sink" in message and "only student has bathtub" in message


def test_same_amenities_in_another_order_are_refused():
    tax = tiny_taxonomy()
    reordered = Taxonomy(tuple(reversed(tax.amenities)), source="reversed")
    with pytest.raises(CommitteeError, match="different order"):
        Committee.build([BlobDetector(name="a"), BlobDetector(reordered, name="b")])


@pytest.mark.parametrize("passes", [1, -1])
def test_mc_dropout_needs_two_passes(passes):
    with pytest.raises(CommitteeError, match="at least 2 passes"):
        Committee.build(BlobDetector(), mc_dropout=passes)


def test_mc_dropout_on_a_model_without_dropout_is_a_clear_error():
    with pytest.raises(CommitteeError, match="no torch model|no dropout"):
        Committee.build(BlobDetector(), mc_dropout=3)


def test_an_ensemble_of_two_seeds_disagrees(tmp_path):
    dets = [
        get_detector(str(build_tiny_rtdetr(tmp_path / f"seed{s}", seed=s)), device="cpu", score_threshold=0.0)
        for s in (0, 1)
    ]
    committee = Committee.build(dets)
    images = [make_image((64, 64), seed=i) for i in range(2)]
    out = committee.predict(images)
    assert any(
        not np.allclose(a.data["class_probs"], b.data["class_probs"])
        if a.xyxy.shape == b.xyxy.shape
        else True
        for a, b in out
    )


def test_mc_dropout_gives_members_that_differ(tmp_path):
    detector = get_detector(
        str(build_tiny_rtdetr(tmp_path / "drop", dropout=0.1)), device="cpu", score_threshold=0.0
    )
    committee = Committee.build(detector, mc_dropout=3)
    assert committee.size == 3 and [m.sample for m in committee.members] == [0, 1, 2]
    [members] = committee.predict([make_image((64, 64), seed=3)])
    assert len(members) == 3
    fingerprints = {(m.xyxy.tobytes(), m.data["class_probs"].tobytes()) for m in members}
    assert len(fingerprints) == 3
    # Outside the committee the model is deterministic again.
    first, second = detector.predict([make_image((64, 64), seed=3)] * 2)
    assert np.allclose(first.xyxy, second.xyxy, atol=1e-3)  # batch-of-2 float noise only


def test_embed_falls_back_to_thumbnails_without_a_backbone():
    committee = Committee.build(BlobDetector())
    images = [red_box_image(), red_box_image(box=(50, 0, 80, 30)), make_image(seed=1)]
    emb = committee.embed(images)
    assert emb.shape == thumbnail_embedding(images).shape
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0)
    assert not np.allclose(emb[0], emb[1])
