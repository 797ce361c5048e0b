"""Request and response bodies of the REST API (pydantic models; what ``/openapi.json`` documents)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ListingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, examples=["Sea-view flat with pool"])
    claimed_amenities: list[str] = Field(
        default_factory=list, max_length=100, description="Amenity slugs or names the host claims."
    )


class ListingUpdate(BaseModel):
    """Fields to change; a field left out stays as it is (``claimed_amenities: []`` withdraws every claim)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    claimed_amenities: list[str] | None = Field(
        default=None, max_length=100, description="The full new set of claimed amenities (slugs, names or synonyms)."
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["confirmed", "rejected"] = Field(
        description="the host's verdict on an amenity the model reported"
    )


class ListingOut(BaseModel):
    id: int
    title: str
    claimed_amenities: list[str]
    photo_ids: list[int]
    created_at: str


class ListingPage(BaseModel):
    listings: list[ListingOut]
    limit: int
    offset: int


class EvidenceOut(BaseModel):
    photo_id: int
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright photo")
    score: float


class AmenityOut(BaseModel):
    slug: str
    name: str
    group: str
    status: str = Field(
        description="confirmed | unverified | discovered | rejected; while photos are still processing an "
        "unverified claim may yet be seen (see `processing.state`)"
    )
    claimed: bool
    seen: bool
    score: float
    threshold: float
    photo_count: int
    evidence: list[EvidenceOut] = Field(description="the model's boxes that show it, best first")
    decision: str | None = Field(
        default=None, description="the host's verdict on the model's report: confirmed | rejected | null"
    )


class ProcessingOut(BaseModel):
    state: str = Field(description="processing while any photo is queued or running, then complete")
    total: int
    pending: int
    running: int
    done: int
    failed: int


class ListingAmenitiesOut(BaseModel):
    listing_id: int
    model: str
    processing: ProcessingOut
    amenities: list[AmenityOut]
    confirmed: list[str]
    unverified: list[str]
    discovered: list[str]
    rejected: list[str] = Field(default_factory=list, description="reported by the model, rejected by the host")


class PhotoAccepted(BaseModel):
    photo_id: int
    sha256: str
    filename: str | None
    duplicate: bool = Field(description="true when these exact bytes were already stored (by any listing)")
    already_on_listing: bool = Field(
        default=False, description="true when this listing already had this photo: the upload changed nothing"
    )
    job_state: str


class PhotosAccepted(BaseModel):
    listing_id: int
    photos: list[PhotoAccepted]


class DetectionOut(BaseModel):
    label: str
    score: float
    box: list[float]


class PhotoOut(BaseModel):
    id: int
    sha256: str
    format: str
    width: int
    height: int
    model: str
    job_state: str | None
    error: str | None = None
    detections: list[DetectionOut]


class SearchHitOut(BaseModel):
    listing_id: int
    title: str
    amenities: dict[str, float]


class SearchOut(BaseModel):
    hits: list[SearchHitOut]
    next_cursor: int | None = Field(description="pass as `after` to get the next page; null on the last page")


class Problem(BaseModel):
    detail: str
