"""``roomscan quality``: how precise the models are in production, from hosts' confirmations and rejections
(``roomscan.catalog.quality``), read from the catalog directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import open_catalog
from roomscan.cli._common import DbOpt, JsonOpt, TaxonomyOpt
from roomscan.cli._console import console, err_console
from roomscan.errors import RoomscanError

_AMENITY_OPT = typer.Option(
    [], "--amenity", "-a", help="Only this amenity (slug, name or synonym); repeat for several."
)


def quality(
    model: str | None = typer.Option(
        None, "--model",
        help="Only this catalog model: its key, or a part of the key only it has (default: all).",
    ),
    amenity: list[str] = _AMENITY_OPT,
    target_precision: float = typer.Option(
        0.9, "--target-precision", min=0.01, max=1.0,
        help="Suggest the lowest score threshold whose precision on the decided cases reaches this.",
    ),
    weeks: int = typer.Option(
        8, "--weeks", min=0, max=520, help="Weeks in the weekly trend, up to the current one."
    ),
    min_decisions: int = typer.Option(
        1, "--min-decisions", min=1,
        help="Leave out amenities with fewer decisions (the totals still count them).",
    ),
    since: str | None = typer.Option(
        None, "--since",
        help="Only decisions at or after this time: ISO 8601, like 2026-12-01 or 2026-12-01T09:30Z.",
    ),
    taxonomy: Path | None = TaxonomyOpt,
    json_out: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """Show each model's precision per amenity as hosts judged it: a confirmed amenity counts as right, a
    rejected one as a false positive. With a 95% interval, the score threshold that would have reached the
    target precision, the taxonomy's current threshold, and a week-by-week trend.

    Hosts only judge what the model showed them, so this is precision, not recall; and hosts may confirm what
    they want to advertise more readily than they reject a mistake.
    """
    from roomscan.catalog.quality import find_model, quality_report
    from roomscan.taxonomy import load_taxonomy

    start = _parse_since(since) if since else None
    services = open_catalog(db)
    try:
        tax = load_taxonomy(taxonomy) if taxonomy is not None else services.taxonomy
        slugs = sorted({tax.resolve(a).slug for a in amenity}) or None
        with services.sessions() as session:
            model_id = find_model(session, model).id if model else None
            report = quality_report(
                session, model_id=model_id, taxonomy=tax, target_precision=target_precision, since=start,
                weeks=weeks, amenities=slugs, min_decisions=min_decisions,
            )
    except ValueError as exc:
        raise RoomscanError(str(exc)) from exc
    finally:
        services.close()
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not report.models:
        narrowed = " (with these options)" if model or amenity or since else ""
        err_console.print(f"no host has confirmed or rejected an amenity a model reported{narrowed} yet",
                          highlight=False)
        return
    target = f"{target_precision:g}"
    for m in report.models:
        console.print(f"[bold]{escape(m.key)}[/] (model {m.model_id})", highlight=False, soft_wrap=True)
        if not m.taxonomy_matches:
            console.print("[yellow]note:[/] this model ran under another taxonomy: its thresholds may differ "
                          "from the current ones shown", highlight=False)
        table = Table(
            "amenity", box=box.SIMPLE_HEAD,
            caption=f"P >= {target}: the lowest score threshold reaching precision {target} on these "
            "decisions, and how many confirmed cases it keeps",
        )
        for header in ("decisions", "rejected", "precision [95%]", f"P >= {target}", "current"):
            table.add_column(header, justify="right", no_wrap=True)
        for row in [*m.amenities, m.total]:
            if row is m.total:
                table.add_section()
            advice = row.threshold
            suggested = f"{advice.threshold:.3f} keeps {advice.kept_confirmed}" if advice.reachable else None
            table.add_row(
                "all" if row is m.total else escape(row.amenity),
                str(row.decisions),
                str(row.rejected),
                f"{row.precision:.2f} [{row.low:.2f}–{row.high:.2f}]" if row.precision is not None else "-",
                suggested or "not reachable",
                f"{row.current_threshold:.3f}" if row.current_threshold is not None else "",
            )
        console.print(table)
        if m.unscored:
            console.print(f"not counted: {m.unscored} decision(s) on amenities this model found on none "
                          "of the listing's photos", highlight=False)
        if m.total.weekly:
            trend = Table("week", "decisions", "precision", box=box.SIMPLE_HEAD,
                          title="weekly trend (all amenities)")
            for w in m.total.weekly:
                precision = f"{w.precision:.2f}" if w.precision is not None else "-"
                trend.add_row(w.week, str(w.decisions), precision)
            console.print(trend)


def _parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())  # Python 3.11 reads a trailing Z
    except ValueError:
        raise RoomscanError(
            f"--since must be an ISO 8601 time like 2026-12-01T09:30Z, got {text!r}"
        ) from None
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)  # the catalog compares in UTC
        except OverflowError:
            raise RoomscanError(
                f"--since {text!r} is beyond the calendar once in UTC; give a time between years 1 and 9999"
            ) from None
    return moment
