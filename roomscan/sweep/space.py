"""W&B distributions -> Optuna distributions, and back to the values a trial's program receives.

Optuna samples every parameter; we only translate. Where Optuna has the distribution, the Optuna parameter *is*
the value (``log_uniform`` over ``[min, max]`` in natural logs is Optuna's log-scale float over ``[e^min, e^max]``).
Where it has not (normal family, beta, weighted categorical, ``q_log_*``), Optuna samples a latent uniform
quantile / log-value and :meth:`Dimension.to_value` maps it; the trial's ``config`` user attr holds the values.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from roomscan.sweep.params import ParamSpec, q_bounds

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = ["Dimension", "SearchSpace", "config_hash", "flatten", "nest"]

_EPS = 1e-6  # latent quantiles stay inside (0, 1): the normal's inverse CDF is infinite at the ends


def _primitive(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


@dataclass(frozen=True)
class Dimension:
    """One parameter as Optuna sees it: ``optuna_name`` + ``distribution``, and the map to the program's value."""

    spec: ParamSpec
    optuna_name: str
    distribution: BaseDistribution | None  # None: a constant, never sampled
    latent: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        d = self.distribution
        if d is None:
            return self.spec.value
        if isinstance(d, CategoricalDistribution):
            x: Any = trial.suggest_categorical(self.optuna_name, d.choices)  # type: ignore[arg-type]
        elif isinstance(d, IntDistribution):
            x = trial.suggest_int(self.optuna_name, d.low, d.high, step=d.step, log=d.log)
        else:
            assert isinstance(d, FloatDistribution)
            x = trial.suggest_float(self.optuna_name, d.low, d.high, step=d.step, log=d.log)
        return self.to_value(x)

    def to_value(self, x: Any) -> Any:
        """The program's value for Optuna's sample ``x``."""
        s = self.spec
        if s.distribution == "categorical":
            if s.probabilities is not None and self.latent:
                cum = 0.0
                for value, p in zip(s.values, s.probabilities, strict=True):
                    cum += p
                    if x < cum:
                        return value
                return s.values[-1]
            return x if all(_primitive(v) for v in s.values) else json.loads(x)
        if not self.latent:
            return x
        dist = s.distribution
        if dist.startswith("q_log_uniform"):
            return _q(x, s.q)
        if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
            y = NormalDist(s.mu, s.sigma).inv_cdf(x)
            y = math.exp(y) if "log" in dist else y
            return _q(y, s.q) if dist.startswith("q_") else y
        if dist in ("beta", "q_beta"):
            from scipy.stats import beta

            y = float(beta.ppf(x, s.a, s.b))
            return _q(y, s.q) if dist == "q_beta" else y
        raise AssertionError(dist)

    def to_optuna(self, value: Any) -> Any:
        """Optuna's sample for a program value (for ``enqueue``): the inverse of :meth:`to_value`."""
        s = self.spec
        if s.distribution == "categorical":
            if value not in s.values:
                raise ValueError(f"{s.name}: {value!r} is not one of {list(s.values)}")
            if s.probabilities is not None and self.latent:
                i = s.values.index(value)
                return sum(s.probabilities[:i]) + s.probabilities[i] / 2
            return value if all(_primitive(v) for v in s.values) else json.dumps(value, sort_keys=True)
        if not self.latent:
            return value
        dist = s.distribution
        if dist.startswith("q_log_uniform"):
            return float(value)
        if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
            y = math.log(value) if "log" in dist else float(value)
            return min(max(NormalDist(s.mu, s.sigma).cdf(y), _EPS), 1 - _EPS)
        from scipy.stats import beta

        return min(max(float(beta.cdf(value, s.a, s.b)), _EPS), 1 - _EPS)


def _q(x: float, q: float) -> float:
    return round(x / q) * q


def dimension(spec: ParamSpec, *, grid: bool, optuna_name: str | None = None) -> Dimension:
    """Compile one parameter; ``grid`` keeps categorical weights out (a grid tries every value once)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    name = optuna_name or spec.name
    d, lo, hi = spec.distribution, spec.min, spec.max
    if d == "constant":
        return Dimension(spec, name, None)
    if d == "categorical":
        if spec.probabilities is not None and not grid:
            return Dimension(spec, name, FloatDistribution(0.0, 1.0 - _EPS), latent=True)
        # Optuna's choices are primitives; lists/mappings (e.g. layer sizes) travel as JSON text
        plain = all(_primitive(v) for v in spec.values)
        choices = list(spec.values) if plain else [json.dumps(v, sort_keys=True) for v in spec.values]
        return Dimension(spec, name, CategoricalDistribution(choices))
    if d == "int_uniform":
        return Dimension(spec, name, IntDistribution(int(lo), int(hi)))  # type: ignore[arg-type]
    if d == "q_uniform":
        qlo, qhi = q_bounds(lo, hi, spec.q)  # type: ignore[arg-type]
        return Dimension(spec, name, FloatDistribution(qlo, qhi, step=spec.q))
    if d == "uniform":
        return Dimension(spec, name, FloatDistribution(float(lo), float(hi)))  # type: ignore[arg-type]
    if d in ("log_uniform", "q_log_uniform"):
        dist = FloatDistribution(math.exp(lo), math.exp(hi), log=True)  # type: ignore[arg-type]
        return Dimension(spec, name, dist, latent=d.startswith("q_"))
    if d in ("log_uniform_values", "inv_log_uniform_values", "q_log_uniform_values"):
        return Dimension(
            spec,
            name,
            FloatDistribution(float(lo), float(hi), log=True),  # type: ignore[arg-type]
            latent=d.startswith("q_"),
        )
    if d == "inv_log_uniform":  # X = exp(-Y), Y ~ U(min, max)
        return Dimension(spec, name, FloatDistribution(math.exp(-hi), math.exp(-lo), log=True))  # type: ignore[operator]
    # normal family and beta: Optuna samples the quantile
    return Dimension(spec, name, FloatDistribution(_EPS, 1.0 - _EPS), latent=True)


class SearchSpace:
    """A sweep's parameters compiled for Optuna, in condition order.

    Args:
        specs: the parameters (from :class:`~roomscan.sweep.config.SweepConfig`).
        grid: whether the sweep is a grid search.
        renamed: ``{param: optuna_name}`` for parameters whose Optuna name changed in ``sweep edit``.
    """

    def __init__(
        self, specs: tuple[ParamSpec, ...], *, grid: bool, renamed: dict[str, str] | None = None
    ) -> None:
        renamed = renamed or {}
        self.dimensions = [dimension(s, grid=grid, optuna_name=renamed.get(s.name)) for s in specs]

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter; returns flat ``{dotted name: value}`` (inactive conditionals absent)."""
        values: dict[str, Any] = {}
        for dim in self.dimensions:
            if _active(dim.spec, values):
                values[dim.spec.name] = dim.suggest(trial)
        return values

    def grid(self) -> dict[str, list[Any]]:
        """GridSampler's search space: every sampled parameter's values, in Optuna's representation."""
        return {
            d.optuna_name: [d.to_optuna(v) for v in d.spec.grid_values()]
            for d in self.dimensions
            if d.distribution is not None
        }

    def grid_configs(self) -> list[dict[str, Any]]:
        """The distinct effective configurations a grid search runs (conditionals collapse duplicates)."""
        import itertools

        grid = {d.spec.name: d.spec.grid_values() for d in self.dimensions}
        seen: dict[str, dict[str, Any]] = {}
        for combo in itertools.product(*grid.values()):
            full = dict(zip(grid, combo, strict=True))
            values: dict[str, Any] = {}
            for dim in self.dimensions:
                if _active(dim.spec, values):
                    values[dim.spec.name] = full[dim.spec.name]
            seen.setdefault(config_hash(values), values)
        return list(seen.values())

    def fixed_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Optuna params for ``enqueue_trial`` from flat or nested program values.

        Raises:
            ValueError: an unknown parameter or a value outside the choices.
        """
        known = {d.spec.name: d for d in self.dimensions}
        flat = _flatten(values, set(known))
        unknown = sorted(set(flat) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} (known: {', '.join(known)})")
        return {
            known[k].optuna_name: known[k].to_optuna(v)
            for k, v in flat.items()
            if known[k].distribution is not None
        }

    def distributions(self) -> dict[str, BaseDistribution]:
        return {d.optuna_name: d.distribution for d in self.dimensions if d.distribution is not None}


def _active(spec: ParamSpec, values: dict[str, Any]) -> bool:
    return all(name in values and values[name] in allowed for name, allowed in spec.condition.items())


def _flatten(values: dict[str, Any], known: set[str], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and name not in known and any(n.startswith(name + ".") for n in known):
            out.update(_flatten(v, known, name + "."))
        else:
            out[name] = v
    return out


def flatten(values: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The inverse of :func:`nest` for a sweep's parameter ``names``: a dict that is one parameter's value stays whole.

    Example:
        >>> flatten({"optimizer": {"lr": 0.1}, "aug": {"flip": True}}, {"optimizer.lr", "aug"})
        {'optimizer.lr': 0.1, 'aug': {'flip': True}}
    """
    return _flatten(values, names)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optimizer.lr": 0.1}`` -> ``{"optimizer": {"lr": 0.1}}`` (what the program's config looks like)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def config_hash(values: dict[str, Any]) -> str:
    """A stable id of a configuration: two trials with equal values have equal hashes."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
