"""The receipt page: upload a photo, see the fields beside the image with every word's box drawn."""

from __future__ import annotations

import base64
import io
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from roomscan.api.deps import ServicesDep, check_api_key
from roomscan.api.routes.receipts import get_reader, uploaded
from roomscan.api.uploads import read_images
from roomscan.api.web import key_from, remember_key, render
from roomscan.errors import RoomscanError

router = APIRouter(include_in_schema=False)


@router.get("/receipts", response_class=HTMLResponse)
def receipt_form(request: Request) -> HTMLResponse:
    return render(request, "receipt.html", result=None, image_uri=None)


@router.post("/receipts", response_class=HTMLResponse)
async def receipt_upload(
    request: Request,
    services: ServicesDep,
    file: Annotated[UploadFile | None, File()] = None,
    engine: Annotated[str | None, Form()] = None,
    api_key: Annotated[str | None, Form()] = None,
) -> Response:
    key = key_from(request, api_key)
    try:
        check_api_key(services, key)
        uploads = await read_images(await uploaded(None, file), services.settings)
        scan = await run_in_threadpool(get_reader(engine or None).scan, uploads[0].photo)
    except HTTPException as exc:
        return render(
            request, "receipt.html", exc.status_code, error=exc.detail, result=None, image_uri=None
        )
    except RoomscanError as exc:
        return render(request, "receipt.html", 422, error=str(exc), result=None, image_uri=None)
    from roomscan.receipts.pipeline import annotate_words

    buffer = io.BytesIO()
    annotate_words(scan.image, scan.words).save(buffer, "PNG")
    image_uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    result = scan.receipt.to_dict()
    result["source"] = uploads[0].filename
    return remember_key(render(request, "receipt.html", result=result, image_uri=image_uri), key)
