"""Request and response bodies of the REST API (pydantic models; what ``/openapi.json`` documents).

Also the types every route shares: ids bounded to what the catalog's columns hold (``CatalogId``, ``Cursor``),
text that a database can store (``Text``), and the one error body (``Problem``) with the error responses each
kind of operation documents (``READ``, ``WRITE``, ``DELETE``, ``UPLOAD``).

Example:
    >>> from fastapi import APIRouter
    >>> router = APIRouter()
    >>> @router.get("/things/{thing_id}", responses=READ)
    ... def get_thing(thing_id: CatalogId) -> dict[str, int]:  # 1 .. 2**31 - 1, else 422
    ...     return {"id": thing_id}
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from roomscan.catalog.models import MAX_BEDROOMS
from roomscan.listing import Decision

# The catalog's id columns are SQL INTEGER: PostgreSQL's int4 holds at most 2**31 - 1 (SQLite's 2**63 - 1); a
# larger id must be refused as invalid input (422), not reach the driver (500).
MAX_ID = 2**31 - 1
CatalogId = Annotated[int, Ge(1), Le(MAX_ID)]
"""A listing or photo id."""
Cursor = Annotated[int, Ge(0), Le(MAX_ID)]
"""A keyset cursor: the last id of the previous page (0 starts at the beginning)."""

# NUL: PostgreSQL text cannot hold it. Lone surrogates (a JSON "\ud800" escape): not encodable as UTF-8, so no
# database (nor a JSON answer echoing them) can hold them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """``value`` unchanged, or ValueError when it holds a NUL character or a lone surrogate."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return value
    if bad.group() == "\x00":
        raise ValueError("text must not contain NUL characters (U+0000)")
    raise ValueError(
        f"text must be valid Unicode: a lone surrogate (U+{ord(bad.group()):04X}) at position {bad.start()}"
    )


Text = Annotated[str, AfterValidator(storable_text)]
"""A string without NUL characters or lone surrogates (422 otherwise): every text field of the API."""

# Strict: a JSON integer only (not "2", 2.5 or true), 0..100 like the column's CHECK; anything else is a 422.
Bedrooms = Annotated[int, Field(strict=True, ge=0, le=MAX_BEDROOMS, examples=[2])]
"""A declared bedroom count."""


class ListingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(min_length=1, max_length=200, examples=["Sea-view flat with pool"])
    claimed_amenities: list[Text] = Field(
        default_factory=list, max_length=100, description="Amenity slugs or names the host claims."
    )
    published: bool = Field(
        default=True,
        description="False keeps the listing to its owner and admins: left out of search, and 404 to everyone else.",
    )
    bedrooms: Bedrooms | None = Field(
        default=None,
        description="How many bedrooms the listing has (0-100; null or left out: none declared). The photo tour "
        "notes fewer bedroom photos than that.",
    )


class ListingUpdate(BaseModel):
    """Fields to change; a field left out stays as it is (``claimed_amenities: []`` withdraws every claim,
    ``bedrooms: null`` clears the declared count)."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    claimed_amenities: list[Text] | None = Field(
        default=None, max_length=100, description="The full new set of claimed amenities (slugs, names or synonyms)."
    )
    published: bool | None = Field(
        default=None, description="Publish (true) or unpublish (false): an unpublished listing leaves search at once."
    )
    bedrooms: Bedrooms | None = Field(
        default=None,
        description="The declared bedroom count (0-100); null clears it (none declared); left out, it stays as it is.",
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision = Field(
        description="the host's verdict on an amenity the model reported"
    )


class ListingOut(BaseModel):
    id: CatalogId
    title: str
    claimed_amenities: list[str]
    photo_ids: list[CatalogId]
    created_at: str
    published: bool = Field(description="false: seen only by its owner and admins, and not in search")
    bedrooms: int | None = Field(default=None, description="the declared bedroom count; null: none declared")


class ListingPage(BaseModel):
    listings: list[ListingOut]
    limit: int
    offset: int


class EvidenceOut(BaseModel):
    photo_id: CatalogId
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
    listing_id: CatalogId
    model: str
    processing: ProcessingOut
    amenities: list[AmenityOut]
    confirmed: list[str]
    unverified: list[str]
    discovered: list[str]
    rejected: list[str] = Field(default_factory=list, description="reported by the model, rejected by the host")


class PhotoAccepted(BaseModel):
    photo_id: CatalogId
    sha256: str
    filename: str | None
    duplicate: bool = Field(description="true when these exact bytes were already stored (by any listing)")
    already_on_listing: bool = Field(
        default=False, description="true when this listing already had this photo: the upload changed nothing"
    )
    job_state: str


class PhotosAccepted(BaseModel):
    listing_id: CatalogId
    photos: list[PhotoAccepted]


class DetectionOut(BaseModel):
    label: str
    score: float
    box: list[float]


class RoomOut(BaseModel):
    """A photo's room type under the served model: a probability per room type."""

    best: str = Field(description="the most probable room type's slug", examples=["bathroom"])
    name: str = Field(description="its display name", examples=["Bathroom"])
    probability: float = Field(description="the best room type's probability, 0-1")
    margin: float = Field(description="best minus second-best probability: near 0 means unsure")
    source: str = Field(
        description="what the scores come from: `embedding+amenities` (zero-shot and the amenities found) or "
        "`amenities`", examples=["embedding+amenities"]
    )
    scores: dict[str, float] = Field(description="room type slug -> probability, summing to 1")


class QualityIssueOut(BaseModel):
    code: str = Field(
        description="low_resolution | too_dark | overexposed | low_contrast | blurry | tilted", examples=["too_dark"]
    )
    severity: str = Field(description="warning (worth fixing) | problem (do not lead with this photo)")
    message: str = Field(
        description="the plain reason and what to do",
        examples=["too dark: brightness 18/255 (aim for at least 60), 93% near-black: turn on the lights or open "
                  "the curtains"],
    )


class QualityOut(BaseModel):
    """How good a photo is to show (measured on its pixels when it was stored)."""

    score: float = Field(description="0-100, higher is a better cover photo")
    ok: bool = Field(description="true when no issue is a problem (warnings allowed): the photo may lead a listing")
    issues: list[QualityIssueOut] = Field(description="problems first, then warnings")
    width: int
    height: int
    megapixels: float
    brightness: float = Field(description="mean luminance, 0-255")
    dark_share: float = Field(description="share of near-black pixels, 0-1")
    clipped_share: float = Field(description="share of blown-out white pixels, 0-1")
    contrast: float = Field(description="standard deviation of luminance, 0-255")
    sharpness: float = Field(description="variance of the Laplacian of a 512 px grey copy")
    tilt_degrees: float | None = Field(description="camera roll in degrees; null when the photo has too few verticals")


class PhotoOut(BaseModel):
    id: CatalogId
    sha256: str
    format: str
    width: int
    height: int
    model: str
    job_state: str | None
    error: str | None = None
    detections: list[DetectionOut]
    room: RoomOut | None = Field(default=None, description="its room type; null until the model has seen it")
    quality: QualityOut | None = Field(
        default=None, description="its quality; null for a photo stored before quality was measured "
        "(`roomscan photos analyse` measures those)"
    )


class DuplicateOut(BaseModel):
    """Another listing that shows the same picture (the same bytes, or a near-copy: resized, re-encoded,
    slightly cropped)."""

    photo_id: CatalogId = Field(description="the photo on the other listing (this photo's own id for the same bytes)")
    listing_id: CatalogId
    listing_title: str
    distance: int = Field(description="bits between the perceptual hashes: 0 identical, up to max_distance")
    api_url: str = Field(examples=["/api/v1/listings/12"], description="the other listing in this API")
    page_url: str = Field(examples=["/listings/12"], description="the other listing's web page")


class PhotoInsightsOut(BaseModel):
    photo_id: CatalogId
    position: int = Field(description="its place in the listing's own order")
    filename: str | None
    room: RoomOut | None = Field(description="null until the model has seen the photo")
    quality: QualityOut | None = Field(description="null for a photo stored before quality was measured")
    duplicates: list[DuplicateOut] = Field(
        description="other listings showing the same picture that the caller may see, nearest first"
    )
    hidden_duplicates: int | None = Field(
        description="how many more listings show it that the caller may not see (never linked); null for a guest "
        "without a key, who is told nothing about listings it may not see"
    )


class TourStopOut(BaseModel):
    photo_id: CatalogId
    room: str = Field(description="the room type slug the photo is grouped under")
    quality: float = Field(description="its quality score, 0-100")
    problems: list[str] = Field(description="quality problem codes (not warnings)")


class CompletenessNoteOut(BaseModel):
    code: str = Field(description="missing-room | bedrooms-unshown | claim-unshown | no-photos")
    message: str = Field(examples=["no bathroom photo", "claims a swimming pool but no outdoor photo"])
    room: str | None = None
    amenity: str | None = None


class TourOut(BaseModel):
    """The suggested photo order: grouped by room (exterior or living room first), the cover photo leading."""

    order: list[CatalogId] = Field(description="photo ids in the suggested order")
    cover: CatalogId | None = Field(description="the suggested cover photo")
    stops: list[TourStopOut]
    notes: list[CompletenessNoteOut] = Field(description="what the photos leave out")


class ListingInsightsOut(BaseModel):
    listing_id: CatalogId
    model: str = Field(description="the model whose room types are shown")
    max_distance: int = Field(description="bits within which two photos count as the same picture")
    photos: list[PhotoInsightsOut] = Field(description="in the listing's order")
    tour: TourOut | None = Field(description="null until at least one photo has a room type and a quality")
    left_out_of_tour: list[CatalogId] = Field(
        description="photos the tour could not place yet (no room type or quality yet)"
    )


class ClusterListingOut(BaseModel):
    listing_id: CatalogId
    title: str
    api_url: str = Field(examples=["/api/v1/listings/12"])
    page_url: str = Field(examples=["/listings/12"])


class ClusterPhotoOut(BaseModel):
    photo_id: CatalogId
    listings: list[ClusterListingOut] = Field(description="the listings showing it that the caller may see")


class DuplicateClusterOut(BaseModel):
    """Photos that are the same picture, on two or more listings."""

    photos: list[ClusterPhotoOut] = Field(description="by id; only photos on a listing the caller may see")
    listing_ids: list[CatalogId] = Field(description="the listings the caller may see, ascending")
    hidden_listings: int | None = Field(
        description="how many more listings show these photos that the caller may not see; null for a guest "
        "without a key"
    )


class DuplicateClustersOut(BaseModel):
    max_distance: int
    clusters: list[DuplicateClusterOut] = Field(description="ordered by their first photo id")
    next_after: CatalogId | None = Field(
        description="pass as `after` to get the next page; null on the last page"
    )


class SearchHitOut(BaseModel):
    listing_id: CatalogId
    title: str
    amenities: dict[str, float]
    room_score: float | None = Field(
        default=None, description="with `room`: the best probability of that room among the listing's photos"
    )


class SearchOut(BaseModel):
    hits: list[SearchHitOut]
    next_cursor: Cursor | None = Field(
        description="pass as `after` to get the next page; null on the last page"
    )


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(
        description="where: body, query, path or header, then the field", examples=[["body", "title"]]
    )
    msg: str = Field(examples=["Field required"])
    type: str = Field(examples=["missing"])


class Problem(BaseModel):
    """The body of every error answer of the API."""

    detail: str = Field(description="what was wrong, in words", examples=["listing 7 does not exist"])
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422 for a request that does not match the schema: each problem on its own"
    )


_ERRORS: dict[int, str] = {
    400: "The request body cannot be parsed (JSON that is not UTF-8, a broken multipart body).",
    401: "No API key: send it in the X-API-Key header.",
    403: "Not allowed: another host's listing, an admin-only operation, or (uploads) the listing's host has "
    "reached their photo quota.",
    404: "No such listing or photo (or photo on that listing).",
    413: "Too large: a photo over the per-file limit, too many files, or a body over the request limit.",
    415: "Not an image, or an image format that is not supported.",
    422: "Invalid input: it does not match this schema (`errors` lists each problem), or names something "
    "unknown (an amenity) or unusable (a blank title, an undecodable image).",
    429: "Too many writes (or uploads) with this key in the rate limit's window; retry after `Retry-After` "
    "seconds.",
    503: "Writes are disabled (the server has no API key), the server is busy, or the catalog database cannot "
    "be reached; retry after `Retry-After` seconds.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting each of ``codes`` with the :class:`Problem` body."""
    return {code: {"model": Problem, "description": _ERRORS[code]} for code in codes}


# What each kind of operation can answer besides success (every operation can be refused 503 under load).
LIST = error_responses(422, 503)
# Reads of listings and photos take an optional key (an unpublished listing is seen only with its owner's or an
# admin's): a key that is sent must be valid (401), and a listing hidden from the caller is 404 like a missing one.
LISTINGS = error_responses(401, 422, 503)
READ = error_responses(401, 404, 422, 503)
# Writes can be refused 429 by the per-key rate limits (roomscan.api.ratelimit).
CREATE = error_responses(400, 401, 403, 413, 422, 429, 503)
WRITE = error_responses(400, 401, 403, 404, 413, 422, 429, 503)
DELETE = error_responses(401, 403, 404, 422, 429, 503)
UPLOAD = error_responses(400, 401, 403, 404, 413, 415, 422, 429, 503)
ADMIN_READ = error_responses(401, 403, 422, 503)


class AuditEntryOut(BaseModel):
    id: CatalogId
    at: str = Field(description="when the answer was sent (ISO 8601, UTC)")
    user: str | None = Field(description="the account the request signed in as; null when it was refused first")
    key_prefix: str | None = Field(description="the API key's prefix (`bootstrap` for ROOMSCAN_API_KEY)")
    action: str = Field(examples=["PATCH /api/v1/listings/{listing_id}"])
    target: str | None = Field(examples=["/api/v1/listings/7"])
    remote: str | None = Field(description="the client's address")
    status: int | None = Field(description="the answer's HTTP status")
    detail: str | None = None


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut] = Field(description="newest first")
    next_before: CatalogId | None = Field(
        description="pass as `before` to get the next (older) page; null on the last page"
    )
