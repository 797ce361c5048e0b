"""``POST /receipts``: receipt photos in, structured expense data out (read synchronously, nothing stored)."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from roomscan.api.deps import ApiKeyDep, ServicesDep
from roomscan.api.schemas import Text, error_responses
from roomscan.api.uploads import read_images
from roomscan.errors import RoomscanError

router = APIRouter(prefix="/receipts", tags=["receipts"])

_readers: dict[tuple[str | None, str | None], Any] = {}
_lock = threading.Lock()


def get_reader(engine: str | None = None, date_order: str | None = None):  # type: ignore[no-untyped-def]
    """One :class:`~roomscan.receipts.ReceiptReader` per (engine, date order), loaded on first use and reused."""
    from roomscan.receipts import ReceiptReader

    key = (engine, date_order)
    with _lock:
        if key not in _readers:
            try:
                _readers[key] = ReceiptReader(engine, date_order=date_order)
            except ValueError as exc:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return _readers[key]


async def uploaded(files: list[UploadFile] | None, file: UploadFile | None) -> list[UploadFile]:
    chosen = [f for f in (files or []) + ([file] if file else []) if f.filename or f.size]
    if not chosen:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "no files: send receipt photos in the multipart field 'files' (or 'file')",
        )
    return chosen


@router.post("", dependencies=[ApiKeyDep], responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503))
async def read_receipts(
    services: ServicesDep,
    files: Annotated[list[UploadFile] | None, File(description="receipt photos (JPEG, PNG, WebP)")] = None,
    file: Annotated[UploadFile | None, File(description="one receipt photo")] = None,
    engine: Annotated[Text | None, Query(description="rapidocr or tesseract")] = None,
    date_order: Annotated[str | None, Query(pattern="^(dmy|mdy)$", description="for ambiguous dates")] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Read each photo; returns ``{"receipts": [...]}`` in upload order (the JSON of ``roomscan receipt read``).

    Uses the photo-upload limits and API key. A photo with no readable text gives an empty receipt (total
    ``null``, confidences 0); a file that is not an image is refused with 415/422 before any is read.
    """
    uploads = await read_images(await uploaded(files, file), services.settings)
    try:
        reader = await run_in_threadpool(get_reader, engine, date_order)  # first use loads the engine
        receipts = []
        for upload in uploads:
            receipt = await run_in_threadpool(reader.read, upload.photo)
            data = receipt.to_dict()
            data["source"] = upload.filename
            receipts.append(data)
    except RoomscanError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return {"receipts": receipts}
