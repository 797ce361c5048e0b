"""Sweep config -> Optuna sampler and pruner. Optuna searches; this file only chooses and configures.

| method            | sampler                                         |
|-------------------|-------------------------------------------------|
| grid              | ``GridSampler`` over exactly the grid's values   |
| random            | ``RandomSampler``                               |
| bayes, tpe        | ``TPESampler`` (multivariate, grouped for conditionals) |
| cmaes             | ``CmaEsSampler`` (needs ``cmaes``)              |
| gp                | ``GPSampler`` (needs torch, scipy)              |
| nsga2             | ``NSGAIISampler``                               |

``early_terminate``: hyperband -> ``HyperbandPruner``, asha -> ``SuccessiveHalvingPruner``, median ->
``MedianPruner``; none -> ``NopPruner``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from roomscan.sweep.config import SweepConfig
from roomscan.sweep.space import SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = ["make_pruner", "make_sampler"]


def make_sampler(
    config: SweepConfig, space: SearchSpace, *, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``config.method``; ``seed`` (default ``config.seed``) makes sampling repeatable."""
    import optuna

    seed = config.seed if seed is None else seed
    method = config.method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method == "grid":
            # Every agent must shuffle the grid the same way: GridSampler hands trial number n grid point n.
            return optuna.samplers.GridSampler(space.grid(), seed=config.seed or 0)
        if method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if method in ("bayes", "tpe"):
            conditional = any(d.spec.condition for d in space.dimensions)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=conditional,
                constant_liar=True,
                n_startup_trials=_startup(config),
            )
        if method == "cmaes":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                from roomscan.sweep.params import SweepConfigError

                raise SweepConfigError(
                    "method: cmaes needs the cmaes package (pip install 'roomscan[sweep]')"
                ) from None
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=_startup(config), warn_independent_sampling=False
            )
        if method == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=_startup(config))
        if method == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
    raise AssertionError(method)


def _startup(config: SweepConfig) -> int:
    # Random trials before the model-based sampler takes over; a small run_cap must still see the model work.
    return max(2, min(10, (config.run_cap or 40) // 4))


def make_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """The Optuna pruner for ``config.early_terminate`` (``NopPruner`` when absent)."""
    import optuna

    et = config.early_terminate
    if et is None:
        return optuna.pruners.NopPruner()
    if et.type == "hyperband":
        min_iter = et.min_iter
        if min_iter is None:  # W&B: brackets at max_iter / eta^k for k = 1..s
            min_iter = max(1, int(et.max_iter / et.eta ** (et.s or 3)))  # type: ignore[operator]
        return optuna.pruners.HyperbandPruner(
            min_resource=min_iter, max_resource=et.max_iter or "auto", reduction_factor=int(et.eta)
        )
    if et.type == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=et.min_iter or "auto",
            reduction_factor=int(et.eta),
            min_early_stopping_rate=et.min_early_stopping_rate,
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=et.n_startup_trials, n_warmup_steps=et.min_iter or 0, interval_steps=et.interval
    )
