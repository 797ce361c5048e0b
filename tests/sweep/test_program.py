"""Program trials: W&B's command macros, JSON-line metrics, failures with the output's tail, pruning kills."""

from __future__ import annotations

import json
import sys

import optuna
import pytest

from roomscan.sweep import create_sweep, load_sweep_config, open_sweep, report, run_agent
from roomscan.sweep.claim import is_run
from roomscan.sweep.program import build_command

PARAMS = {"lr": 0.1, "amp": True, "cache": False, "net": {"w": 2}}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            None,
            [
                "/usr/bin/env",
                sys.executable,
                "train.py",
                "--lr=0.1",
                "--amp=True",
                "--cache=False",
                '--net={"w": 2}',
            ],
        ),
        (
            ["${env}", "python", "${program}", "-b", "cfg", "${args}"],
            [
                "/usr/bin/env",
                "python",
                "train.py",
                "-b",
                "cfg",
                "--lr=0.1",
                "--amp=True",
                "--cache=False",
                '--net={"w": 2}',
            ],
        ),
        (
            ["${interpreter}", "${program}", "${args_no_hyphens}"],
            [sys.executable, "train.py", "lr=0.1", "amp=True", "cache=False", 'net={"w": 2}'],
        ),
        (["${program}", "${args_no_boolean_flags}"], ["train.py", "--lr=0.1", "--amp", '--net={"w": 2}']),
        (["${program}", "${args_json}"], ["train.py", json.dumps(PARAMS)]),
        (["${program}", "--config", "${args_json_file}"], ["train.py", "--config", "/tmp/args.json"]),
        (["echo", "${envvar:ROOMSCAN_TEST_VAR}/x"], ["echo", "hello/x"]),
        # not W&B macros: passed through for the program (Hydra resolves these itself)
        (
            ["${program}", "run.dir=${now:%Y%m%d}", "${oc.env:X}"],
            ["train.py", "run.dir=${now:%Y%m%d}", "${oc.env:X}"],
        ),
    ],
)
def test_command_macros(monkeypatch: pytest.MonkeyPatch, command, expected) -> None:
    monkeypatch.setenv("ROOMSCAN_TEST_VAR", "hello")
    assert (
        build_command(tuple(command) if command else None, "train.py", PARAMS, "/tmp/args.json") == expected
    )


NESTED = {"trainer": {"lr": 0.001, "amp": True}, "aug": {"flip": 0.5}}


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("${args}", ["--trainer.lr=0.001", "--trainer.amp=True", '--aug={"flip": 0.5}']),
        ("${args_no_hyphens}", ["trainer.lr=0.001", "trainer.amp=True", 'aug={"flip": 0.5}']),
        ("${args_no_boolean_flags}", ["--trainer.lr=0.001", "--trainer.amp", '--aug={"flip": 0.5}']),
        ("${args_json}", [json.dumps(NESTED)]),
    ],
)
def test_per_parameter_macros_use_dotted_names(macro: str, expected: list[str]) -> None:
    # trainer.lr and trainer.amp are parameters (dotted or nested, the program's config nests them alike);
    # aug is one parameter whose value is a mapping, so it stays whole
    names = {"trainer.lr", "trainer.amp", "aug"}
    assert build_command((macro,), "train.py", NESTED, names=names) == expected


def test_report_writes_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    report(step=2, loss=0.5, acc=float("nan"))
    assert json.loads(capsys.readouterr().out) == {"step": 2, "loss": 0.5, "acc": None}


def test_program_sweep_records_failures_and_goes_on(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {
                "x": {"min": -5.0, "max": 5.0},
                "y": {"min": -5.0, "max": 5.0},
                "fail": {"values": [False, True], "probabilities": [0.8, 0.2]},
                "steps": {"value": 2},
            },
            method="tpe",
            run_cap=10,
            seed=1,
        )
    )
    sid = create_sweep(cfg, storage=storage, enqueue=[{"x": 2.5, "y": -1.5, "fail": True}])
    result = run_agent(sid, storage=storage)
    assert result.ran == 10 and result.failed >= 1
    study = open_sweep(sid, storage=storage).study
    failed = [t for t in study.get_trials() if is_run(t) and t.state == optuna.trial.TrialState.FAIL]
    assert all(
        "asked to fail" in t.user_attrs["error"] and "status 3" in t.user_attrs["error"] for t in failed
    )
    assert study.best_value < 50.0  # (x - 3)^2 + (y + 1)^2 + 0.5 over [-5, 5]^2 is at most 80.5
    assert study.best_trial.intermediate_values  # per-step values for curves and pruning


def test_pruned_programs_are_stopped_early(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"values": [3, 9, 10, 11]}, "steps": {"value": 30}, "sleep": {"value": 0.02}},
            method="grid",
            early_terminate={"type": "median", "n_startup_trials": 1, "min_iter": 1},
        )
    )
    sid = create_sweep(cfg, storage=storage, enqueue=[{"x": 3, "steps": 30, "sleep": 0.02}])
    result = run_agent(sid, storage=storage)
    assert result.pruned >= 1
    pruned = [
        t
        for t in open_sweep(sid, storage=storage).study.get_trials()
        if t.state == optuna.trial.TrialState.PRUNED
    ]
    assert all(t.last_step is not None and t.last_step < 29 for t in pruned)


def test_a_program_that_reports_nothing_fails_with_a_hint(sweep_yaml, storage: str) -> None:
    cfg = load_sweep_config(sweep_yaml({"x": {"value": 1}}, metric={"name": "val_acc", "goal": "maximize"}))
    sid = create_sweep(cfg, storage=storage)
    run_agent(sid, storage=storage, count=1)
    t = open_sweep(sid, storage=storage).study.trials[0]
    assert "never reported val_acc" in t.user_attrs["error"]
