"""Environment Factory endpoints: scenarios, runs, steps, traces, replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.envs import service
from workbench.security.roles import Permission
from workbench.security.tenants import Principal

router = APIRouter(tags=["environment"])


@router.post("/scenarios", status_code=201)
async def create_scenario(
    request: Request, spec: dict[str, Any] = Body(..., description="A scenario spec (see scenarios/README.md)."),
    principal: Principal = Depends(require(Permission.SCENARIOS_WRITE)),
) -> service.ScenarioInfo:
    """Store a scenario version (its id follows from the content hash; 422 names the invalid field)."""
    info = await run_in_threadpool(service.create_scenario, request.app.state.services, principal.tenant_id, spec)
    request.state.audit_target = f"scenario:{info.id}"
    return info


@router.get("/scenarios")
async def list_scenarios(request: Request, principal: Principal = Depends(require(Permission.READ))) -> list[service.ScenarioInfo]:
    """The tenant's scenario versions, newest first."""
    return await run_in_threadpool(service.list_scenarios, request.app.state.services, principal.tenant_id)


@router.get("/scenarios/{scenario_id}")
async def get_scenario(
    scenario_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))
) -> service.ScenarioInfo:
    """A scenario version by id, or the newest version of a name (library scenarios included)."""
    return await run_in_threadpool(service.get_scenario, request.app.state.services, principal.tenant_id, scenario_id)


class RunIn(BaseModel):
    """Start a run."""

    scenario_id: str = Field(description="A scenario id, a stored name, or a library name such as calculator-test-0003.")
    seed: int = 0
    agent_version: str | None = None


@router.post("/runs", status_code=201)
async def start_run(body: RunIn, request: Request, principal: Principal = Depends(require(Permission.RUNS_WRITE))) -> dict:
    """Start a run: returns run_id, the first observation, the tools and the instructions."""
    runs = request.app.state.services.runs
    started = await run_in_threadpool(runs.start, principal.tenant_id, body.scenario_id, body.seed, body.agent_version)
    request.state.audit_target = f"run:{started['run_id']}"
    return started


class StepIn(BaseModel):
    """One action: a tool call ``{"tool", "arguments"}`` or a final ``{"answer"}``."""

    action: dict[str, Any]


@router.post("/runs/{run_id}/step")
async def step_run(run_id: str, body: StepIn, request: Request,
                   principal: Principal = Depends(require(Permission.RUNS_WRITE))) -> dict:
    """Apply an action: ``{observation, reward, done, info}``."""
    runs = request.app.state.services.runs
    return await run_in_threadpool(runs.step, principal.tenant_id, run_id, body.action)


@router.get("/runs")
async def list_runs(request: Request, limit: int = 100, principal: Principal = Depends(require(Permission.READ))) -> list[service.RunInfo]:
    """The tenant's runs, newest first."""
    return await run_in_threadpool(service.list_runs, request.app.state.services, principal.tenant_id, limit)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))) -> service.RunInfo:
    """A run's status and outcome."""
    return await run_in_threadpool(request.app.state.services.runs.get, principal.tenant_id, run_id)


@router.get("/runs/{run_id}/trace")
async def get_trace(run_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))) -> dict:
    """Ordered steps with actions, observations and timings."""
    return await run_in_threadpool(request.app.state.services.runs.trace, principal.tenant_id, run_id)


@router.post("/runs/{run_id}/replay")
async def replay_run(run_id: str, request: Request, principal: Principal = Depends(require(Permission.RUNS_WRITE))) -> dict:
    """Re-execute the recorded actions: ``identical`` or the first diverging step with a diff."""
    return await run_in_threadpool(request.app.state.services.runs.replay, principal.tenant_id, run_id)
