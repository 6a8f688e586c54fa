"""Compute Factory: named pools on Dagster's instance (concurrency slots, run priority, max runtime).

* :func:`ensure_dagster_home` creates the Dagster instance under ``WORKBENCH_HOME`` (SQLite,
  telemetry off, op-granularity pools) and its default pools (:data:`DEFAULT_POOLS`);
  :func:`open_instance` opens it; :func:`set_pool_limit` / :func:`pool_limits` size and inspect pools.

Importing this package does not import Dagster.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_POOLS",
    "DEFAULT_POOL_LIMIT",
    "POOL_PATTERN",
    "check_pool_name",
    "dagster_yaml",
    "ensure_dagster_home",
    "open_instance",
    "pool_limits",
    "set_pool_limit",
]
