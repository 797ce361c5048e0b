"""Real-world-style W&B sweep files (as W&B users write them) create a sweep and run one trial end to end.

Each config is YAML text as it would sit next to ``train.py``: PyYAML reads ``1e-5`` as a string (YAML 1.1), names
may be dotted (Hydra overrides), ``${...}`` that are not W&B macros pass through. The program records the
arguments it got, so each test checks the exact command line a user's script would see.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import optuna
import pytest

from roomscan.sweep import create_sweep, load_sweep_config, open_sweep, run_agent

ECHO = Path(__file__).with_name("echo_args.py")


def run_one(
    tmp_path: Path, storage: str, yaml_text: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict, dict]:
    """Create the sweep from ``yaml_text`` and run one trial; (what the program got, the trial's params)."""
    shutil.copy(ECHO, tmp_path / "train.py")
    out = tmp_path / "echo"
    out.mkdir()
    monkeypatch.setenv("ECHO_ARGS_DIR", str(out))
    file = tmp_path / "sweep.yaml"
    file.write_text(textwrap.dedent(yaml_text))
    sid = create_sweep(load_sweep_config(file), storage=storage, base_dir=tmp_path)
    result = run_agent(sid, storage=storage, count=1)
    trial = open_sweep(sid, storage=storage).study.trials[0]
    assert result.ran == 1 and trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("error")
    return json.loads((out / "0.json").read_text()), trial.params


def args(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if "=" in a)


def test_random_with_run_cap_and_hyperband(
    tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, _ = run_one(
        tmp_path,
        storage,
        """
        program: train.py
        method: random
        run_cap: 20
        metric:
          name: val_loss
          goal: minimize
        early_terminate:
          type: hyperband
          min_iter: 1
          eta: 3
          s: 2
        parameters:
          learning_rate:
            min: 1e-5
            max: 1e-2
          batch_size:
            values: [16, 32, 64]
          optimizer:
            values: ["adam", "sgd"]
          epochs:
            value: 3
        """,
        monkeypatch,
    )
    flags = args(got["argv"])
    assert set(flags) == {"--learning_rate", "--batch_size", "--optimizer", "--epochs"}
    assert 1e-5 <= float(flags["--learning_rate"]) <= 1e-2
    assert flags["--batch_size"] in {"16", "32", "64"} and flags["--optimizer"] in {"adam", "sgd"}
    assert flags["--epochs"] == "3"


def test_bayes_with_log_uniform_values(tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    got, params = run_one(
        tmp_path,
        storage,
        """
        program: train.py
        method: bayes
        metric:
          name: val_acc
          goal: maximize
        parameters:
          lr:
            distribution: log_uniform_values
            min: 1e-5
            max: 1e-1
          weight_decay:
            distribution: log_uniform_values
            min: 1E-6
            max: 0.001
          amp:
            values: [true, false]
          epochs:
            value: 2
        command:
          - ${env}
          - ${interpreter}
          - ${program}
          - ${args_no_boolean_flags}
        """,
        monkeypatch,
    )
    flags = args(got["argv"])
    assert 1e-5 <= float(flags["--lr"]) <= 1e-1 and 1e-6 <= float(flags["--weight_decay"]) <= 1e-3
    assert ("--amp" in got["argv"]) is params["amp"]  # a true flag is bare, a false one absent
    assert not any(a.startswith("--amp=") for a in got["argv"])


def test_nested_parameters_become_hydra_overrides(
    tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, _ = run_one(
        tmp_path,
        storage,
        """
        program: train.py
        method: grid
        metric:
          name: val_loss
          goal: minimize
        parameters:
          optimizer:
            parameters:
              name:
                values: [adamw]
              lr:
                values: [1e-4]
          model.depth:
            value: 18
        command:
          - ${env}
          - ${interpreter}
          - ${program}
          - hydra.run.dir=outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}
          - data.root=${oc.env:DATA_ROOT,/data}
          - ${args_no_hyphens}
        """,
        monkeypatch,
    )
    assert got["argv"] == [
        "hydra.run.dir=outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}",
        "data.root=${oc.env:DATA_ROOT,/data}",
        "optimizer.name=adamw",
        "optimizer.lr=0.0001",
        "model.depth=18",
    ]


def test_hydra_dotted_names(tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    got, _ = run_one(
        tmp_path,
        storage,
        """
        program: train.py
        method: random
        metric:
          name: val_loss
          goal: minimize
        parameters:
          trainer.lr:
            distribution: log_uniform_values
            min: 1e-4
            max: 1e-2
          trainer.max_epochs:
            value: 2
          model:
            values: [resnet18]
        command: [python3, "${program}", "${args_no_hyphens}"]
        """,
        monkeypatch,
    )
    overrides = args(got["argv"])
    assert list(overrides) == ["trainer.lr", "trainer.max_epochs", "model"]
    assert 1e-4 <= float(overrides["trainer.lr"]) <= 1e-2
    assert overrides["trainer.max_epochs"] == "2" and overrides["model"] == "resnet18"


def test_args_and_json_file_for_nested_parameters(
    tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, _ = run_one(
        tmp_path,
        storage,
        """
        program: train.py
        method: random
        metric:
          name: val_loss
          goal: minimize
        parameters:
          optimizer:
            parameters:
              lr:
                value: 1e-3
              momentum:
                value: 0.9
          epochs:
            value: 1
        command: ["${env}", "${interpreter}", "${program}", "${args}", --config, "${args_json_file}"]
        """,
        monkeypatch,
    )
    assert got["argv"][:3] == ["--optimizer.lr=0.001", "--optimizer.momentum=0.9", "--epochs=1"]
    assert got["config"] == {"optimizer": {"lr": 0.001, "momentum": 0.9}, "epochs": 1}
