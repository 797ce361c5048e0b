"""The receipt page: upload a photo, see the fields beside the image with every word's box drawn, download them.

Nothing is stored between requests, so the downloads travel in the page itself: the result as JSON and as the
CSV row ``roomscan receipt batch`` writes, each a ``data:`` link with a file name (no script needed).
"""

from __future__ import annotations

import base64
import functools
import io
import json
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from roomscan.api.deps import ServicesDep
from roomscan.api.routes.receipts import get_reader, uploaded
from roomscan.api.sessions import page_principal
from roomscan.api.uploads import read_images
from roomscan.api.web import render
from roomscan.errors import RoomscanError

router = APIRouter(include_in_schema=False)

# The one-value fields as a person reads them (the JSON keys stay as they are).
FIELD_LABELS = {
    "merchant": "Merchant",
    "address": "Address",
    "phone": "Phone",
    "date": "Date",
    "time": "Time",
    "currency": "Currency",
    "subtotal": "Subtotal",
    "tax": "Tax",
    "tip": "Tip",
    "total": "Total",
    "payment_method": "Payment method",
}


def downloads(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The result as JSON and CSV ``data:`` links, named after the uploaded file (``lunch.receipt.json``)."""
    from roomscan.receipts.export import csv_row, to_csv

    stem = PurePath(result.get("source") or "receipt").stem or "receipt"
    as_json = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    as_csv = to_csv([csv_row(result, result.get("source"))])
    return {
        "json": {
            "href": "data:application/json;charset=utf-8," + quote(as_json),
            "name": f"{stem}.receipt.json",
        },
        "csv": {"href": "data:text/csv;charset=utf-8," + quote(as_csv), "name": f"{stem}.receipt.csv"},
    }


@router.get("/receipts", response_class=HTMLResponse)
def receipt_form(request: Request) -> HTMLResponse:
    return render(request, "receipt.html", result=None, image_uri=None, labels=FIELD_LABELS)


@router.post("/receipts", response_class=HTMLResponse)
async def receipt_upload(
    request: Request,
    services: ServicesDep,
    file: Annotated[UploadFile | None, File()] = None,
    engine: Annotated[str | None, Form()] = None,
    api_key: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        await run_in_threadpool(
            functools.partial(page_principal, request, services, form_key=api_key, csrf_token=csrf_token)
        )
        uploads = await read_images(await uploaded(None, file), services.settings)
        # Loading an engine (first use) and reading are blocking: on a thread, never on the event loop.
        reader = await run_in_threadpool(get_reader, engine or None)
        scan = await run_in_threadpool(reader.scan, uploads[0].photo)
    except HTTPException as exc:
        return render(
            request,
            "receipt.html",
            exc.status_code,
            error=exc.detail,
            result=None,
            image_uri=None,
            labels=FIELD_LABELS,
        )
    except RoomscanError as exc:
        return render(
            request, "receipt.html", 422, error=str(exc), result=None, image_uri=None, labels=FIELD_LABELS
        )
    image_uri = await run_in_threadpool(_annotated_uri, scan)
    result = scan.receipt.to_dict()
    result["source"] = uploads[0].filename
    page = render(
        request,
        "receipt.html",
        result=result,
        image_uri=image_uri,
        labels=FIELD_LABELS,
        downloads=downloads(result),
    )
    return page


def _annotated_uri(scan) -> str:  # type: ignore[no-untyped-def]
    """The cleaned-up receipt with its word boxes drawn, as a PNG data URI (blocking: call it on a thread)."""
    from roomscan.receipts.pipeline import annotate_words

    buffer = io.BytesIO()
    annotate_words(scan.image, scan.words).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
