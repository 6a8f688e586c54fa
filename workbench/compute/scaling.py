"""Scaling pools: how many allocations and training jobs a pool runs at once.

``settings.compute_scaler`` chooses what :func:`scale` changes:

* ``dagster`` (default): the pool's concurrency slots in the workbench's Dagster instance
  (:func:`workbench.compute.set_pool_limit`); queued work starts as soon as slots free up.
* ``k8s``: on Kubernetes, scaling a pool also means running as many workers — setting the
  replica count of the pool's worker deployment (or the run launcher's job concurrency) through
  dagster-k8s and the Kubernetes API. That is the hook to implement here, next to setting the pool's
  slots; this build does not ship it and answers :class:`ScalerUnavailable` (HTTP 501) without
  changing anything, rather than pretending to have scaled a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.compute.dagster_home import check_pool_name, pool_limits, set_pool_limit
from workbench.errors import ValidationFailed, WorkbenchError

if TYPE_CHECKING:
    from workbench.config import Settings

__all__ = ["MAX_POOL_SIZE", "ScalerUnavailable", "pools", "scale"]

MAX_POOL_SIZE = 10_000


class ScalerUnavailable(WorkbenchError):
    """The configured scaler cannot run in this deployment."""

    status_code = 501

    def to_dict(self) -> dict:
        """JSON body for the API."""
        return {"error": "not_implemented", "field": "compute_scaler", "detail": str(self)}


def pools(settings: Settings) -> dict[str, dict[str, int]]:
    """Every pool with its size and how many steps run in it or wait for it (no run ids: they span tenants)."""
    return {name: {"limit": info["limit"], "running": info["running"], "waiting": info["waiting"]}
            for name, info in sorted(pool_limits(settings).items())}  # fmt: skip


def scale(settings: Settings, pool: str, size: int) -> dict[str, Any]:
    """Set ``pool`` to ``size`` slots (0 pauses it) with the configured scaler; returns the new limits."""
    check_pool_name(pool, "pool")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_POOL_SIZE:
        raise ValidationFailed("size", f"a pool size is a whole number from 0 to {MAX_POOL_SIZE}")
    if settings.compute_scaler == "k8s":
        raise ScalerUnavailable(
            "WORKBENCH_COMPUTE_SCALER=k8s: setting worker counts through dagster-k8s is not implemented in this "
            "build (the hook is workbench.compute.scaling.scale); use the default scaler 'dagster', which sets "
            "the pool's concurrency slots"
        )
    set_pool_limit(settings, pool, size)
    return {"scaler": settings.compute_scaler, "pool": pool, "size": size, "pools": pools(settings)}
