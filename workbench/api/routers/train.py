"""Algorithm Factory endpoints: training jobs (submit, view, metrics, stop) and reward models."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.security.roles import Permission
from workbench.security.tenants import Principal
from workbench.train import jobs, registry


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Jobs a previous server left running are reported failed (interrupted) with their last checkpoint.
    await run_in_threadpool(jobs.recover_interrupted, app.state.services)
    yield


router = APIRouter(tags=["algorithm"], lifespan=_lifespan)


@router.post("/train/jobs", status_code=201)
async def submit_job(body: jobs.TrainJobRequest, request: Request,
                     principal: Principal = Depends(require(Permission.TRAIN_WRITE))) -> jobs.TrainJobInfo:
    """Validate (422 naming the field, before any compute), record as queued, run as a Dagster run in its pool."""
    info = await run_in_threadpool(jobs.submit, request.app.state.services, principal.tenant_id, body)
    request.state.audit_target = f"train_job:{info.id}"
    return info


@router.get("/train/jobs")
async def list_jobs(request: Request, status: str | None = None, limit: int = 100,
                    principal: Principal = Depends(require(Permission.READ))) -> list[jobs.TrainJobInfo]:
    """The tenant's training jobs, newest first."""
    return await run_in_threadpool(jobs.list_jobs, request.app.state.services, principal.tenant_id, status, limit)


@router.get("/train/jobs/{job_id}")
async def get_job(job_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))) -> jobs.TrainJobInfo:
    """Status, progress, latest metrics, checkpoints, Dagster run id and wandb directory."""
    return await run_in_threadpool(jobs.get_job, request.app.state.services, principal.tenant_id, job_id)


@router.get("/train/jobs/{job_id}/metrics")
async def job_metrics(job_id: str, request: Request, since_step: int | None = None,
                      principal: Principal = Depends(require(Permission.READ))) -> list[dict[str, Any]]:
    """Every logged step: ``{step, metrics, ts}`` (loss, kl, reward_mean/std, learning_rate, tokens_per_s, cost...)."""
    return await run_in_threadpool(jobs.list_metrics, request.app.state.services, principal.tenant_id, job_id, since_step)


@router.post("/train/jobs/{job_id}/stop")
async def stop_job(job_id: str, request: Request,
                   principal: Principal = Depends(require(Permission.TRAIN_WRITE))) -> jobs.TrainJobInfo:
    """Stop after the current step with a resumable checkpoint (a queued job stops at once); 409 if it ended."""
    request.state.audit_target = f"train_job:{job_id}"
    return await run_in_threadpool(jobs.stop, request.app.state.services, principal.tenant_id, job_id)


class RewardModelTrainIn(BaseModel):
    """``POST /rm/train``: a reward model (RewardTrainer) from a preference dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset_ref: str = Field(description="A preference dataset id.")
    model_base: str | None = None
    model_checkpoint: str | None = None
    model_name: str | None = Field(None, description="Registry reward model; default '<base name>-rm'.")
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    compute_requirements: jobs.ComputeRequirements = Field(default_factory=jobs.ComputeRequirements)
    resume_from: str | None = None


@router.post("/rm/train", status_code=201)
async def train_reward_model(body: RewardModelTrainIn, request: Request,
                             principal: Principal = Depends(require(Permission.TRAIN_WRITE))) -> jobs.TrainJobInfo:
    """A training job of algorithm ``rm``; its checkpoint is registered as a reward model."""
    job_request = jobs.TrainJobRequest(algorithm="rm", **body.model_dump(exclude_unset=True))
    info = await run_in_threadpool(jobs.submit, request.app.state.services, principal.tenant_id, job_request)
    request.state.audit_target = f"train_job:{info.id}"
    return info


class RewardModelOut(registry.ModelInfo):
    """A reward model with its checkpoints, newest first."""

    checkpoints: list[registry.CheckpointInfo]


def _reward_models(services: Any, tenant_id: str) -> list[RewardModelOut]:
    return [
        RewardModelOut(**model.model_dump(), checkpoints=registry.list_checkpoints(services, tenant_id, model.id))
        for model in registry.list_models(services, tenant_id, registry.ModelKind.REWARD)
    ]


@router.get("/rm/models")
async def reward_models(request: Request, principal: Principal = Depends(require(Permission.READ))) -> list[RewardModelOut]:
    """The tenant's reward models (registry kind ``reward``) with their checkpoints."""
    return await run_in_threadpool(_reward_models, request.app.state.services, principal.tenant_id)
