"""Model quality in production, measured from hosts' decisions: labels nobody had to pay for.

A host confirms or rejects an amenity the model reported on their listing (``amenity_decisions``). Under one
model, a decided ``(listing, amenity)`` is a *case* when the model has a stored box of that amenity on one of
the listing's photos; its score is the best such box's. A confirmed case is a true positive, a rejected one a
false positive. :func:`quality_report` gives, per model and amenity, the precision with a 95% Wilson interval,
the lowest score threshold that would have reached a target precision on the decided cases, and a weekly
trend.

Read the figures with two biases in mind:

* hosts only judge what the model showed them, so this measures **precision, not recall**: an amenity the
  model missed is never decided (a case only exists where the model found something);
* decisions are not a random sample: hosts confirm what they want to advertise and may leave unflattering
  mistakes alone, or reject a true amenity they would rather not list.

:func:`decided_cases` gives the cases themselves (with the photos that show the amenity), for distillation and
active learning to use as labels.

Example:
    >>> with sessions() as session:                                                     # doctest: +SKIP
    ...     report = quality_report(session, taxonomy=taxonomy, target_precision=0.9)
    >>> row = report.models[0].amenities[0]                                              # doctest: +SKIP
    >>> row.amenity, row.decisions, round(row.precision, 2), row.threshold.threshold     # doctest: +SKIP
    ('swimming-pool', 10, 0.8, 0.62)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roomscan.catalog.models import AmenityDecision, Detection, JobState, ListingPhoto, Model, PhotoJob
from roomscan.errors import NotFoundError
from roomscan.listing import Decision
from roomscan.taxonomy import Taxonomy

__all__ = [
    "AmenityQuality",
    "DecidedCase",
    "ModelQuality",
    "QualityReport",
    "ThresholdAdvice",
    "WeekQuality",
    "best_threshold",
    "decided_cases",
    "find_model",
    "quality_report",
    "wilson_interval",
]

Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95% interval."""


@dataclass(frozen=True)
class DecidedCase:
    """A host's decision on an amenity, seen through one model.

    Attributes:
        listing_id, amenity: what was decided (``amenity`` is a slug of the taxonomy).
        decision: ``confirmed`` (the model was right) or ``rejected`` (a false positive).
        decided_at: when (UTC).
        best_score: the model's best score for the amenity over the listing's photos; ``None`` when the model
            has no box of it there (it did not report the amenity; another model did, or the photos changed).
        photo_ids: the photos where the model's box of the amenity reaches the taxonomy's threshold (what the
            host was shown), best first: with ``confirmed``, their boxes are verified labels.
    """

    listing_id: int
    amenity: str
    decision: Decision
    decided_at: datetime
    best_score: float | None
    photo_ids: tuple[int, ...]


@dataclass(frozen=True)
class ThresholdAdvice:
    """The lowest score threshold ``t`` at which precision among cases scoring ``>= t`` reaches ``target``.

    ``threshold`` is ``None`` when no threshold reaches it ("not reachable"); ``kept_confirmed`` of the
    ``kept_cases`` cases at or above it are confirmed.
    """

    target: float
    threshold: float | None
    precision: float | None
    kept_confirmed: int
    kept_cases: int

    @property
    def reachable(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class WeekQuality:
    """One ISO week's decisions (``week`` like ``2026-W48``, starting on Monday ``start``)."""

    week: str
    start: date
    decisions: int
    confirmed: int
    precision: float | None


@dataclass(frozen=True)
class AmenityQuality:
    """One amenity (or, with ``amenity`` ``"*"``, all of them) under one model.

    ``low``/``high`` bound the precision with a 95% Wilson score interval (``None`` without decisions);
    ``current_threshold`` is the taxonomy's threshold for the amenity.
    """

    amenity: str
    decisions: int
    confirmed: int
    rejected: int
    precision: float | None
    low: float | None
    high: float | None
    threshold: ThresholdAdvice
    current_threshold: float | None
    weekly: tuple[WeekQuality, ...]


@dataclass(frozen=True)
class ModelQuality:
    """A model's quality: ``total`` over the amenities asked for, then each amenity (fewest decisions left out
    with ``min_decisions``). ``unscored`` counts decisions the model is not judged by: on listings whose
    photos it processed, amenities it found no box of (a confirmed one is a miss). ``taxonomy_matches`` is
    false when the model ran under another taxonomy than the report's, whose current thresholds then are not
    the model's."""

    model_id: int
    key: str
    taxonomy_matches: bool
    total: AmenityQuality
    amenities: tuple[AmenityQuality, ...]
    unscored: int


@dataclass(frozen=True)
class QualityReport:
    """Per model, precision from hosts' decisions; ``models`` is empty when nobody decided anything yet."""

    target_precision: float
    since: datetime | None
    weeks: tuple[str, ...]
    models: tuple[ModelQuality, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``roomscan quality --json`` and ``GET /api/v1/quality``): dates as ISO strings."""
        doc = asdict(self)
        doc["since"] = self.since.isoformat() if self.since else None
        for model in doc["models"]:
            for row in [model["total"], *model["amenities"]]:
                for week in row["weekly"]:
                    week["start"] = week["start"].isoformat()
        return doc


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95% by default); ``(0, 1)`` for ``n`` 0.

    Unlike ``p +- z * se`` it stays inside [0, 1] and is honest for small ``n`` and for ``p`` near 0 or 1.

    Example:
        >>> [round(v, 3) for v in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), got {successes}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, center - margin), min(1.0, center + margin)


def best_threshold(scored: Iterable[tuple[float, bool]], target: float) -> ThresholdAdvice:
    """The lowest threshold among the scores whose precision (``(score, confirmed)`` pairs at or above it)
    reaches ``target``. Precision is not monotonic in the threshold: every score is tried.

    Example:
        >>> best_threshold([(0.9, True), (0.8, True), (0.7, False), (0.6, True)], 0.75).threshold
        0.6
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    pairs = sorted(scored, key=lambda p: p[0], reverse=True)
    best = ThresholdAdvice(target, None, None, 0, 0)
    kept = confirmed = 0
    for i, (score, ok) in enumerate(pairs):
        kept += 1
        confirmed += ok
        if i + 1 < len(pairs) and pairs[i + 1][0] == score:
            continue  # a threshold keeps every case with this score, or none of them
        if confirmed / kept >= target:
            best = ThresholdAdvice(target, float(score), confirmed / kept, confirmed, kept)
    return best


def find_model(session: Session, key: str) -> Model:
    """The catalog model whose key is ``key``, or the only one whose key contains it (``owlv2``, a version).

    Raises:
        NotFoundError: no model matches, or several do; the message lists the candidates.
    """
    exact = session.scalar(select(Model).where(Model.key == key))
    if exact is not None:
        return exact
    models = list(session.scalars(select(Model).order_by(Model.id)))
    matches = [m for m in models if key in m.key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise NotFoundError(f"{key!r} matches {len(matches)} models: give more of the key, one of "
                            + ", ".join(m.key for m in matches))
    known = ", ".join(m.key for m in models) or "none yet (no detection has been stored)"
    raise NotFoundError(f"no catalog model has a key containing {key!r}; the models are: {known}")


def decided_cases(
    session: Session, model_id: int, taxonomy: Taxonomy, *, since: datetime | None = None
) -> list[DecidedCase]:
    """Every host decision (at or after ``since``) on an amenity of ``taxonomy``, scored by model
    ``model_id``: the labels hosts gave for free, by listing and amenity. Decisions on amenities the taxonomy
    lacks are left out (a label needs a class).

    Example:
        >>> confirmed = [c for c in decided_cases(session, model_id, taxonomy)       # doctest: +SKIP
        ...              if c.decision == "confirmed" and c.photo_ids]
    """
    stmt = select(AmenityDecision).order_by(AmenityDecision.listing_id, AmenityDecision.amenity)
    if since is not None:
        stmt = stmt.where(AmenityDecision.decided_at >= _utc(since))
    decisions = [d for d in session.scalars(stmt) if d.amenity in taxonomy]
    if not decisions:
        return []

    # The best box of each decided amenity per photo of its listing, by this model: (listing, amenity, photo,
    # score) rows; one joined query, no list of ids.
    best = func.max(Detection.score)
    scoring = (
        select(AmenityDecision.listing_id, AmenityDecision.amenity, Detection.photo_id, best)
        .join(ListingPhoto, ListingPhoto.listing_id == AmenityDecision.listing_id)
        .join(Detection, (Detection.photo_id == ListingPhoto.photo_id)
              & (Detection.amenity == AmenityDecision.amenity))
        .where(Detection.model_id == model_id)
        .group_by(AmenityDecision.listing_id, AmenityDecision.amenity, Detection.photo_id)
    )
    if since is not None:
        scoring = scoring.where(AmenityDecision.decided_at >= _utc(since))
    photo_scores: dict[tuple[int, str], list[tuple[float, int]]] = {}
    for listing_id, amenity, photo_id, score in session.execute(scoring):
        photo_scores.setdefault((listing_id, amenity), []).append((float(score), photo_id))

    cases = []
    for d in decisions:
        scores = sorted(photo_scores.get((d.listing_id, d.amenity), []), key=lambda sp: (-sp[0], sp[1]))
        shown = taxonomy[d.amenity].threshold
        cases.append(DecidedCase(
            listing_id=d.listing_id,
            amenity=d.amenity,
            decision=Decision(d.decision),
            decided_at=_utc(d.decided_at),
            best_score=scores[0][0] if scores else None,
            photo_ids=tuple(photo_id for score, photo_id in scores if score >= shown),
        ))
    return cases


def quality_report(
    session: Session,
    *,
    model_id: int | None = None,
    taxonomy: Taxonomy,
    target_precision: float = 0.9,
    since: datetime | None = None,
    weeks: int = 8,
    amenities: Collection[str] | None = None,
    min_decisions: int = 1,
    now: datetime | None = None,
) -> QualityReport:
    """How precise each model has been, by amenity, according to hosts (see the module's note on bias: this is
    precision, not recall, on a sample hosts chose).

    Args:
        model_id: one model (``NotFoundError`` if the catalog has none such); default: every model. A model
            without decided cases is left out.
        taxonomy: the amenities to report and their current thresholds.
        target_precision: what the suggested threshold must reach on the decided cases.
        since: only decisions at or after this time (a naive time is UTC).
        weeks: the weekly series covers this many ISO weeks, up to the one holding ``now`` (default: the
            current time).
        amenities: only these slugs (the model's ``total`` too); default: all.
        min_decisions: leave out amenity rows with fewer decisions (``total`` still counts them).

    Returns:
        A report whose ``models`` is empty when nobody has decided anything (not an error).
    """
    if weeks < 0:
        raise ValueError(f"weeks must be 0 or more, got {weeks}")
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    if min_decisions < 1:
        raise ValueError(f"min_decisions must be 1 or more, got {min_decisions}")
    week_starts = _week_starts(_utc(now) if now else datetime.now(UTC), weeks)
    if model_id is not None:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFoundError(f"no model {model_id} in the catalog")
        models = [model]
    else:
        models = list(session.scalars(select(Model).order_by(Model.id)))
    wanted = set(amenities) if amenities is not None else None
    fingerprint = taxonomy.fingerprint()

    out = []
    for model in models:
        cases = [c for c in decided_cases(session, model.id, taxonomy, since=since)
                 if wanted is None or c.amenity in wanted]
        scored = [c for c in cases if c.best_score is not None]
        if not scored:
            continue
        processed = _processed_listings(session, model.id)
        by_amenity: dict[str, list[DecidedCase]] = {}
        for c in scored:
            by_amenity.setdefault(c.amenity, []).append(c)
        rows = tuple(
            _quality(slug, group, target_precision, taxonomy[slug].threshold, week_starts)
            for slug, group in sorted(by_amenity.items(), key=lambda kv: taxonomy.index(kv[0]))
            if len(group) >= min_decisions
        )
        out.append(ModelQuality(
            model_id=model.id,
            key=model.key,
            taxonomy_matches=model.taxonomy == fingerprint,
            total=_quality("*", scored, target_precision, None, week_starts),
            amenities=rows,
            unscored=sum(c.best_score is None and c.listing_id in processed for c in cases),
        ))
    return QualityReport(
        target_precision=target_precision,
        since=_utc(since) if since else None,
        weeks=tuple(_week_label(s) for s in week_starts),
        models=tuple(out),
    )


def _processed_listings(session: Session, model_id: int) -> set[int]:
    """The decided listings with at least one photo the model has processed (``done`` jobs)."""
    return set(session.scalars(
        select(ListingPhoto.listing_id).distinct()
        .join(PhotoJob, PhotoJob.photo_id == ListingPhoto.photo_id)
        .join(AmenityDecision, AmenityDecision.listing_id == ListingPhoto.listing_id)
        .where(PhotoJob.model_id == model_id, PhotoJob.state == JobState.DONE)
    ))


def _quality(
    amenity: str,
    cases: Sequence[DecidedCase],
    target: float,
    current: float | None,
    week_starts: Sequence[date],
) -> AmenityQuality:
    confirmed = sum(c.decision == Decision.CONFIRMED for c in cases)
    n = len(cases)
    low, high = wilson_interval(confirmed, n) if n else (None, None)
    return AmenityQuality(
        amenity=amenity,
        decisions=n,
        confirmed=confirmed,
        rejected=n - confirmed,
        precision=confirmed / n if n else None,
        low=low,
        high=high,
        threshold=best_threshold(
            ((c.best_score, c.decision == Decision.CONFIRMED) for c in cases if c.best_score is not None),
            target,
        ),
        current_threshold=current,
        weekly=_weekly(cases, week_starts),
    )


def _weekly(cases: Sequence[DecidedCase], week_starts: Sequence[date]) -> tuple[WeekQuality, ...]:
    """Counts and precision per ISO week of ``decided_at``; a week without decisions is kept (zeros, no
    precision)."""
    counts = {start: [0, 0] for start in week_starts}  # start -> [decisions, confirmed]
    for c in cases:
        day = c.decided_at.date()
        start = day - timedelta(days=day.weekday())
        if start in counts:
            counts[start][0] += 1
            counts[start][1] += c.decision == Decision.CONFIRMED
    return tuple(
        WeekQuality(_week_label(start), start, n, ok, ok / n if n else None)
        for start, (n, ok) in counts.items()
    )


def _week_starts(now: datetime, weeks: int) -> list[date]:
    """The Mondays of the last ``weeks`` ISO weeks, oldest first, the last one holding ``now``."""
    monday = now.date() - timedelta(days=now.date().weekday())
    return [monday - timedelta(weeks=i) for i in reversed(range(weeks))]


def _week_label(start: date) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def _utc(moment: datetime) -> datetime:
    """An aware UTC time (SQLite gives back naive times, which the catalog writes in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
