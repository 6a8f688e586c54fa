"""The model registry: models, checkpoints with lineage, and eval-gated promotion with rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import func, select

from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.models import CheckpointRecord, EvalReportRecord, ModelRecord, PromotionRecord

if TYPE_CHECKING:
    from workbench.services import Services


class ModelKind(StrEnum):
    """What a registered model is."""

    BASE = "base"
    POLICY = "policy"
    REWARD = "reward"


class Stage(StrEnum):
    """Where a checkpoint is in its life."""

    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class PromotionRefused(ConflictError):
    """The promotion gate said no (no eval report, or a worse one than production's)."""


class ModelInfo(BaseModel):
    """A model as the API returns it."""

    id: str
    name: str
    kind: str
    base_model_id: str | None
    description: str | None
    created_at: datetime
    production_checkpoint_id: str | None = None

    @classmethod
    def of(cls, record: ModelRecord, production: str | None = None) -> ModelInfo:
        """From the control-plane record."""
        return cls(id=record.id, name=record.name, kind=record.kind, base_model_id=record.base_model_id,
                   description=record.description, created_at=record.created_at, production_checkpoint_id=production)


class CheckpointInfo(BaseModel):
    """A checkpoint as the API returns it."""

    id: str
    model_id: str
    version: int
    uri: str
    format: str
    base_uri: str | None
    stage: str
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, r: CheckpointRecord) -> CheckpointInfo:
        """From the control-plane record."""
        return cls(id=r.id, model_id=r.model_id, version=r.version, uri=r.uri, format=r.format, base_uri=r.base_uri,
                   stage=r.stage, lineage=r.lineage, metrics=r.metrics, created_at=r.created_at)


def register_model(
    services: Services, tenant_id: str, name: str, kind: ModelKind | str, *,
    base_model_id: str | None = None, description: str | None = None,
) -> ModelInfo:
    """Create a model in the tenant (409 if the name is taken)."""
    kind = ModelKind(kind)
    if base_model_id is not None:
        get_model(services, tenant_id, base_model_id)
    with services.control.session() as session:
        if session.scalar(select(ModelRecord).where(ModelRecord.tenant_id == tenant_id, ModelRecord.name == name)):
            raise ConflictError(f"a model named {name!r} already exists in this tenant")
        record = ModelRecord(id=new_id("mdl"), tenant_id=tenant_id, name=name, kind=kind.value, base_model_id=base_model_id,
                             description=description, created_at=datetime.now(UTC))
        session.add(record)
    return ModelInfo.of(record)


def _model(session, tenant_id: str, ref: str) -> ModelRecord:
    record = session.get(ModelRecord, ref)
    if record is None or record.tenant_id != tenant_id:
        record = session.scalar(select(ModelRecord).where(ModelRecord.tenant_id == tenant_id, ModelRecord.name == ref))
    if record is None:
        raise NotFoundError("model", ref)
    return record


def _production(session, model_id: str) -> CheckpointRecord | None:
    return session.scalar(select(CheckpointRecord).where(
        CheckpointRecord.model_id == model_id, CheckpointRecord.stage == Stage.PRODUCTION.value))


def get_model(services: Services, tenant_id: str, ref: str) -> ModelInfo:
    """A model by id or name."""
    with services.control.session() as session:
        record = _model(session, tenant_id, ref)
        production = _production(session, record.id)
        return ModelInfo.of(record, production.id if production else None)


def list_models(services: Services, tenant_id: str, kind: ModelKind | str | None = None) -> list[ModelInfo]:
    """The tenant's models, oldest first."""
    query = select(ModelRecord).where(ModelRecord.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(ModelRecord.kind == ModelKind(kind).value)
    with services.control.session() as session:
        return [ModelInfo.of(r, (p.id if (p := _production(session, r.id)) else None))
                for r in session.scalars(query.order_by(ModelRecord.created_at))]


def register_checkpoint(
    services: Services, tenant_id: str, model_ref: str, *, uri: str, format: str = "safetensors",
    base_uri: str | None = None, lineage: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Add the next version of a model's weights, with lineage (base, dataset, job, hyperparameters, code)."""
    if format not in ("safetensors", "lora"):
        raise ValidationFailed("format", "a checkpoint is 'safetensors' (full weights) or 'lora' (an adapter)")
    if format == "lora" and not base_uri:
        raise ValidationFailed("base_uri", "a LoRA checkpoint needs the URI of the weights it adapts")
    with services.control.session() as session:
        model = _model(session, tenant_id, model_ref)
        version = (session.scalar(select(func.max(CheckpointRecord.version)).where(CheckpointRecord.model_id == model.id)) or 0) + 1
        record = CheckpointRecord(
            id=new_id("ckpt"), model_id=model.id, tenant_id=tenant_id, version=version, uri=uri, format=format,
            base_uri=base_uri, stage=Stage.NONE.value, lineage=lineage or {}, metrics=metrics or {},
            created_at=datetime.now(UTC),
        )
        session.add(record)
    return CheckpointInfo.of(record)


def list_checkpoints(services: Services, tenant_id: str, model_ref: str) -> list[CheckpointInfo]:
    """A model's checkpoints, newest first."""
    with services.control.session() as session:
        model = _model(session, tenant_id, model_ref)
        rows = session.scalars(select(CheckpointRecord).where(CheckpointRecord.model_id == model.id)
                               .order_by(CheckpointRecord.version.desc()))
        return [CheckpointInfo.of(r) for r in rows]


def get_checkpoint(services: Services, tenant_id: str, checkpoint_id: str) -> CheckpointInfo:
    """One checkpoint of this tenant."""
    with services.control.session() as session:
        record = session.get(CheckpointRecord, checkpoint_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFoundError("checkpoint", checkpoint_id)
        return CheckpointInfo.of(record)


def _latest_report(session, tenant_id: str, subject: str, suite: str | None = None) -> EvalReportRecord | None:
    query = select(EvalReportRecord).where(
        EvalReportRecord.tenant_id == tenant_id, EvalReportRecord.subject == subject,
        EvalReportRecord.split == "test", EvalReportRecord.status == "done",
    )
    if suite is not None:
        query = query.where(EvalReportRecord.suite == suite)
    return session.scalar(query.order_by(EvalReportRecord.created_at.desc()).limit(1))


def promote(
    services: Services, tenant_id: str, model_ref: str, checkpoint_id: str, stage: Stage | str, *,
    actor: str, may_override: bool = False, override: bool = False, reason: str | None = None,
) -> dict[str, Any]:
    """Move a checkpoint to staging or production.

    Production needs a finished test-split eval report of the checkpoint at least as good as the
    current production checkpoint's report on the same suite; ``override`` (admins only) skips
    the gate and is recorded with its reason.
    """
    stage = Stage(stage)
    if stage not in (Stage.STAGING, Stage.PRODUCTION):
        raise ValidationFailed("stage", "promote to 'staging' or 'production'")
    if override and not may_override:
        raise PromotionRefused("only admins may override the promotion gate")
    with services.control.session() as session:
        model = _model(session, tenant_id, model_ref)
        candidate = session.get(CheckpointRecord, checkpoint_id)
        if candidate is None or candidate.model_id != model.id:
            raise NotFoundError("checkpoint", checkpoint_id)
        current = _production(session, model.id)
        report = None
        if stage is Stage.PRODUCTION:
            report = _latest_report(session, tenant_id, candidate.id)
            if report is None and not override:
                raise PromotionRefused(
                    f"checkpoint {candidate.id} has no finished eval report on the test split; run POST /eval/run first"
                )
            if report is not None and current is not None and current.id != candidate.id and not override:
                incumbent = _latest_report(session, tenant_id, current.id, report.suite)
                if incumbent is not None and report.summary["success_rate"] < incumbent.summary["success_rate"]:
                    raise PromotionRefused(
                        f"candidate success rate {report.summary['success_rate']:.3f} on {report.suite} is below "
                        f"production's {incumbent.summary['success_rate']:.3f}; improve it or ask an admin to override"
                    )
            if current is not None and current.id != candidate.id:
                current.stage = Stage.ARCHIVED.value
        candidate.stage = stage.value
        session.add(PromotionRecord(
            tenant_id=tenant_id, model_id=model.id, checkpoint_id=candidate.id, stage=stage.value,
            previous_checkpoint_id=current.id if current is not None and stage is Stage.PRODUCTION else None,
            eval_report_id=report.id if report is not None else None, override=override, actor=actor, reason=reason,
            ts=datetime.now(UTC),
        ))
        return {"model_id": model.id, "checkpoint_id": candidate.id, "stage": stage.value,
                "previous_production": current.id if current is not None and stage is Stage.PRODUCTION else None,
                "eval_report_id": report.id if report is not None else None, "override": override}


def rollback(services: Services, tenant_id: str, model_ref: str, *, actor: str) -> dict[str, Any]:
    """Make the previous production checkpoint production again."""
    with services.control.session() as session:
        model = _model(session, tenant_id, model_ref)
        current = _production(session, model.id)
        last = session.scalar(select(PromotionRecord).where(
            PromotionRecord.model_id == model.id, PromotionRecord.stage == Stage.PRODUCTION.value,
            PromotionRecord.previous_checkpoint_id.is_not(None),
        ).order_by(PromotionRecord.id.desc()).limit(1))
        if current is None or last is None or last.checkpoint_id != current.id:
            raise ConflictError("there is no previous production checkpoint to roll back to")
        previous = session.get(CheckpointRecord, last.previous_checkpoint_id)
        current.stage, previous.stage = Stage.ARCHIVED.value, Stage.PRODUCTION.value
        session.add(PromotionRecord(
            tenant_id=tenant_id, model_id=model.id, checkpoint_id=previous.id, stage=Stage.PRODUCTION.value,
            previous_checkpoint_id=None, eval_report_id=None, override=False, actor=actor, reason=f"rollback from {current.id}",
            ts=datetime.now(UTC),
        ))
        return {"model_id": model.id, "checkpoint_id": previous.id, "stage": "production", "rolled_back": current.id}
