"""Compute Factory endpoints: allocations of pool slots, usage and cost, pool sizes, prices and nodes."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.compute import allocations, nodes, scaling, usage
from workbench.compute.dagster_home import check_pool_name
from workbench.errors import ValidationFailed
from workbench.security.roles import Permission, role_allows
from workbench.security.tenants import Principal, get_tenant


@asynccontextmanager
async def _lifespan(app: FastAPI):
    services = app.state.services
    # Allocations a previous server left queued or running are reported failed and their slots freed.
    await run_in_threadpool(allocations.recover_interrupted, services)
    sampler = None
    if services.settings.node_sample_interval_s > 0:
        sampler = nodes.NodeSampler(services, services.settings.node_sample_interval_s)
        sampler.start()  # here, in the server's main thread, so it can watch SIGTERM
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()


router = APIRouter(tags=["compute"], lifespan=_lifespan)


@router.post("/compute/allocate", status_code=201)
async def allocate(body: allocations.AllocationRequest, request: Request,
                   principal: Principal = Depends(require(Permission.COMPUTE_WRITE))) -> allocations.AllocationInfo:
    """Hold a slot of a pool (``gpu-<gpu_type>``, ``cpu``, or ``pool``) for ``duration`` seconds.

    Answers at once with the allocation ``queued``; it turns ``running`` when Dagster grants the
    pool a free slot (higher ``priority`` first) and ``expired`` after ``duration`` seconds.
    """
    info = await run_in_threadpool(allocations.allocate, request.app.state.services, principal.tenant_id, body)
    request.state.audit_target = f"allocation:{info.id}"
    request.state.audit_detail = {"pool": info.pool, "count": info.count, "duration": info.duration}
    return info


@router.get("/compute/allocations")
async def list_allocations(request: Request, status: str | None = None, pool: str | None = None,
                           limit: int = Query(100, ge=1, le=1000),
                           principal: Principal = Depends(require(Permission.READ))) -> list[allocations.AllocationInfo]:  # fmt: skip
    """The tenant's allocations, newest first (filter by ``status`` and ``pool``)."""
    return await run_in_threadpool(allocations.list_allocations, request.app.state.services, principal.tenant_id,
                                   status, pool, limit)  # fmt: skip


@router.get("/compute/allocations/{allocation_id}")
async def get_allocation(allocation_id: str, request: Request,
                         principal: Principal = Depends(require(Permission.READ))) -> allocations.AllocationInfo:
    """One allocation: status, pool, times, held seconds and Dagster run id."""
    return await run_in_threadpool(allocations.get_allocation, request.app.state.services, principal.tenant_id,
                                   allocation_id)  # fmt: skip


@router.post("/compute/allocations/{allocation_id}/release")
async def release(allocation_id: str, request: Request,
                  principal: Principal = Depends(require(Permission.COMPUTE_WRITE))) -> allocations.AllocationInfo:
    """End an allocation early: its slot goes to the next queued one (409 if it already ended)."""
    request.state.audit_target = f"allocation:{allocation_id}"
    return await run_in_threadpool(allocations.release, request.app.state.services, principal.tenant_id,
                                   allocation_id, actor=principal.actor)  # fmt: skip


@router.get("/compute/usage")
async def get_usage(request: Request,
                    tenant: str | None = Query(None, description="A tenant id, or 'all'; other tenants need compute:admin."),
                    principal: Principal = Depends(require(Permission.READ))) -> usage.UsageReport:  # fmt: skip
    """CPU and GPU seconds, cost, queued and running per tenant and pool (allocations and training jobs)."""
    services = request.app.state.services
    if tenant is not None and tenant != principal.tenant_id:
        if not role_allows(principal.role, Permission.COMPUTE_ADMIN):
            raise HTTPException(403, f"role {principal.role.value!r} lacks permission "
                                     f"{Permission.COMPUTE_ADMIN.value!r} to see other tenants' usage")  # fmt: skip
        if tenant != "all":
            await run_in_threadpool(get_tenant, services.control, tenant)
    scope = None if tenant == "all" else tenant or principal.tenant_id
    return await run_in_threadpool(usage.usage_report, services, scope)


@router.get("/compute/prices")
async def prices(request: Request, _: Principal = Depends(require(Permission.READ))) -> dict:
    """Prices per CPU-second and per GPU-second (by GPU type) that usage costs are computed with."""
    return usage.price_list(request.app.state.services.settings)


@router.get("/compute/pools")
async def get_pools(request: Request, _: Principal = Depends(require(Permission.READ))) -> dict[str, dict[str, int]]:
    """Every pool: its size (``limit``) and how many steps run in it or wait for it."""
    return await run_in_threadpool(scaling.pools, request.app.state.services.settings)


class ScaleIn(BaseModel):
    """``POST /compute/scale``: a pool and its new size."""

    model_config = ConfigDict(extra="forbid")

    pool: str = Field(description="'cpu', 'gpu-<type>' or another lowercase pool name.")
    size: int = Field(ge=0, le=scaling.MAX_POOL_SIZE, description="Slots: allocations / jobs running at once (0 pauses).")

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        try:
            return check_pool_name(value, "pool")
        except ValidationFailed as exc:
            raise ValueError(exc.reason) from None


@router.post("/compute/scale")
async def scale(body: ScaleIn, request: Request, _: Principal = Depends(require(Permission.COMPUTE_ADMIN))) -> dict:
    """Set a pool's size with the configured scaler (``dagster``: concurrency slots; ``k8s``: 501)."""
    request.state.audit_target = f"pool:{body.pool}"
    request.state.audit_detail = {"size": body.size}
    return await run_in_threadpool(scaling.scale, request.app.state.services.settings, body.pool, body.size)


@router.get("/compute/nodes")
async def get_nodes(request: Request, _: Principal = Depends(require(Permission.READ))) -> list[nodes.NodeSample]:
    """The latest sample of every node: CPU, memory, GPU utilisation and preemption notices."""
    return await run_in_threadpool(nodes.latest_samples, request.app.state.services)


@router.post("/compute/nodes/sample", status_code=201)
async def sample_now(request: Request, _: Principal = Depends(require(Permission.COMPUTE_ADMIN))) -> nodes.NodeSample:
    """Sample the API's node now and record it."""
    sample = await run_in_threadpool(nodes.sample_node, request.app.state.services)
    request.state.audit_target = f"node:{sample.node}"
    return sample
