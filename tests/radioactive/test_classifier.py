"""The image classifier verification is aimed at: training, saving, loading, reading a labelled folder."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from roomscan.radioactive.classifier import (
    ClassifierConfig,
    ImageClassifier,
    accuracy,
    load_classifier,
    load_labelled_folder,
    predict_logits,
    save_classifier,
    train_classifier,
)
from roomscan.radioactive.config import NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.network import MarkingNetwork, save_network
from roomscan.radioactive.synthetic import make_pattern_images

VGG = ClassifierConfig(architecture="vgg", widths=(8, 16, 32, 32), convs=1, image_size=32)


@pytest.fixture(scope="module")
def data():
    return make_pattern_images(50, n_classes=3, size=32, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    seen = []
    result = train_classifier(
        data.images, data.labels, data.names, VGG, epochs=15, seed=0, lr=3e-3, batch_size=16,
        on_progress=lambda *a: seen.append(a),
    )  # fmt: skip
    assert [s[:2] for s in seen] == [(e, 15) for e in range(1, 16)]
    return result


def test_classifier_learns_the_generated_classes_above_chance(data, trained):
    history = trained.history
    assert history[-1].loss < history[0].loss - 0.2
    # Three classes: chance is 1/3. Measured on the training photos in eval mode (no augmentation).
    assert accuracy(trained.model, data.images, data.labels) > 0.55
    names = [data.names[k] for k in data.labels]
    assert accuracy(trained.model, data.images, names) == accuracy(trained.model, data.images, data.labels)


@pytest.mark.parametrize(
    "config",
    [
        ClassifierConfig(architecture="vgg", widths=(8, 12), convs=2, image_size=32),
        ClassifierConfig(architecture="resnet", widths=(8, 12), convs=1, hidden=10, image_size=32),
    ],
)
def test_features_and_head_have_the_configured_shapes(config):
    model = ImageClassifier(config, ("kitchen", "bedroom", "bath"))
    x = torch.rand(2, 3, 32, 32)
    assert model.features(x).shape == (2, config.feature_dim)
    assert model.head.in_features == config.feature_dim and model.head.out_features == 3
    assert torch.allclose(model(x), model.head(model.features(x)))


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone(data):
    small = (data.images[:24], data.labels[:24], data.names)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = train_classifier(*small, VGG, epochs=1, seed=5).model
    after = torch.rand(1)
    b = train_classifier(*small, VGG, epochs=1, seed=5).model
    c = train_classifier(*small, VGG, epochs=1, seed=6).model
    assert torch.equal(before, after)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


def test_save_and_load_round_trip_gives_identical_logits(trained, data, tmp_path):
    path = save_classifier(trained.model, tmp_path / "room-types.pt")
    loaded = load_classifier(path)
    assert loaded.class_names == trained.model.class_names and loaded.config == trained.model.config
    assert torch.equal(
        predict_logits(loaded, data.images[:10]), predict_logits(trained.model, data.images[:10])
    )


def test_foreign_files_are_refused_with_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    net = tmp_path / "net.pt"
    save_network(MarkingNetwork(NetworkConfig(widths=(4, 8), image_size=32)), net)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    for path, words in [
        (tmp_path / "missing.pt", "no such classifier file"),
        (junk, "not a roomscan image classifier"),
        (net, "not a roomscan image classifier"),
        (other, "not a roomscan image classifier"),
    ]:
        with pytest.raises(RadioactiveError, match=words):
            load_classifier(path)


def test_weights_that_do_not_fit_their_config_are_refused(trained, tmp_path):
    path = save_classifier(trained.model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["widths"] = [8, 16, 32, 48]
    torch.save(payload, path)
    with pytest.raises(RadioactiveError, match="do not fit the stored config"):
        load_classifier(path)


@pytest.mark.parametrize(
    ("data_", "words"),
    [
        ({"architecture": "transformer"}, "unknown classifier architecture"),
        ({"widths": [0, 8]}, "widths must be positive"),
        ({"depth": 3}, "unknown settings"),
        ({"image_size": 8}, "image_size"),
        ("vgg", "must be a mapping"),
    ],
)
def test_bad_configs_say_what_is_wrong(data_, words):
    with pytest.raises(RadioactiveError, match=words):
        ClassifierConfig.from_dict(data_)


def test_config_round_trips_through_a_dict():
    config = ClassifierConfig(architecture="resnet", widths=(8, 16), hidden=12)
    assert ClassifierConfig.from_dict(config.to_dict()) == config


def test_bad_labels_are_refused(data):
    with pytest.raises(RadioactiveError, match="not one of the classes"):
        train_classifier(data.images[:2], ["circle", "hexagon"], data.names, VGG, epochs=1, seed=0)
    with pytest.raises(RadioactiveError, match="one label per image"):
        train_classifier(data.images[:3], [0, 1], data.names, VGG, epochs=1, seed=0)


def test_labelled_folder_reads_classes_and_names_what_it_skipped(data, tmp_path):
    for i, (image, label) in enumerate(zip(data.images[:9], data.labels[:9], strict=True)):
        folder = tmp_path / data.names[label]
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{i}.png")
    (tmp_path / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "circle" / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "loose.png").write_bytes(b"x")
    images, labels, names, skipped = load_labelled_folder(tmp_path)
    assert names == ("circle", "square", "triangle")  # sorted; the empty folder is not a class
    assert len(images) == 9 and sorted(labels) == sorted(data.labels[:9])
    reasons = {s.source.rsplit("/", 1)[-1]: s.reason for s in skipped}
    assert set(reasons) == {"broken.jpg", "notes.txt", "empty", "loose.png"}
    assert "no readable image" in reasons["empty"]


@pytest.mark.parametrize("layout", ["missing", "file", "no-classes", "only-broken"])
def test_unusable_folders_are_a_clear_error(tmp_path, layout):
    target = tmp_path / "data"
    if layout == "file":
        target.write_text("x")
    elif layout == "no-classes":
        target.mkdir()
    elif layout == "only-broken":
        (target / "kitchen").mkdir(parents=True)
        (target / "kitchen" / "a.jpg").write_bytes(b"broken")
    with pytest.raises(RadioactiveError, match=str(target)):
        load_labelled_folder(target)
