"""Compute usage and cost per tenant and pool: allocations and training jobs, priced per resource type.

Prices come from the settings: ``cpu_price_per_second`` for a CPU-second,
``gpu_prices[<gpu type>]`` for a GPU-second of that type, else ``gpu_price_per_second``.
Cost is always the seconds times the current prices, so every figure on one report uses one price
list (a training job's own ``cost`` metric uses the prices it was submitted with).

* An allocation bills ``count`` CPUs or GPUs (its ``gpu_type``) for the time it held its slot
  (at most its duration; a running one until now).
* A training job bills the CPU and GPU seconds it measured (its result when it ended, its last
  logged metrics while it runs); its GPU type is the one its compute requirements name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from workbench.compute.allocations import held_seconds, recover_interrupted
from workbench.store.models import AllocationRecord, TrainJobRecord, TrainMetricRecord

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.services import Services

__all__ = ["PoolUsage", "UsageReport", "gpu_price", "price_list", "usage_report"]

_TRAIN_RUNNING = ("running", "stopping")


def gpu_price(settings: Settings, gpu_type: str | None) -> float:
    """Price of one GPU-second of ``gpu_type`` (the default GPU price for types without their own)."""
    if gpu_type is None:
        return settings.gpu_price_per_second
    return settings.gpu_prices.get(gpu_type.lower(), settings.gpu_price_per_second)


def price_list(settings: Settings) -> dict[str, Any]:
    """The configured prices: per CPU-second, per GPU-second by type, and the default GPU price."""
    return {"cpu_per_second": settings.cpu_price_per_second, "gpu_per_second": settings.gpu_price_per_second,
            "gpu_per_second_by_type": dict(sorted(settings.gpu_prices.items()))}  # fmt: skip


class PoolUsage(BaseModel):
    """What one tenant used of one pool."""

    tenant_id: str
    pool: str
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    cost: float = 0.0
    queued: int = Field(0, description="Allocations and training jobs waiting for a slot now.")
    running: int = Field(0, description="Allocations and training jobs holding a slot now.")
    allocations: int = Field(0, description="Allocations ever made (any status).")
    train_jobs: int = Field(0, description="Training jobs ever submitted (any status).")


class UsageReport(BaseModel):
    """Usage rows per tenant and pool, their totals, and the prices they were costed with."""

    as_of: datetime
    rows: list[PoolUsage]
    totals: PoolUsage = Field(description="Sum over the rows (tenant_id and pool are '*').")
    prices: dict[str, Any]


def usage_report(services: Services, tenant_id: str | None) -> UsageReport:
    """Usage of one tenant's allocations and training jobs per pool (every tenant's when ``tenant_id`` is None)."""
    from workbench.train import jobs as train_jobs

    # Work whose process died is reported ended first, so it is not counted as queued or running.
    recover_interrupted(services, tenant_id)
    train_jobs.recover_interrupted(services, tenant_id)
    settings = services.settings
    rows: dict[tuple[str, str], PoolUsage] = {}

    def row(tenant: str, pool: str) -> PoolUsage:
        return rows.setdefault((tenant, pool), PoolUsage(tenant_id=tenant, pool=pool))

    def bill(target: PoolUsage, cpu_s: float, gpu_s: float, gpu_type: str | None) -> None:
        target.cpu_seconds += cpu_s
        target.gpu_seconds += gpu_s
        target.cost += cpu_s * settings.cpu_price_per_second + gpu_s * gpu_price(settings, gpu_type)

    allocation_query = select(AllocationRecord)
    job_query = select(TrainJobRecord)
    if tenant_id is not None:
        allocation_query = allocation_query.where(AllocationRecord.tenant_id == tenant_id)
        job_query = job_query.where(TrainJobRecord.tenant_id == tenant_id)
    with services.control.session() as session:
        allocations = list(session.scalars(allocation_query))
        jobs = list(session.scalars(job_query))
        live = _last_metrics(session, [j.id for j in jobs if not _has_figures(j.result)])

    for a in allocations:
        target = row(a.tenant_id, a.pool)
        target.allocations += 1
        target.queued += a.status == "queued"
        target.running += a.status == "running"
        seconds = held_seconds(a.started_at, a.ended_at, a.duration_s) * a.count
        bill(target, 0.0 if a.gpu_type else seconds, seconds if a.gpu_type else 0.0, a.gpu_type)

    for job in jobs:
        target = row(job.tenant_id, job.request.get("resolved", {}).get("pool", "cpu"))
        target.train_jobs += 1
        target.queued += job.status == "queued"
        target.running += job.status in _TRAIN_RUNNING
        figures = job.result if _has_figures(job.result) else live.get(job.id, {})
        gpu_type = (job.request.get("compute_requirements") or {}).get("gpu_type")
        bill(target, float(figures.get("cpu_seconds") or 0.0), float(figures.get("gpu_seconds") or 0.0), gpu_type)

    ordered = [rows[key] for key in sorted(rows)]
    totals = PoolUsage(tenant_id="*", pool="*")
    for r in ordered:
        for name in ("cpu_seconds", "gpu_seconds", "cost", "queued", "running", "allocations", "train_jobs"):
            setattr(totals, name, getattr(totals, name) + getattr(r, name))
    return UsageReport(as_of=datetime.now(UTC), rows=ordered, totals=totals, prices=price_list(settings))


def _has_figures(result: dict[str, Any]) -> bool:
    return "cpu_seconds" in result or "gpu_seconds" in result


def _last_metrics(session: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The last logged metrics of each job (they carry the CPU/GPU seconds so far)."""
    if not job_ids:
        return {}
    last = (select(TrainMetricRecord.job_id, func.max(TrainMetricRecord.id).label("id"))
            .where(TrainMetricRecord.job_id.in_(job_ids)).group_by(TrainMetricRecord.job_id).subquery())  # fmt: skip
    query = select(TrainMetricRecord).join(last, TrainMetricRecord.id == last.c.id)
    return {m.job_id: m.metrics for m in session.scalars(query)}
