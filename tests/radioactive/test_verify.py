"""Verification: white-box p-values on cases whose answer is known, black-box pairs, verdicts, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image
from torch import nn

from roomscan.radioactive.classifier import ClassifierConfig, ImageClassifier
from roomscan.radioactive.config import NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey, NetworkIdentity
from roomscan.radioactive.network import MarkingNetwork, network_identity
from roomscan.radioactive.stats import random_carriers, row_cosines
from roomscan.radioactive.synthetic import make_pattern_images
from roomscan.radioactive.verify import (
    fit_alignment,
    verdict_text,
    verify_blackbox,
    verify_whitebox,
)

NAMES = ("kitchen", "bedroom", "bathroom", "living")
D = 16


@pytest.fixture(scope="module")
def net() -> MarkingNetwork:
    torch.manual_seed(0)
    return MarkingNetwork(NetworkConfig(widths=(8, D), image_size=32)).eval()


@pytest.fixture(scope="module")
def held_out():
    return make_pattern_images(20, n_classes=4, size=32, seed=3).images  # 80 images, d = 16


def make_key(net: MarkingNetwork, seed: int, names=NAMES) -> MarkingKey:
    return MarkingKey.new(random_carriers(len(names), D, seed=seed), names, network_identity(net), seed=seed)


class Probe(nn.Module):
    """A tested model whose features are a known function of the marking network's: ``R @ phi(x)`` (+ a bend)."""

    def __init__(self, net: nn.Module, r: np.ndarray, w: np.ndarray, names=NAMES, bend: float = 0.0) -> None:
        super().__init__()
        self.net, self.bend = net, bend
        self.register_buffer("r", torch.tensor(r, dtype=torch.float32))  # [e, d]
        self.head = nn.Linear(r.shape[0], len(names))
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(w, dtype=torch.float32))
        self.image_size = net.image_size
        self.class_names = tuple(names)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x) @ self.r.T  # [b, e]
        return z + self.bend * torch.tanh(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_identity_alignment_recovers_the_cosines_exactly(net, held_out):
    key = make_key(net, seed=1)
    w = np.random.default_rng(0).standard_normal((4, D))
    result = verify_whitebox(Probe(net, np.eye(D), w), key, net, held_out, ridge=1e-9)
    expected = row_cosines(w, key.carriers)
    assert [c.name for c in result.classes] == list(NAMES)
    np.testing.assert_allclose([c.cosine for c in result.classes], expected, atol=1e-4)
    assert result.alignment_r2 == pytest.approx(1.0, abs=1e-6)
    assert result.dim == D and result.tested_dim == D and result.n_images == len(held_out)


def test_a_head_built_from_the_aligned_carriers_gives_a_tiny_p(net, held_out):
    rng = np.random.default_rng(1)
    key = make_key(net, seed=2)
    r = rng.standard_normal((24, D))  # a wider, rotated feature space
    # Rows w with w @ r == carriers + noise: the head "learnt" the carriers in its own feature space.
    w = (key.carriers + 0.3 * rng.standard_normal((4, D)) / np.sqrt(D)) @ np.linalg.pinv(r)
    result = verify_whitebox(Probe(net, r, w, bend=0.1), key, net, held_out)
    assert result.p_value < 1e-10
    assert all(c.cosine > 0.7 and c.p_value < 1e-3 for c in result.classes)
    assert 0.5 < result.alignment_r2 < 1.0
    assert result.verdict.detected and "very likely trained on the marked photos" in result.verdict.text


def test_a_head_independent_of_the_carriers_gives_uniform_p_values(net, held_out):
    rng = np.random.default_rng(2)
    r = rng.standard_normal((24, D))
    model = Probe(net, r, rng.standard_normal((4, 24)), bend=0.1)
    ps = [verify_whitebox(model, make_key(net, seed=s), net, held_out).p_value for s in range(40)]
    # 40 draws of U(0, 1): the mean is within 0.5 +- 0.14 (3 sd) and none is below 1e-3 (a 4% chance at most).
    assert 0.36 < np.mean(ps) < 0.64
    assert min(ps) > 1e-3
    assert sum(p < 0.1 for p in ps) <= 10


def test_classes_are_matched_by_name_and_missing_ones_noted(net, held_out):
    key = make_key(net, seed=3, names=("bedroom", "garage", "kitchen"))
    model = Probe(net, np.eye(D), np.random.default_rng(3).standard_normal((4, D)))
    result = verify_whitebox(model, key, net, held_out)
    assert [c.name for c in result.classes] == ["bedroom", "kitchen"]
    assert result.skipped_classes == ("garage",)
    assert any("garage" in n for n in result.notes) and any("living" in n for n in result.notes)
    only = verify_whitebox(model, key, net, held_out, classes=["kitchen"])
    assert [c.name for c in only.classes] == ["kitchen"]
    assert only.classes[0].cosine == pytest.approx(result.classes[1].cosine)
    with pytest.raises(RadioactiveError, match="no carrier for \\['bathroom'\\]"):
        verify_whitebox(model, key, net, held_out, classes=["kitchen", "bathroom"])
    with pytest.raises(RadioactiveError, match="none in common"):
        verify_whitebox(model, make_key(net, seed=4, names=("a", "b")), net, held_out)


def test_to_dict_is_json_for_scripts(net, held_out):
    result = verify_whitebox(Probe(net, np.eye(D), np.ones((4, D))), make_key(net, seed=5), net, held_out)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["test"] == "whitebox" and data["p_value"] == result.p_value
    assert data["verdict"]["detected"] == result.verdict.detected and len(data["classes"]) == 4


def test_a_key_from_another_network_is_refused(net, held_out):
    other = MarkingNetwork(NetworkConfig(widths=(8, D), image_size=32)).eval()
    key = make_key(other, seed=6)
    model = Probe(net, np.eye(D), np.ones((4, D)))
    with pytest.raises(RadioactiveError, match="use the marking network saved with the key"):
        verify_whitebox(model, key, net, held_out)
    wide = MarkingKey.new(
        random_carriers(4, 32, seed=0), NAMES, NetworkIdentity("resnet-small", {}, "0" * 64, 32), seed=0
    )
    with pytest.raises(RadioactiveError, match="d=32 but the marking network gives 16"):
        verify_whitebox(model, wide, net, held_out)


def test_a_head_that_does_not_read_the_features_is_refused(net, held_out):
    model = Probe(net, np.eye(D), np.ones((4, D)))
    model.head = nn.Linear(D + 3, 4)
    with pytest.raises(RadioactiveError, match="dimension 16 but its head takes 19"):
        verify_whitebox(model, make_key(net, seed=7), net, held_out)
    with pytest.raises(RadioactiveError, match="linear head"):
        verify_whitebox(nn.Linear(3, 4), make_key(net, seed=7), net, held_out)


def test_unreadable_or_too_few_held_out_images_are_refused(net, held_out, tmp_path):
    key = make_key(net, seed=8)
    model = Probe(net, np.eye(D), np.ones((4, D)))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(RadioactiveError, match="broken.jpg"):
        verify_whitebox(model, key, net, [*held_out[:10], bad])
    with pytest.raises(RadioactiveError, match="too few"):
        verify_whitebox(model, key, net, held_out[:5])
    paths = []
    for i, image in enumerate(held_out[:12]):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    from_files = verify_whitebox(model, key, net, paths)
    from_images = verify_whitebox(model, key, net, held_out[:12])
    assert from_files.p_value == pytest.approx(from_images.p_value)
    assert any("only 12 held-out images" in n for n in from_files.notes)


def test_alignment_fit_recovers_a_linear_map():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((200, 6))
    m = rng.standard_normal((9, 6))
    fitted, _, _ = fit_alignment(a, a @ m.T + 3.0, ridge=1e-9)
    np.testing.assert_allclose(fitted, m, atol=1e-6)


# --- black-box ----------------------------------------------------------------------------------------------------


def brighter(image: Image.Image, levels: int) -> Image.Image:
    arr = np.asarray(image, dtype=np.int16) + levels
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def brightness_model(images):
    """Logits that favour class 0 the brighter an image is: it 'fits' brighter copies better."""
    mean = np.array([np.asarray(im, dtype=np.float64).mean() / 255 for im in images])
    return np.stack([4 * mean, np.zeros_like(mean), np.zeros_like(mean)], axis=1)


@pytest.fixture(scope="module")
def originals():
    return list(make_pattern_images(10, n_classes=3, size=32, seed=5).images)


def test_a_model_that_fits_the_marked_copies_better_gives_a_small_p(originals):
    marked = [brighter(im, 3) for im in originals]
    result = verify_blackbox(brightness_model, marked, originals, [0] * len(originals), ("a", "b", "c"))
    assert result.p_value < 1e-6 and result.mean_gap > 0 and result.n_pairs == 30 and result.n_tied == 0
    assert (
        not result.verdict.detected
        and "without a reference model that is not evidence" in result.verdict.text
    )
    worse = verify_blackbox(
        brightness_model, [brighter(im, -3) for im in originals], originals, ["a"] * 30, "abc"
    )
    assert worse.p_value > 0.99 and worse.mean_gap < 0 and not worse.verdict.detected
    assert json.loads(json.dumps(result.to_dict()))["verdict"]["detected"] is False


def test_a_reference_model_separates_memorisation_from_marks_that_help_any_model(originals):
    marked = [brighter(im, 3) for im in originals]
    labels = [0] * len(originals)

    def leaning(
        weight,
    ):  # class 0's logit rises with brightness; the same loss at mid-grey, whatever the weight
        def run(images):
            z = np.asarray(brightness_model(images))[:, 0] / 4 - 0.5  # mean brightness - 0.5
            return np.stack([-1 + weight * z, np.zeros_like(z), np.zeros_like(z)], axis=1)

        return run

    same = verify_blackbox(brightness_model, marked, originals, labels, "abc", reference=brightness_model)
    assert (
        same.p_value == 1.0 and same.mean_gap > 0 and same.reference_mean_gap == pytest.approx(same.mean_gap)
    )
    assert "reference" in same.verdict.text or "no evidence" in same.verdict.text
    more = verify_blackbox(leaning(12), marked, originals, labels, "abc", reference=leaning(4))
    assert more.p_value < 1e-6 and more.verdict.detected
    assert "very likely trained" in more.verdict.text and "than the reference model does" in more.verdict.text
    alone = verify_blackbox(brightness_model, marked, originals, labels, "abc")
    assert alone.reference_mean_gap is None and any("no reference model" in n for n in alone.notes)


def test_identical_images_give_no_evidence(originals):
    result = verify_blackbox(brightness_model, originals, originals, [1] * len(originals), ("a", "b", "c"))
    assert result.p_value == 1.0 and result.n_tied == len(originals) and result.mean_gap == 0
    assert "no evidence" in result.verdict.text and any("same images" in n for n in result.notes)


def test_blackbox_runs_a_torch_classifier_with_its_class_names(originals):
    torch.manual_seed(0)
    model = ImageClassifier(ClassifierConfig(widths=(4, 8), image_size=32), ("circle", "square", "triangle"))
    marked = [brighter(im, 2) for im in originals]
    labels = ["circle", "square", "triangle"] * 10
    result = verify_blackbox(model, marked, originals, labels)
    assert 0 <= result.p_value <= 1 and result.n_pairs == 30
    assert model.training, "the model is left in the mode it was given in"
    assert verify_blackbox(model.eval(), marked, originals, labels).p_value == result.p_value


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("count", "one original and one label per marked copy"),
        ("size", "pair 0: the marked image is 16x16 but its original 32x32"),
        ("label", "not one of the model's classes"),
        ("logits", "logits of shape"),
    ],
)
def test_mismatched_pairs_are_a_clear_error(originals, case, words):
    marked, labels, fn = list(originals), ["a"] * len(originals), brightness_model
    if case == "count":
        marked = marked[:-1]
    elif case == "size":
        marked[0] = marked[0].resize((16, 16))
    elif case == "label":
        labels[3] = "zebra"
    else:
        fn = lambda images: np.zeros((len(images) + 1, 3))
    with pytest.raises(RadioactiveError, match=words):
        verify_blackbox(fn, marked, originals, labels, ("a", "b", "c"))


# --- verdicts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "words"),
    [
        (3e-7, ["very likely trained", "p = 3e-7", "once in 3.33 million"]),
        (0.01, ["inconclusive", "p = 0.01", "once in 100", "alpha = 0.001"]),
        (0.41, ["no evidence", "p = 0.41", "41% of the time", "does not prove"]),
        (0.0, ["very likely trained", "< 1e-300"]),
    ],
)
def test_verdicts_say_what_the_p_value_means(p, words):
    text = verdict_text(p)
    for word in words:
        assert word in text


# --- the whole chain ----------------------------------------------------------------------------------------------


def test_mark_train_save_load_and_verify_run_end_to_end(tmp_path):
    """Mark a training set, train the other architecture on it, save and reload it, verify it from files.

    Only the plumbing is asserted here: at 32 px and a few epochs the white-box lean is not reliably measurable
    (measured over 6 seeds: p between 0.2 and 0.9 for marked and control models alike); the order of p-values is
    asserted on the constructed cases above.
    """
    from roomscan.radioactive.classifier import load_classifier, save_classifier, train_classifier
    from roomscan.radioactive.mark import mark_images
    from roomscan.radioactive.network import load_network, save_network, train_marking_network

    data = make_pattern_images(8, n_classes=3, size=32, seed=7)
    net = train_marking_network(
        data.images, data.labels, NetworkConfig(widths=(8, 16), image_size=32), epochs=1, seed=0
    )
    net = load_network(save_network(net.network, tmp_path / "net.pt"))
    key = MarkingKey.new(random_carriers(3, 16, seed=9), data.names, network_identity(net), seed=9)
    key = MarkingKey.load(key.save(tmp_path / "key.npz"))
    marked = [m.image for m in mark_images(data.images, data.labels, key, net, steps=5, seed=0)]
    config = ClassifierConfig(architecture="vgg", widths=(8, 16), convs=1, image_size=32)
    model = train_classifier(marked, data.labels, data.names, config, epochs=2, seed=1).model
    model = load_classifier(save_classifier(model, tmp_path / "model.pt"))
    held_out = []
    for i, image in enumerate(make_pattern_images(4, n_classes=3, size=32, seed=8).images):
        image.save(tmp_path / f"held-{i}.png")
        held_out.append(tmp_path / f"held-{i}.png")
    white = verify_whitebox(model, key, net, held_out)
    assert [c.name for c in white.classes] == list(data.names)
    assert white.dim == 16 and white.tested_dim == 16 and white.n_images == 12
    assert all(-1 <= c.cosine <= 1 and 0 < c.p_value < 1 for c in white.classes)
    black = verify_blackbox(model, marked, data.images, [data.names[k] for k in data.labels])
    assert black.n_pairs == len(marked) and 0 < black.p_value <= 1
    json.dumps([white.to_dict(), black.to_dict()])
