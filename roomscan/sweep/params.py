"""Sweep parameters: W&B's parameter syntax (distributions, nesting) plus ``condition``, validated with paths.

Each parameter becomes one :class:`ParamSpec` with a dotted name (``optimizer.lr`` for nested ``parameters``);
a name may itself hold dots (``trainer.lr``, the Hydra override style). Numbers written ``1e-5`` (which YAML 1.1,
hence PyYAML, reads as a string) are accepted wherever a number is expected. The distribution is inferred as W&B does when ``distribution`` is absent: ``values`` -> categorical, ``value`` ->
constant, ``min``/``max`` both integers -> int_uniform, otherwise uniform.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roomscan.errors import RoomscanError

__all__ = ["DISTRIBUTIONS", "ParamSpec", "SweepConfigError", "parse_parameters"]


class SweepConfigError(RoomscanError, ValueError):
    """A sweep configuration is invalid; the message names the key path (``parameters.lr.min``) and what is allowed."""


# Distribution -> the keys it takes (besides ``distribution`` and ``condition``) and the ones it requires.
DISTRIBUTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "constant": (frozenset({"value"}), frozenset({"value"})),
    "categorical": (frozenset({"values", "probabilities"}), frozenset({"values"})),
    "int_uniform": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "uniform": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "q_uniform": (frozenset({"min", "max", "q"}), frozenset({"min", "max"})),
    "log_uniform": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "log_uniform_values": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "inv_log_uniform": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "inv_log_uniform_values": (frozenset({"min", "max"}), frozenset({"min", "max"})),
    "q_log_uniform": (frozenset({"min", "max", "q"}), frozenset({"min", "max"})),
    "q_log_uniform_values": (frozenset({"min", "max", "q"}), frozenset({"min", "max"})),
    "normal": (frozenset({"mu", "sigma"}), frozenset()),
    "q_normal": (frozenset({"mu", "sigma", "q"}), frozenset()),
    "log_normal": (frozenset({"mu", "sigma"}), frozenset()),
    "q_log_normal": (frozenset({"mu", "sigma", "q"}), frozenset()),
    "beta": (frozenset({"a", "b"}), frozenset()),
    "q_beta": (frozenset({"a", "b", "q"}), frozenset()),
}
_COMMON = frozenset({"distribution", "condition", "description"})
_ALL_KEYS = frozenset().union(*(keys for keys, _ in DISTRIBUTIONS.values())) | _COMMON | {"parameters"}


@dataclass(frozen=True)
class ParamSpec:
    """One sweep parameter.

    Attributes:
        name: dotted path (``optimizer.lr`` for ``parameters: {optimizer: {parameters: {lr: ...}}}``).
        distribution: one of :data:`DISTRIBUTIONS`.
        value: the constant's value.
        values: categorical choices (any YAML value).
        probabilities: categorical weights (random-style samplers), summing to 1.
        min, max, q, mu, sigma, a, b: distribution arguments, with W&B's meaning (``log_uniform`` bounds are
            natural logs; ``*_values`` bounds are the values themselves; ``q`` rounds to multiples of q).
        condition: ``{other_param: (allowed values, ...)}``; the parameter exists only when every one holds.
    """

    name: str
    distribution: str
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    q: float = 1.0
    mu: float = 0.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = 1.0
    condition: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def is_discrete(self) -> bool:
        """Whether the parameter has a finite set of values (what a grid can enumerate)."""
        return self.distribution in ("constant", "categorical", "int_uniform", "q_uniform")

    def grid_values(self) -> list[Any]:
        """Every value a grid search tries, in order."""
        if self.distribution == "constant":
            return [self.value]
        if self.distribution == "categorical":
            return list(self.values)
        if self.distribution == "int_uniform":
            return list(range(int(self.min), int(self.max) + 1))  # type: ignore[arg-type]
        if self.distribution == "q_uniform":
            lo, hi = q_bounds(self.min, self.max, self.q)  # type: ignore[arg-type]
            return [round(lo + k * self.q, 12) for k in range(round((hi - lo) / self.q) + 1)]
        raise SweepConfigError(
            f"parameters.{self.name}: grid search needs a finite set of values; {self.distribution} has infinitely "
            "many (use values: [...], int_uniform or q_uniform)"
        )


def q_bounds(lo: float, hi: float, q: float) -> tuple[float, float]:
    """The smallest and largest multiples of ``q`` that W&B's ``round(X / q) * q`` can give for X in [lo, hi]."""
    return round(lo / q) * q, round(hi / q) * q


def parse_parameters(raw: Any, path: str = "parameters") -> list[ParamSpec]:
    """Parse W&B's ``parameters`` mapping (nested ``parameters`` flattened to dotted names), conditions checked.

    Raises:
        SweepConfigError: naming the key path and what is allowed.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise SweepConfigError(f"{path}: expected a non-empty mapping of parameter names to their settings")
    specs = _parse_level(raw, path, prefix="")
    _check_names(specs, path)
    _check_conditions(specs)
    return _ordered(specs)


def _parse_level(raw: Mapping[str, Any], path: str, prefix: str) -> list[ParamSpec]:
    specs: list[ParamSpec] = []
    for key, body in raw.items():
        if not isinstance(key, str) or not key or "" in key.split("."):
            raise SweepConfigError(
                f"{path}: parameter names must be non-empty strings (dots only between parts, as in "
                f"trainer.lr), got {key!r}"
            )
        where = f"{path}.{key}"
        if not isinstance(body, Mapping):
            raise SweepConfigError(
                f"{where}: expected a mapping such as {{values: [...]}} or {{min: 0, max: 1}}, got {body!r}"
            )
        if "parameters" in body:
            extra = set(body) - {"parameters", "condition", "description"}
            if extra:
                raise SweepConfigError(
                    f"{where}: a nested parameter takes only 'parameters', got {sorted(extra)}"
                )
            nested = _parse_level(
                _mapping(body["parameters"], f"{where}.parameters"),
                f"{where}.parameters",
                prefix=f"{prefix}{key}.",
            )
            cond = _condition(body.get("condition"), f"{where}.condition")
            specs += [ParamSpec(**{**s.__dict__, "condition": {**cond, **s.condition}}) for s in nested]
            continue
        specs.append(_parse_one(f"{prefix}{key}", body, where))
    return specs


def _parse_one(name: str, body: Mapping[str, Any], where: str) -> ParamSpec:
    unknown = set(body) - _ALL_KEYS
    if unknown:
        raise SweepConfigError(
            f"{where}: unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(_ALL_KEYS))})"
        )
    body = _numbers(body, where)
    dist = body.get("distribution") or _infer(body, where)
    if dist not in DISTRIBUTIONS:
        raise SweepConfigError(
            f"{where}.distribution: unknown distribution {dist!r} (allowed: {', '.join(DISTRIBUTIONS)})"
        )
    allowed, required = DISTRIBUTIONS[dist]
    extra = set(body) - allowed - _COMMON
    if extra:
        raise SweepConfigError(
            f"{where}: {dist} does not take {sorted(extra)} (it takes: {', '.join(sorted(allowed))})"
        )
    missing = required - set(body)
    if missing:
        raise SweepConfigError(f"{where}: {dist} needs {', '.join(sorted(missing))}")
    args: dict[str, Any] = {
        "name": name,
        "distribution": dist,
        "condition": _condition(body.get("condition"), f"{where}.condition"),
    }
    if dist == "constant":
        args["value"] = body["value"]
    if dist == "categorical":
        values = body["values"]
        if not isinstance(values, list) or not values:
            raise SweepConfigError(f"{where}.values: expected a non-empty list, got {values!r}")
        args["values"] = tuple(values)
        if body.get("probabilities") is not None:
            probs = body["probabilities"]
            if (
                not isinstance(probs, list)
                or len(probs) != len(values)
                or not all(_is_number(p) and p >= 0 for p in probs)
                or abs(sum(probs) - 1.0) > 1e-6
            ):
                raise SweepConfigError(
                    f"{where}.probabilities: expected {len(values)} non-negative numbers summing "
                    f"to 1 (one per value), got {probs!r}"
                )
            args["probabilities"] = tuple(float(p) for p in probs)
    for key in _NUMERIC_KEYS:
        if key in body:
            if not _is_number(body[key]):
                raise SweepConfigError(f"{where}.{key}: must be a number, got {body[key]!r}")
            args[key] = body[key]
    _check_ranges(args, dist, where)
    return ParamSpec(**args)


_NUMERIC_KEYS = ("min", "max", "q", "mu", "sigma", "a", "b")
# What YAML 1.2 reads as a float but YAML 1.1 (PyYAML) leaves a string: no dot or no sign in the exponent.
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _numbers(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``body`` with YAML 1.1's string-typed numbers (``1e-5``) as numbers.

    Keys that must be numbers (``min``, ``max``, ``q``, ``mu``, ...) convert any numeric string and name the key
    when it is not one; ``value``/``values`` may hold real strings, so only scientific notation converts there.
    """
    out = dict(body)
    for key in _NUMERIC_KEYS:
        if isinstance(out.get(key), str):
            out[key] = _to_number(out[key], f"{where}.{key}")
    if isinstance(out.get("value"), str) and _SCIENTIFIC.fullmatch(out["value"]):
        out["value"] = float(out["value"])
    if isinstance(out.get("values"), list):
        out["values"] = [
            float(v) if isinstance(v, str) and _SCIENTIFIC.fullmatch(v) else v for v in out["values"]
        ]
    return out


def _to_number(text: str, where: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise SweepConfigError(f"{where}: must be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise SweepConfigError(f"{where}: must be a finite number, got {text!r}")
    return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", text.strip()) else number


def _infer(body: Mapping[str, Any], where: str) -> str:
    if "values" in body:
        return "categorical"
    if "value" in body:
        return "constant"
    if "min" in body and "max" in body:
        ints = all(isinstance(body[k], int) and not isinstance(body[k], bool) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    raise SweepConfigError(
        f"{where}: cannot tell the distribution; give values: [...], value: x, min and max, "
        f"or distribution: one of {', '.join(DISTRIBUTIONS)}"
    )


def _check_ranges(args: dict[str, Any], dist: str, where: str) -> None:
    lo, hi = args.get("min"), args.get("max")
    if lo is not None and hi is not None:
        if lo > hi:
            raise SweepConfigError(f"{where}.min: must not exceed max ({lo} > {hi})")
        if dist == "int_uniform" and not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)
        ):
            raise SweepConfigError(f"{where}: int_uniform needs integer min and max, got {lo!r}, {hi!r}")
        if dist.endswith("_values") and lo <= 0:
            raise SweepConfigError(
                f"{where}.min: {dist} takes the values themselves, so min must be > 0, got {lo}"
            )
        if dist in ("log_uniform", "q_log_uniform", "inv_log_uniform") and hi > 700:
            raise SweepConfigError(
                f"{where}.max: {dist} bounds are natural logs (exp(max) must be finite), got {hi}; "
                f"did you mean {dist.replace('_uniform', '_uniform_values')}?"
            )
    for key in ("q", "sigma", "a", "b"):
        if key in args and not args[key] > 0:
            raise SweepConfigError(f"{where}.{key}: must be > 0, got {args[key]}")


def _condition(raw: Any, where: str) -> dict[str, tuple[Any, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        raise SweepConfigError(
            f"{where}: expected a mapping such as {{optimizer: sgd}} or {{optimizer: [sgd, adam]}}"
        )
    return {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in raw.items()}


def _check_names(specs: list[ParamSpec], path: str) -> None:
    """A dotted name and a nested one must not clash: the program's config nests both the same way."""
    names = [s.name for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise SweepConfigError(f"{path}.{name}: given twice (a dotted name and a nested parameter?)")
        clash = next((n for n in names if n.startswith(name + ".")), None)
        if clash:
            raise SweepConfigError(
                f"{path}.{name}: both a parameter and the parent of {clash}; a value cannot be both"
            )


def _check_conditions(specs: list[ParamSpec]) -> None:
    by_name = {s.name: s for s in specs}
    for s in specs:
        for other, allowed in s.condition.items():
            where = f"parameters.{s.name}.condition.{other}"
            if other not in by_name:
                raise SweepConfigError(f"{where}: no parameter named {other!r} (known: {', '.join(by_name)})")
            ref = by_name[other]
            if ref.is_discrete:
                options = ref.grid_values()
                bad = [v for v in allowed if v not in options]
                if bad:
                    raise SweepConfigError(f"{where}: {bad} never occur; {other} takes {options}")


def _ordered(specs: list[ParamSpec]) -> list[ParamSpec]:
    """Parameters a condition refers to come first (a topological order); cycles are errors."""
    done: dict[str, ParamSpec] = {}
    pending = list(specs)
    while pending:
        ready = [s for s in pending if all(o in done for o in s.condition)]
        if not ready:
            raise SweepConfigError(
                f"parameters: conditions form a cycle among {', '.join(s.name for s in pending)}"
            )
        for s in ready:
            done[s.name] = s
        pending = [s for s in pending if s.name not in done]
    return list(done.values())


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not raw:
        raise SweepConfigError(f"{where}: expected a non-empty mapping of parameters")
    return raw


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
