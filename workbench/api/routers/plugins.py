"""MCP plugins: register (admins only: a stdio plugin runs a command on the server host), list, show."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.runtime import plugins
from workbench.security.roles import Permission
from workbench.security.tenants import Principal

router = APIRouter(tags=["runtime"])


@router.post("/plugins", status_code=201)
async def register_plugin(
    request: Request,
    spec: dict[str, Any] = Body(..., description="PluginSpec: name, version, transport (command or url), scopes, allowed_agents."),
    principal: Principal = Depends(require(Permission.PLUGINS_WRITE)),
) -> plugins.PluginInfo:
    """Register a plugin version; its tools are discovered with the MCP SDK's list_tools."""
    info = await run_in_threadpool(plugins.register_plugin, request.app.state.services, principal.tenant_id, spec)
    request.state.audit_target = f"plugin:{info.name}@{info.version}"
    return info


@router.get("/plugins")
async def list_plugins(request: Request, principal: Principal = Depends(require(Permission.READ))) -> list[plugins.PluginInfo]:
    """Every plugin version of the tenant."""
    return await run_in_threadpool(plugins.list_plugins, request.app.state.services, principal.tenant_id)


@router.get("/plugins/{name}")
async def get_plugin(
    name: str, request: Request, version: str | None = None, principal: Principal = Depends(require(Permission.READ))
) -> plugins.PluginInfo:
    """A plugin's newest version, or ``?version=`` a given one."""
    return await run_in_threadpool(plugins.get_plugin, request.app.state.services, principal.tenant_id, name, version)
