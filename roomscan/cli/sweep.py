"""``roomscan sweep``: hyperparameter sweeps from W&B-style YAML, run on Optuna (see :mod:`roomscan.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from roomscan.cli._console import console, err_console

app = typer.Typer(
    help="Hyperparameter sweeps: W&B-style YAML, run on Optuna, offline, resumable, parallel.",
    no_args_is_help=True,
)

StorageOpt = typer.Option(
    None,
    "--storage",
    help="Storage URL: sqlite:///f.db, postgresql+psycopg://..., "
    "journal:///f.log (default: ~/.roomscan/sweeps/sweeps.db).",
    envvar="ROOMSCAN_SWEEP_STORAGE",
)


def _enqueued(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    import yaml

    from roomscan.sweep.params import SweepConfigError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SweepConfigError(f"{path}: not a readable YAML file ({exc})") from None
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(i, dict) for i in items):
        raise SweepConfigError(f"{path}: expected a mapping of parameter values, or a list of them")
    return items


@app.command("create")
def create_cmd(
    config: Path = typer.Argument(..., help="The sweep YAML (W&B's format)."),
    storage: str | None = StorageOpt,
    enqueue: Path | None = typer.Option(
        None, "--enqueue", help="YAML with a known-good configuration (or a list) to run first."
    ),
) -> None:
    """Create a sweep and print its id.

    Example: roomscan sweep create sweep.yaml && roomscan sweep agent <id>
    """
    from roomscan.sweep import create_sweep, load_sweep_config

    cfg = load_sweep_config(config)
    sweep_id = create_sweep(cfg, storage=storage, enqueue=_enqueued(enqueue), base_dir=config.parent)
    err_console.print(
        f"created sweep {sweep_id} ({cfg.method}, {len(cfg.parameters)} parameters); run agents with "
        f"roomscan sweep agent {sweep_id}",
        highlight=False,
    )
    console.print(sweep_id, highlight=False)


@app.command("agent")
def agent_cmd(
    sweep_id: str = typer.Argument(..., help="The sweep id."),
    count: int | None = typer.Option(
        None, "--count", min=1, help="Trials to run (default: until the sweep is done)."
    ),
    storage: str | None = StorageOpt,
    no_retry: bool = typer.Option(
        False, "--no-retry", help="Do not re-run the configuration of a crashed agent."
    ),
) -> None:
    """Run trials of a sweep; start as many agents as you like, here or on other machines sharing the storage.

    Example: roomscan sweep agent k3v9x2ab --count 10
    """
    from roomscan.sweep import run_agent

    result = run_agent(
        sweep_id,
        storage=storage,
        count=count,
        retry_stale=not no_retry,
        log=lambda line: err_console.print(line, highlight=False, markup=False),
    )
    console.print(
        f"agent done: {result.ran} ran ({result.complete} complete, {result.pruned} pruned, "
        f"{result.failed} failed), {result.skipped} skipped; {result.reason}",
        highlight=False,
    )


@app.command("status")
def status_cmd(
    sweep_id: str = typer.Argument(..., help="The sweep id."), storage: str | None = StorageOpt
) -> None:
    """Print the sweep's trials: state, metric value(s), configuration."""
    from rich.table import Table

    from roomscan.sweep import open_sweep
    from roomscan.sweep.report import trial_rows

    sweep = open_sweep(sweep_id, storage=storage)
    names = [m.name for m in sweep.config.metrics]
    table = Table(title=f"sweep {sweep.id} ({sweep.config.method}, {sweep.state}, config v{sweep.version})")
    for col in ["#", "state", *names, "config", "error"]:
        table.add_column(col)
    for r in trial_rows(sweep):
        vals = [f"{v:.6g}" for v in (r["values"] or [])] + [""] * (len(names) - len(r["values"] or []))
        err = (r["error"] or "").strip().splitlines()[-1][:80] if r["error"] else ""
        cfg = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (r["config"] or {}).items()
        )
        table.add_row(str(r["number"]), r["state"], *vals, escape(cfg), escape(err))
    console.print(table)


@app.command("edit")
def edit_cmd(
    sweep_id: str = typer.Argument(..., help="The sweep id."),
    config: Path = typer.Argument(..., help="The new sweep YAML (same metrics and goals)."),
    storage: str | None = StorageOpt,
    enqueue: Path | None = typer.Option(None, "--enqueue", help="Configurations to run next."),
) -> None:
    """Change a sweep's search space, method or budget; finished trials are kept, agents switch before their next
    trial."""
    from roomscan.sweep import edit_sweep, load_sweep_config

    changes = edit_sweep(sweep_id, load_sweep_config(config), storage=storage, enqueue=_enqueued(enqueue))
    console.print("\n".join(changes) or "no changes to parameters or budget", highlight=False, markup=False)


@app.command("stop")
def stop_cmd(
    sweep_id: str = typer.Argument(..., help="The sweep id."), storage: str | None = StorageOpt
) -> None:
    """Stop a sweep: agents finish their current trial and exit."""
    from roomscan.sweep import stop_sweep

    stop_sweep(sweep_id, storage=storage)
    console.print(f"sweep {sweep_id} stopped", highlight=False)


@app.command("list")
def list_cmd(storage: str | None = StorageOpt) -> None:
    """List the sweeps in a storage."""
    from rich.table import Table

    from roomscan.sweep import list_sweeps

    table = Table()
    for col in ("id", "name", "method", "state", "trials", "best", "created"):
        table.add_column(col)
    for s in list_sweeps(storage):
        table.add_row(
            s.id,
            s.name or "",
            s.method,
            s.state,
            str(s.trials),
            ", ".join(f"{v:.6g}" for v in s.best) if s.best else "",
            s.created,
        )
    console.print(table)


@app.command("report")
def report_cmd(
    sweep_id: str = typer.Argument(..., help="The sweep id."),
    out: Path = typer.Option(..., "--out", help="Folder for report.html and summary.json."),
    storage: str | None = StorageOpt,
    importance: str = typer.Option(
        "auto", "--importance", help="auto, fanova (needs scikit-learn) or ped-anova."
    ),
    dashboard: bool = typer.Option(
        False, "--dashboard", help="Also serve optuna-dashboard (when installed)."
    ),
) -> None:
    """Write the sweep report: best configs, parallel coordinates, importance, curves, Pareto front."""
    from roomscan.sweep import write_report

    if importance not in ("auto", "fanova", "ped-anova"):
        raise typer.BadParameter("must be auto, fanova or ped-anova", param_hint="--importance")
    page = write_report(sweep_id, out, storage=storage, importance=importance)
    console.print(f"wrote {page} and {page.parent / 'summary.json'}", highlight=False)
    if dashboard:
        _dashboard(storage)


def _dashboard(storage: str | None) -> None:
    from roomscan.errors import RoomscanError
    from roomscan.sweep.storage import default_storage_url

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise RoomscanError("--dashboard needs optuna-dashboard: pip install optuna-dashboard") from None
    url = storage or default_storage_url()
    if url.startswith("journal://"):
        from roomscan.sweep.storage import open_storage

        url = open_storage(url)  # type: ignore[assignment]
    err_console.print("optuna-dashboard on http://127.0.0.1:8080 (Ctrl-C to stop)", highlight=False)
    run_server(url, host="127.0.0.1", port=8080)
