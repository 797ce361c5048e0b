"""Photos on the web page: upload (per file, with an account of what was refused), the photo view, thumbnails.

Uploads store each file on its own: one bad file is refused with its reason while the others are kept. The page's
script posts one file per request to ``/listings/{id}/photos/file`` (JSON answer, per-file progress in the
browser); without the script the plain multipart form posts them all to ``/listings/{id}/photos``, which
redirects back to the listing with the same account. The limits of ``uploads.py`` apply to both.
"""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import supervision as sv
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from roomscan.api.deps import ServicesDep, SessionDep
from roomscan.api.pages import listing_error
from roomscan.api.routes.insights import room_name, room_types
from roomscan.api.routes.photos import attach_upload, image_headers, listing_released, served_for
from roomscan.api.schemas import CatalogId
from roomscan.api.sessions import page_can_change, page_viewer
from roomscan.api.uploads import read_uploads, safe_filename
from roomscan.api.web import STATIC_DIR, redirect, render
from roomscan.auth import can_see, require_see_photo
from roomscan.catalog import store
from roomscan.catalog.insights import photo_quality, photo_rooms
from roomscan.catalog.marks import read_served
from roomscan.catalog.models import Listing
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.core import labels_of
from roomscan.detection.image import load_image
from roomscan.errors import NotFoundError
from roomscan.services import Services

router = APIRouter(include_in_schema=False)

# Longest side of the images the page shows: list thumbnails, grid photos, the photo view.
THUMB_SIZES = (160, 480, 1280)


@dataclass(frozen=True)
class FileOutcome:
    """What became of one uploaded file: ``stored``, ``already_on_listing`` (nothing changed) or ``refused``."""

    name: str
    outcome: str
    detail: str
    photo_id: int | None = None
    status: int = status.HTTP_200_OK


async def store_file(
    services: Services, session: Session, listing: Listing, upload: UploadFile
) -> FileOutcome:
    """Read, decode and store one file in its own transaction; a refused file says why and stores nothing."""
    try:
        raw = (await read_uploads([upload], services.settings))[0]  # per-file size limit
    except HTTPException as exc:
        return _refused(safe_filename(upload.filename) or "upload", exc)

    def store_one() -> FileOutcome:
        try:
            added = attach_upload(services, session, listing, raw)
            session.commit()
        except HTTPException as exc:  # not an image, unsupported, too many pixels
            session.rollback()
            return _refused(raw.name, exc)
        except BaseException:
            session.rollback()
            raise
        if not added.newly_attached:
            return FileOutcome(
                raw.name, "already_on_listing", "this listing already has this photo", added.photo_id
            )
        return FileOutcome(raw.name, "stored", "queued for detection", added.photo_id)

    return await run_in_threadpool(store_one)


def _refused(name: str, exc: HTTPException) -> FileOutcome:
    # The reason names the file ("a.pdf: not an image ..."); the account shows the name beside it already.
    return FileOutcome(name, "refused", str(exc.detail).removeprefix(f"{name}: "), status=exc.status_code)


def account(outcomes: list[FileOutcome]) -> dict[str, Any]:
    """An upload's account for the flash note: counts, and each file with what became of it."""
    counts = {
        kind: sum(o.outcome == kind for o in outcomes) for kind in ("stored", "already_on_listing", "refused")
    }
    return {"counts": counts, "files": [[o.name, o.outcome, o.detail] for o in outcomes]}


def account_text(counts: dict[str, int]) -> str:
    parts = [f"{counts.get('stored', 0)} stored"]
    if counts.get("already_on_listing"):
        parts.append(f"{counts['already_on_listing']} already on this listing")
    if counts.get("refused"):
        parts.append(f"{counts['refused']} refused")
    return "Upload: " + ", ".join(parts) + "."


@router.post("/listings/{listing_id}/photos", response_class=HTMLResponse)
async def upload_form(
    request: Request,
    listing_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    files: Annotated[list[UploadFile], File()] = [],  # noqa: B006
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """The plain form (no script): every file stored or refused on its own, then back to the listing."""
    # Database and template work on threads: the event loop keeps serving other requests.
    listing = await run_in_threadpool(listing_released, session, listing_id, None)
    files = [f for f in files if f.filename or f.size]
    try:
        await run_in_threadpool(
            functools.partial(page_can_change, request, services, listing, form_key=api_key, csrf_token=csrf_token)
        )
        if not files:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "choose one or more photos to upload")
        if len(files) > services.settings.max_files_per_upload:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{len(files)} files at once; choose at most {services.settings.max_files_per_upload}",
            )
    except HTTPException as exc:
        message = f"{str(exc.detail).rstrip('.')}. Nothing was uploaded; choose the photos again."
        return await run_in_threadpool(
            listing_error, request, services, session, listing_id, exc.status_code, message
        )
    outcomes = [await store_file(services, session, listing, f) for f in files]
    note = account(outcomes)
    return redirect(f"/listings/{listing_id}", text=account_text(note["counts"]), upload=note)


@router.post("/listings/{listing_id}/photos/file")
async def upload_one(
    request: Request,
    listing_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """One file from the page's script (CSRF token in ``X-CSRF-Token``): JSON ``{name, outcome, detail, photo_id,
    status}``; 401 when not signed in, 403 for a missing token or another host's listing."""
    listing = await run_in_threadpool(listing_released, session, listing_id, None)
    try:
        await run_in_threadpool(
            functools.partial(page_can_change, request, services, listing, form_key=api_key, csrf_token=csrf_token)
        )
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    outcome = await store_file(services, session, listing, file)
    return JSONResponse(asdict(outcome), status_code=outcome.status)


@router.post("/listings/{listing_id}/photos/{photo_id}/delete", response_class=HTMLResponse)
def remove_photo_form(
    request: Request,
    listing_id: CatalogId,
    photo_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """Take a photo off a listing (the amenity roll-up follows); the photo stays for other listings."""
    listing = store.get_listing(session, listing_id)
    try:
        page_can_change(request, services, listing, form_key=api_key, csrf_token=csrf_token)
    except HTTPException as exc:
        return listing_error(request, services, session, listing_id, exc.status_code, exc.detail)
    removed = store.remove_photo(
        session, listing, photo_id, taxonomy=services.taxonomy, model_id=services.model_id
    )
    session.commit()
    store.delete_orphan_files(session, services.photos, removed.deleted)  # no listing uses it any more
    return redirect(f"/listings/{listing_id}", text=f"Photo {photo_id} removed from this listing.")


@router.get("/photos/{photo_id}", response_class=HTMLResponse)
def photo_view(
    request: Request,
    photo_id: CatalogId,
    services: ServicesDep,
    session: SessionDep,
    listing: Annotated[CatalogId | None, Query()] = None,
    amenity: str | None = None,
) -> HTMLResponse:
    """One photo, large, with every box and label drawn over it (``amenity`` highlights its best box), its room
    type scores and its quality."""
    viewer = page_viewer(request)
    photo = store.get_photo(session, photo_id)
    require_see_photo(session, viewer, photo_id)  # 404 when it is only on listings hidden from the reader
    owner = session.get(Listing, listing) if listing is not None else None
    if owner is not None and (photo_id not in {lp.photo_id for lp in owner.photos} or not can_see(viewer, owner)):
        owner = None  # a stale link (the photo was removed from that listing), or a listing hidden from the reader
    dets = store.photo_detections(session, [photo_id], services.model_id, services.taxonomy)[photo_id]
    taxonomy = services.taxonomy
    highlight = taxonomy.resolve(amenity).slug if amenity else None
    boxes = []
    highlighted = False
    assert dets.confidence is not None
    for label, score, (x1, y1, x2, y2) in zip(labels_of(dets), dets.confidence, dets.xyxy, strict=True):
        known = label in taxonomy
        # Detections come best first: the first box of the highlighted amenity is its evidence.
        is_evidence = label == highlight and not highlighted
        highlighted = highlighted or is_evidence
        boxes.append(
            {
                "slug": label,
                "name": taxonomy[label].name if known else label,
                "score": float(score),
                "threshold": taxonomy[label].threshold if known else 0.0,
                "left": _percent(x1, photo.width),
                "top": _percent(y1, photo.height),
                "width": _percent(x2, photo.width) - _percent(x1, photo.width),
                "height": _percent(y2, photo.height) - _percent(y1, photo.height),
                "box": [round(float(v)) for v in (x1, y1, x2, y2)],
                "colour": _colour(taxonomy.index(label) if known else 0),
                "evidence": is_evidence,
                "label_right": _percent(x1, photo.width) > 60,  # keep the caption inside the frame
            }
        )
    rooms = room_types(services)
    return render(
        request,
        "photo.html",
        photo=photo,
        listing=owner,
        boxes=boxes,
        highlight=highlight,
        highlight_name=taxonomy.resolve(highlight).name if highlight else None,
        room=photo_rooms(session, [photo_id], services.model_id).get(photo_id),
        quality=photo_quality(session, [photo_id]).get(photo_id),
        room_name=functools.partial(room_name, rooms),
    )


def _percent(value: float, size: int) -> float:
    return round(100 * min(max(float(value), 0.0), size) / size, 3)


def _colour(class_id: int) -> str:
    """The amenity's colour in the annotated images (supervision's default palette), as ``#rrggbb``."""
    return sv.ColorPalette.DEFAULT.by_idx(class_id).as_hex()


@router.get("/photos/{photo_id}/{size}.jpg", response_class=Response)
def thumbnail(
    request: Request, photo_id: CatalogId, size: int, services: ServicesDep, session: SessionDep
) -> Response:
    """The photo upright (EXIF applied, as its boxes are), its longest side at most ``size`` px, as JPEG; made from
    the marked copy for readers other than its hosts and admins where the server publishes marked copies."""
    if size not in THUMB_SIZES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"thumbnail sizes are {', '.join(map(str, THUMB_SIZES))}"
        )
    photo = store.get_photo(session, photo_id)
    viewer = page_viewer(request)
    # Shared caches may keep what anyone may see; a photo only on unpublished listings stays in the browser.
    public = require_see_photo(session, viewer, photo_id)
    # Made from the copy this reader may have: the published marked copy, or the original (catalog.marks).
    served = served_for(services, session, photo, viewer)
    try:
        data = _resized(services.photos, served.sha256, size)
    except NotFoundError:
        if not served.marked:
            raise
        _, served = read_served(session, services.photos, photo, served)  # the copy is gone: forget it
        data = _resized(services.photos, served.sha256, size)
    headers = image_headers(services, served, public, vary="Cookie")
    headers["ETag"] = f'"{served.sha256[:32]}-{size}"'
    return Response(data, media_type="image/jpeg", headers=headers)


# A page of 50 listings asks for 50 thumbnails at once: keep recent ones (about 10-100 KB each) in memory.
@functools.lru_cache(maxsize=128)
def _resized(photos: PhotoStore, sha256: str, size: int) -> bytes:
    image = load_image(photos.get(sha256), name=f"photo {sha256[:12]}").image
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


@router.get("/favicon.ico", response_class=Response)
def favicon() -> Response:
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )
