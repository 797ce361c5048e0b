"""The agent in-process: optimum found, grid exact, failures recorded, edits, multi-objective, pruning."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest

from roomscan.sweep import create_sweep, edit_sweep, load_sweep_config, open_sweep, run_agent, stop_sweep
from roomscan.sweep.claim import is_run


def quad(trial, params, sweep):  # (x - 3)^2 + (y + 1)^2, reported per step for the pruner
    f = (params["x"] - 3) ** 2 + (params.get("y", -1) + 1) ** 2
    for step in range(3):
        trial.report(f + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return f


def _ran(sweep_id: str, storage: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in open_sweep(sweep_id, storage=storage).study.get_trials() if is_run(t)]


@pytest.mark.parametrize("method", ["tpe", "cmaes", "random"])
def test_finds_the_optimum_within_budget(sweep_yaml, storage: str, method: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"min": -5.0, "max": 5.0}, "y": {"min": -5.0, "max": 5.0}},
            method=method,
            run_cap=30,
            seed=0,
        )
    )
    sid = create_sweep(cfg, storage=storage)
    result = run_agent(sid, storage=storage, objective=quad)
    assert result.ran == 30 and result.reason == "run_cap 30 reached"
    best = open_sweep(sid, storage=storage).study.best_trial
    assert best.value < (1.0 if method != "random" else 3.0)  # optimum 0 at (3, -1); random: a 10x10 box


def test_grid_covers_exactly_its_grid(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml({"x": {"values": [1, 2, 3]}, "y": {"min": 0, "max": 1}, "c": {"value": 7}}, method="grid")
    )
    sid = create_sweep(cfg, storage=storage)
    result = run_agent(sid, storage=storage, objective=quad)
    assert result.reason == "grid covered"
    configs = sorted((t.user_attrs["config"]["x"], t.user_attrs["config"]["y"]) for t in _ran(sid, storage))
    assert configs == [(x, y) for x in (1, 2, 3) for y in (0, 1)]
    assert run_agent(sid, storage=storage, objective=quad).ran == 0  # a finished sweep stays finished


def test_grid_with_conditionals_runs_each_effective_config_once(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml({"x": {"values": [1, 2]}, "y": {"values": [0, 5], "condition": {"x": 1}}}, method="grid")
    )
    sid = create_sweep(cfg, storage=storage)
    run_agent(sid, storage=storage, objective=quad)
    assert sorted(str(t.user_attrs["config"]) for t in _ran(sid, storage)) == sorted(
        str(c) for c in ({"x": 1, "y": 0}, {"x": 1, "y": 5}, {"x": 2})
    )


def test_a_raising_trial_is_recorded_and_the_sweep_goes_on(sweep_yaml, storage: str) -> None:
    def flaky(trial, params, sweep):
        if trial.number == 1:
            raise ValueError("diverged: loss is NaN")
        return quad(trial, params, sweep)

    sid = create_sweep(
        load_sweep_config(sweep_yaml({"x": {"min": 0.0, "max": 5.0}}, run_cap=4)), storage=storage
    )
    result = run_agent(sid, storage=storage, objective=flaky)
    assert (result.ran, result.complete, result.failed) == (4, 3, 1)
    failed = [t for t in _ran(sid, storage) if t.state == optuna.trial.TrialState.FAIL]
    assert "diverged: loss is NaN" in failed[0].user_attrs["error"]


def test_edit_changes_the_space_of_a_running_sweep(sweep_yaml, storage: str) -> None:
    first = sweep_yaml({"x": {"min": -5.0, "max": 5.0}}, run_cap=6)
    second = sweep_yaml({"x": {"values": [7, 8]}, "y": {"values": [0, 1]}}, run_cap=6)
    sid = create_sweep(load_sweep_config(first), storage=storage)

    def editing(trial, params, sweep):
        if trial.number == 2:  # edited while this agent runs: it switches before its next trial
            changes = edit_sweep(sid, load_sweep_config(second), storage=storage)
            assert any("x@v2" in c for c in changes) and "+ y" in changes
        return quad(trial, params, sweep)

    result = run_agent(sid, storage=storage, objective=editing)
    trials = _ran(sid, storage)
    assert result.ran == 6 and len(trials) == 6
    assert all(-5 <= t.user_attrs["config"]["x"] <= 5 for t in trials[:3])
    assert all(t.user_attrs["config"]["x"] in (7, 8) and "y" in t.user_attrs["config"] for t in trials[3:])
    with pytest.raises(Exception, match="metrics and goals cannot change"):
        edit_sweep(
            sid,
            load_sweep_config(sweep_yaml({"x": {"values": [1]}}, metric={"name": "acc"})),
            storage=storage,
        )


def test_multi_objective_returns_a_pareto_front(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"min": -4.0, "max": 5.0}},
            method="nsga2",
            run_cap=12,
            metric=None,
            metrics=[{"name": "loss", "goal": "minimize"}, {"name": "g", "goal": "minimize"}],
        )
    )
    sid = create_sweep(cfg, storage=storage)
    run_agent(sid, storage=storage, objective=lambda t, p, s: ((p["x"] - 3) ** 2, (p["x"] + 2) ** 2))
    front = open_sweep(sid, storage=storage).study.best_trials
    assert len(front) >= 2
    pts = sorted(t.values for t in front)
    assert all(
        a[1] > b[1] for a, b in itertools.pairwise(pts)
    )  # a trade-off: better on one metric, worse on the other


def test_median_pruner_stops_poor_trials(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"min": -20.0, "max": 20.0}},
            run_cap=16,
            seed=3,
            early_terminate={"type": "median", "n_startup_trials": 3},
        )
    )
    sid = create_sweep(cfg, storage=storage)
    assert run_agent(sid, storage=storage, objective=quad).pruned > 0


def test_enqueued_config_runs_first_and_target_stops(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"min": -5.0, "max": 5.0}, "y": {"min": -5.0, "max": 5.0}},
            metric={"name": "loss", "goal": "minimize", "target": 0.01},
        )
    )
    sid = create_sweep(cfg, storage=storage, enqueue=[{"x": 3.0, "y": -1.0}])
    result = run_agent(sid, storage=storage, objective=quad)
    assert result.ran == 1 and result.reason == "metric target reached"
    assert open_sweep(sid, storage=storage).state == "finished"


def test_stop_and_duplicates_of_an_exhausted_space(sweep_yaml, storage: str) -> None:
    sid = create_sweep(load_sweep_config(sweep_yaml({"x": {"values": [1, 2]}})), storage=storage)
    result = run_agent(sid, storage=storage, objective=quad)
    assert result.ran == 2 and "exhausted" in result.reason
    stop_sweep(sid, storage=storage)
    assert run_agent(sid, storage=storage, objective=quad).reason == "sweep is stopped"


def test_journal_storage(tmp_path: Path, sweep_yaml) -> None:
    url = f"journal:///{tmp_path / 'j.log'}"
    sid = create_sweep(load_sweep_config(sweep_yaml({"x": {"min": 0.0, "max": 5.0}}, run_cap=3)), storage=url)
    assert run_agent(sid, storage=url, objective=quad).complete == 3
