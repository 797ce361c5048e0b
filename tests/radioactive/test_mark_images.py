"""Marking pixels: the bounds hold on every image and the features move along the carrier (mark.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _models import make_image

from roomscan.radioactive.config import NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey
from roomscan.radioactive.mark import linf_distance, mark_images, psnr
from roomscan.radioactive.network import MarkingNetwork, features, network_identity
from roomscan.radioactive.stats import random_carriers
from roomscan.radioactive.synthetic import make_pattern_images

CONFIG = NetworkConfig(widths=(8, 16, 32), image_size=32)


@pytest.fixture(scope="module")
def net() -> MarkingNetwork:
    torch.manual_seed(0)
    return MarkingNetwork(CONFIG).eval()


@pytest.fixture(scope="module")
def carriers() -> np.ndarray:
    return random_carriers(3, CONFIG.feature_dim, seed=21)


@pytest.fixture(scope="module")
def originals():
    data = make_pattern_images(2, n_classes=3, size=40, seed=2)
    # Mixed sizes: marking batches by size and must hand results back in input order.
    return [*data.images, make_image((48, 36), seed=1)], [*data.labels, 2]


@pytest.fixture(scope="module")
def marked(originals, carriers, net):
    images, labels = originals
    seen = []
    out = mark_images(images, labels, carriers, net, steps=15, seed=0, on_progress=lambda *a: seen.append(a))
    assert seen[-1] == (len(images), len(images))
    return out


def test_every_image_keeps_its_size_and_meets_both_bounds(originals, marked):
    images, _ = originals
    assert len(marked) == len(images)
    for original, m in zip(images, marked, strict=True):
        assert m.image.size == original.size and m.image.mode == "RGB"
        a, b = np.asarray(original.convert("RGB"), dtype=np.int16), np.asarray(m.image, dtype=np.int16)
        assert np.abs(a - b).max() <= 10  # epsilon = 10/255
        assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) >= 42.0
        assert m.psnr == pytest.approx(psnr(original, m.image)) and m.linf == linf_distance(original, m.image)
        assert (a != b).any(), "a mark that changes nothing marks nothing"


@pytest.mark.parametrize(("epsilon", "floor"), [(3 / 255, 36.0), (6 / 255, 48.0), (2.5 / 255, 30.0)])
def test_bounds_hold_whichever_binds(originals, carriers, net, epsilon, floor):
    images, labels = originals
    for original, m in zip(images[:3], mark_images(images[:3], labels[:3], carriers, net, epsilon=epsilon,
                                                    psnr_floor=floor, steps=6), strict=True):  # fmt: skip
        diff = np.abs(np.asarray(original, dtype=np.int16) - np.asarray(m.image, dtype=np.int16))
        assert diff.max() <= int(epsilon * 255)  # 2.5/255 allows 2 levels: rounding never overshoots
        assert psnr(original, m.image) >= floor


def test_features_move_along_the_carrier_not_a_random_direction(originals, marked, carriers, net):
    images, labels = originals
    shift = (features(net, [m.image for m in marked]) - features(net, images)).numpy().astype(np.float64)
    shift /= np.linalg.norm(shift, axis=1, keepdims=True)
    along = (shift * carriers[labels]).sum(1)
    random_dirs = random_carriers(200, CONFIG.feature_dim, seed=99)
    assert along.min() > 0.2, along
    assert abs(float((shift @ random_dirs.T).mean())) < 0.05
    np.testing.assert_allclose([m.feature_shift_cos for m in marked], along, atol=1e-4)


def test_marking_is_reproducible(originals, carriers, net):
    images, labels = originals
    a = mark_images(images[:2], labels[:2], carriers, net, steps=3, seed=5)
    b = mark_images(images[:2], labels[:2], carriers, net, steps=3, seed=5)
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True))


def test_a_key_takes_class_names_and_must_belong_to_the_network(originals, carriers, net):
    images, _ = originals
    key = MarkingKey.new(carriers, ["circle", "square", "triangle"], network_identity(net), seed=21)
    out = mark_images(images[:2], ["triangle", "circle"], key, net, steps=2)
    assert len(out) == 2
    with pytest.raises(RadioactiveError, match="no carrier for class 'garage'"):
        mark_images(images[:1], ["garage"], key, net, steps=1)
    torch.manual_seed(1)
    other = MarkingNetwork(CONFIG).eval()
    with pytest.raises(RadioactiveError, match="made with marking network"):
        mark_images(images[:1], ["circle"], key, other, steps=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": [0]}, "give one class per image"),
        ({"classes": [0, 3]}, "not a carrier index"),
        ({"classes": ["circle", "square"]}, "plain carriers have no names"),
        ({"carriers": random_carriers(3, 16, seed=0)}, "d=16 but the marking network"),
        ({"carriers": np.ones((3, 32))}, "unit vectors"),
        ({"epsilon": 0.5 / 255}, "epsilon"),
        ({"psnr_floor": 0}, "psnr_floor"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_input_is_named(originals, carriers, net, kwargs, message):
    images, _ = originals
    args = {"classes": [0, 1], "carriers": carriers, **kwargs}
    with pytest.raises(RadioactiveError, match=message):
        mark_images(images[:2], args["classes"], args["carriers"], net, steps=kwargs.get("steps", 1),
                    **{k: v for k, v in kwargs.items() if k not in ("classes", "carriers", "steps")})  # fmt: skip


def test_marking_leaves_the_network_as_it_was(originals, carriers):
    torch.manual_seed(3)
    net = MarkingNetwork(CONFIG).train()  # a caller forgot eval(): batch-norm statistics must still not move
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images, labels = originals
    mark_images(images[:2], labels[:2], carriers, net, steps=3)
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
