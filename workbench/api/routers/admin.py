"""Tenant administration: who am I, keys, audit log, maintenance."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import current_principal, require
from workbench.security import audit, tenants
from workbench.security.roles import ROLE_PERMISSIONS, Permission, Role
from workbench.security.tenants import Principal

router = APIRouter(tags=["admin"])


@router.get("/whoami")
async def whoami(principal: Principal = Depends(current_principal)) -> dict:
    """The caller's key id, tenant, role and permissions."""
    return {"key_id": principal.key_id, "tenant_id": principal.tenant_id, "role": principal.role.value,
            "permissions": sorted(p.value for p in ROLE_PERMISSIONS[principal.role])}


class KeyIn(BaseModel):
    """A key to issue in the caller's tenant."""

    role: Role
    name: str | None = Field(None, max_length=200)


@router.post("/keys", status_code=201)
async def create_key(body: KeyIn, request: Request, principal: Principal = Depends(require(Permission.KEYS_MANAGE))) -> dict:
    """Issue an API key of a role in the caller's tenant; the key is shown only in this response."""
    record, key = await run_in_threadpool(
        tenants.create_key, request.app.state.services.control, principal.tenant_id, body.role, body.name
    )
    request.state.audit_target = f"key:{record.id}"
    return {"api_key": key, "key_id": record.id, "role": record.role}


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, request: Request, principal: Principal = Depends(require(Permission.KEYS_MANAGE))) -> None:
    """Revoke a key of the caller's tenant."""
    services = request.app.state.services
    await run_in_threadpool(tenants.revoke_key, services.control, principal.tenant_id, key_id)
    services.keys.forget(key_id)


@router.get("/audit")
async def get_audit(
    request: Request,
    since: datetime | None = None,
    action: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
    principal: Principal = Depends(require(Permission.AUDIT_READ)),
) -> list[dict]:
    """The tenant's audit records (actor, action, target, outcome, time), newest first. Admins only."""
    return await run_in_threadpool(
        audit.list_audit, request.app.state.services.control, principal.tenant_id, since=since, action=action, limit=limit
    )


@router.post("/maintenance")
async def maintenance(request: Request, _: Principal = Depends(require(Permission.MAINTENANCE))) -> dict:
    """Compact the event lake, refresh its indexes, drop versions older than an hour, purge expired audit records."""
    return await run_in_threadpool(request.app.state.services.maintain, timedelta(hours=1))
