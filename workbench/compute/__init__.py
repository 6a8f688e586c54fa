"""Compute Factory: named pools on Dagster's instance (concurrency slots, run priority, max runtime).

* :func:`ensure_dagster_home` creates the Dagster instance under ``WORKBENCH_HOME`` (SQLite,
  telemetry off, op-granularity pools) and its default pools (:data:`DEFAULT_POOLS`);
  :func:`open_instance` opens it; :func:`set_pool_limit` / :func:`pool_limits` size and inspect pools.
* :mod:`~workbench.compute.launcher` runs training jobs and allocations as in-process Dagster runs
  whose op waits for a slot of its pool, and recovers the runs of a process that died.
* :mod:`~workbench.compute.allocations`: :func:`allocate`, :func:`release` — a pool slot held for
  a duration; work beyond a pool's size queues.
* :mod:`~workbench.compute.usage`: :func:`usage_report` — CPU / GPU seconds, cost, queued and running per
  tenant and pool, priced by :func:`price_list`.
* :mod:`~workbench.compute.scaling`: :func:`scale` — pool sizes (the Kubernetes worker hook).
* :mod:`~workbench.compute.nodes`: :func:`sample_node`, :class:`NodeSampler` — CPU, memory, GPU
  and preemption samples.

Importing this package does not import Dagster.
"""

from __future__ import annotations

from workbench.compute.allocations import (
    AllocationInfo,
    AllocationRequest,
    allocate,
    get_allocation,
    list_allocations,
    release,
)
from workbench.compute.dagster_home import (
    DEFAULT_POOL_LIMIT,
    DEFAULT_POOLS,
    POOL_PATTERN,
    check_pool_name,
    dagster_yaml,
    ensure_dagster_home,
    open_instance,
    pool_limits,
    set_pool_limit,
)
from workbench.compute.nodes import NodeSample, NodeSampler, latest_samples, read_node, sample_node
from workbench.compute.scaling import ScalerUnavailable, pools, scale
from workbench.compute.usage import UsageReport, price_list, usage_report

__all__ = [
    "AllocationInfo",
    "AllocationRequest",
    "DEFAULT_POOLS",
    "DEFAULT_POOL_LIMIT",
    "NodeSample",
    "NodeSampler",
    "POOL_PATTERN",
    "ScalerUnavailable",
    "UsageReport",
    "allocate",
    "check_pool_name",
    "dagster_yaml",
    "ensure_dagster_home",
    "get_allocation",
    "latest_samples",
    "list_allocations",
    "open_instance",
    "pool_limits",
    "pools",
    "price_list",
    "read_node",
    "release",
    "sample_node",
    "scale",
    "set_pool_limit",
    "usage_report",
]
