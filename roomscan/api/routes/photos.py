"""Photo upload to a listing, and photo read-back: metadata with detections, the image (original, or the published
marked copy: ``catalog.marks``) and the annotated image."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from roomscan.api.deps import PrincipalDep, ServicesDep, SessionDep, ViewerDep, editable_listing
from roomscan.api.routes.insights import quality_out, room_out, room_types
from roomscan.api.schemas import (
    DELETE,
    READ,
    UPLOAD,
    CatalogId,
    DetectionOut,
    PhotoAccepted,
    PhotoOut,
    PhotosAccepted,
)
from roomscan.api.uploads import RawUpload, decode_upload, read_uploads
from roomscan.auth import Principal, check_photo_quota, require_see_photo
from roomscan.catalog import store
from roomscan.catalog.insights import photo_quality, photo_rooms
from roomscan.catalog.marks import Served, publishing, read_served, served_copy
from roomscan.catalog.models import Listing, Photo, PhotoJob
from roomscan.detection.core import detections_to_records
from roomscan.detection.draw import annotate
from roomscan.detection.image import load_image
from roomscan.errors import PermissionDeniedError
from roomscan.services import Services

router = APIRouter(tags=["photos"])

_MEDIA = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
          "BMP": "image/bmp", "TIFF": "image/tiff"}
# The stored bytes, in whichever of these types they were uploaded.
_IMAGE_TYPES = sorted({*_MEDIA.values(), "application/octet-stream"})
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the photo's bytes", "content": {media: {} for media in _IMAGE_TYPES}}
}


def listing_released(session: Session, listing_id: int, principal: Principal | None) -> Listing:
    """The listing, if ``principal`` may change it (404 if missing, 403 if another host's; ``None``: the caller
    checks), with the read's transaction ended so its connection returns to the pool while an async handler
    awaits the upload's bytes. Blocking: call it from a worker thread."""
    listing = store.get_listing(session, listing_id) if principal is None else editable_listing(
        principal, session, listing_id)
    session.commit()  # objects stay usable (expire_on_commit=False); the next query takes a connection again
    return listing


def visible_photo(viewer: Principal | None, session: Session, photo_id: int) -> Photo:
    """The photo, unless every listing showing it is hidden from ``viewer`` (then 404, as for a missing one)."""
    photo = store.get_photo(session, photo_id)
    require_see_photo(session, viewer, photo_id)
    return photo


def photo_quota(services: Services, session: Session, listing: Listing, adding: int) -> None:
    """403 if ``adding`` more photos would take the listing's host past ``Settings.host_photo_quota``
    (``roomscan.auth.check_photo_quota``). Blocking."""
    try:
        check_photo_quota(session, listing, adding, services.settings.host_photo_quota)
    except PermissionDeniedError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


def attach_upload(services: Services, session: Session, listing: Listing, upload: RawUpload) -> store.AddedPhoto:
    """Decode one read upload (HTTPException when it is not a usable image, 403 past the host's photo quota) and
    attach it to ``listing`` through ``store.add_photo``, the one attach path. Blocking: call it from a worker
    thread. Not committed."""
    photo_quota(services, session, listing, 1)  # before decoding: a refused file costs one count query
    photo = decode_upload(upload, services.settings)
    return store.add_photo(
        session,
        services.photos,
        listing,
        photo,
        model_id=services.model_id,
        taxonomy=services.taxonomy,
        filename=upload.filename,
    )


async def accept_photos(
    services: Services, session: Session, listing_id: int, files: list[UploadFile], principal: Principal
) -> PhotosAccepted:
    """Validate and store every file, and queue detection, in one transaction: all of them or none.

    Decoding and storing run in a worker thread (the event loop keeps serving), one photo at a time, so only one
    decoded image is in memory at once; a bad file rolls back the photos stored before it.
    """
    # Every database call runs on a thread (a blocked event loop would stall every other request), and no
    # connection is held while the uploads are read.
    listing = await run_in_threadpool(listing_released, session, listing_id, principal)  # 404/403 first
    # The whole upload within the host's photo quota, or none of it (each file is checked again as it is stored).
    await run_in_threadpool(photo_quota, services, session, listing, len(files))
    await run_in_threadpool(session.commit)  # no connection held while the uploads are read
    raw = await read_uploads(files, services.settings)

    def store_all() -> list[PhotoAccepted]:
        accepted = []
        try:
            for upload in raw:
                added = attach_upload(services, session, listing, upload)
                accepted.append(
                    PhotoAccepted(
                        photo_id=added.photo_id,
                        sha256=added.sha256,
                        filename=added.filename,
                        duplicate=not added.new_photo,
                        already_on_listing=not added.newly_attached,
                        job_state=added.job_state,
                    )
                )
            session.commit()
        except BaseException:
            session.rollback()  # files already written stay: they are content-addressed and harmless
            raise
        return accepted

    return PhotosAccepted(listing_id=listing.id, photos=await run_in_threadpool(store_all))


@router.post(
    "/listings/{listing_id}/photos",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PhotosAccepted,
    responses=UPLOAD,
)
async def upload_photos(
    listing_id: CatalogId,
    files: Annotated[list[UploadFile], File(description="one or more photos (JPEG, PNG, WebP)")],
    principal: PrincipalDep,
    services: ServicesDep,
    session: SessionDep,
) -> PhotosAccepted:
    """Add photos to a listing. Detection runs in the background: poll ``GET /listings/{id}/amenities``.

    The type is sniffed from the bytes, not the file name; every file must decode, or nothing is stored.
    ``duplicate: true`` when the bytes were already stored (their detections are reused at once); uploading a
    photo the listing already has changes nothing (``already_on_listing: true``).
    """
    return await accept_photos(services, session, listing_id, files, principal)


@router.delete(
    "/listings/{listing_id}/photos/{photo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=DELETE,
)
def remove_photo(
    listing_id: CatalogId, photo_id: CatalogId, principal: PrincipalDep, services: ServicesDep, session: SessionDep
) -> Response:
    """Take a photo off a listing; its amenities roll up again without it. A photo no other listing uses is
    deleted with its detections."""
    listing = editable_listing(principal, session, listing_id)
    removed = store.remove_photo(session, listing, photo_id, taxonomy=services.taxonomy, model_id=services.model_id)
    session.commit()
    store.delete_orphan_files(session, services.photos, removed.deleted)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/photos/{photo_id}", response_model=PhotoOut, responses=READ)
def get_photo(photo_id: CatalogId, services: ServicesDep, session: SessionDep, viewer: ViewerDep) -> PhotoOut:
    """A photo's size, processing state, detections and room type under the served model, and its quality (404
    when it is only on listings hidden from the caller)."""
    photo = visible_photo(viewer, session, photo_id)
    job = session.scalar(
        select(PhotoJob).where(PhotoJob.photo_id == photo_id, PhotoJob.model_id == services.model_id)
    )
    dets = store.photo_detections(session, [photo_id], services.model_id)[photo_id]
    return PhotoOut(
        id=photo.id,
        sha256=photo.sha256,
        format=photo.format,
        width=photo.width,
        height=photo.height,
        model=services.model_key,
        job_state=job.state if job else None,
        error=job.error if job else None,
        detections=[DetectionOut(label=r["label"], score=r["score"], box=r["box"]) for r in detections_to_records(dets)],
        room=room_out(photo_rooms(session, [photo_id], services.model_id).get(photo_id), room_types(services)),
        quality=quality_out(photo_quality(session, [photo_id]).get(photo_id)),
    )


@router.get("/photos/{photo_id}/image", response_class=Response, responses={**_IMAGE, **READ})
def get_photo_image(
    photo_id: CatalogId,
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    viewer: ViewerDep,
    original: Annotated[bool, Query(description="the original file even where a marked copy is published "
                                                "(the photo's hosts and admins only)")] = False,
) -> Response:
    """The photo exactly as uploaded; where the server publishes marked copies (``ROOMSCAN_MARK_KEY``), its
    marked copy to everyone but the hosts of its listings and admins, once ``roomscan photos mark`` made it."""
    photo = store.get_photo(session, photo_id)
    public = require_see_photo(session, viewer, photo_id)
    data, served = serve_photo(services, session, photo, viewer, original=original)
    headers = image_headers(services, served, public, vary="X-API-Key")
    if headers.get("ETag") and headers["ETag"] in request.headers.get("if-none-match", ""):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(data, media_type=_MEDIA.get(photo.format, "application/octet-stream"), headers=headers)


def serve_photo(
    services: Services, session: Session, photo: Photo, viewer: Principal | None, *, original: bool = False
) -> tuple[bytes, Served]:
    """The bytes a reader's image URL gives (:func:`served_for`). Blocking."""
    return read_served(session, services.photos, photo, served_for(services, session, photo, viewer, original))


def served_for(
    services: Services, session: Session, photo: Photo, viewer: Principal | None, original: bool = False
) -> Served:
    """Which copy a reader's image URL gives (``catalog.marks.served_copy``): the original, or the published
    marked copy. Visibility is checked before. Blocking."""
    return served_copy(session, photo, publishing(services.settings), original=original,
                       user_id=viewer.user_id if viewer else None, is_admin=bool(viewer and viewer.is_admin))


def image_headers(services: Services, served: Served, public: bool, *, vary: str) -> dict[str, str]:
    """Cache headers that never let a cache give one reader's copy to another: without marked copies a photo id
    names the same bytes for ever; with them the answer depends on who asks (``Vary``) and changes when the photo
    is marked (revalidated by ``ETag``, the served bytes' SHA-256). Shared caches keep only what anyone may get."""
    if not services.settings.publishes_marked:
        return {"Cache-Control": f"{'public' if public else 'private'}, max-age=31536000, immutable"}
    scope = "public" if public and not served.personal else "private"
    # A marked copy changes only with the key; an original served to readers is replaced once marked.
    age = "max-age=3600" if served.marked else "no-cache"
    return {"Cache-Control": f"{scope}, {age}", "ETag": f'"{served.sha256}"', "Vary": vary}


@router.get(
    "/photos/{photo_id}/annotated",
    response_class=Response,
    responses={200: {"description": "JPEG", "content": {"image/jpeg": {}}}, **READ},
)
def get_annotated(photo_id: CatalogId, services: ServicesDep, session: SessionDep, viewer: ViewerDep) -> Response:
    """The photo (upright) with the served model's boxes and labels drawn, as JPEG."""
    photo = visible_photo(viewer, session, photo_id)
    dets = store.photo_detections(session, [photo_id], services.model_id, services.taxonomy)[photo_id]
    data, _ = serve_photo(services, session, photo, viewer)  # drawn on the copy this reader may have
    image = load_image(data, name=f"photo {photo_id}").image
    drawn = annotate(image, dets, services.taxonomy)
    buf = io.BytesIO()
    drawn.save(buf, "JPEG", quality=88)
    return Response(buf.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "no-cache"})
