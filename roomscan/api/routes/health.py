"""``/healthz``: liveness plus what is served."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from roomscan import __version__
from roomscan.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, object]:
    with services.sessions() as session:
        session.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "version": __version__,
        "model": services.model_key,
        "pending_jobs": services.worker.pending_count(),
    }
