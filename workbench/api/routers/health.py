"""Liveness and Prometheus metrics (no authentication, no tenant data)."""

from fastapi import APIRouter, Request

from workbench.api.app import metrics_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict:
    """Liveness plus the ingest queue depth."""
    return {"status": "ok", "ingest_pending": request.app.state.services.ingest_pending}


@router.get("/metrics")
async def metrics():
    """Prometheus text exposition."""
    return metrics_response()
