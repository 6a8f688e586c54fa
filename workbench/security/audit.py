"""The audit log: one record per mutating call, kept for the configured retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from workbench.store.control import ControlPlane
from workbench.store.group_commit import GroupCommitter
from workbench.store.models import AuditRecord


class AuditLog:
    """Audit records from concurrent requests, committed together (each caller waits for its commit)."""

    def __init__(self, cp: ControlPlane, max_pending: int = 50_000) -> None:
        self._cp = cp
        self._committer: GroupCommitter[AuditRecord, None] = GroupCommitter(
            self._write, max_batch=500, max_pending=max_pending, name="audit-log"
        )

    def submit(self, *, actor: str, action: str, outcome: str, tenant_id: str | None = None,
               target: str | None = None, detail: dict[str, Any] | None = None):
        """Queue one record; the returned future resolves once it is durable."""
        return self._committer.submit([
            AuditRecord(ts=datetime.now(UTC), tenant_id=tenant_id, actor=actor, action=action,
                        target=target[:400] if target else None, outcome=outcome, detail=detail)
        ])

    def close(self) -> None:
        """Commit what is queued and stop."""
        self._committer.close()

    def _write(self, records: list[AuditRecord]) -> list[None]:
        with self._cp.session() as session:
            session.add_all(records)
        return [None] * len(records)


def record_audit(
    cp: ControlPlane,
    *,
    actor: str,
    action: str,
    outcome: str,
    tenant_id: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit record durably (committed before this returns)."""
    with cp.session() as session:
        session.add(
            AuditRecord(
                ts=datetime.now(UTC), tenant_id=tenant_id, actor=actor, action=action,
                target=target[:400] if target else None, outcome=outcome, detail=detail,
            )
        )


def list_audit(
    cp: ControlPlane, tenant_id: str, *, since: datetime | None = None, action: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The tenant's audit records, newest first."""
    query = select(AuditRecord).where(AuditRecord.tenant_id == tenant_id)
    if since is not None:
        query = query.where(AuditRecord.ts >= since)
    if action is not None:
        query = query.where(AuditRecord.action == action)
    with cp.session() as session:
        rows = session.scalars(query.order_by(AuditRecord.id.desc()).limit(limit))
        return [
            {"id": r.id, "ts": r.ts.isoformat(), "tenant_id": r.tenant_id, "actor": r.actor, "action": r.action,
             "target": r.target, "outcome": r.outcome, "detail": r.detail}
            for r in rows
        ]


def purge_audit(cp: ControlPlane, retention_days: int) -> int:
    """Delete records older than the retention; returns how many went."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    with cp.session() as session:
        return session.execute(delete(AuditRecord).where(AuditRecord.ts < cutoff)).rowcount
