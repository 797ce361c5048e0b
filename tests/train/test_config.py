"""TrainConfig: validation with messages that name the field, YAML + flags, round trip."""

from __future__ import annotations

import pytest

from roomscan.train.config import ConfigError, TrainConfig, load_config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr must be in (0, 1)"),
        ({"image_size": 100}, "image_size must be a multiple of 32"),
        ({"subset": 0.0}, "subset must be in (0, 1]"),
        ({"subset": 1.5}, "subset"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"device": "tpu"}, "device must be auto, cpu or cuda"),
        ({"patience": -1}, "patience"),
        ({"name": "../escape"}, "name must be a plain directory name"),
        ({"data": ""}, "data"),
    ],
)
def test_invalid_values_are_named(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        TrainConfig(**{"data": "d", **change})


def test_yaml_then_flags_and_round_trip(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("data: /data/amenities\nepochs: 30\nlr: 0.0002\ncache: false\n")
    config = load_config(file, epochs=5, lr=None, model="ustc-community/dfine_nano_coco")
    assert (config.data, config.epochs, config.lr, config.cache, config.model) == (
        "/data/amenities", 5, 2e-4, False, "ustc-community/dfine_nano_coco")
    config.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: d\nepoch: 3\n", "unknown keys epoch"),
        ("data: d\nepochs: three\n", "epochs must be an integer"),
        ("data: d\ncache: maybe\n", "cache must be true or false"),
        ("epochs: 3\n", "'data'"),
        ("- a list\n", "mapping"),
        ("data: [unclosed\n", "not a readable YAML"),
    ],
)
def test_bad_config_files_are_named(tmp_path, text, message):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(file)
    assert str(file) in str(info.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/train.yaml")


def test_importing_the_training_package_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, roomscan.train, roomscan.cli.train; print('torch' in sys.modules, 'pycocotools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize(("model", "size", "message"), [("dfine_nano", 128, "--image-size 256")])
def test_an_image_size_too_small_for_the_queries_is_named(tmp_path, model, size, message):
    from roomscan.taxonomy import Amenity, Taxonomy
    from roomscan.train.model import build_model

    taxonomy = Taxonomy((Amenity("bed", "Bed"),), source="t")
    with pytest.raises(ConfigError, match=message):
        build_model(TrainConfig(data="d", model=model, scratch=True, image_size=size), taxonomy)
