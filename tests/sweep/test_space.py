"""W&B distributions sample what W&B's documentation says they sample, through Optuna."""

from __future__ import annotations

import math

import optuna
import pytest

from roomscan.sweep.config import SweepConfig
from roomscan.sweep.space import SearchSpace, nest

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _samples(param: dict, n: int = 200) -> list:
    cfg = SweepConfig.from_dict(
        {"program": "p", "method": "random", "metric": {"name": "m"}, "parameters": {"p": param}}
    )
    space = SearchSpace(cfg.parameters, grid=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        t = study.ask()
        out.append(space.sample(t)["p"])
        study.tell(t, 0.0)
    return out


@pytest.mark.parametrize(
    ("param", "check"),
    [
        ({"min": 1, "max": 4}, lambda v: isinstance(v, int) and 1 <= v <= 4),
        ({"min": 1.0, "max": 4}, lambda v: isinstance(v, float) and 1 <= v <= 4),
        ({"distribution": "log_uniform", "min": -4, "max": 0}, lambda v: math.exp(-4) <= v <= 1),
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, lambda v: 1e-4 <= v <= 1e-1),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 3}, lambda v: math.exp(-3) <= v <= 1),
        ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2.5}, lambda v: v in (0, 2.5, 5, 7.5, 10)),
        (
            {"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8},
            lambda v: v % 8 == 0 and 32 <= v <= 256,
        ),
        ({"distribution": "normal", "mu": 10, "sigma": 0.1}, lambda v: 9 < v < 11),
        ({"distribution": "log_normal", "mu": 0, "sigma": 0.5}, lambda v: v > 0),
        ({"distribution": "q_normal", "mu": 0, "sigma": 5, "q": 2}, lambda v: v % 2 == 0),
        ({"values": [[1, 2], {"a": 1}]}, lambda v: v in ([1, 2], {"a": 1})),
        ({"value": "x"}, lambda v: v == "x"),
    ],
)
def test_distribution_ranges(param: dict, check) -> None:
    assert all(check(v) for v in _samples(param, 60))


def test_probabilities_weight_categorical_values() -> None:
    vals = _samples({"values": ["a", "b"], "probabilities": [0.9, 0.1]}, 300)
    assert 0.8 < vals.count("a") / len(vals) < 0.97


def test_normal_has_its_mean_and_spread() -> None:
    vals = _samples({"distribution": "normal", "mu": 5, "sigma": 2}, 400)
    mean = sum(vals) / len(vals)
    sd = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
    assert abs(mean - 5) < 0.4 and 1.6 < sd < 2.4


def test_conditional_parameters_only_when_condition_holds() -> None:
    cfg = SweepConfig.from_dict(
        {
            "program": "p",
            "method": "random",
            "metric": {"name": "m"},
            "parameters": {
                "momentum": {"min": 0.1, "max": 0.9, "condition": {"optimizer": "sgd"}},
                "optimizer": {"values": ["sgd", "adam"]},
            },
        }
    )
    space = SearchSpace(cfg.parameters, grid=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        t = study.ask()
        v = space.sample(t)
        study.tell(t, 0.0)
        assert ("momentum" in v) == (v["optimizer"] == "sgd")
        seen.add(v["optimizer"])
    assert seen == {"sgd", "adam"}


def test_grid_configs_collapse_inactive_conditionals_and_nest() -> None:
    cfg = SweepConfig.from_dict(
        {
            "program": "p",
            "method": "grid",
            "metric": {"name": "m"},
            "parameters": {
                "optimizer": {"values": ["sgd", "adam"]},
                "momentum": {"values": [0.5, 0.9], "condition": {"optimizer": "sgd"}},
                "net": {"parameters": {"width": {"min": 1, "max": 2}}},
            },
        }
    )
    configs = SearchSpace(cfg.parameters, grid=True).grid_configs()
    assert len(configs) == 6  # (sgd x 2 momenta + adam) x 2 widths
    assert nest({"net.width": 1, "optimizer": "sgd"}) == {"net": {"width": 1}, "optimizer": "sgd"}
