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


class ListingUpdate(BaseModel):
    """Fields to change; a field left out stays as it is (``claimed_amenities: []`` withdraws every claim)."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    claimed_amenities: list[Text] | None = Field(
        default=None, max_length=100, description="The full new set of claimed amenities (slugs, names or synonyms)."
    )
    published: bool | None = Field(
        default=None, description="Publish (true) or unpublish (false): an unpublished listing leaves search at once."
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


class SearchHitOut(BaseModel):
    listing_id: CatalogId
    title: str
    amenities: dict[str, float]


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
