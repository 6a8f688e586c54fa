"""Model registry endpoints: models, checkpoints, gated promotion, rollback."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.security.roles import Permission, Role
from workbench.security.tenants import Principal
from workbench.train import registry

router = APIRouter(tags=["algorithm"])


@router.get("/models")
async def list_models(request: Request, kind: str | None = None,
                      principal: Principal = Depends(require(Permission.READ))) -> list[registry.ModelInfo]:
    """The tenant's models (base, policy, reward)."""
    return await run_in_threadpool(registry.list_models, request.app.state.services, principal.tenant_id, kind)


@router.get("/models/{model_id}")
async def get_model(model_id: str, request: Request, principal: Principal = Depends(require(Permission.READ))) -> registry.ModelInfo:
    """A model by id or name, with its production checkpoint."""
    return await run_in_threadpool(registry.get_model, request.app.state.services, principal.tenant_id, model_id)


@router.get("/models/{model_id}/checkpoints")
async def list_checkpoints(model_id: str, request: Request,
                           principal: Principal = Depends(require(Permission.READ))) -> list[registry.CheckpointInfo]:
    """Every checkpoint with its lineage (base model, dataset version, job, hyperparameters, code version)."""
    return await run_in_threadpool(registry.list_checkpoints, request.app.state.services, principal.tenant_id, model_id)


class PromoteIn(BaseModel):
    """Move a checkpoint to staging or production."""

    checkpoint_id: str
    stage: registry.Stage = Field(description="staging | production")
    override: bool = Field(False, description="Admins only: skip the eval gate (recorded with the reason).")
    reason: str | None = None


@router.post("/models/{model_id}/promote")
async def promote(model_id: str, body: PromoteIn, request: Request,
                  principal: Principal = Depends(require(Permission.MODELS_PROMOTE))) -> dict:
    """Production needs a test-split eval report at least as good as production's (409 otherwise)."""
    request.state.audit_target = f"checkpoint:{body.checkpoint_id}"
    request.state.audit_detail = {"stage": body.stage.value, "override": body.override}
    return await run_in_threadpool(
        lambda: registry.promote(
            request.app.state.services, principal.tenant_id, model_id, body.checkpoint_id, body.stage,
            actor=principal.actor, may_override=principal.role is Role.ADMIN, override=body.override, reason=body.reason,
        )
    )


@router.post("/models/{model_id}/rollback")
async def rollback(model_id: str, request: Request, principal: Principal = Depends(require(Permission.MODELS_PROMOTE))) -> dict:
    """Make the previous production checkpoint production again."""
    return await run_in_threadpool(
        lambda: registry.rollback(request.app.state.services, principal.tenant_id, model_id, actor=principal.actor)
    )
