"""What an active-learning simulation produced, and how it is read back and summarised.

:func:`roomscan.active.simulate.simulate` runs the loop; this module holds its output and the reporting on it:

* :class:`RoundResult`: one finished round of one (strategy, seed), a line of ``OUT/results.jsonl``, written by
  :func:`append_result` and read back by :func:`read_results` (which also lets a stopped run continue).
* :class:`StrategySummary` and :func:`summarize`: per strategy, the metric per labels spent (mean and std over
  seeds), the labels each seed needed to reach the target, and the saving against ``random``.
* :func:`plot_curves` (``curves.png``, when matplotlib is installed) and :func:`labels_text` (the labels-to-target
  cell of a printed table).

Example:
    >>> rows = read_results("runs/active-sim")  # doctest: +SKIP
    >>> [labels_text(s) for s in summarize(rows, config)]  # doctest: +SKIP
    ['80 ± 10', '> 120 (2/3 seeds reached)']
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: simulate imports this module, never the other way at run time
    from roomscan.active.simulate import SimulationConfig

RESULTS_FILE = "results.jsonl"

Log = Callable[[str], None]

__all__ = [
    "RESULTS_FILE",
    "RoundResult",
    "StrategySummary",
    "append_result",
    "labels_text",
    "plot_curves",
    "read_results",
    "summarize",
]


# -- results file ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundResult:
    """One finished round of one (strategy, seed): a line of ``results.jsonl``.

    Attributes:
        labels: images labelled when the round trained (``len(labelled)``).
        map, map50: the round's model on the test split (COCO AP@[.5:.95], AP50).
        per_class: AP per class slug on the test split (``None``: the class has no test box).
        labelled: image ids the round trained on.
        selected: image ids the strategy picked after the round (labelled from the next round on); empty after
            the last round and when the pool is empty.
        pool_left: unlabelled pool images after the pick.
        short: the budget exceeded what the pool had left, so the whole rest was picked.
        labelled_boxes: labelled boxes per class slug the round trained on (how fast a strategy finds the rare).
        seconds: the round's wall time (training, evaluation, scoring).
    """

    strategy: str
    seed: int
    round: int
    labels: int
    map: float
    map50: float
    per_class: dict[str, float | None]
    labelled: tuple[int, ...]
    selected: tuple[int, ...]
    pool_left: int
    short: bool = False
    labelled_boxes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.strategy, self.seed, self.round)

    def metric(self, name: str) -> float:
        return self.map50 if name == "map50" else self.map

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["labelled"], out["selected"] = list(self.labelled), list(self.selected)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RoundResult:
        if not isinstance(raw, dict):
            raise TypeError(f"expected an object, got {type(raw).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in names}
        values["labelled"] = tuple(int(i) for i in raw["labelled"])
        values["selected"] = tuple(int(i) for i in raw["selected"])
        # The figures the summary computes with: a hand-edited "map": "0.5" must not crash it later.
        if not isinstance(raw["strategy"], str):
            raise TypeError(f"strategy is a {type(raw['strategy']).__name__}, not a string")
        for name in ("seed", "round", "labels"):
            if type(raw[name]) is not int:
                raise TypeError(f"{name} is {raw[name]!r}, not an integer")
        for name in ("map", "map50"):
            if type(raw[name]) not in (int, float):
                raise TypeError(f"{name} is {raw[name]!r}, not a number")
        return cls(**values)


def read_results(out: str | os.PathLike[str], *, log: Log | None = None) -> list[RoundResult]:
    """The finished rounds in ``OUT/results.jsonl`` (a line cut short by a crash is skipped, with a note)."""
    file = Path(out) / RESULTS_FILE
    if not file.is_file():
        return []
    rows = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(RoundResult.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if log is not None:
                log(f"{file}:{n}: unreadable result line skipped (a crash mid-write?): {exc}")
    return rows


def append_result(out: str | os.PathLike[str], row: RoundResult) -> None:
    """Add ``row`` as a line of ``OUT/results.jsonl``, synced to disk before returning (a crash loses no round)."""
    with open(Path(out) / RESULTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(row.to_dict()) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- summary and plot --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategySummary:
    """One strategy over the seeds.

    Attributes:
        labels: the labels-spent points of the curve (images labelled), ascending.
        mean, std: the metric at each point over the seeds that reached it (std: sample std, 0 for one seed).
        n_seeds: seeds behind each point.
        to_target: per seed (index = seed), the labels at which the metric first reached the target; ``None``
            where it never did within the rounds run.
        to_target_mean, to_target_std: over the seeds; ``None`` unless every seed reached the target.
        saving_vs_random: ``1 - to_target_mean / random's``; ``None`` without both means.
        final_mean, final_std: the metric at the last point.
        per_class_final: mean AP per class at the last point (``None``: no test box of that class).
    """

    strategy: str
    labels: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_seeds: tuple[int, ...]
    to_target: tuple[int | None, ...]
    to_target_mean: float | None
    to_target_std: float | None
    saving_vs_random: float | None
    final_mean: float
    final_std: float
    per_class_final: dict[str, float | None]

    @property
    def reached(self) -> int:
        return sum(n is not None for n in self.to_target)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["curve"] = [{"labels": n, "mean": m, "std": s, "seeds": k}
                        for n, m, s, k in zip(self.labels, self.mean, self.std, self.n_seeds, strict=True)]
        for key in ("labels", "mean", "std", "n_seeds"):
            out.pop(key)
        out["to_target"] = {"per_seed": list(self.to_target), "mean": self.to_target_mean,
                            "std": self.to_target_std, "reached": self.reached}
        out.pop("to_target_mean")
        out.pop("to_target_std")
        return out


def _labels_to_target(rows: Sequence[RoundResult], metric: str, target: float) -> int | None:
    for row in sorted(rows, key=lambda r: r.round):
        if row.metric(metric) >= target:
            return row.labels
    return None


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(rows: Sequence[RoundResult], config: SimulationConfig) -> tuple[StrategySummary, ...]:
    """Per strategy, the mean and spread over seeds of the metric per labels spent, and the labels to the target."""
    by_strategy: dict[str, list[RoundResult]] = defaultdict(list)
    for row in rows:
        by_strategy[row.strategy].append(row)
    partial: list[StrategySummary] = []
    for strategy in config.strategies:
        mine = by_strategy.get(strategy, [])
        points: dict[int, list[float]] = defaultdict(list)
        per_seed: dict[int, list[RoundResult]] = defaultdict(list)
        for row in mine:
            points[row.labels].append(row.metric(config.metric))
            per_seed[row.seed].append(row)
        labels = tuple(sorted(points))
        stats = [_mean_std(points[n]) for n in labels]
        to_target = tuple(_labels_to_target(per_seed.get(s, []), config.metric, config.target_map)
                          for s in range(config.seeds))
        reached = [float(n) for n in to_target if n is not None]
        mean_t, std_t = _mean_std(reached) if reached and len(reached) == len(to_target) else (None, None)
        finals = [max(rs, key=lambda r: r.round) for rs in per_seed.values()]
        final = _mean_std([r.metric(config.metric) for r in finals]) if finals else (float("nan"), 0.0)
        per_class: dict[str, float | None] = {}
        for slug in _slugs(finals):
            values = [r.per_class.get(slug) for r in finals]
            known = [v for v in values if v is not None]
            per_class[slug] = float(np.mean(known)) if known else None
        partial.append(StrategySummary(
            strategy=strategy, labels=labels, mean=tuple(m for m, _ in stats), std=tuple(s for _, s in stats),
            n_seeds=tuple(len(points[n]) for n in labels), to_target=to_target, to_target_mean=mean_t,
            to_target_std=std_t, saving_vs_random=None, final_mean=final[0], final_std=final[1],
            per_class_final=per_class,
        ))
    random_mean = next((s.to_target_mean for s in partial if s.strategy == "random"), None)
    return tuple(
        dataclasses.replace(s, saving_vs_random=1.0 - s.to_target_mean / random_mean)
        if random_mean and s.to_target_mean is not None else s
        for s in partial
    )


def _slugs(rows: Sequence[RoundResult]) -> list[str]:
    """The class slugs the rows report, in first-seen order."""
    return list(dict.fromkeys(slug for r in rows for slug in r.per_class))


def plot_curves(summaries: Sequence[StrategySummary], path: str | os.PathLike[str], *, target: float | None = None,
                metric: str = "map", log: Log | None = None) -> Path | None:
    """mAP against labels spent per strategy (mean line, +-1 std band over seeds); ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if log is not None:
            log("matplotlib is not installed: no curves.png (pip install matplotlib); summary.json has the curves")
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summaries:
        if not s.labels:
            continue
        x, m, sd = np.array(s.labels), np.array(s.mean), np.array(s.std)
        ax.plot(x, m, marker="o", label=s.strategy, linestyle="--" if s.strategy == "random" else "-")
        ax.fill_between(x, m - sd, m + sd, alpha=0.15)
    if target is not None:
        ax.axhline(target, color="grey", linewidth=0.8, linestyle=":", label=f"target {target:g}")
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test AP@[.5:.95]" if metric == "map" else "test AP50")
    ax.set_title("Active learning: test mAP per labels spent (mean, ±1 std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def labels_text(summary: StrategySummary) -> str:
    """``"80 ± 10"``, or ``"> 120 (2/3 seeds reached)"`` when some seeds never reached the target."""
    if summary.to_target_mean is not None:
        return f"{summary.to_target_mean:.0f} ± {summary.to_target_std or 0:.0f}"
    most = max(summary.labels, default=0)
    return f"> {most} ({summary.reached}/{len(summary.to_target)} seeds reached)"
