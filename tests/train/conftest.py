"""Fixtures for the training tests: a small shapes dataset, a tiny RT-DETRv2 architecture, one torch thread.

Tiny detectors on a 2-core machine run several times faster on one thread than on two oversubscribed ones, and
one thread keeps CPU results bitwise reproducible (the resume test compares runs exactly).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _models import build_tiny_rtdetr

from roomscan.data.synthetic import make_shapes_dataset

IMAGE_SIZE = 96


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images of 96x96 px, 1-2 shapes each (circle, square, triangle), in roomscan's dataset format."""
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, n_images=24, image_size=(IMAGE_SIZE, IMAGE_SIZE), max_objects=2, min_size=24, seed=0)
    return root


@pytest.fixture(scope="package")
def tiny_arch_dir(tmp_path_factory: pytest.TempPathFactory, shapes_dir: Path) -> Path:
    """A tiny RT-DETRv2 model directory for the shapes taxonomy; ``--scratch`` builds its architecture afresh."""
    from roomscan.data.dataset import DetectionDataset

    taxonomy = DetectionDataset.load(shapes_dir).taxonomy
    return build_tiny_rtdetr(tmp_path_factory.mktemp("tiny-arch"), taxonomy, image_size=IMAGE_SIZE)


@pytest.fixture(scope="package")
def tiny_config(shapes_dir: Path, tiny_arch_dir: Path):
    """``tiny_config(out, **changes)``: the fast recipe the tests train with (scratch, 96 px, batch 4, lr 3e-3)."""
    return lambda out, **changes: _tiny_config(shapes_dir, tiny_arch_dir, out, **changes)


def _tiny_config(data: Path, arch: Path, out: Path, **changes):
    from roomscan.train import TrainConfig

    base = {
        "data": str(data), "model": str(arch), "scratch": True, "epochs": 16, "batch_size": 4, "lr": 3e-3,
        "image_size": IMAGE_SIZE, "val_fraction": 0.0, "cache_dir": str(out / "cache"), "out": str(out / "runs"),
        "warmup_steps": 5, "clip_grad": 1.0, "hflip": 0.0, "patience": 0, "num_workers": 0, "print_every": 1000,
        "eval_batch_size": 8,
    }
    base.update(changes)
    return TrainConfig(**base)
