"""``SweepConfig``: a W&B sweep YAML (unchanged W&B files load), plus our extensions, validated once.

Top-level keys: ``program`` / ``command`` (a program run per trial) or ``train`` (``roomscan train`` in-process,
its mapping holds the fixed :class:`~roomscan.train.TrainConfig` fields), ``method``, ``metric`` or ``metrics``
(several: multi-objective), ``parameters``, ``early_terminate``, ``run_cap``, ``name``, ``description``, ``seed``.
W&B's ``project``, ``entity`` and ``controller`` are accepted and ignored.

Example:
    >>> cfg = SweepConfig.from_dict({"program": "train.py", "method": "random",
    ...     "metric": {"name": "loss", "goal": "minimize"}, "parameters": {"lr": {"min": 0.001, "max": 0.1}}})
    >>> cfg.parameters[0].distribution
    'uniform'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roomscan.sweep.params import ParamSpec, SweepConfigError, parse_parameters

__all__ = ["METHODS", "EarlyTerminate", "Metric", "SweepConfig", "load_sweep_config"]

METHODS = ("grid", "random", "bayes", "tpe", "cmaes", "gp", "nsga2")
TOP_KEYS = (
    "program",
    "command",
    "train",
    "method",
    "metric",
    "metrics",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "seed",
    "project",
    "entity",
    "controller",
)
_TERMINATE_KEYS = {
    "hyperband": {"min_iter", "max_iter", "eta", "s", "strict"},
    "asha": {"min_iter", "max_iter", "eta", "min_early_stopping_rate"},
    "median": {"min_iter", "n_startup_trials", "interval"},
}


@dataclass(frozen=True)
class Metric:
    """What a trial is scored on: the last value the program reported under ``name``."""

    name: str
    goal: str = "minimize"
    target: float | None = None

    @property
    def direction(self) -> str:
        return self.goal


@dataclass(frozen=True)
class EarlyTerminate:
    """W&B's ``early_terminate``: ``hyperband`` (min_iter/max_iter, eta, s), ``asha`` or ``median``."""

    type: str
    min_iter: int | None = None
    max_iter: int | None = None
    eta: float = 3.0
    s: int | None = None
    n_startup_trials: int = 5
    interval: int = 1
    min_early_stopping_rate: int = 0


@dataclass(frozen=True)
class SweepConfig:
    """One sweep, as loaded from YAML. ``raw`` keeps the mapping it came from (stored with the study)."""

    method: str
    metrics: tuple[Metric, ...]
    parameters: tuple[ParamSpec, ...]
    program: str | None = None
    command: tuple[str, ...] | None = None
    train: Mapping[str, Any] | None = None
    early_terminate: EarlyTerminate | None = None
    run_cap: int | None = None
    name: str | None = None
    description: str | None = None
    seed: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def directions(self) -> list[str]:
        return [m.goal for m in self.metrics]

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = "sweep config") -> SweepConfig:
        """Validate ``raw`` (a W&B-style mapping).

        Raises:
            SweepConfigError: ``<where>: <key path>: <problem and what is allowed>``.
        """
        try:
            return _build(raw)
        except SweepConfigError as exc:
            raise SweepConfigError(f"{where}: {exc}") from None


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep YAML file.

    Raises:
        SweepConfigError: a missing or unreadable file, or an invalid key, named with its path.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepConfigError(f"{file}: sweep config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SweepConfigError(f"{file}: not a readable YAML file ({exc})") from None
    return SweepConfig.from_dict(raw, where=str(file))


def _build(raw: Any) -> SweepConfig:
    if not isinstance(raw, Mapping):
        raise SweepConfigError(f"expected a mapping of sweep keys at the top level, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise SweepConfigError(
            f"unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(TOP_KEYS)})"
        )
    method = raw.get("method")
    if method not in METHODS:
        raise SweepConfigError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    program, command, train = raw.get("program"), raw.get("command"), raw.get("train")
    if train is not None and (program is not None or command is not None):
        raise SweepConfigError(
            "train: give either train (roomscan train in-process) or program/command, not both"
        )
    if train is None and program is None and command is None:
        raise SweepConfigError("program: required (or command, or train for roomscan train in-process)")
    if program is not None and not (isinstance(program, str) and program):
        raise SweepConfigError(f"program: must be a file name or path, got {program!r}")
    if command is not None and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(c, (str, int, float)) for c in command)
    ):
        raise SweepConfigError(
            f"command: must be a non-empty list of strings such as [${{env}}, python, "
            f"${{program}}, ${{args}}], got {command!r}"
        )
    if train is not None and not isinstance(train, Mapping):
        raise SweepConfigError(
            "train: must be a mapping of fixed roomscan train settings (data: ..., epochs: ...)"
        )
    metrics = _metrics(raw, training=train is not None)
    params = parse_parameters(raw.get("parameters"))
    if train is not None:
        _check_train_fields(train, params)
    if method == "grid":
        for p in params:
            p.grid_values()
    if method == "cmaes" and len(metrics) > 1:
        raise SweepConfigError("method: cmaes optimizes one metric; use nsga2, tpe or random with metrics")
    early = _early(raw.get("early_terminate"))
    if early is not None and len(metrics) > 1:
        raise SweepConfigError(
            "early_terminate: Optuna's pruners work with one metric, not several (metrics)"
        )
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or isinstance(run_cap, bool) or run_cap < 1):
        raise SweepConfigError(f"run_cap: must be a positive integer, got {run_cap!r}")
    seed = raw.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise SweepConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    for key in ("name", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise SweepConfigError(f"{key}: must be a string, got {raw[key]!r}")
    return SweepConfig(
        method=method,
        metrics=metrics,
        parameters=tuple(params),
        program=program,
        command=tuple(str(c) for c in command) if command else None,
        train=dict(train) if train else None,
        early_terminate=early,
        run_cap=run_cap,
        name=raw.get("name"),
        description=raw.get("description"),
        seed=seed,
        raw=dict(raw),
    )


def _check_train_fields(train: Mapping[str, Any], params: list[ParamSpec]) -> None:
    from dataclasses import fields

    from roomscan.train.config import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    for key in train:
        if key not in known:
            raise SweepConfigError(
                f"train.{key}: not a roomscan train setting (known: {', '.join(sorted(known))})"
            )
    for p in params:
        if p.name not in known or p.name == "name":
            raise SweepConfigError(
                f"parameters.{p.name}: not a roomscan train setting to sweep (known: "
                f"{', '.join(sorted(known - {'name'}))})"
            )


def _metrics(raw: Mapping[str, Any], *, training: bool) -> tuple[Metric, ...]:
    if "metric" in raw and "metrics" in raw:
        raise SweepConfigError("metrics: give metric (one) or metrics (several), not both")
    if "metrics" in raw:
        items = raw["metrics"]
        if not isinstance(items, list) or not items:
            raise SweepConfigError("metrics: expected a list of {name, goal} mappings")
        out = tuple(_metric(m, f"metrics[{i}]") for i, m in enumerate(items))
        names = [m.name for m in out]
        if len(set(names)) != len(names):
            raise SweepConfigError(f"metrics: names must be distinct, got {names}")
        return out
    if "metric" in raw:
        return (_metric(raw["metric"], "metric"),)
    if training:
        return (Metric("val_ap", "maximize"),)
    raise SweepConfigError("metric: required, e.g. {name: val_loss, goal: minimize}")


def _metric(raw: Any, where: str) -> Metric:
    if not isinstance(raw, Mapping):
        raise SweepConfigError(f"{where}: expected a mapping such as {{name: val_loss, goal: minimize}}")
    unknown = set(raw) - {"name", "goal", "target"}
    if unknown:
        raise SweepConfigError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: name, goal, target)")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SweepConfigError(f"{where}.name: required, the metric the program reports")
    goal = raw.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        raise SweepConfigError(f"{where}.goal: must be minimize or maximize, got {goal!r}")
    target = raw.get("target")
    if target is not None and (not isinstance(target, (int, float)) or isinstance(target, bool)):
        raise SweepConfigError(f"{where}.target: must be a number, got {target!r}")
    return Metric(name, goal, None if target is None else float(target))


def _early(raw: Any) -> EarlyTerminate | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or raw.get("type") not in _TERMINATE_KEYS:
        raise SweepConfigError(f"early_terminate.type: must be one of {', '.join(_TERMINATE_KEYS)}")
    kind = raw["type"]
    unknown = set(raw) - _TERMINATE_KEYS[kind] - {"type"}
    if unknown:
        raise SweepConfigError(
            f"early_terminate: {kind} does not take {sorted(unknown)} "
            f"(it takes: {', '.join(sorted(_TERMINATE_KEYS[kind]))})"
        )
    args: dict[str, Any] = {"type": kind}
    for key in _TERMINATE_KEYS[kind] - {"strict"}:
        if key in raw:
            value = raw[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            if key != "eta":
                ok = ok and isinstance(value, int)
            elif ok:
                ok = value > 1
            if key == "min_early_stopping_rate":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if not ok:
                need = "a number > 1" if key == "eta" else "a positive integer"
                raise SweepConfigError(f"early_terminate.{key}: must be {need}, got {value!r}")
            args[key] = value
    if kind == "hyperband" and "min_iter" not in args and "max_iter" not in args:
        raise SweepConfigError("early_terminate: hyperband needs min_iter or max_iter")
    if args.get("min_iter") and args.get("max_iter") and args["min_iter"] > args["max_iter"]:
        raise SweepConfigError("early_terminate.min_iter: must not exceed max_iter")
    return EarlyTerminate(**args)
