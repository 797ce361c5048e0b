"""The marking network: features, identity, save/load, training, pretrained backbones (network.py, augment.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from roomscan.radioactive.augment import apply_augment, sample_params, to_network_input
from roomscan.radioactive.config import AugmentConfig, NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.network import (
    MarkingNetwork,
    PretrainedBackbone,
    features,
    load_network,
    network_identity,
    save_network,
    train_marking_network,
    weights_sha256,
)
from roomscan.radioactive.synthetic import PATTERNS, make_pattern_images

TINY = NetworkConfig(widths=(8, 16, 24), image_size=32)


def _net(seed: int = 0) -> MarkingNetwork:
    torch.manual_seed(seed)
    return MarkingNetwork(TINY).eval()


def test_features_have_the_configured_dimension_for_any_image_size():
    net = _net()
    for h, w in [(32, 32), (40, 64), (17, 23)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, TINY.feature_dim)
    images = make_pattern_images(1, n_classes=3, size=48).images
    assert features(net, images).shape == (3, TINY.feature_dim)


def test_weights_hash_identifies_the_weights():
    a, b = _net(0), _net(0)
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.stem[0].weight[0, 0, 0, 0] += 1e-4
    assert weights_sha256(a) != weights_sha256(b)
    ident = network_identity(a)
    assert (ident.architecture, ident.feature_dim, ident.config["widths"]) == (
        "resnet-small",
        24,
        (8, 16, 24),
    )


def test_save_load_round_trip(tmp_path):
    net = _net(3)
    path = save_network(net, tmp_path / "marker.pt")
    back = load_network(path)
    assert weights_sha256(back) == weights_sha256(net)
    assert back.config == net.config and not back.training
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(back(x), net(x))
    assert [p.name for p in tmp_path.iterdir()] == ["marker.pt"]


def test_load_refuses_what_is_not_a_marking_network(tmp_path):
    with pytest.raises(RadioactiveError, match="no such marking network"):
        load_network(tmp_path / "none.pt")
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(RadioactiveError, match="not a roomscan marking network"):
        load_network(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(RadioactiveError, match="not a roomscan marking network"):
        load_network(other)
    good = save_network(_net(), tmp_path / "good.pt")
    payload = torch.load(good, weights_only=True)
    payload["config"]["widths"] = (8, 16, 32)  # weights saved for 24 features, config says 32
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(RadioactiveError, match="do not fit the stored config"):
        load_network(tmp_path / "mismatch.pt")


def test_training_learns_the_generated_classes():
    data = make_pattern_images(12, n_classes=3, size=32, seed=1)
    seen = []
    result = train_marking_network(
        data.images, data.labels, TINY, epochs=5, seed=0, batch_size=12, on_progress=lambda *a: seen.append(a)
    )
    assert [s[0] for s in seen] == list(range(1, 6))
    assert result.losses[-1] < result.losses[0]
    assert result.accuracies[-1] > 1 / 3 + 0.1  # above chance on three classes
    assert not result.network.training
    # The linear classifier trained with it comes back too (frozen): network + head is a classifier of its own.
    from roomscan.radioactive.network import features

    assert (result.head.in_features, result.head.out_features) == (TINY.feature_dim, 3)
    assert not any(p.requires_grad for p in result.head.parameters())
    assert result.head(features(result.network, list(data.images))).shape == (len(data.images), 3)
    small = data.images[:6], data.labels[:6]
    once, twice = (train_marking_network(*small, TINY, epochs=1, seed=4).network for _ in range(2))
    assert weights_sha256(once) == weights_sha256(twice)  # seeded: reproducible


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0] * 6, "at least two classes"), ([0, 1, 2], "one label per image"), ([0, -1, 1, 0, 1, 0], ">= 0")],
)
def test_training_refuses_bad_labels(labels, message):
    images = make_pattern_images(2, n_classes=3, size=32).images
    with pytest.raises(RadioactiveError, match=message):
        train_marking_network(images, labels, TINY, epochs=1, seed=0)


def test_pretrained_backbone_normalises_and_checks_its_dimension():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3), torch.nn.AdaptiveAvgPool2d(1))
    net = PretrainedBackbone(
        body, name="my-backbone-v1", feature_dim=12, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4)
    )
    x = torch.rand(2, 3, 40, 40)
    expected = body(
        (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    )
    torch.testing.assert_close(net(x), expected.flatten(1))
    ident = network_identity(net)
    assert (
        ident.architecture == "my-backbone-v1"
        and ident.feature_dim == 12
        and ident.config["image_size"] == 224
    )
    wrong = PretrainedBackbone(body, name="my-backbone-v1", feature_dim=64)
    with pytest.raises(RadioactiveError, match="gives 12 features, not the feature_dim=64"):
        wrong(x)
    with pytest.raises(RadioactiveError, match="MarkingNetwork or PretrainedBackbone"):
        network_identity(body)


def test_augment_is_linear_and_seeded():
    """Marking relies on augment(x + d) == augment(x) + augment(d) for one draw, and on seeds reproducing draws."""
    x, d = torch.rand(3, 3, 40, 50), torch.rand(3, 3, 40, 50) * 0.05
    params = sample_params(3, 40, 50, AugmentConfig(blur_sigma=1.5), torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        apply_augment(x + d, params, 32), apply_augment(x, params, 32) + apply_augment(d, params, 32)
    )
    again = sample_params(3, 40, 50, AugmentConfig(blur_sigma=1.5), torch.Generator().manual_seed(0))
    assert params == again
    for p in params:
        assert 0 <= p.top and p.top + p.height <= 40 and 0 <= p.left and p.left + p.width <= 50
        assert 0.5 * 40 * 50 * 0.9 <= p.height * p.width <= 40 * 50
    assert to_network_input(x, 32).shape == (3, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"blur_sigma": -1}, "blur"),
    ],
)
def test_augment_config_is_validated(kwargs, message):
    with pytest.raises(RadioactiveError, match=message):
        AugmentConfig(**kwargs)


def test_pattern_images_are_deterministic_and_labelled():
    a = make_pattern_images(3, n_classes=4, size=32, seed=9)
    b = make_pattern_images(3, n_classes=4, size=32, seed=9)
    assert a.names == PATTERNS[:4] and a.labels == (0, 1, 2, 3) * 3
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images, strict=True))
    assert {im.size for im in a.images} == {(32, 32)}
    with pytest.raises(RadioactiveError, match="n_classes"):
        make_pattern_images(1, n_classes=len(PATTERNS) + 1)


def test_distractors_add_other_classes_shapes_and_keep_the_labels():
    plain = make_pattern_images(4, n_classes=3, size=48, seed=2)
    busy = make_pattern_images(4, n_classes=3, size=48, seed=2, distractors=2)
    assert busy.labels == plain.labels and busy.names == plain.names
    changed = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
               for a, b in zip(plain.images, busy.images, strict=True)]  # fmt: skip
    assert all(c > 0 for c in changed)
    again = make_pattern_images(4, n_classes=3, size=48, seed=2, distractors=2)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(busy.images, again.images, strict=True))
    with pytest.raises(RadioactiveError, match="distractors must be 0..2"):
        make_pattern_images(1, n_classes=3, distractors=3)
