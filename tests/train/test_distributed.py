"""Data-parallel training on CPU (gloo): two processes at batch b train like one at 2b, resume, and torchrun works.

The comparison is made exact up to float rounding: every image has one box (each process's loss is normalised by
its own box count, so equal counts make the averaged gradient the global one), no augmentation, no denoising or
dropout, and BatchNorm frozen in both runs (SyncBatchNorm, which ``fit`` uses on CUDA, does not run on CPU; per
process batch statistics would differ from the global batch's). What is compared is then what the code decides:
the sharding of each epoch's order, gradient averaging, the learning-rate schedule, the checkpoint and logs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from roomscan.train import runs
from roomscan.train.distributed import DistributedError, World, world_from_env

KEYS = ("epoch", "loss", "loss_vfl", "loss_bbox", "loss_giou", "lr", "val_ap50")


def _frozen_batch_norm(set_attribute) -> None:
    """Build and rebuild models with every BatchNorm frozen (statistics fixed, as RT-DETR's backbone already is)."""
    from transformers.models.rt_detr_v2.modeling_rt_detr_v2 import replace_batch_norm

    from roomscan.train import engine

    def frozen(build):
        def wrapper(*args, **kwargs):
            model, processor = build(*args, **kwargs)
            replace_batch_norm(model)
            return model, processor

        return wrapper

    set_attribute(engine, "build_model", frozen(engine.build_model))
    set_attribute(engine, "rebuild", frozen(engine.rebuild))


def _worker(rank: int, world_size: int, port: int, jobs: list[dict]) -> None:
    """One of the processes torchrun would start: env vars, one thread, then ``fit`` calls in order."""
    import torch

    from roomscan.train import TrainConfig, fit

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    _frozen_batch_norm(setattr)
    import torch.distributed as dist

    # A caller-owned group, so several fit calls share it (fit's own init/destroy runs in the torchrun test).
    dist.init_process_group("gloo")
    try:
        for job in jobs:
            if job.get("check") == "collectives":
                _check_collectives(World(world_size, rank, rank, "cpu"))
                continue
            if "resume" in job:
                fit(resume=job["resume"], log=lambda s: None)
                continue
            config = TrainConfig(**job["config"])
            if "crash_after" not in job:
                fit(config, log=lambda s: None)
                continue

            def crash(row: dict, at: int = job["crash_after"]) -> None:
                if row["epoch"] == at:
                    raise KeyboardInterrupt  # as if rank 0 went down right after this epoch's checkpoint

            try:
                fit(config, log=lambda s: None, on_epoch=crash)
            except (KeyboardInterrupt, DistributedError) as exc:  # rank 0 the first, the others the second
                assert isinstance(exc, KeyboardInterrupt) == (rank == 0), (rank, exc)
            else:
                raise AssertionError("the run should have stopped")
    finally:
        dist.destroy_process_group()


def _check_collectives(world: World) -> None:
    assert world.sum({"loss": 1.0, f"only_on_{world.rank}": world.rank + 1.0}) == {
        "loss": 2.0, "only_on_0": 1.0, "only_on_1": 2.0}  # a key one rank lacks counts 0 there
    assert world.mean(float(world.rank)) == 0.5
    assert world.gather(world.rank) == [0, 1]
    assert world.on_main(lambda: f"from rank {world.rank}") == "from rank 0"

    def fail() -> None:
        raise ValueError("disk full")

    try:
        world.on_main(fail)
    except (ValueError, DistributedError) as exc:  # rank 0 re-raises its own error, the others learn of it
        assert "disk full" in str(exc) and isinstance(exc, ValueError) == world.is_main
    else:
        raise AssertionError("on_main should have raised")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def one_box_shapes(tmp_path_factory) -> Path:
    """16 images with one shape each: equal box counts per process (see the module docstring)."""
    from roomscan.data.synthetic import make_shapes_dataset

    root = tmp_path_factory.mktemp("one-box")
    make_shapes_dataset(root, n_images=16, image_size=(96, 96), max_objects=1, min_size=24, seed=1)
    return root


def _metrics(run_dir: Path) -> list[dict]:
    return [{k: m[k] for k in KEYS} for m in runs.read_metrics(run_dir)]


def _weights(run_dir: Path) -> dict:
    return runs.load_checkpoint(run_dir)["model"]


@pytest.mark.slow
def test_two_processes_at_batch_b_train_like_one_at_2b_and_resume_exactly(tmp_path, tiny_config, one_box_shapes,
                                                                         monkeypatch):
    import torch
    import torch.multiprocessing as mp

    from roomscan.train import TrainConfig, fit

    def config(name: str, batch_size: int) -> dict:
        tiny = tiny_config(tmp_path, epochs=3, batch_size=batch_size, name=name)
        return tiny.replace(data=str(one_box_shapes)).to_dict()

    jobs = [{"check": "collectives"}, {"config": config("ddp", 2)},
            {"config": config("crashed", 2), "crash_after": 1}, {"resume": str(tmp_path / "runs" / "crashed")}]
    mp.spawn(_worker, args=(2, _free_port(), jobs), nprocs=2, join=True)

    _frozen_batch_norm(monkeypatch.setattr)
    one = fit(TrainConfig(**config("one", 4)), log=lambda s: None)
    ddp, one_rows = tmp_path / "runs" / "ddp", _metrics(one)
    assert len(one_rows) == 3 and one_rows[-1]["loss"] < 0.9 * one_rows[0]["loss"]  # it trained: not a vacuous match
    for a, b in zip(one_rows, _metrics(ddp), strict=True):
        for k in KEYS:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), (a["epoch"], k)
    ref, got = _weights(one), _weights(ddp)
    assert set(ref) == set(got)  # the unwrapped model's keys: no "module." prefix
    for key in ref:  # float rounding alone (about 5e-6 here) separates them
        assert torch.allclose(got[key].float(), ref[key].float(), rtol=1e-4, atol=5e-5), key
    # The control: one process at batch 2 (half the global batch) is far outside these tolerances.
    half = _metrics(fit(TrainConfig(**config("half", 2)), log=lambda s: None))
    assert abs(half[-1]["loss"] - one_rows[-1]["loss"]) > 100 * 1e-4 * one_rows[-1]["loss"]
    # Killed after epoch 1 and resumed by two processes: the same metrics as the uninterrupted two-process run.
    resumed = tmp_path / "runs" / "crashed"
    for a, b in zip(_metrics(ddp), _metrics(resumed), strict=True):
        for k in KEYS:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-6), (a["epoch"], k)
    assert len(runs.load_checkpoint(resumed)["rng_ranks"]) == 2
    assert json.loads((resumed / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_torchrun_runs_roomscan_train_with_one_writer(tmp_path, tiny_config, one_box_shapes):
    """The documented command, end to end: torchrun --nproc-per-node 2 $(which roomscan) train --config ..."""
    config = tiny_config(tmp_path, epochs=2, batch_size=2, device="cpu", name="cli").replace(data=str(one_box_shapes))
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config.to_dict()))
    roomscan = shutil.which("roomscan", path=str(Path(sys.executable).parent))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert roomscan and torchrun
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), roomscan, "train",
                           "--config", str(tmp_path / "train.yaml")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "cli"
    assert done.stdout.count("run: ") == 1  # printed by rank 0 only
    assert done.stderr.count("epoch 1: loss") == 1 and "global batch 4" in done.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["world_size"] == 2
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [0, 1]
    assert (run_dir / "model" / "taxonomy.yaml").is_file()
    assert not any(p.name.endswith(".tmp") for p in run_dir.rglob("*"))


@pytest.mark.parametrize(("environ", "device", "expected"), [
    ({}, "cpu", World()),
    ({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}, "cuda", World(device="cuda")),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, "cuda", World(4, 3, 1, "cuda:1")),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, "cpu", World(2, 1, 1, "cpu")),
])
def test_world_is_read_from_torchruns_variables(environ, device, expected):
    assert world_from_env(device, environ) == expected


@pytest.mark.parametrize(("environ", "device", "message"), [
    ({"WORLD_SIZE": "2", "RANK": "2"}, "cpu", "inconsistent"),
    ({"WORLD_SIZE": "two"}, "cpu", "not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}, "cuda:1", "cuda:LOCAL_RANK"),
])
def test_a_bad_torchrun_environment_is_named(environ, device, message):
    with pytest.raises(DistributedError, match=message):
        world_from_env(device, environ)


def test_each_rank_takes_every_nth_position_of_the_epoch_order_padded_to_equal_steps():
    shards = [list(World(3, r, r).sampler(10)) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    assert World().sampler(10) is None


def test_the_ranks_batches_at_each_step_together_are_the_one_process_batch(shapes_dir):
    from roomscan.data.dataset import DetectionDataset
    from roomscan.train.data import ImageCache, iter_batches

    dataset, cache = DetectionDataset.load(shapes_dir), ImageCache(None, 32)
    one = [b.image_ids for b in iter_batches(dataset, cache, batch_size=6, epoch=3, seed=7)]
    ranks = [[b.image_ids for b in iter_batches(dataset, cache, batch_size=3, epoch=3, seed=7,
                                                sampler=World(2, r, r).sampler(len(dataset)))] for r in range(2)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 4
    for step, ids in enumerate(one):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(ids)
