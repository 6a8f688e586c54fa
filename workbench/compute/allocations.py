"""Compute allocations: a slot of a named pool, held for a while, granted by Dagster's pools.

The life of an allocation (``compute_allocations`` row; statuses ``queued → running → released |
expired``, or ``→ failed``):

* :func:`allocate` validates the request (:class:`AllocationRequest`: GPU type, count, duration,
  priority, optional pool), records it ``queued`` and launches its Dagster run (see
  :mod:`workbench.compute._allocation_job`): one op that declares ``pool=<pool>``, so Dagster itself
  grants the slot — allocations beyond the pool's size wait, highest ``priority`` first.
* :func:`hold` (what the op calls once Dagster granted the slot) marks it ``running`` and holds the
  slot until ``duration`` seconds pass (``expired``) or it is released; the slot is freed when the
  op returns, and the next waiting allocation starts at its next check (a waiting step re-checks
  after 1 s, backing off to 15 s).
* :func:`release` ends it early: a running one frees its slot at once, a queued one gives back the
  slot the moment Dagster grants it.
* :func:`recover_interrupted` reports allocations whose process died as ``failed`` and frees their
  slots.

``count`` is the number of CPUs (pool ``cpu`` and other non-GPU pools) or GPUs (``gpu-<type>``
pools) the allocation bills for; one allocation holds one slot of its pool, so a pool's size is
how many allocations may run in it at once.

Nothing here imports Dagster at module level.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, computed_field, field_validator
from sqlalchemy import select, update

from workbench.compute.dagster_home import check_pool_name
from workbench.compute.launcher import StopSignals, mark_run_interrupted, owner_alive, process_owner
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.models import AllocationRecord

if TYPE_CHECKING:
    from workbench.services import Services

__all__ = [
    "ACTIVE_STATUSES",
    "AllocationInfo",
    "AllocationRequest",
    "TERMINAL_STATUSES",
    "allocate",
    "get_allocation",
    "hold",
    "list_allocations",
    "recover_interrupted",
    "release",
]

log = logging.getLogger("workbench.compute")

ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("released", "expired", "failed")
# How often a held slot re-reads its row for a release made by another process.
RELEASE_POLL_S = 1.0
# The run's dagster/max_runtime is the time it waited plus its duration plus this margin, so a
# Dagster daemon only steps in when the op itself failed to end the hold.
MAX_RUNTIME_MARGIN_S = 60
_GPU_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")


class AllocationRequest(BaseModel):
    """``POST /compute/allocate``: what to hold, for how long, how urgently, and (optionally) where."""

    model_config = ConfigDict(extra="forbid")

    gpu_type: str | None = Field(
        None, description="Accelerator type, e.g. 'a100' (pool 'gpu-<type>'); null or 'cpu' for CPUs (pool 'cpu')."
    )
    count: int = Field(1, ge=1, le=1024, description="CPUs or GPUs billed while the allocation runs.")
    duration: float = Field(3600.0, gt=0, le=30 * 86400, description="Seconds to hold the slot once granted.")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher is granted first among allocations waiting for the pool.")
    pool: str | None = Field(None, description="A pool name to use instead of the one gpu_type selects.")

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if value == "cpu":
            return None
        if not _GPU_TYPE.match(value):
            raise ValueError(f"{value!r} is not a GPU type: lowercase letters, digits, '_', '.', '-' (e.g. 'a100')")
        return value

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            check_pool_name(value, "pool")
        except ValidationFailed as exc:
            raise ValueError(exc.reason) from None
        gpu_type = info.data.get("gpu_type")
        if value == "cpu" and gpu_type:
            raise ValueError(f"pool 'cpu' has no GPUs; use pool 'gpu-{gpu_type}' or leave pool out")
        return value

    @property
    def resolved_pool(self) -> str:
        """The pool: the one named, else ``gpu-<gpu_type>``, else ``cpu``."""
        return self.pool or (f"gpu-{self.gpu_type}" if self.gpu_type else "cpu")

    @property
    def resolved_gpu_type(self) -> str | None:
        """The GPU type billed: the one named, else the one a ``gpu-<type>`` pool names, else none."""
        if self.gpu_type is None and self.pool and self.pool.startswith("gpu-"):
            return self.pool.removeprefix("gpu-")
        return self.gpu_type


class AllocationInfo(BaseModel):
    """An allocation as the API returns it."""

    id: str
    tenant_id: str
    pool: str
    gpu_type: str | None
    count: int
    duration: float = Field(description="Seconds the slot is held once granted.")
    priority: int
    status: str = Field(description="queued | running | released | expired | failed")
    dagster_run_id: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    detail: dict[str, Any] = Field(default_factory=dict, description="Why it failed, who released it.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resource(self) -> str:
        """What ``count`` counts: ``gpu`` or ``cpu``."""
        return "gpu" if self.gpu_type else "cpu"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def held_seconds(self) -> float:
        """Seconds the slot has been held so far (0 while queued), at most ``duration``."""
        return held_seconds(self.started_at, self.ended_at, self.duration)


def held_seconds(started_at: datetime | None, ended_at: datetime | None, duration: float) -> float:
    """Seconds between ``started_at`` and ``ended_at`` (or now), capped at ``duration``."""
    if started_at is None:
        return 0.0
    end = ended_at or datetime.now(UTC)
    return max(0.0, min((_aware(end) - _aware(started_at)).total_seconds(), duration))


def _aware(ts: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _info(record: AllocationRecord) -> AllocationInfo:
    return AllocationInfo(
        id=record.id, tenant_id=record.tenant_id, pool=record.pool, gpu_type=record.gpu_type, count=record.count,
        duration=record.duration_s, priority=record.priority, status=record.status,
        dagster_run_id=record.dagster_run_id, created_at=record.created_at, started_at=record.started_at,
        ended_at=record.ended_at, detail=record.detail,
    )  # fmt: skip


# --------------------------------------------------------------------------- in-process release events

_RELEASES = StopSignals()


# --------------------------------------------------------------------------- rows


def _record(services: Services, tenant_id: str | None, allocation_id: str) -> AllocationRecord:
    with services.control.session() as session:
        record = session.get(AllocationRecord, allocation_id)
    if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
        raise NotFoundError("allocation", allocation_id)
    return record


def _transition(services: Services, allocation_id: str, from_statuses: tuple[str, ...], to_status: str,
                **values: Any) -> bool:  # fmt: skip
    """Move an allocation to ``to_status`` only if it is in one of ``from_statuses`` (atomic); True if it moved."""
    if to_status in TERMINAL_STATUSES:
        values.setdefault("ended_at", datetime.now(UTC))
    with services.control.session() as session:
        moved = session.execute(
            update(AllocationRecord)
            .where(AllocationRecord.id == allocation_id, AllocationRecord.status.in_(from_statuses))
            .values(status=to_status, **values)
        ).rowcount
    return bool(moved)


def _fail(services: Services, allocation_id: str, error: str) -> None:
    record = _record(services, None, allocation_id)
    _transition(services, allocation_id, ACTIVE_STATUSES, "failed", detail={**record.detail, "error": error})


# --------------------------------------------------------------------------- allocate / view / release


def _validated(request: AllocationRequest | dict[str, Any]) -> AllocationRequest:
    if isinstance(request, AllocationRequest):
        return request
    from pydantic import ValidationError

    try:
        return AllocationRequest.model_validate(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ValidationFailed(field, first["msg"].removeprefix("Value error, ")) from None


def allocate(services: Services, tenant_id: str, request: AllocationRequest | dict[str, Any], *,
             launch: bool = True) -> AllocationInfo:  # fmt: skip
    """Validate, record as ``queued`` and launch the allocation's Dagster run in its pool.

    Raises :class:`ValidationFailed` (HTTP 422) naming the field before anything is recorded.
    ``launch=False`` only records it (a caller that runs :func:`hold` itself).
    """
    request = _validated(request)
    allocation_id = new_id("alloc")
    record = AllocationRecord(
        id=allocation_id, tenant_id=tenant_id, pool=request.resolved_pool, gpu_type=request.resolved_gpu_type,
        count=request.count, duration_s=float(request.duration), priority=request.priority, status="queued",
        dagster_run_id=str(uuid.uuid4()) if launch else None, owner=process_owner(), detail={},
        created_at=datetime.now(UTC), started_at=None, ended_at=None,
    )  # fmt: skip
    with services.control.session() as session:
        session.add(record)
    if launch:
        from workbench.compute._allocation_job import launch as launch_run

        _RELEASES.event(allocation_id)
        try:
            launch_run(services, _info(record))
        except Exception as exc:
            _fail(services, allocation_id, f"could not launch: {exc}")
            _RELEASES.forget(allocation_id)
            raise
    return get_allocation(services, tenant_id, allocation_id)


def get_allocation(services: Services, tenant_id: str, allocation_id: str) -> AllocationInfo:
    """One allocation of this tenant (another tenant's is 404)."""
    record = _record(services, tenant_id, allocation_id)
    if record.status in ACTIVE_STATUSES and not owner_alive(record.owner):
        recover_interrupted(services, tenant_id)
        record = _record(services, tenant_id, allocation_id)
    return _info(record)


def list_allocations(services: Services, tenant_id: str, status: str | None = None, pool: str | None = None,
                     limit: int = 100) -> list[AllocationInfo]:  # fmt: skip
    """The tenant's allocations, newest first, optionally of one status and pool."""
    if status is not None and status not in ACTIVE_STATUSES + TERMINAL_STATUSES:
        raise ValidationFailed("status", f"one of {', '.join(ACTIVE_STATUSES + TERMINAL_STATUSES)}")
    recover_interrupted(services, tenant_id)
    query = select(AllocationRecord).where(AllocationRecord.tenant_id == tenant_id)
    if status is not None:
        query = query.where(AllocationRecord.status == status)
    if pool is not None:
        query = query.where(AllocationRecord.pool == pool)
    query = query.order_by(AllocationRecord.created_at.desc()).limit(max(1, min(limit, 1000)))
    with services.control.session() as session:
        return [_info(r) for r in session.scalars(query)]


def release(services: Services, tenant_id: str, allocation_id: str, *, actor: str | None = None) -> AllocationInfo:
    """End an allocation now: a running one frees its slot; a queued one never holds one (its Dagster
    run ends the moment the pool grants it a slot).

    Raises :class:`ConflictError` (409) for one that already ended.
    """
    for _ in range(5):  # the status may move under us (queued → running → expired); retry on a lost race
        record = _record(services, tenant_id, allocation_id)
        if record.status in TERMINAL_STATUSES:
            raise ConflictError(f"allocation {allocation_id} is {record.status}; only queued or running ones can be released")
        detail = {**record.detail, "released_by": actor, "released_while": record.status}
        if _transition(services, allocation_id, (record.status,), "released", detail=detail):
            break
    _RELEASES.set(allocation_id)
    return get_allocation(services, tenant_id, allocation_id)


# --------------------------------------------------------------------------- holding the slot


def hold(services: Services, allocation_id: str, *, on_start: Callable[[], None] | None = None) -> AllocationInfo:
    """Hold the pool slot Dagster granted until the allocation's duration passes or it is released.

    Called by the allocation's op once its slot is granted; returns the allocation as recorded
    afterwards (``expired`` or ``released``; at once for one released while it waited).
    ``on_start()`` runs when the allocation turns ``running``.
    """
    record = _record(services, None, allocation_id)
    try:
        if not _transition(services, allocation_id, ("queued",), "running", started_at=datetime.now(UTC)):
            return _info(_record(services, None, allocation_id))  # released while it waited for the pool
        if on_start is not None:
            on_start()
        event = _RELEASES.event(allocation_id)
        deadline = time.monotonic() + record.duration_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _transition(services, allocation_id, ("running",), "expired")
                break
            if event.wait(min(RELEASE_POLL_S, remaining)):
                break
            with services.control.session() as session:
                status = session.scalar(select(AllocationRecord.status).where(AllocationRecord.id == allocation_id))
            if status != "running":
                break
    finally:
        _RELEASES.forget(allocation_id)
    return _info(_record(services, None, allocation_id))


# --------------------------------------------------------------------------- recovery


def recover_interrupted(services: Services, tenant_id: str | None = None) -> list[str]:
    """Report active allocations whose owning process died as ``failed`` and free their pool slots.

    Returns their ids.
    """
    query = select(AllocationRecord).where(AllocationRecord.status.in_(ACTIVE_STATUSES))
    if tenant_id is not None:
        query = query.where(AllocationRecord.tenant_id == tenant_id)
    with services.control.session() as session:
        stale = [r for r in session.scalars(query) if not owner_alive(r.owner)]
    recovered = []
    for record in stale:
        owner = record.owner or {}
        error = (f"interrupted: the process holding it (pid {owner.get('pid')} on {owner.get('host')}) ended "
                 f"while it was {record.status}")  # fmt: skip
        # Billing counts a running one from its start until now, at most its duration (held_seconds).
        if _transition(services, record.id, (record.status,), "failed", detail={**record.detail, "error": error,
                                                                               "interrupted": True}):  # fmt: skip
            recovered.append(record.id)
            if record.dagster_run_id:
                try:
                    mark_run_interrupted(services.settings, record.dagster_run_id,
                                         "interrupted: the process holding this allocation ended")  # fmt: skip
                except Exception:  # noqa: BLE001 - the allocation row is the source of truth; Dagster is best effort
                    log.warning("could not mark dagster run %s failed", record.dagster_run_id, exc_info=True)
    return recovered
