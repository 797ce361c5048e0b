"""The sweep report: ``report.html`` (plots embedded as PNG, one self-contained page) and ``summary.json``.

Contents: the best trial(s) and their configurations (the Pareto front for several metrics), the trial table,
optimization history, parallel coordinates, parameter importance (Optuna's fANOVA; PED-ANOVA on request), the
metric-vs-step curves of every trial (Optuna's intermediate values; for several metrics the curves the program
reported) and, for several metrics, the Pareto front. Plots are Optuna's ``visualization.matplotlib``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roomscan.sweep.sweeps import Sweep, open_sweep

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["sweep_summary", "trial_rows", "write_report"]


def trial_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial: number, state (``duplicate``/``capped`` for skipped ones), values, config, error."""
    from roomscan.sweep.claim import K_CLAIM

    rows = []
    for t in sweep.study.get_trials(deepcopy=False):
        claim = t.system_attrs.get(K_CLAIM) or {}
        decision = str(claim.get("decision", ""))
        state = t.state.name.lower()
        if decision.startswith("duplicate"):
            state = f"duplicate of #{decision.split(':')[1]}"
        elif decision == "capped":
            state = "skipped (run_cap)"
        elif "failed_trial" in t.system_attrs and t.state.name == "WAITING":
            state = f"waiting (retry of #{t.system_attrs['failed_trial']})"
        rows.append(
            {
                "number": t.number,
                "state": state,
                "values": t.values,
                "config": t.user_attrs.get("config"),
                "last_step": t.last_step,
                "error": t.user_attrs.get("error"),
                "seconds": t.user_attrs.get("seconds"),
                "skipped": bool(decision) and decision != "run",
            }
        )
    return rows


def _real(t: FrozenTrial) -> bool:
    return t.state.name == "COMPLETE" and t.values is not None


def sweep_summary(sweep: Sweep, *, importance: str = "auto") -> dict[str, Any]:
    """The JSON summary: counts, best trial(s), importance per metric, every trial."""
    study = sweep.study
    rows = trial_rows(sweep)
    counts: dict[str, int] = {}
    for r in rows:
        key = r["state"].split(" ")[0]
        counts[key] = counts.get(key, 0) + 1
    metrics = [{"name": m.name, "goal": m.goal, "target": m.target} for m in sweep.config.metrics]
    best = (
        [_trial_json(t) for t in study.best_trials]
        if any(_real(t) for t in study.get_trials(deepcopy=False))
        else []
    )
    return {
        "id": sweep.id,
        "name": sweep.config.name,
        "method": sweep.config.method,
        "state": sweep.state,
        "version": sweep.version,
        "metrics": metrics,
        "counts": counts,
        "best": best,
        "pareto_front": sweep.config.multi_objective,
        "importance_method": importance_method(importance),
        "importance": _importances(sweep, importance),
        "trials": rows,
        "config": dict(sweep.config.raw),
    }


def _trial_json(t: FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": t.values, "config": t.user_attrs.get("config"), "params": t.params}


def _importances(sweep: Sweep, method: str) -> dict[str, dict[str, float]]:
    import optuna

    complete = [t for t in sweep.study.get_trials(deepcopy=False) if _real(t)]
    if len(complete) < 2:
        return {}
    out = {}
    for i, m in enumerate(sweep.config.metrics):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[m.name] = optuna.importance.get_param_importances(
                    sweep.study, evaluator=_evaluator(method), target=lambda t, i=i: t.values[i]
                )
        except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
            continue  # e.g. a single parameter value tried, or a dynamic space with no common parameter
    return out


def importance_method(requested: str = "auto") -> str:
    """``fanova`` when asked for or when scikit-learn (which Optuna's fANOVA needs) is installed, else
    ``ped-anova`` (no extra dependency)."""
    if requested != "auto":
        return requested
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "ped-anova"
    return "fanova"


def _evaluator(method: str) -> Any:
    import optuna

    if importance_method(method) == "ped-anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def write_report(
    sweep_id: str, out_dir: str | Path, *, storage: str | None = None, importance: str = "auto"
) -> Path:
    """Write ``report.html`` and ``summary.json`` for a sweep into ``out_dir``; returns the HTML path.

    Args:
        sweep_id: the sweep.
        out_dir: created if missing; files are replaced.
        storage: the sweep's storage URL.
        importance: ``fanova``, ``ped-anova`` or ``auto`` (fANOVA when scikit-learn is installed).
    """
    sweep = open_sweep(sweep_id, storage=storage)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = sweep_summary(sweep, importance=importance)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    figures = _figures(sweep, importance)
    page = _html(summary, figures)
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.html"


def _figures(sweep: Sweep, importance: str) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for each plot that the trials so far can support."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as vis

    study = sweep.study
    complete = [t for t in study.get_trials(deepcopy=False) if _real(t)]
    if not complete:
        return []
    names = [m.name for m in sweep.config.metrics]
    plots: list[tuple[str, Callable[[], Any]]] = []
    if len(names) == 1:
        plots += [
            ("Optimization history", lambda: vis.plot_optimization_history(study, target_name=names[0])),
            ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study, target_name=names[0])),
            (
                "Parameter importance",
                lambda: vis.plot_param_importances(
                    study, evaluator=_evaluator(importance), target_name=names[0]
                ),
            ),
            (f"{names[0]} by step", lambda: vis.plot_intermediate_values(study)),
        ]
    else:
        if len(names) in (2, 3):
            plots.append(("Pareto front", lambda: vis.plot_pareto_front(study, target_names=names)))
        for i, name in enumerate(names):
            plots += [
                (
                    f"Parallel coordinates: {name}",
                    lambda i=i, name=name: vis.plot_parallel_coordinate(
                        study, target=lambda t: t.values[i], target_name=name
                    ),
                ),
                (
                    f"Parameter importance: {name}",
                    lambda i=i, name=name: vis.plot_param_importances(
                        study,
                        evaluator=_evaluator(importance),
                        target=lambda t: t.values[i],
                        target_name=name,
                    ),
                ),
            ]
        plots.append(("Metrics by step", lambda: _curves(sweep)))
    out = []
    for title, make in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            out.append((title, _png(ax)))
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError, KeyError, ImportError):
            continue  # not enough trials or parameters for this plot yet
    return out


def _curves(sweep: Sweep) -> Any:
    import matplotlib.pyplot as plt

    names = [m.name for m in sweep.config.metrics]
    _fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for t in sweep.study.get_trials(deepcopy=False):
        for ax, name in zip(axes[0], names, strict=True):
            points = (t.user_attrs.get("curves") or {}).get(name) or []
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], alpha=0.6, lw=1)
    for ax, name in zip(axes[0], names, strict=True):
        ax.set(title=name, xlabel="step")
    return axes[0][0]


def _png(ax: Any) -> str:
    import matplotlib.pyplot as plt

    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(max(fig.get_size_inches()[0], 7), max(fig.get_size_inches()[1], 4))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _html(summary: dict[str, Any], figures: list[tuple[str, str]]) -> str:
    e = html.escape
    metric_names = [m["name"] for m in summary["metrics"]]
    best_title = "Pareto front (best trade-offs)" if summary["pareto_front"] else "Best trial"
    best_rows = "".join(
        f"<tr><td>#{b['number']}</td>{''.join(f'<td>{v:.6g}</td>' for v in b['values'])}"
        f"<td><code>{e(json.dumps(b['config']))}</code></td></tr>"
        for b in summary["best"]
    )
    trial_rows_html = "".join(
        f"<tr><td>{r['number']}</td><td>{e(r['state'])}</td>"
        f"{''.join(f'<td>{v:.6g}</td>' for v in (r['values'] or [None] * 0))}"
        f"{'<td></td>' * (len(metric_names) - len(r['values'] or []))}"
        f"<td><code>{e(json.dumps(r['config']))}</code></td>"
        f"<td>{e((r['error'] or '').strip().splitlines()[-1][:160] if r['error'] else '')}</td></tr>"
        for r in summary["trials"]
    )
    imp = (
        "".join(
            f"<h3>{e(m)}</h3><ul>{''.join(f'<li>{e(k)}: {v:.3f}</li>' for k, v in d.items())}</ul>"
            for m, d in summary["importance"].items()
        )
        or "<p>Not enough completed trials yet.</p>"
    )
    figs = "".join(
        f"<figure><figcaption>{e(t)}</figcaption><img alt='{e(t)}' src='data:image/png;base64,{b}'></figure>"
        for t, b in figures
    )
    heads = "".join(f"<th>{e(n)}</th>" for n in metric_names)
    goals = ", ".join(f"{m['name']} ({m['goal']})" for m in summary["metrics"])
    counts = ", ".join(f"{k}: {v}" for k, v in summary["counts"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sweep {e(summary["id"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}}figure{{display:inline-block;margin:1em}}
img{{max-width:560px}}code{{font-size:12px}}</style></head><body>
<h1>Sweep {e(summary["id"])} {e(summary["name"] or "")}</h1>
<p>method {e(summary["method"])}; {e(goals)}; state {e(summary["state"])} (config version {summary["version"]});
trials: {e(counts)}</p>
<h2>{best_title}</h2><table><tr><th>trial</th>{heads}<th>config</th></tr>{best_rows}</table>
<h2>Plots</h2>{figs or "<p>No completed trials yet.</p>"}
<h2>Parameter importance ({e(summary["importance_method"])})</h2>{imp}
<h2>Trials</h2><table><tr><th>#</th><th>state</th>{heads}<th>config</th><th>error</th></tr>{trial_rows_html}</table>
</body></html>"""
