"""Agents as separate processes (the CLI): two at once never run one configuration twice; a SIGKILLed agent's
trial is failed after its heartbeat goes stale and a new agent completes the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from roomscan.sweep import create_sweep, load_sweep_config, open_sweep
from roomscan.sweep.claim import K_CLAIM, is_run

AGENT = [sys.executable, "-c", "from roomscan.cli import main; main()", "sweep", "agent"]


def _agent(sid: str, storage: str, tmp: Path, tag: str) -> subprocess.Popen:
    env = {**os.environ, "ROOMSCAN_SWEEP_HEARTBEAT": "1"}
    log = open(tmp / f"agent-{tag}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [*AGENT, sid, "--storage", storage], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def test_two_agents_never_run_the_same_configuration(sweep_yaml, storage: str, tmp_path: Path) -> None:
    # 12 configurations, random sampling from two processes at once: collisions are likely, duplicates must not run
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"values": [0, 1, 2, 3]}, "y": {"values": [-1, 0, 1]}, "steps": {"value": 1}}, run_cap=9
        )
    )
    sid = create_sweep(cfg, storage=storage)
    agents = [_agent(sid, storage, tmp_path, str(i)) for i in range(2)]
    for a in agents:
        assert a.wait(timeout=120) == 0, (tmp_path / "agent-0.log").read_text()[-2000:]
    trials = open_sweep(sid, storage=storage).study.get_trials()
    ran = [t for t in trials if is_run(t)]
    configs = [tuple(sorted(t.user_attrs["config"].items())) for t in ran]
    assert len(ran) == 9 and len(set(configs)) == 9
    assert {t.system_attrs[K_CLAIM]["agent"] for t in ran}.__len__() >= 1


def test_grid_shared_by_two_agents_is_covered_exactly_once(sweep_yaml, storage: str, tmp_path: Path) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"values": [0, 1, 2]}, "y": {"values": [0, 1]}, "steps": {"value": 1}}, method="grid"
        )
    )
    sid = create_sweep(cfg, storage=storage)
    agents = [_agent(sid, storage, tmp_path, str(i)) for i in range(2)]
    for a in agents:
        assert a.wait(timeout=120) == 0
    ran = [t for t in open_sweep(sid, storage=storage).study.get_trials() if is_run(t)]
    assert sorted((t.user_attrs["config"]["x"], t.user_attrs["config"]["y"]) for t in ran) == [
        (x, y) for x in (0, 1, 2) for y in (0, 1)
    ]


def test_killed_agent_is_recovered_by_a_new_one(sweep_yaml, storage: str, tmp_path: Path) -> None:
    cfg = load_sweep_config(
        sweep_yaml(
            {"x": {"values": [1, 2, 3]}, "steps": {"value": 40}, "sleep": {"value": 0.1}}, method="grid"
        )
    )
    sid = create_sweep(cfg, storage=storage)
    first = _agent(sid, storage, tmp_path, "killed")
    study = open_sweep(sid, storage=storage).study
    deadline = time.monotonic() + 60
    while not any(t.intermediate_values for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))):
        assert time.monotonic() < deadline and first.poll() is None, (
            tmp_path / "agent-killed.log"
        ).read_text()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = _agent(sid, storage, tmp_path, "new")
    assert second.wait(timeout=120) == 0, (tmp_path / "agent-new.log").read_text()[-2000:]
    trials = open_sweep(sid, storage=storage).study.get_trials()
    complete = sorted(
        t.user_attrs["config"]["x"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    )
    assert complete == [1, 2, 3]
    killed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL and is_run(t)]
    assert len(killed) == 1 and "error" not in killed[0].user_attrs  # failed by the heartbeat, then re-run
