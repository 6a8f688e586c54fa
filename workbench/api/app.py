"""The FastAPI application: middleware (logs, metrics, audit), error mapping and routers."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench.errors import OverloadedError, WorkbenchError
from workbench.services import Services

log = logging.getLogger("workbench.api")
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def create_app(services: Services) -> FastAPI:
    """Build the REST API over one ``Services``."""
    from workbench.api.routers import admin, compute, data, environment, evals, health, models, plugins, runtime, train

    app = FastAPI(
        title="Agent Factory Workbench",
        version="0.1.0",
        description="Every call needs `Authorization: Bearer <api key>`; every record belongs to the key's tenant.",
    )
    app.state.services = services

    @app.middleware("http")
    async def observe(request: Request, call_next):
        from workbench.telemetry import HTTP_LATENCY, HTTP_REQUESTS

        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error", extra={"method": request.method, "path": request.url.path})
            response = JSONResponse({"error": "internal_error", "detail": "internal error; see server logs"}, 500)
        elapsed = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        principal = getattr(request.state, "principal", None)
        if request.method in _MUTATING and route not in ("/healthz", "/metrics"):
            await asyncio.wrap_future(services.audit_log.submit(
                actor=principal.actor if principal else "anonymous",
                tenant_id=principal.tenant_id if principal else None,
                action=f"{request.method} {route}",
                target=getattr(request.state, "audit_target", None) or _path_target(request),
                outcome=_outcome(response.status_code),
                detail={"status": response.status_code, **getattr(request.state, "audit_detail", {})},
            ))
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        log.info(
            "request",
            extra={"method": request.method, "route": route, "status": response.status_code,
                   "ms": round(elapsed * 1000, 2), "tenant": principal.tenant_id if principal else None},
        )
        return response

    @app.exception_handler(WorkbenchError)
    async def workbench_error(_request: Request, exc: WorkbenchError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, OverloadedError) else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        # Never echo the submitted input: it may carry personal data.
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "(body)", "reason": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "validation_failed", "field": errors[0]["field"], "detail": errors[0]["reason"], "errors": errors},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": _outcome(exc.status_code), "detail": exc.detail}, exc.status_code, headers=exc.headers)

    app.include_router(health.router)
    app.include_router(data.router)
    app.include_router(environment.router)
    app.include_router(plugins.router)
    app.include_router(models.router)
    app.include_router(evals.router)
    app.include_router(runtime.router)
    app.include_router(train.router)
    app.include_router(compute.router)
    app.include_router(admin.router)
    return app


def _path_target(request: Request) -> str | None:
    params = request.path_params
    return ",".join(f"{k}={v}" for k, v in params.items()) or None


def _outcome(status: int) -> str:
    return {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large",
            422: "invalid", 429: "throttled", 503: "overloaded"}.get(status, "ok" if status < 400 else "error")


def metrics_response() -> Response:
    """Prometheus exposition of the process's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
