"""Sweep YAML: W&B's documented examples load unchanged; bad keys and ranges are named with what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from roomscan.sweep import SweepConfigError, load_sweep_config
from roomscan.sweep.config import SweepConfig

# Examples from W&B's sweep documentation ("Define a sweep configuration", "custom CLI commands", early
# termination and nested parameters), verbatim apart from indentation.
WANDB_DOCS = {
    "sweepdemo": """
        program: train.py
        name: sweepdemo
        method: bayes
        metric:
          goal: minimize
          name: validation_loss
        parameters:
          learning_rate:
            min: 0.0001
            max: 0.1
          batch_size:
            values: [16, 32, 64]
          epochs:
            values: [5, 10, 15]
          optimizer:
            values: ["adam", "sgd"]
        """,
    "custom_command": """
        program:
          train.py
        method: grid
        parameters:
          batch_size:
            value: 8
          lr:
            value: 0.0001
        metric:
          name: loss
          goal: minimize
        command:
          - ${env}
          - python
          - ${program}
          - "-b"
          - your-training-config
          - ${args}
        """,
    "hyperband_nested": """
        program: sweep_nest.py
        name: nested_sweep
        method: random
        metric:
          name: loss
          goal: minimize
        early_terminate:
          type: hyperband
          max_iter: 27
          s: 2
        parameters:
          optimizer:
            parameters:
              learning_rate:
                min: 0.01
                max: 0.1
              momentum:
                min: 0.5
                max: 0.9
          batch_size:
            distribution: q_log_uniform_values
            max: 256
            min: 32
            q: 8
          epochs:
            value: 10
        """,
}


@pytest.mark.parametrize("name", list(WANDB_DOCS))
def test_wandb_docs_examples_load_unchanged(tmp_path: Path, name: str) -> None:
    file = tmp_path / "sweep.yaml"
    file.write_text(textwrap.dedent(WANDB_DOCS[name]))
    cfg = load_sweep_config(file)
    assert cfg.program and cfg.metrics[0].name


def test_wandb_inference_and_nesting() -> None:
    cfg = SweepConfig.from_dict(__import__("yaml").safe_load(textwrap.dedent(WANDB_DOCS["hyperband_nested"])))
    dists = {p.name: p.distribution for p in cfg.parameters}
    assert dists == {
        "optimizer.learning_rate": "uniform",
        "optimizer.momentum": "uniform",
        "batch_size": "q_log_uniform_values",
        "epochs": "constant",
    }
    assert cfg.early_terminate is not None and cfg.early_terminate.max_iter == 27


def _base(**over: object) -> dict:
    raw: dict = {
        "program": "p.py",
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"min": 0.001, "max": 0.1}},
    }
    raw.update(over)
    return raw


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (_base(methd="grid"), "unknown key(s) methd"),
        (_base(method="hillclimb"), "method: must be one of grid, random, bayes"),
        (_base(parameters={"lr": {"min": 0.1, "max": 0.01}}), "parameters.lr.min: must not exceed max"),
        (_base(parameters={"lr": {"min": "a", "max": 0.1}}), "parameters.lr.min: must be a number"),
        (
            _base(parameters={"lr": {"distribution": "gauss"}}),
            "parameters.lr.distribution: unknown distribution",
        ),
        (
            _base(parameters={"lr": {"distribution": "normal", "min": 0}}),
            "parameters.lr: normal does not take ['min']",
        ),
        (_base(parameters={"lr": {"mn": 1}}), "parameters.lr: unknown key(s) ['mn']"),
        (
            _base(parameters={"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}),
            "parameters.lr.min",
        ),
        (
            _base(parameters={"lr": {"values": [1, 2], "probabilities": [0.5, 0.6]}}),
            "parameters.lr.probabilities",
        ),
        (
            _base(parameters={"lr": {"values": [1], "condition": {"opt": "sgd"}}}),
            "parameters.lr.condition.opt",
        ),
        (_base(method="grid"), "grid search needs a finite set of values"),
        (_base(metric={"name": "loss", "goal": "down"}), "metric.goal: must be minimize or maximize"),
        (_base(early_terminate={"type": "hyperband"}), "hyperband needs min_iter or max_iter"),
        (
            _base(early_terminate={"type": "median", "eta": 3}),
            "early_terminate: median does not take ['eta']",
        ),
        (_base(run_cap=0), "run_cap: must be a positive integer"),
        (
            {"method": "random", "metric": {"name": "l"}, "parameters": {"x": {"value": 1}}},
            "program: required",
        ),
        (
            _base(metric=None, metrics=[{"name": "a"}, {"name": "b"}], early_terminate={"type": "median"}),
            "early_terminate: Optuna's pruners work with one metric",
        ),
    ],
)
def test_invalid_configs_name_the_key(raw: dict, needle: str) -> None:
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_dict(raw, where="s.yaml")
    assert needle in str(err.value)
    assert str(err.value).startswith("s.yaml: ")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="not found"):
        load_sweep_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed\n")
    with pytest.raises(SweepConfigError, match="not a readable YAML"):
        load_sweep_config(bad)


def test_train_sweeps_check_train_fields() -> None:
    raw = {"train": {"data": "d", "epochs": 1}, "method": "random", "parameters": {"lrr": {"values": [0.1]}}}
    with pytest.raises(SweepConfigError, match="parameters.lrr: not a roomscan train setting"):
        SweepConfig.from_dict(raw)
    raw["parameters"] = {"lr": {"values": [0.1]}}
    assert SweepConfig.from_dict(raw).metrics[0].name == "val_ap"


def test_scientific_notation_without_a_dot_is_a_number(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads 1e-5 and 1E+3 as strings; W&B users write them all the time.
    file = tmp_path / "sweep.yaml"
    file.write_text(
        textwrap.dedent(
            """
            program: train.py
            method: bayes
            metric: {name: loss}
            parameters:
              lr: {distribution: log_uniform_values, min: 1e-5, max: 1e-1}
              wd: {min: 1e-6, max: 1E-3}
              noise: {distribution: normal, mu: 0, sigma: 1e-2}
              warmup: {values: [1e-3, 1e-2, linear]}
              eps: {value: 1e-8}
              steps: {min: "10", max: "100"}
            """
        )
    )
    by_name = {p.name: p for p in load_sweep_config(file).parameters}
    assert (by_name["lr"].min, by_name["lr"].max) == (1e-5, 1e-1)
    assert by_name["wd"].distribution == "uniform" and by_name["wd"].max == 1e-3
    assert by_name["noise"].sigma == 1e-2
    assert by_name["warmup"].values == (1e-3, 1e-2, "linear")  # real strings stay strings
    assert by_name["eps"].value == 1e-8
    assert by_name["steps"].distribution == "int_uniform" and by_name["steps"].max == 100


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"lr": {"min": "1e-5x", "max": 1}}, "parameters.lr.min: must be a number, got '1e-5x'"),
        ({"lr": {"distribution": "q_uniform", "min": 0, "max": 1, "q": "tenth"}}, "parameters.lr.q: must be"),
        ({"lr": {"distribution": "normal", "sigma": "inf"}}, "parameters.lr.sigma: must be a finite number"),
        ({"trainer..lr": {"value": 1}}, "parameter names must be non-empty strings"),
        (
            {"trainer.lr": {"value": 1}, "trainer": {"parameters": {"lr": {"value": 2}}}},
            "parameters.trainer.lr: given twice",
        ),
        ({"model": {"value": "r18"}, "model.depth": {"value": 18}}, "both a parameter and the parent of"),
    ],
)
def test_bad_numbers_and_names_are_named(parameters: dict, needle: str) -> None:
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_dict(_base(parameters=parameters))
    assert needle in str(err.value)


def test_dotted_names_and_conditions_on_them() -> None:
    cfg = SweepConfig.from_dict(
        _base(
            parameters={
                "trainer.optimizer": {"values": ["sgd", "adam"]},
                "trainer.momentum": {"min": 0.5, "max": 0.99, "condition": {"trainer.optimizer": "sgd"}},
            }
        )
    )
    assert [p.name for p in cfg.parameters] == ["trainer.optimizer", "trainer.momentum"]
    assert cfg.parameters[1].condition == {"trainer.optimizer": ("sgd",)}
