"""Hyperparameter sweeps: W&B-style YAML, run on Optuna, offline, resumable, parallel, with a report.

* :func:`load_sweep_config` / :class:`SweepConfig` (``config.py``, ``params.py``): the YAML, validated.
* :func:`create_sweep`, :func:`open_sweep`, :func:`edit_sweep`, :func:`stop_sweep`, :func:`list_sweeps`
  (``sweeps.py``): sweeps as Optuna studies in a storage (``storage.py``: SQLite by default, any SQLAlchemy URL,
  ``journal:///path``).
* :func:`run_agent` (``agent.py``): run trials; several agents share a sweep without running a configuration twice
  (``claim.py``); the sampler and pruner are Optuna's (``engine.py``), the search space translated (``space.py``).
* :func:`write_report` (``report.py``): best trials, parallel coordinates, importance, curves, Pareto front.
* :func:`report`: what a trial's program calls to report metrics (a JSON line on stdout; ``metrics.py``).

Only :func:`report` is imported eagerly; everything else (optuna included) loads on first use.
"""

from __future__ import annotations

from typing import Any

from roomscan.sweep.metrics import report

__all__ = [
    "AgentResult",
    "Sweep",
    "SweepConfig",
    "SweepConfigError",
    "SweepError",
    "create_sweep",
    "edit_sweep",
    "list_sweeps",
    "load_sweep_config",
    "open_sweep",
    "report",
    "run_agent",
    "stop_sweep",
    "write_report",
]

_LAZY = {
    "SweepConfig": "config",
    "load_sweep_config": "config",
    "SweepConfigError": "params",
    "SweepError": "storage",
    "Sweep": "sweeps",
    "create_sweep": "sweeps",
    "edit_sweep": "sweeps",
    "list_sweeps": "sweeps",
    "open_sweep": "sweeps",
    "stop_sweep": "sweeps",
    "AgentResult": "agent",
    "run_agent": "agent",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"roomscan.sweep.{_LAZY[name]}"), name)
    raise AttributeError(name)
