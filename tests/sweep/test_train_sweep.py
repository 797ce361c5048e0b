"""A real sweep of ``roomscan train`` (in-process) on a tiny synthetic dataset, through the CLI, with its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _models import build_tiny_rtdetr
from typer.testing import CliRunner

from roomscan.cli import app
from roomscan.data.synthetic import make_shapes_dataset

SIZE = 64


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_sweep_end_to_end(tmp_path: Path, one_torch_thread: None) -> None:
    from roomscan.data.dataset import DetectionDataset

    data = tmp_path / "shapes"
    make_shapes_dataset(data, n_images=8, image_size=(SIZE, SIZE), max_objects=2, min_size=16, seed=0)
    arch = build_tiny_rtdetr(tmp_path / "arch", DetectionDataset.load(data).taxonomy, image_size=SIZE)
    sweep = {
        "name": "tiny-train",
        "method": "grid",
        "train": {
            "data": str(data),
            "model": str(arch),
            "scratch": True,
            "epochs": 2,
            "batch_size": 4,
            "image_size": SIZE,
            "val_fraction": 0.0,
            "warmup_steps": 2,
            "num_workers": 0,
            "hflip": 0.0,
            "patience": 0,
            "print_every": 1000,
            "eval_batch_size": 8,
            "device": "cpu",
            "cache_dir": str(tmp_path / "cache"),
            "out": str(tmp_path / "runs"),
        },
        "metric": {"name": "val_ap", "goal": "maximize"},
        "parameters": {"lr": {"values": [1e-3, 3e-3]}, "weight_decay": {"value": 0.0}},
    }
    file = tmp_path / "sweep.yaml"
    file.write_text(yaml.safe_dump(sweep))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    runner = CliRunner()
    created = runner.invoke(app, ["sweep", "create", str(file), "--storage", storage])
    assert created.exit_code == 0, created.output
    sid = created.stdout.strip().splitlines()[-1]
    agent = runner.invoke(app, ["sweep", "agent", sid, "--storage", storage])
    assert agent.exit_code == 0, agent.output
    assert "2 ran (2 complete" in agent.stdout
    report = runner.invoke(
        app, ["sweep", "report", sid, "--storage", storage, "--out", str(tmp_path / "rep")]
    )
    assert report.exit_code == 0, report.output
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["counts"] == {"complete": 2} and summary["best"][0]["config"]["lr"] in (1e-3, 3e-3)
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == [f"{sid}-trial-0", f"{sid}-trial-1"]
    assert "<img" in (tmp_path / "rep" / "report.html").read_text()
