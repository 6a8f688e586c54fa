"""Eval reports: per-task outcomes in an artifact, aggregates in the control plane."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from workbench.errors import NotFoundError
from workbench.security.tenants import new_id
from workbench.store.models import EvalReportRecord

if TYPE_CHECKING:
    from workbench.services import Services


def create_report(services: Services, tenant_id: str, *, subject: str, suite: str, split: str,
                  request: dict[str, Any]) -> str:
    """Open a report in status ``running``; returns its id."""
    report_id = new_id("eval")
    with services.control.session() as session:
        session.add(EvalReportRecord(
            id=report_id, tenant_id=tenant_id, subject=subject, suite=suite, split=split, status="running",
            request=request, summary={}, results_uri=None, created_at=datetime.now(UTC), finished_at=None,
        ))
    return report_id


def complete_report(services: Services, tenant_id: str, report_id: str, *, summary: dict[str, Any],
                    results: list[dict[str, Any]], status: str = "done") -> None:
    """Store the per-attempt results and the aggregates, and close the report (done or failed)."""
    uri = services.artifacts.write_bytes(
        f"evals/{tenant_id}/{report_id}/results.jsonl",
        ("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in results)).encode(),
    )
    with services.control.session() as session:
        record = session.get(EvalReportRecord, report_id)
        record.status, record.summary, record.results_uri, record.finished_at = status, summary, uri, datetime.now(UTC)


def save_report(
    services: Services, tenant_id: str, *, subject: str, suite: str, split: str, request: dict[str, Any],
    summary: dict[str, Any], results: list[dict[str, Any]], status: str = "done",
) -> str:
    """Store a finished report in one go (for results computed elsewhere); returns its id."""
    report_id = create_report(services, tenant_id, subject=subject, suite=suite, split=split, request=request)
    complete_report(services, tenant_id, report_id, summary=summary, results=results, status=status)
    return report_id


def get_report(services: Services, tenant_id: str, report_id: str, *, with_results: bool = True) -> dict[str, Any]:
    """A report with its aggregates and, optionally, its per-task results."""
    with services.control.session() as session:
        record = session.get(EvalReportRecord, report_id)
    if record is None or record.tenant_id != tenant_id:
        raise NotFoundError("eval report", report_id)
    out = {"id": record.id, "subject": record.subject, "suite": record.suite, "split": record.split,
           "status": record.status, "request": record.request, "summary": record.summary,
           "created_at": record.created_at.isoformat()}
    if with_results and record.results_uri:
        key = f"evals/{tenant_id}/{report_id}/results.jsonl"
        out["results"] = [json.loads(line) for line in services.artifacts.read_bytes(key).decode().splitlines() if line]
    return out


def list_reports(services: Services, tenant_id: str, subject: str | None = None) -> list[dict[str, Any]]:
    """The tenant's reports (aggregates only), newest first."""
    query = select(EvalReportRecord).where(EvalReportRecord.tenant_id == tenant_id)
    if subject is not None:
        query = query.where(EvalReportRecord.subject == subject)
    with services.control.session() as session:
        ids = [r.id for r in session.scalars(query.order_by(EvalReportRecord.created_at.desc()))]
    return [get_report(services, tenant_id, i, with_results=False) for i in ids]
