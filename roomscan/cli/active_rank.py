"""``roomscan active rank``: which photos to label next, by how much a committee of models disagrees."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.active.scores import SCORES
from roomscan.cli._common import DbOpt, DeviceOpt, JsonOpt, MinScoreOpt, TaxonomyOpt, load_detector
from roomscan.cli._console import console, err_console, progress
from roomscan.cli.active import app


def _shown(text: object) -> str:
    """``text`` printable on a UTF-8 terminal: a file name that is not UTF-8 shows U+FFFD for its stray bytes
    (printing the surrogate escapes Python decoded it with raises UnicodeEncodeError after the files are written)."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@app.command("rank")
def rank_command(
    models: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        show_default=False,
        metavar="MODEL",
        help="A committee member: a model name, hub id or local model directory; repeat for a deep "
        "ensemble or teacher and student (default: $ROOMSCAN_MODEL, else owlv2).",
    ),
    mc_dropout: int = typer.Option(
        0,
        "--mc-dropout",
        min=0,
        metavar="T",
        help="T Monte-Carlo dropout passes per model (T >= 2; the model must have dropout). 0: off.",
    ),
    tta: bool = typer.Option(
        False,
        "--tta",
        help="Add test-time augmentation members: a left-right flip and a 0.75x rescale of each photo.",
    ),
    images: Path | None = typer.Option(
        None, "--images", metavar="DIR", help="Rank the photos in this folder and its sub-folders."
    ),
    catalog: bool = typer.Option(
        False,
        "--catalog",
        help="Rank the catalog's listing photos; those whose detected amenity a host rejected come first.",
    ),
    db: str | None = DbOpt,
    score: str = typer.Option(
        "bald",
        "--score",
        metavar="NAME",
        help=f"How disagreement becomes a photo's score: {', '.join(SCORES)}.",
    ),
    budget: int = typer.Option(
        ..., "--budget", min=1, metavar="N", help="How many photos to pick.", show_default=False
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        metavar="DIR",
        help="Write ranking.csv/json, contact_sheet.html and Label Studio files here (created).",
        show_default=False,
    ),
    diversity: bool = typer.Option(
        False,
        "--diversity",
        help="Pick the most contested photos, then spread them out (k-center on image embeddings) so the "
        "batch holds no near-duplicates.",
    ),
    class_balance: bool = typer.Option(
        False,
        "--class-balance",
        help="Boost photos of rare amenities (counts from --class-counts, else the committee's consensus "
        "over the pool).",
    ),
    class_counts: Path | None = typer.Option(
        None,
        "--class-counts",
        metavar="DATASET",
        help="A roomscan dataset whose labelled boxes per amenity set the rarity boost (implies "
        "--class-balance).",
    ),
    image_prefix: str = typer.Option(
        "",
        "--image-prefix",
        metavar="PREFIX",
        help="Put before each photo's path in the Label Studio tasks, e.g. /data/local-files/?d=rooms/ or "
        "https://roomscan.example.",
    ),
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    min_score: float | None = MinScoreOpt,
    batch_size: int = typer.Option(4, "--batch-size", min=1, max=64, help="Photos per forward pass."),
    as_json: bool = JsonOpt,
) -> None:
    """Rank unlabelled photos by how much a committee of models disagrees on them, and pick a batch to label.

    The committee is every --model, times the --tta views, times the --mc-dropout passes. Unreadable photos
    are skipped with a warning naming them. Load labelstudio_tasks.json into a Label Studio project set up
    with labelstudio_config.xml to label the batch with the committee's boxes pre-drawn.
    """
    from roomscan.active.committee import Committee
    from roomscan.active.outputs import check_out_dir
    from roomscan.active.rank import catalog_pool, folder_pool, rank

    if (images is None) == (not catalog):
        raise typer.BadParameter(
            "give either --images DIR or --catalog (one of them)", param_hint="--images/--catalog"
        )
    if score.strip().lower() not in SCORES:
        raise typer.BadParameter(
            f"unknown score {score!r}; choose one of {', '.join(SCORES)}", param_hint="--score"
        )
    services = None
    if catalog:
        from roomscan.cli._catalog import open_catalog

        services = open_catalog(db)
    caught: list[warnings.WarningMessage] = []
    try:
        # The pool first: an empty folder or catalog is reported before any model loads.
        pool = catalog_pool(services) if services is not None else folder_pool(images or Path("."))
        check_out_dir(out)  # and an --out that cannot be written, before the models load
        specs: list[str | None] = list(models) or [None]  # None: $ROOMSCAN_MODEL, else the default model
        detectors = [load_detector(m, taxonomy, device, None, min_score) for m in specs]
        committee = Committee.build(detectors, mc_dropout=mc_dropout, tta=tta)
        err_console.print(
            f"committee: {escape(committee.describe())}; pool: {len(pool.photos)} photo(s)", highlight=False
        )
        with warnings.catch_warnings(record=True) as caught, progress() as bar:
            warnings.simplefilter("always")
            task = bar.add_task("Ranking", total=None)
            result = rank(
                committee,
                pool,
                score=score.strip().lower(),
                budget=budget,
                diversity=diversity,
                class_balance=class_balance,
                class_counts=class_counts,
                out_dir=out,
                batch_size=batch_size,
                image_prefix=image_prefix,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        if services is not None:
            services.close()
        for warning in caught or []:  # also when ranking failed: the skipped photos explain why
            err_console.print(
                f"[yellow]warning:[/] {escape(_shown(warning.message))}", highlight=False, soft_wrap=True
            )

    if as_json:
        from roomscan.active.outputs import ranking_json

        console.print_json(json.dumps({**ranking_json(result), "files": [str(p) for p in result.files]}))
        return
    table = Table(title=f"Top photos to label ({result.score}; {len(result.photos)} of {result.pool_size})")
    for column, justify in (
        ("#", "right"),
        ("photo", "left"),
        (result.score, "right"),
        ("why", "left"),
        ("consensus", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for photo in result.photos[:20]:
        table.add_row(
            str(photo.rank),
            escape(_shown(photo.label)),
            f"{photo.score:.3f}",
            escape(photo.why),
            escape(", ".join(b.label for b in photo.consensus) or "-"),
        )
    console.print(table)
    if len(result.photos) > 20:
        console.print(f"... and {len(result.photos) - 20} more in {out / 'ranking.csv'}", highlight=False)
    err_console.print(
        f"wrote {', '.join(p.name for p in result.files)} to {escape(str(out))}", highlight=False
    )
