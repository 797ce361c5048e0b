"""``/healthz``: the process is alive (never touches the database). ``/readyz``: the catalog and the photo store
answer too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from roomscan import __version__
from roomscan.api.deps import ServicesDep
from roomscan.api.schemas import Problem
from roomscan.catalog.photos import PhotoStore

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(services: ServicesDep) -> dict[str, object]:
    """Liveness: answers while the process runs, even when the database is down or the server is busy."""
    return {"status": "ok", "version": __version__, "model": services.model_key}


@router.get(
    "/readyz",
    responses={503: {"model": Problem, "description": "the catalog database or the photo store cannot be reached"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the catalog database and the photo store answer; ``pending_jobs`` is the detection backlog."""

    def probe() -> int:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
        return services.worker.pending_count()

    try:
        pending = await run_in_threadpool(probe)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the catalog means "not ready"
        return _unready(f"the catalog database cannot be reached: {_reason(getattr(exc, 'orig', exc))}")
    try:
        await run_in_threadpool(probe_photo_store, services.photos)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the photo store means "not ready"
        return _unready(f"the photo store {services.photos} cannot be reached: {_reason(exc)}")
    return JSONResponse({"status": "ready", "model": services.model_key, "pending_jobs": pending})


def probe_photo_store(photos: PhotoStore) -> None:
    """Raise unless ``photos`` answers a cheap request (``PhotoStore.probe``: a local directory must be listable
    and writable; an object store answers one small listing of its prefix, a missing bucket fails)."""
    photos.probe()


def _reason(exc: object) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _unready(detail: str) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "detail": detail}, status_code=503, headers={"Retry-After": "2"}
    )
