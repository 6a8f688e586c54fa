"""Reward/Eval endpoints: start eval runs, read their reports, compare two reports."""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.evals import reports, runner
from workbench.security.roles import Permission
from workbench.security.tenants import Principal

router = APIRouter(tags=["reward/eval"])
log = logging.getLogger(__name__)


@router.post("/eval/run", status_code=202)
async def start_eval(body: runner.EvalRequest, request: Request,
                     principal: Principal = Depends(require(Permission.EVAL_WRITE))) -> JSONResponse:
    """Validate and start an eval in the background; poll GET /eval/{id}/results until status is done."""
    services = request.app.state.services
    report_id = await run_in_threadpool(runner.start_eval, services, principal.tenant_id, body)

    def work() -> None:
        try:
            runner.execute_eval(services, principal.tenant_id, report_id)
        except Exception:  # the report is closed as failed with the reason; the server goes on
            log.exception("eval %s failed", report_id)

    threading.Thread(target=work, name=f"eval-{report_id}", daemon=True).start()
    request.state.audit_target = f"eval:{report_id}"
    return JSONResponse({"id": report_id, "status": "running"}, status_code=202)


@router.get("/eval")
async def list_evals(request: Request, subject: str | None = None,
                     principal: Principal = Depends(require(Permission.READ))) -> list[dict]:
    """Eval reports (aggregates only), newest first."""
    return await run_in_threadpool(reports.list_reports, request.app.state.services, principal.tenant_id, subject)


@router.get("/eval/{report_id}/results")
async def eval_results(report_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))) -> dict:
    """Per task: pass/fail, score, safety outcome; aggregates: success rate with a 95 % Wilson interval,
    pass@k, mean score, safety violations, cost."""
    return await run_in_threadpool(reports.get_report, request.app.state.services, principal.tenant_id, report_id)


class CompareIn(BaseModel):
    """Two reports on the same tasks."""

    baseline: str
    candidate: str


@router.post("/eval/compare")
async def compare(body: CompareIn, request: Request, principal: Principal = Depends(require(Permission.READ))) -> dict:
    """Paired comparison: McNemar's exact test on pass/fail and a permutation test on scores."""
    return await run_in_threadpool(
        runner.compare_reports, request.app.state.services, principal.tenant_id, body.baseline, body.candidate
    )
