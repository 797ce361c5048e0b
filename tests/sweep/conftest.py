"""Sweep fixtures: a storage URL per test and a helper that writes a sweep YAML."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

QUADRATIC = Path(__file__).with_name("quadratic.py")


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sweeps.db'}"


@pytest.fixture
def sweep_yaml(tmp_path: Path) -> Callable[..., Path]:
    def write(parameters: dict, **top: object) -> Path:
        raw = {
            "program": str(QUADRATIC),
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "command": ["${env}", sys.executable, "${program}", "${args}"],
            "parameters": parameters,
            **top,
        }
        raw = {k: v for k, v in raw.items() if v is not None}
        file = tmp_path / f"sweep-{len(list(tmp_path.glob('sweep-*.yaml')))}.yaml"
        file.write_text(yaml.safe_dump(raw))
        return file

    return write
