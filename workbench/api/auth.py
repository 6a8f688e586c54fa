"""Bearer-key authentication and permission checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from workbench.security.roles import Permission, role_allows
from workbench.security.tenants import Principal


async def current_principal(request: Request) -> Principal:
    """The caller behind ``Authorization: Bearer KEY``; 401 when the key is missing or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(401, "missing bearer key: send 'Authorization: Bearer <api key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    services = request.app.state.services
    principal = await run_in_threadpool(services.keys.authenticate, key.strip())
    if principal is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable:
    """A dependency that lets the call through only if the key's role holds ``permission`` (else 403)."""

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not role_allows(principal.role, permission):
            raise HTTPException(403, f"role {principal.role.value!r} lacks permission {permission.value!r}")
        return principal

    return check
