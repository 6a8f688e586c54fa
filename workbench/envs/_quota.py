"""Concurrency quota: at most N runs at a time per tenant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.errors import WorkbenchError


class QuotaExceeded(WorkbenchError):
    """A tenant already has its maximum of concurrent runs (HTTP 429)."""

    status_code = 429

    def __init__(self, tenant: str, limit: int) -> None:
        super().__init__(f"tenant {tenant!r} already has {limit} concurrent runs (the maximum); end one first")
        self.tenant = tenant
        self.limit = limit


class RunQuota:
    """Counts active runs per tenant; ``acquire`` refuses beyond the tenant's limit.

    ``limits`` overrides ``default`` per tenant. Thread-safe; acquiring the same run twice is a no-op.
    """

    def __init__(self, default: int = 4, limits: dict[str, int] | None = None) -> None:
        if default < 1:
            raise ValueError("default: must be at least 1")
        self.default = default
        self.limits = dict(limits or {})
        self._active: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def limit(self, tenant: str) -> int:
        """The tenant's maximum of concurrent runs."""
        return self.limits.get(tenant, self.default)

    def acquire(self, tenant: str, run_id: str) -> None:
        """Count ``run_id`` as active for ``tenant``; raises :class:`QuotaExceeded` when full."""
        with self._lock:
            runs = self._active.setdefault(tenant, set())
            if run_id in runs:
                return
            if len(runs) >= self.limit(tenant):
                raise QuotaExceeded(tenant, self.limit(tenant))
            runs.add(run_id)

    def release(self, tenant: str, run_id: str) -> None:
        """Stop counting ``run_id`` (unknown runs are ignored)."""
        with self._lock:
            self._active.get(tenant, set()).discard(run_id)

    def active(self, tenant: str) -> int:
        """How many runs the tenant has now."""
        with self._lock:
            return len(self._active.get(tenant, ()))

    @contextmanager
    def slot(self, tenant: str, run_id: str) -> Iterator[None]:
        """``with quota.slot(tenant, run_id): ...`` holds a slot for the block."""
        self.acquire(tenant, run_id)
        try:
            yield
        finally:
            self.release(tenant, run_id)
