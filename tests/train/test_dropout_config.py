"""``TrainConfig.dropout``: validated, saved and reloaded, and set on the model so MC dropout can sample it."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomscan.train.config import ConfigError, TrainConfig, load_config


def test_dropout_round_trips_through_the_saved_config(tmp_path: Path) -> None:
    config = TrainConfig(data="d", dropout=0.1)
    loaded = load_config(config.save(tmp_path / "config.yaml"))
    assert loaded.dropout == 0.1
    assert loaded == config


@pytest.mark.parametrize("bad", [1.5, 1.0, -0.1])
def test_dropout_outside_0_1_is_refused_by_name(bad: float) -> None:
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
        TrainConfig(data="d", dropout=bad)


def test_default_is_no_dropout() -> None:
    assert TrainConfig(data="d").dropout == 0.0


@pytest.mark.parametrize(("dropout", "expected"), [(0.0, 0.0), (0.25, 0.25)])
def test_scratch_model_gets_the_dropout_and_can_be_sampled(tiny_arch_dir: Path, shapes_dir: Path, dropout: float,
                                                           expected: float) -> None:
    from roomscan.backends._base import dropout_modules
    from roomscan.data.dataset import DetectionDataset
    from roomscan.train.model import build_model

    taxonomy = DetectionDataset.load(shapes_dir).taxonomy
    config = TrainConfig(data=str(shapes_dir), model=str(tiny_arch_dir), scratch=True, image_size=96,
                         dropout=dropout)
    model, _ = build_model(config, taxonomy)
    for key in ("dropout", "attention_dropout", "activation_dropout"):
        assert getattr(model.config, key) == expected
    assert bool(dropout_modules(model)) is (dropout > 0)
