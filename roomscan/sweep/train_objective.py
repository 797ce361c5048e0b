"""``roomscan train`` as a sweep objective, in-process: parameters map onto :class:`~roomscan.train.TrainConfig`.

The sweep YAML's ``train`` mapping holds the fixed fields (``data``, ``model``, ``epochs``...); each parameter
names a ``TrainConfig`` field (``lr``, ``batch_size``, ``weight_decay``...). Each trial trains into
``<out>/<sweep id>-trial-<n>`` (``out`` default ``runs/sweeps``). After every epoch the metric (default ``val_ap``,
any column of the run's ``metrics.jsonl``) is reported to Optuna, so ``early_terminate`` stops poor runs; the
trial's value is the metric at the best epoch (the epoch whose model ``fit`` keeps).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from roomscan.sweep.sweeps import Sweep

__all__ = ["train_objective"]


def train_objective(trial: optuna.Trial, params: dict[str, Any], sweep: Sweep) -> float | list[float]:
    """Train one configuration; returns the metric value(s) at the best epoch.

    Raises:
        optuna.TrialPruned: the pruner stopped the run after an epoch.
        roomscan.train.ConfigError: a parameter is not a valid ``TrainConfig`` value (recorded, sweep goes on).
    """
    import optuna

    from roomscan.train import TrainConfig, fit, runs

    cfg = sweep.config
    fixed = dict(cfg.train or {})
    out = fixed.pop("out", "runs/sweeps")
    name = f"{sweep.id}-trial-{trial.number}"
    config = TrainConfig.from_dict(
        {**fixed, **params, "out": str(out), "name": name}, where=f"trial {trial.number}"
    )
    run_dir = Path(config.out) / name
    trial.set_user_attr("run_dir", str(run_dir))
    metrics = cfg.metrics
    single = None if cfg.multi_objective else metrics[0].name

    def on_epoch(row: dict[str, Any]) -> None:
        # Report each epoch's metric as it lands, so early_terminate can stop a poor run between epochs.
        if single is not None and isinstance(row.get(single), (int, float)):
            trial.report(float(row[single]), int(row["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")

    fit(config, log=lambda message: None, on_epoch=on_epoch)
    rows = runs.read_metrics(run_dir)
    if not rows:
        raise RuntimeError(f"{run_dir}: training wrote no metrics")
    missing = [m.name for m in metrics if m.name not in rows[0]]
    if missing:
        raise RuntimeError(f"metrics.jsonl has no {', '.join(missing)} (columns: {', '.join(rows[0])})")
    first = metrics[0]
    best = (max if first.goal == "maximize" else min)(rows, key=lambda r: r[first.name])
    if cfg.multi_objective:
        trial.set_user_attr(
            "curves", {m.name: [[r.get("epoch", i), r[m.name]] for i, r in enumerate(rows)] for m in metrics}
        )
    values = [float(best[m.name]) for m in metrics]
    return values[0] if len(values) == 1 else values
