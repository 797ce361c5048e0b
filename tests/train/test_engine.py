"""Training for real on a tiny RT-DETRv2 and synthetic shapes: it learns, resumes exactly, overfits one batch."""

from __future__ import annotations

import json

import pytest
import yaml

from roomscan.data.dataset import DetectionDataset
from roomscan.train import runs
from roomscan.train.engine import fit, overfit_batch, predict
from roomscan.train.evaluate import evaluate_detector, evaluate_predictions
from roomscan.train.model import build_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config):
    """One 16-epoch run (about 15 s on one core), shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("trained")
    config = tiny_config(out, name="shapes")
    lines: list[str] = []
    return fit(config, log=lines.append), config, lines


def test_training_raises_ap50_well_above_its_value_at_initialisation(trained):
    run_dir, config, _ = trained
    dataset = DetectionDataset.load(config.data)
    from roomscan.train.data import ImageCache

    model, processor = build_model(config, dataset.taxonomy)  # the same seeded init the run started from
    initial = evaluate_predictions(dataset, predict(model, processor, dataset, ImageCache(None, config.image_size),
                                                    batch_size=8, device="cpu"))
    metrics = runs.read_metrics(run_dir)
    best = max(m["val_ap50"] for m in metrics)
    assert len(metrics) == config.epochs
    assert initial.ap50 < 0.05
    assert best >= 0.15 and best >= initial.ap50 + 0.12, (initial.ap50, [round(m["val_ap50"], 3) for m in metrics])
    assert metrics[-1]["loss"] < 0.6 * metrics[0]["loss"]


def test_run_directory_describes_itself(trained):
    run_dir, config, lines = trained
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config.to_dict()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["train_fingerprint"] == DetectionDataset.load(config.data).fingerprint()
    assert "git_commit" in info and info["torch"] and info["transformers"]
    row = runs.read_metrics(run_dir)[0]
    for key in ("epoch", "loss", "loss_vfl", "loss_bbox", "loss_giou", "lr", "val_ap", "val_ap50", "images_per_s",
                "train_seconds", "init_loss", "expected_init_loss_vfl"):
        assert key in row, key
    assert (run_dir / runs.CHECKPOINT_FILE).is_file()
    # The initial loss is printed next to its expected value from the class prior.
    assert any(line.startswith("initial loss_vfl") and "expected about" in line and "p=0.2500" in line for line in lines)


def test_trained_model_dir_loads_through_get_detector_and_scores_like_training(trained):
    from roomscan.backends import get_detector

    run_dir, config, _ = trained
    detector = get_detector(str(run_dir / "model"), device="cpu", score_threshold=0.0)
    assert detector.info.backend == "detr" and detector.taxonomy.slugs == ["circle", "square", "triangle"]
    dataset = DetectionDataset.load(config.data)
    report, predictions = evaluate_detector(detector, dataset, batch_size=8)
    assert set(predictions) == {im.id for im in dataset.images}
    best = max(m["val_ap50"] for m in runs.read_metrics(run_dir))
    assert report.ap50 == pytest.approx(best, abs=0.05)


def test_resume_from_a_mid_run_checkpoint_reproduces_the_uninterrupted_run(tmp_path, tiny_config):
    def crash_after_epoch_1(line: str) -> None:
        if line.startswith("epoch 1:"):
            raise KeyboardInterrupt  # as if the machine went down right after epoch 1's checkpoint

    straight = fit(tiny_config(tmp_path / "a", epochs=4, subset=0.5, name="straight"), log=lambda s: None)
    config = tiny_config(tmp_path / "b", epochs=4, subset=0.5, name="interrupted", cache=False)
    with pytest.raises(KeyboardInterrupt):
        fit(config, log=crash_after_epoch_1)
    run_dir = tmp_path / "b" / "runs" / "interrupted"
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [0, 1]
    fit(resume=run_dir, log=lambda s: None)
    keys = ("epoch", "loss", "loss_vfl", "loss_bbox", "loss_giou", "lr", "val_ap", "val_ap50")
    expected = [{k: m[k] for k in keys} for m in runs.read_metrics(straight)]
    resumed = [{k: m[k] for k in keys} for m in runs.read_metrics(run_dir)]
    assert len(resumed) == 4
    for a, b in zip(expected, resumed):
        for k in keys:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-6), (a["epoch"], k)


def test_overfit_batch_drives_the_loss_down_by_a_large_factor(tmp_path, tiny_config):
    lines: list[str] = []
    config = tiny_config(tmp_path, overfit_batch=True, overfit_steps=100, batch_size=2, lr=5e-3, clip_grad=0.0,
                         print_every=20, name="overfit")
    run_dir = overfit_batch(config, log=lines.append)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["last_loss"] < info["first_loss"] / 5, (info["first_loss"], info["last_loss"])
    assert sum(line.startswith("overfit step") for line in lines) >= 5  # printed every few steps


def test_an_existing_run_directory_is_not_overwritten(tmp_path, tiny_config):
    from roomscan.train.engine import TrainingError

    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "config.yaml").write_text("data: x\n")
    with pytest.raises(TrainingError, match="--resume"):
        fit(tiny_config(tmp_path, name="taken"), log=lambda s: None)


def tiny_dfine_dir(path, num_labels: int = 3):
    """A tiny D-FINE architecture (HGNetV2 widths 8-128, d_model 32, 10 queries): config and processor only."""
    from transformers import DFineConfig, RTDetrImageProcessor

    config = DFineConfig(
        num_labels=num_labels, d_model=32, encoder_hidden_dim=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_in_channels=[64, 128], decoder_in_channels=[32, 32], feat_strides=[16, 32], num_feature_levels=2,
        decoder_n_points=[2, 2], encode_proj_layers=[1], decoder_layers=2, decoder_attention_heads=2,
        encoder_attention_heads=2, num_queries=10, num_denoising=0, depth_mult=0.34, hidden_expansion=0.34,
        anchor_image_size=None,
    )
    bb = config.backbone_config
    bb.hidden_sizes, bb.stem_channels = [16, 64, 64, 128], [3, 8, 8]
    bb.stage_in_channels, bb.stage_mid_channels = [8, 16, 64, 64], [8, 16, 16, 32]
    bb.stage_out_channels, bb.stage_num_blocks = [16, 64, 64, 128], [1, 1, 1, 1]
    bb.stage_downsample, bb.stage_light_block = [False, True, True, True], [False, False, True, True]
    bb.stage_kernel_size, bb.stage_numb_of_layers, bb.out_indices = [3, 3, 5, 5], [1, 1, 1, 1], [3, 4]
    config.save_pretrained(str(path))
    RTDetrImageProcessor(size={"height": 96, "width": 96}).save_pretrained(str(path))
    return path


def test_dfine_trains_through_the_same_path_and_loads_as_a_detector(tmp_path, tiny_config):
    from roomscan.backends import get_detector

    arch = tiny_dfine_dir(tmp_path / "dfine-arch")
    run_dir = fit(tiny_config(tmp_path, model=str(arch), epochs=2, subset=0.34, name="dfine"), log=lambda s: None)
    rows = runs.read_metrics(run_dir)
    assert len(rows) == 2 and "loss_fgl" in rows[0]  # D-FINE's fine-grained localisation loss is tracked too
    detector = get_detector(str(run_dir / "model"), device="cpu", score_threshold=0.0)
    assert detector.info.backend == "detr"
    dataset = DetectionDataset.load(tiny_config(tmp_path).data)
    from PIL import Image

    assert len(detector.predict([Image.open(dataset.path(dataset.images[0])).convert("RGB")])) == 1


def test_early_stopping_ends_the_run_when_val_ap_stops_improving(tmp_path, tiny_config):
    lines: list[str] = []
    # lr so small the model cannot change: val AP never beats epoch 0's.
    run_dir = fit(tiny_config(tmp_path, epochs=6, subset=0.25, lr=1e-9, patience=2, name="stop"), log=lines.append)
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [0, 1, 2]
    assert any(line.startswith("early stop") for line in lines)
    assert json.loads((run_dir / "run.json").read_text())["best_epoch"] == 0


def test_on_epoch_sees_each_stored_row_and_can_stop_the_run(tmp_path, tiny_config):
    seen: list[dict] = []

    class Stop(Exception):
        pass

    def on_epoch(row: dict) -> None:
        seen.append(row)
        if row["epoch"] == 1:
            raise Stop  # e.g. a sweep's pruner

    with pytest.raises(Stop):
        fit(tiny_config(tmp_path, epochs=4, subset=0.25, name="pruned"), log=lambda s: None, on_epoch=on_epoch)
    run_dir = tmp_path / "runs" / "pruned"
    assert [r["epoch"] for r in seen] == [0, 1]
    assert runs.read_metrics(run_dir) == seen  # the callback saw exactly what was stored
    assert json.loads((run_dir / "run.json").read_text())["status"] == "stopped"
