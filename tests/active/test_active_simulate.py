"""The simulated active-learning loop: only selected labels are revealed, the test split is never touched, a
stopped run continues without redoing finished rounds, a budget past the pool stops cleanly, the summary's
figures are the ones a reader would compute by hand."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from _models import build_tiny_rtdetr

from roomscan.active.select import BudgetWarning
from roomscan.active.simulate import (
    RoundResult,
    SimulationConfig,
    SimulationError,
    initial_set,
    read_results,
    simulate,
    split_pool,
    summarize,
)
from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.data.synthetic import make_shapes_dataset, shapes_taxonomy
from roomscan.train.config import TrainConfig

SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    make_shapes_dataset(root, n_images=20, image_size=(SIZE, SIZE), max_objects=2, min_size=14, seed=0)
    return root


@pytest.fixture(scope="module")
def arch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_rtdetr(tmp_path_factory.mktemp("arch"), shapes_taxonomy(), image_size=SIZE)


def _config(pool_dir: Path, arch_dir: Path, **changes) -> SimulationConfig:
    recipe = TrainConfig(data="-", model=str(arch_dir), scratch=True, epochs=1, batch_size=4, lr=3e-3,
                         image_size=SIZE, warmup_steps=1, clip_grad=1.0, hflip=0.0, patience=0, num_workers=0,
                         print_every=10**6, eval_batch_size=8, dropout=0.1, val_fraction=0.0, device="cpu")
    base = {"data": str(pool_dir), "strategies": ("random",), "rounds": 2, "budget": 4, "initial": 4, "seeds": 1,
            "committee": "mc-dropout:2", "test_fraction": 0.25, "target_map": 0.5, "train": recipe}
    base.update(changes)
    return SimulationConfig(**base)


def _trained_ids(out: Path) -> set[int]:
    """Every image id any round trained on, read from the training sets the runs were given."""
    ids: set[int] = set()
    for ann in (out / "data").glob("*/annotations.json"):
        ids |= {im["id"] for im in json.loads(ann.read_text())["images"]}
    return ids


def test_the_loop_reveals_only_the_labels_each_strategy_selects(tmp_path, pool_dir, arch_dir):
    config = _config(pool_dir, arch_dir, strategies=("bald+diversity", "random"), seeds=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)  # the pool suffices: no warning
        report = simulate(config, tmp_path, log=lambda m: None)

    dataset = DetectionDataset.load(pool_dir)
    pool, test = split_pool(dataset, config.test_fraction, config.split_seed)
    rows = {r.key: r for r in read_results(tmp_path)}
    assert len(rows) == 2 * 2 * 2
    assert not (_trained_ids(tmp_path) & set(test)), "a test image was trained on"
    for seed in range(2):
        start = tuple(initial_set(pool, config.initial, seed))
        for strategy in config.strategies:
            first, second = rows[(strategy, seed, 0)], rows[(strategy, seed, 1)]
            assert first.labelled == start  # the same random start for every strategy under a seed
            assert len(first.selected) == config.budget and not set(first.selected) & set(first.labelled)
            assert set(first.selected) <= set(pool) and not set(first.selected) & set(test)
            assert set(second.labelled) == set(first.labelled) | set(first.selected)  # exactly the picks revealed
            assert second.labels == config.initial + config.budget and second.selected == ()
            assert 0.0 <= second.map <= 1.0
    assert rows[("random", 0, 0)].labelled != rows[("random", 1, 0)].labelled  # seeds differ
    assert [s.strategy for s in report.summaries] == ["bald+diversity", "random"]
    assert report.summaries[0].labels == (4, 8) and report.summaries[0].n_seeds == (2, 2)
    assert json.loads(report.summary.read_text())["strategies"][1]["strategy"] == "random"
    assert report.curves is not None and report.curves.stat().st_size > 0
    epoch_rows = [json.loads(line) for metrics in (tmp_path / "runs").glob("*/metrics.jsonl")
                  for line in metrics.read_text().splitlines()]
    assert epoch_rows and not any("val_ap" in row for row in epoch_rows)  # no per-epoch validation: test AP only


def test_a_stopped_run_continues_without_retraining_finished_rounds(tmp_path, pool_dir, arch_dir, monkeypatch):
    import roomscan.train.engine as engine

    config = _config(pool_dir, arch_dir, rounds=3)

    def crash_after_round_1(row: RoundResult) -> None:
        if row.round == 1:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        simulate(config, tmp_path, log=lambda m: None, on_round=crash_after_round_1)
    before = read_results(tmp_path)
    assert [r.round for r in before] == [0, 1]

    import shutil

    shutil.rmtree(tmp_path / "runs")  # no trained model to reuse: only results.jsonl can spare the work
    trained: list[str] = []
    real_fit = engine.fit
    monkeypatch.setattr(engine, "fit", lambda cfg, **kw: trained.append(cfg.data) or real_fit(cfg, **kw))
    report = simulate(config, tmp_path, log=lambda m: None)

    after = read_results(tmp_path)
    assert [r.round for r in after] == [0, 1, 2]
    assert after[:2] == before  # kept as they were
    assert len(trained) == 1  # round 2 only
    assert set(after[2].labelled) == set(before[1].labelled) | set(before[1].selected)
    assert (report.rounds_run, report.rounds_resumed) == (1, 2)

    with pytest.raises(SimulationError, match="other settings.*budget"):
        simulate(dataclasses.replace(config, budget=5), tmp_path, log=lambda m: None)


def test_a_budget_past_the_pool_warns_and_stops_when_the_pool_is_empty(tmp_path, pool_dir, arch_dir):
    config = _config(pool_dir, arch_dir, budget=50, rounds=4)
    pool, _ = split_pool(DetectionDataset.load(pool_dir), config.test_fraction)
    with pytest.warns(BudgetWarning, match="exceed"):
        simulate(config, tmp_path, log=lambda m: None)
    rows = read_results(tmp_path)
    assert [r.round for r in rows] == [0, 1]  # then nothing is left to pick
    assert rows[0].short and len(rows[0].selected) == len(pool) - config.initial and rows[0].pool_left == 0
    assert rows[1].labels == len(pool) and rows[1].selected == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategies": ("bald", "magic")}, "unknown strategy magic; choose from random, .*bald\\+diversity"),
        ({"committee": "crowd:3"}, "use mc-dropout:T"),
        ({"committee": "mc-dropout:1"}, "2 <= T <= 256"),
        ({"committee": "mc-dropout:99999999999999999999"}, "2 <= T <= 256"),
        ({"committee": "ensemble:257"}, "2 <= K <= 256"),
        ({"committee": "ensemble:\u00b2"}, "ensemble:K"),
        ({"rounds": 0}, "rounds must be at least 1"),
        ({"metric": "f1"}, "metric must be one of map, map50"),
    ],
)
def test_bad_settings_are_refused_by_name(pool_dir, arch_dir, changes, message):
    with pytest.raises(SimulationError, match=message):
        _config(pool_dir, arch_dir, **changes)


def test_mc_dropout_needs_a_model_trained_with_dropout(pool_dir, arch_dir):
    recipe = _config(pool_dir, arch_dir).recipe().replace(dropout=0.0)
    with pytest.raises(SimulationError, match="dropout > 0"):
        _config(pool_dir, arch_dir, strategies=("bald",), train=recipe)
    _config(pool_dir, arch_dir, strategies=("random", "diversity"), train=recipe)  # no committee, no need
    _config(pool_dir, arch_dir, strategies=("bald",), committee="ensemble:2", train=recipe)


def test_an_empty_pool_or_too_large_initial_set_is_refused(tmp_path, pool_dir, arch_dir):
    empty = tmp_path / "empty"
    DetectionDataset(empty / "images", shapes_taxonomy(), []).save(empty)
    with pytest.raises(DatasetError, match="no images"):
        simulate(_config(empty, arch_dir), tmp_path / "out1", log=lambda m: None)
    with pytest.raises(SimulationError, match="initial 40 exceeds the pool of 15"):
        simulate(_config(pool_dir, arch_dir, initial=40), tmp_path / "out2", log=lambda m: None)


def _row(strategy: str, seed: int, round_: int, labels: int, ap: float) -> RoundResult:
    return RoundResult(strategy, seed, round_, labels, ap, ap, {"circle": ap}, tuple(range(labels)), (), 0)


def test_summary_reports_labels_to_target_and_the_saving_against_random(pool_dir, arch_dir):
    config = _config(pool_dir, arch_dir, strategies=("bald", "random"), seeds=2, rounds=3, target_map=0.5)
    rows = [
        # bald reaches 0.5 at 20 and 30 labels; random at 40 and 40
        _row("bald", 0, 0, 10, 0.2), _row("bald", 0, 1, 20, 0.5), _row("bald", 0, 2, 30, 0.6),
        _row("bald", 1, 0, 10, 0.1), _row("bald", 1, 1, 20, 0.4), _row("bald", 1, 2, 30, 0.55),
        _row("random", 0, 0, 10, 0.2), _row("random", 0, 1, 20, 0.3), _row("random", 0, 2, 40, 0.5),
        _row("random", 1, 0, 10, 0.1), _row("random", 1, 1, 20, 0.3), _row("random", 1, 2, 40, 0.7),
    ]
    bald, random_ = summarize(rows, config)
    assert bald.to_target == (20, 30) and bald.to_target_mean == 25.0
    assert random_.to_target_mean == 40.0 and random_.saving_vs_random == 0.0
    assert bald.saving_vs_random == pytest.approx(1 - 25 / 40)
    assert bald.labels == (10, 20, 30) and bald.mean[0] == pytest.approx(0.15)
    assert bald.std[0] == pytest.approx(0.0707, abs=1e-3)  # sample std of 0.2 and 0.1
    assert bald.final_mean == pytest.approx(0.575) and bald.per_class_final["circle"] == pytest.approx(0.575)

    never = [r for r in rows if not (r.strategy == "random" and r.seed == 1)]
    never += [_row("random", 1, 2, 40, 0.45)]
    _, random_ = summarize(never, config)
    assert random_.to_target == (40, None) and random_.to_target_mean is None and random_.reached == 1



def test_a_results_line_of_the_wrong_shape_is_skipped_with_a_note(tmp_path):
    good = RoundResult(strategy="random", seed=0, round=0, labels=4, map=0.1, map50=0.2, per_class={},
                       labelled=(1, 2), selected=(3,), pool_left=5, short=False, labelled_boxes={}, seconds=1.0)
    edited = [{**good.to_dict(), "map": "0.5"}, {**good.to_dict(), "seed": None}, {**good.to_dict(), "round": 1.5}]
    lines = ["[1, 2]", "5", *map(json.dumps, edited), json.dumps(good.to_dict())]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    notes: list[str] = []
    assert read_results(tmp_path, log=notes.append) == [good]
    assert len(notes) == 5 and all("unreadable result line skipped" in n for n in notes)


def test_a_test_split_without_boxes_is_refused_before_training(tmp_path, pool_dir, arch_dir):
    from roomscan.detection.core import make_detections

    dataset = DetectionDataset.load(pool_dir)
    _, test_ids = split_pool(dataset, 0.25)
    annotations = dict(dataset.annotations)
    for i in test_ids:  # the held-out photos are negatives only
        annotations[i] = make_detections(np.zeros((0, 4)), [], [], [])
    negatives = tmp_path / "pool"
    DetectionDataset(dataset.images_dir, dataset.taxonomy, dataset.images, annotations).save(negatives)
    with pytest.raises(SimulationError, match="hold no boxes.*--test-fraction"):
        simulate(_config(negatives, arch_dir), tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_missing_or_empty_pool_images_are_named_before_training(tmp_path, pool_dir, arch_dir):
    pool = tmp_path / "pool"
    shutil.copytree(pool_dir, pool)
    images = sorted((pool / "images").iterdir())
    images[-1].unlink()
    images[-2].write_bytes(b"")
    with pytest.raises(DatasetError, match=rf"2 image file\(s\) missing or empty .*{images[-2].name}, {images[-1].name}"):
        simulate(_config(pool, arch_dir), tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()
