"""``/healthz``: the process is alive (never touches the database). ``/readyz``: the catalog answers too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from roomscan import __version__
from roomscan.api.deps import ServicesDep
from roomscan.api.schemas import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(services: ServicesDep) -> dict[str, object]:
    """Liveness: answers while the process runs, even when the database is down or the server is busy."""
    return {"status": "ok", "version": __version__, "model": services.model_key}


@router.get(
    "/readyz", responses={503: {"model": Problem, "description": "the catalog database cannot be reached"}}
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the catalog database answers; ``pending_jobs`` is the detection backlog."""

    def probe() -> int:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
        return services.worker.pending_count()

    try:
        pending = await run_in_threadpool(probe)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the catalog means "not ready"
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
        return JSONResponse(
            {"status": "unavailable", "detail": f"the catalog database cannot be reached: {reason}"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse({"status": "ready", "model": services.model_key, "pending_jobs": pending})
