"""``roomscan sweep`` commands: create (with --enqueue), agent, status, edit, stop, list, report; errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from roomscan.cli import app

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sweep_lifecycle(sweep_yaml, storage: str, tmp_path: Path) -> None:
    cfg = sweep_yaml(
        {"x": {"min": -5.0, "max": 5.0}, "y": {"min": -5.0, "max": 5.0}, "steps": {"value": 2}},
        method="tpe",
        name="quad",
    )
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({"x": 3.0, "y": -1.0}))
    sid = (
        _run("sweep", "create", str(cfg), "--storage", storage, "--enqueue", str(best))
        .strip()
        .splitlines()[-1]
    )
    assert "3 ran (3 complete" in _run("sweep", "agent", sid, "--count", "3", "--storage", storage)
    status = _run("sweep", "status", sid, "--storage", storage)
    assert "x=3, y=-1" in status and "complete" in status  # the enqueued known-good config ran first
    edited = sweep_yaml(
        {"x": {"min": 2.0, "max": 4.0}, "y": {"values": [-1, 0]}, "steps": {"value": 2}},
        method="random",
        name="quad",
    )
    assert "y is sampled as y@v2" in _run("sweep", "edit", sid, str(edited), "--storage", storage)
    _run("sweep", "agent", sid, "--count", "2", "--storage", storage)
    _run("sweep", "stop", sid, "--storage", storage)
    assert "sweep is stopped" in _run("sweep", "agent", sid, "--storage", storage)
    listing = _run("sweep", "list", "--storage", storage)
    assert sid in listing and "stopped" in listing
    _run("sweep", "report", sid, "--storage", storage, "--out", str(tmp_path / "rep"))
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["best"][0]["config"] == {"x": 3.0, "y": -1.0, "steps": 2}
    assert summary["version"] == 2 and summary["counts"]["complete"] == 5
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("<img") >= 3 and "Parallel coordinates" in page


def test_multi_objective_report_has_a_pareto_front(sweep_yaml, storage: str, tmp_path: Path) -> None:
    cfg = sweep_yaml(
        {"x": {"min": -4.0, "max": 5.0}, "steps": {"value": 2}},
        method="nsga2",
        run_cap=6,
        metric=None,
        metrics=[{"name": "loss"}, {"name": "g"}],
    )
    sid = _run("sweep", "create", str(cfg), "--storage", storage).strip().splitlines()[-1]
    _run("sweep", "agent", sid, "--storage", storage)
    _run("sweep", "report", sid, "--storage", storage, "--out", str(tmp_path / "rep"))
    assert "Pareto front" in (tmp_path / "rep" / "report.html").read_text()
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["pareto_front"] and len(summary["best"]) >= 1


def test_errors_are_one_line_and_exit_2(tmp_path: Path, storage: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "program: p.py\nmethod: random\nmetric: {name: loss}\nparameters: {lr: {min: 1, max: 0}}\n"
    )
    cases = [
        (["sweep", "create", str(bad), "--storage", storage], "parameters.lr.min: must not exceed max"),
        (["sweep", "status", "nosuchid", "--storage", storage], "no sweep 'nosuchid'"),
        (["sweep", "list", "--storage", "nonsense"], "not a storage URL"),
    ]
    for args, needle in cases:
        proc = subprocess.run(
            [sys.executable, "-c", "from roomscan.cli import main; main()", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and needle in proc.stderr
