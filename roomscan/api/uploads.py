"""Upload handling shared by the photo endpoints and the web page: limits, sniffing, validation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import HTTPException, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roomscan.detection.image import LoadedImage, load_image
from roomscan.errors import ImageError
from roomscan.settings import Settings

_UNSAFE = re.compile(r"[^\w.\- ()]+")


def safe_filename(name: str | None) -> str | None:
    """The base name of an upload, stripped of directories and odd characters (it is only ever a label)."""
    if not name:
        return None
    base = re.split(r"[\\/]", name)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")[:255]
    return cleaned or None


@dataclass(frozen=True)
class RawUpload:
    """An uploaded file's bytes, within the size limit, not yet decoded."""

    name: str
    """Label for messages: the cleaned file name, or ``upload``."""
    filename: str | None
    data: bytes


@dataclass(frozen=True)
class ValidatedUpload:
    photo: LoadedImage
    filename: str | None


# Which status a refused image gets, by ImageError.kind.
_IMAGE_STATUS = {
    "too_large": status.HTTP_413_CONTENT_TOO_LARGE,
    "not_image": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "unsupported": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
}


async def read_uploads(files: list[UploadFile], settings: Settings) -> list[RawUpload]:
    """Read every uploaded file's bytes, enforcing the file-count and per-file size limits."""
    if not files:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no files: send photos in the multipart field 'files'")
    if len(files) > settings.max_files_per_upload:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(files)} files in one request; send at most {settings.max_files_per_upload} at a time",
        )
    out: list[RawUpload] = []
    limit = settings.max_upload_bytes
    for upload in files:
        filename = safe_filename(upload.filename)
        name = filename or "upload"
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{name}: larger than the {limit // (1024 * 1024)} MB limit per photo; resize or compress it",
            )
        out.append(RawUpload(name, filename, data))
    return out


def decode_upload(upload: RawUpload, settings: Settings) -> LoadedImage:
    """Decode one upload (blocking: call it from a worker thread); a bad image becomes a 4xx naming it."""
    try:
        return load_image(upload.data, name=upload.name, max_pixels=settings.max_pixels)
    except ImageError as exc:
        raise HTTPException(_IMAGE_STATUS.get(exc.kind, status.HTTP_422_UNPROCESSABLE_CONTENT), str(exc)) from exc


async def read_images(files: list[UploadFile], settings: Settings) -> list[ValidatedUpload]:
    """Read and decode every uploaded file (off the event loop); refuse the whole request if any one is bad."""
    raw = await read_uploads(files, settings)

    def decode_all() -> list[ValidatedUpload]:
        return [ValidatedUpload(decode_upload(r, settings), r.filename) for r in raw]

    return await run_in_threadpool(decode_all)


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before they are buffered.

    Checks ``Content-Length`` up front and counts streamed bytes for chunked requests.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = (
            b'{"detail":"request body is larger than the server accepts (%d MB); send fewer or smaller photos"}'
            % (self.max_bytes // (1024 * 1024))
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
