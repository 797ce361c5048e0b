"""``TrainConfig.validate``: on by default; off, ``fit`` evaluates nothing, ignores patience and the validation split,
and keeps the last epoch as ``model/`` (what ``roomscan active simulate`` relies on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roomscan.train.config import ConfigError, TrainConfig, load_config


def test_validation_is_on_by_default_and_off_round_trips_through_the_saved_config(tmp_path: Path) -> None:
    assert TrainConfig(data="d").validate is True
    config = TrainConfig(data="d", validate=False)
    loaded = load_config(config.save(tmp_path / "config.yaml"))
    assert loaded.validate is False and loaded == config


@pytest.mark.parametrize("build", [
    lambda: TrainConfig(data="d", validate="false"),  # type: ignore[arg-type]  # a truthy string, not False
    lambda: TrainConfig.from_dict({"data": "d", "validate": "no"}),
])
def test_a_validate_that_is_not_a_bool_is_refused_by_name(build) -> None:
    with pytest.raises(ConfigError, match="validate must be true or false"):
        build()


def test_without_validation_nothing_is_evaluated_and_the_last_epoch_is_the_model(tmp_path, tiny_config, monkeypatch):
    import safetensors.torch

    import roomscan.backends.detr as detr
    import roomscan.train.engine as engine
    from roomscan.train import fit, runs

    def no_prediction(*args, **kwargs):
        raise AssertionError("validate=False must not predict on a validation set")

    saves: list[Path] = []
    real_save = detr.save_model_dir
    monkeypatch.setattr(engine, "predict", no_prediction)
    monkeypatch.setattr(detr, "save_model_dir", lambda *a, **kw: saves.append(Path(a[3])) or real_save(*a, **kw))
    # lr so small that val AP could never improve: with validation, patience 1 would stop after epoch 1.
    config = tiny_config(tmp_path, epochs=3, subset=0.25, lr=1e-9, patience=1, val_fraction=0.25, validate=False,
                         name="novalidate")
    run_dir = fit(config, log=lambda s: None)

    metrics = runs.read_metrics(run_dir)
    assert [m["epoch"] for m in metrics] == [0, 1, 2]  # patience ignored: nothing to compare
    assert not any(key.startswith("val_ap") for m in metrics for key in m)
    assert len(saves) == 1  # model/ written once, at the end
    saved = safetensors.torch.load_file(str(run_dir / runs.MODEL_DIR / "model.safetensors"))
    last = runs.load_checkpoint(run_dir)["model"]  # the checkpoint holds the last epoch
    shared = set(saved) & set(last)
    assert shared and all(saved[k].equal(last[k]) for k in shared)
    info = json.loads((run_dir / runs.INFO_FILE).read_text())
    assert info["train_images"] == 6 and info["val_images"] == 0  # val_fraction ignored: all 6 images trained
    assert info["best_epoch"] == 2 and info["best_ap"] is None and info["status"] == "finished"
    assert runs.read_run(run_dir).best_ap is None
