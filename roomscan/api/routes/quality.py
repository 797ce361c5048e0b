"""``/api/v1/quality``: models' precision per amenity as hosts judged it (``roomscan.catalog.quality``), for
admins: it shows aggregate model quality, not host data, but it is an operator's view, like the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from roomscan.api.deps import PrincipalDep, ServicesDep, SessionDep
from roomscan.api.routes.listings import resolve_amenities
from roomscan.api.schemas import ADMIN_READ, CatalogId, Text
from roomscan.auth import require_admin
from roomscan.catalog.quality import find_model, quality_report
from roomscan.errors import NotFoundError

router = APIRouter(prefix="/quality", tags=["quality"])


class ThresholdOut(BaseModel):
    target: float = Field(description="the precision asked for")
    threshold: float | None = Field(
        description="the lowest score threshold whose precision on the decided cases reaches `target`; null: "
        "not reachable"
    )
    precision: float | None = Field(description="the precision at `threshold`")
    kept_confirmed: int = Field(description="confirmed cases scoring at or above `threshold`")
    kept_cases: int = Field(description="decided cases scoring at or above `threshold`")


class WeekOut(BaseModel):
    week: str = Field(examples=["2026-W49"], description="ISO week of the decisions")
    start: str = Field(examples=["2026-11-30"], description="its Monday")
    decisions: int
    confirmed: int
    precision: float | None = Field(description="null for a week without decisions")


class AmenityQualityOut(BaseModel):
    amenity: str = Field(description='an amenity slug; `"*"` for the model\'s total', examples=["swimming-pool"])
    decisions: int = Field(description="decided cases: host decisions on amenities the model had a box of")
    confirmed: int = Field(description="the model was right")
    rejected: int = Field(description="false positives")
    precision: float | None
    low: float | None = Field(description="95% Wilson score interval, lower bound")
    high: float | None = Field(description="95% Wilson score interval, upper bound")
    threshold: ThresholdOut
    current_threshold: float | None = Field(description="the taxonomy's threshold for the amenity")
    weekly: list[WeekOut] = Field(description="oldest first, up to the current week")


class ModelQualityOut(BaseModel):
    model_id: CatalogId
    key: str = Field(description="the catalog model's key: backend, weights version and taxonomy")
    taxonomy_matches: bool = Field(
        description="false when the model ran under another taxonomy, whose thresholds may differ from "
        "`current_threshold`"
    )
    total: AmenityQualityOut = Field(description="over the amenities asked for")
    amenities: list[AmenityQualityOut] = Field(description="in taxonomy order")
    unscored: int = Field(
        description="decisions on listings the model processed, on amenities it found no box of (not counted)"
    )


class QualityOut(BaseModel):
    """Precision from hosts' decisions. Hosts judge only what a model showed them, so this is precision, not
    recall; and they may confirm what they want to advertise more readily than they reject a mistake."""

    target_precision: float
    since: str | None = Field(description="only decisions at or after this time (ISO 8601, UTC)")
    weeks: list[str] = Field(description="the ISO weeks of each `weekly` series")
    models: list[ModelQualityOut] = Field(description="models with decided cases; empty when none")


@router.get("", response_model=QualityOut, responses=ADMIN_READ)
def read_quality(
    principal: PrincipalDep,
    services: ServicesDep,
    session: SessionDep,
    model: Annotated[
        Text | None,
        Query(max_length=400, description="a catalog model's key, or a part of it only that model's has"),
    ] = None,
    amenity: Annotated[list[Text], Query(description="only these amenities (slugs or names)")] = [],  # noqa: B006
    target_precision: Annotated[float, Query(gt=0.0, le=1.0)] = 0.9,
    weeks: Annotated[int, Query(ge=0, le=520, description="weeks in each weekly series")] = 8,
    min_decisions: Annotated[int, Query(ge=1, le=1_000_000, description="leave out thinner amenity rows")] = 1,
    since: Annotated[datetime | None, Query(description="only decisions at or after this time (ISO 8601)")] = None,
) -> QualityOut:
    """Each model's precision per amenity from hosts' confirmations (right) and rejections (false positives):
    with a 95% Wilson interval, the lowest score threshold reaching `target_precision` on the decided cases, the
    taxonomy's current threshold, and a week-by-week series. Admins only.

    Example: ``GET /api/v1/quality?amenity=swimming-pool&target_precision=0.95&weeks=12``
    """
    require_admin(principal, "reading model quality")
    taxonomy = services.taxonomy
    slugs = resolve_amenities(taxonomy, amenity) or None
    try:
        model_id = find_model(session, model).id if model else None
        report = quality_report(
            session, model_id=model_id, taxonomy=taxonomy, target_precision=target_precision, since=since,
            weeks=weeks, amenities=slugs, min_decisions=min_decisions,
        )
    except NotFoundError as exc:  # a model named in the query: the query is wrong, not the path
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except OverflowError as exc:  # a `since` at the edge of the calendar, beyond it in UTC
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"since: {exc}") from exc
    return QualityOut.model_validate(report.to_dict())
