"""Compute allocations as Dagster runs: the op that holds a pool slot, its job, and the launch.

One Dagster run per allocation, recorded in the workbench's Dagster instance so the Dagster UI
lists it with its inputs (run config: allocation id, tenant, pool, GPU type, count, duration) and
tags (``workbench/*``, ``dagster/priority``). Its single op declares ``pool=<pool>``: Dagster's
op-granularity pools grant it a slot (higher ``dagster/priority`` first) — see
:mod:`workbench.compute.launcher` — and the op holds that slot with
:func:`workbench.compute.allocations.hold` until the allocation expires or is released.

``dagster/max_runtime`` is added when the slot is granted: the time the run waited for the pool,
plus the duration, plus a margin. The op ends the hold itself; the tag lets a Dagster daemon
watching this instance end a run whose process stopped holding properly, without ever counting
against an allocation that is still waiting for its slot.

Dagster is imported here, and this module is imported only when an allocation is launched.
"""

import time
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    import threading

    from workbench.compute.allocations import AllocationInfo
    from workbench.services import Services

__all__ = ["JOB_NAME", "AllocationConfig", "allocation_job_for_pool", "launch"]

JOB_NAME = "compute_allocation"


class AllocationConfig(dg.Config):
    """Which allocation the run holds; the other fields describe it for the Dagster UI."""

    allocation_id: str = Field(description="The workbench allocation id (compute_allocations row).")
    tenant_id: str = ""
    pool: str = "cpu"
    gpu_type: str = ""
    count: int = 1
    duration_s: float = 0.0


def allocation_job_for_pool(pool: str = "cpu") -> dg.JobDefinition:
    """The Dagster job holding one allocation's slot in ``pool`` (op pools are fixed per definition)."""
    from workbench.compute.launcher import job_for_pool

    return job_for_pool(JOB_NAME, pool, _build_allocation_job)


def _build_allocation_job(pool: str) -> dg.JobDefinition:
    @dg.op(name="hold", pool=pool, required_resource_keys={"workbench"},
           description="Holds one pool slot for a compute allocation (workbench.compute.allocations.hold).")  # fmt: skip
    def hold(context: dg.OpExecutionContext, config: AllocationConfig) -> dg.Output:
        from workbench.compute import allocations

        def started() -> None:
            try:
                record = context.instance.get_run_record_by_id(context.run_id)
                waited = time.time() - record.start_time if record is not None and record.start_time else 0.0
                limit = int(waited + config.duration_s) + allocations.MAX_RUNTIME_MARGIN_S
                context.instance.add_run_tags(context.run_id, {"dagster/max_runtime": str(limit)})
            except Exception:  # noqa: BLE001 - the tag is a safety net; the hold goes on without it
                context.log.warning("could not tag the run with dagster/max_runtime", exc_info=True)

        info = allocations.hold(context.resources.workbench.services(), config.allocation_id, on_start=started)
        metadata = {"allocation_id": info.id, "status": info.status, "pool": info.pool,
                    "held_seconds": info.held_seconds, "count": info.count}  # fmt: skip
        return dg.Output(info.status, metadata=metadata)

    @dg.job(name=JOB_NAME, executor_def=dg.in_process_executor, tags={"workbench/kind": "allocation"},
            description="One compute allocation (submitted with POST /compute/allocate).")  # fmt: skip
    def job() -> None:
        hold()

    return job


def launch(services: "Services", info: "AllocationInfo") -> "threading.Thread":
    """Run the allocation's Dagster run in a background thread of this process (``execute_in_process``)."""
    from workbench.compute import allocations
    from workbench.compute.launcher import launch_in_process

    op_config = {"allocation_id": info.id, "tenant_id": info.tenant_id, "pool": info.pool,
                 "gpu_type": info.gpu_type or "", "count": info.count, "duration_s": info.duration}  # fmt: skip
    tags = {"workbench/allocation_id": info.id, "workbench/tenant": info.tenant_id, "workbench/pool": info.pool,
            "workbench/resource": info.resource, "workbench/count": str(info.count),
            "dagster/priority": str(info.priority)}  # fmt: skip
    if info.gpu_type:
        tags["workbench/gpu_type"] = info.gpu_type
    if info.dagster_run_id is None:
        raise ValueError(f"allocation {info.id} was recorded without a Dagster run id")
    return launch_in_process(
        services, allocation_job_for_pool(info.pool), run_id=info.dagster_run_id,
        run_config={"ops": {"hold": {"config": op_config}}}, tags=tags, thread_name=f"allocation-{info.id}",
        on_failure=lambda message: allocations._fail(services, info.id, message),
        on_exit=lambda: allocations._RELEASES.forget(info.id),
    )  # fmt: skip
