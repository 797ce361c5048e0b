"""``roomscan active simulate``: strategies against random on a fully labelled pool (see
:mod:`roomscan.active.simulate`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._console import console, err_console
from roomscan.cli.active import app


@app.command("simulate")
def simulate_command(
    data: Path = typer.Option(..., "--data", help="The fully labelled pool: a roomscan dataset directory (images/, annotations.json, taxonomy.yaml)."),
    strategy: list[str] = typer.Option(["bald", "random"], "--strategy", "-s", help="A strategy to compare; repeat it: random, bald, entropy, box-variance, count, least-confidence, diversity, or <score>+diversity (bald+diversity)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Train-and-evaluate rounds per strategy and seed; the labelled set grows by --budget between rounds."),
    budget: int = typer.Option(20, "--budget", min=1, help="Images labelled per round."),
    initial: int = typer.Option(20, "--initial", min=1, help="Images labelled at random before the first round (the same for every strategy under a seed)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Repetitions (seeds 0..N-1); curves show the mean and spread over them."),
    target_map: float = typer.Option(0.5, "--target-map", min=0.0, max=1.0, help="The test mAP to reach; the summary reports the labels each strategy needed."),
    metric: str = typer.Option("map", "--metric", help="map (COCO AP@[.5:.95]) or map50 (AP at IoU 0.5): what --target-map and the curves measure."),
    committee: str = typer.Option("mc-dropout:8", "--committee", help="Who disagrees: mc-dropout:T (T dropout passes of the round's model) or ensemble:K (K models, different seeds)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs per round (default 20)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Architecture trained from scratch each round: dfine_nano (default), rtdetr_v2_r18vd, or a model directory with a config.json."),
    image_size: int | None = typer.Option(None, "--image-size", help="Training and inference side in pixels, a multiple of 32 (default 640)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Training images per step (default 8)."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-4)."),
    dropout: float | None = typer.Option(None, "--dropout", help="Dropout of the trained models, needed by an mc-dropout committee (default 0.1)."),
    train_config: Path | None = typer.Option(None, "--train-config", help="YAML file of further training keys (TrainConfig: warmup_steps, clip_grad...); flags override it."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.0, max=1.0, help="Share of the pool held out as the fixed test split (never selected, never trained on)."),
    score_threshold: float = typer.Option(0.05, "--score-threshold", min=0.0, max=1.0, help="Committee boxes below this confidence are not matched or scored."),
    class_balance: bool = typer.Option(False, "--class-balance", help="Boost photos whose classes are rare in the labelled set."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or auto (default auto)."),
    out: Path = typer.Option(Path("active-sim"), "--out", help="Output directory: results.jsonl, summary.json, curves.png; rerun with the same one to continue a stopped run."),
) -> None:
    """Run the active-learning loop on a labelled pool, revealing only the labels each strategy asks for.

    Per strategy and seed: train on the labelled images, measure mAP on a fixed test split, pick --budget images
    from the pool, reveal their labels, repeat. Prints mAP per labels spent (mean ± std over seeds) and the labels
    each strategy needed to reach --target-map, against random. Each finished round is appended to
    OUT/results.jsonl, so a stopped run continues where it was.
    """
    from roomscan.active.select import BudgetWarning
    from roomscan.active.simulate import SimulationConfig, simulate
    from roomscan.cli._console import progress

    recipe = _recipe(data, train_config, {"epochs": epochs, "model": model, "image_size": image_size,
                                          "batch_size": batch_size, "lr": lr, "dropout": dropout, "device": device})
    config = SimulationConfig(
        data=str(data), strategies=tuple(strategy), rounds=rounds, budget=budget, initial=initial, seeds=seeds,
        target_map=target_map, metric=metric.strip().lower(), committee=committee, test_fraction=test_fraction,
        score_threshold=score_threshold, class_balance=class_balance, train=recipe,
    )
    with progress() as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)  # the log line says it already
        task = bar.add_task("simulating", total=None)

        def log(message: str) -> None:
            style = "yellow" if message.startswith("warning:") else "dim"
            bar.console.print(f"[{style}]{escape(message)}[/]", highlight=False, soft_wrap=True)

        report = simulate(config, out, log=log, progress=lambda done, total: bar.update(task, completed=done,
                                                                                         total=total))
    _print(report)
    written = [report.results, report.summary] + ([report.curves] if report.curves else [])
    err_console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)


def _recipe(data: Path, file: Path | None, flags: dict[str, Any]) -> Any:
    """The training recipe: the simulation's defaults, then the YAML file, then the flags."""
    import yaml

    from roomscan.active.simulate import default_recipe
    from roomscan.train.config import ConfigError, TrainConfig

    raw = default_recipe(str(data)).to_dict()
    where = "flags"
    if file is not None:
        where = str(file)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"{file}: training config file not found") from exc
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{file}: not a readable YAML config ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of TrainConfig keys at the top level")
        raw.update(loaded)
    raw.update({k: v for k, v in flags.items() if v is not None})
    raw["data"] = str(data)
    return TrainConfig.from_dict(raw, where=where)


def _print(report: Any) -> None:
    from roomscan.active.simulate_report import labels_text

    config = report.config
    name = "AP@[.5:.95]" if config.metric == "map" else "AP50"
    curve = Table("labels", *(s.strategy for s in report.summaries), title=f"test {name} per labels spent (mean ± std over seeds)")
    points = sorted({n for s in report.summaries for n in s.labels})
    for n in points:
        cells = []
        for s in report.summaries:
            if n in s.labels:
                j = s.labels.index(n)
                cells.append(f"{s.mean[j]:.3f} ± {s.std[j]:.3f}")
            else:
                cells.append("-")
        curve.add_row(str(n), *cells)
    console.print(curve)
    target = Table("strategy", f"labels to {name} {config.target_map:g}", "vs random", f"final {name}",
                   title=f"labels needed to reach the target ({config.seeds} seed(s))")
    for s in report.summaries:
        saving = "-" if s.saving_vs_random is None else f"{s.saving_vs_random:+.0%} labels saved"
        target.add_row(s.strategy, labels_text(s), saving if s.strategy != "random" else "(control)",
                       f"{s.final_mean:.3f} ± {s.final_std:.3f}")
    console.print(target)
    if report.rounds_resumed:
        err_console.print(f"{report.rounds_resumed} round(s) continued from {report.results}, {report.rounds_run} run now",
                          highlight=False)
