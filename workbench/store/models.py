"""Control-plane tables (SQLAlchemy 2.0). Schema changes go through alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every control-plane table."""


class Tenant(Base):
    """An isolated customer or team; every record belongs to exactly one."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A bearer key bound to one tenant and one role; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRecord(Base):
    """One mutating call: who did what to which target, and how it ended."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(400), nullable=True)
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class DatasetRecord(Base):
    """An immutable dataset version: a file under artifacts plus its lineage."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    output_format: Mapped[str] = mapped_column(String(10))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(Integer)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(1000))
    creator: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)


class DatasetUse(Base):
    """A downstream consumer (a training job, an eval) that read a dataset version."""

    __tablename__ = "dataset_uses"
    __table_args__ = (UniqueConstraint("dataset_id", "consumer"), Index("ix_dataset_uses_dataset", "dataset_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    consumer: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelRecord(Base):
    """A named model in a tenant: a base model, a policy fine-tuned from one, or a reward model."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    base_model_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CheckpointRecord(Base):
    """One version of a model's weights (full or a LoRA adapter) with its lineage and stage."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(20))
    base_uri: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    stage: Mapped[str] = mapped_column(String(20))
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PromotionRecord(Base):
    """A stage change of a checkpoint, with the eval evidence (or the override) behind it."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    checkpoint_id: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(20))
    previous_checkpoint_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    eval_report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvalReportRecord(Base):
    """An eval run's report: per-task outcomes (artifact) and aggregates (here)."""

    __tablename__ = "eval_reports"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    suite: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    results_uri: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScenarioRecord(Base):
    """A scenario version: the spec is immutable; its id is the content hash."""

    __tablename__ = "scenarios"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    split: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRecord(Base):
    """One environment run: pinned scenario version, seed, status and the recorded trace."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scenario_id: Mapped[str] = mapped_column(String(80), index=True)
    seed: Mapped[int] = mapped_column(Integer)
    agent_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int] = mapped_column(Integer)
    trace: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AgentRecord(Base):
    """A versioned agent: model reference, system prompt, plugins (pinned versions), generation settings."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRecord(Base):
    """A conversation with an agent; its turns are in session_turns."""

    __tablename__ = "agent_sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionTurnRecord(Base):
    """One user message and the agent's reply, with tool calls and timing."""

    __tablename__ = "session_turns"
    __table_args__ = (UniqueConstraint("session_id", "turn"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("agent_sessions.id", ondelete="CASCADE"), index=True)
    turn: Mapped[int] = mapped_column(Integer)
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reply: Mapped[str] = mapped_column(String)
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PluginRecord(Base):
    """A version of an MCP plugin (stdio command or streamable-HTTP URL) with its permissions."""

    __tablename__ = "plugins"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrainJobRecord(Base):
    """A training job: request, status, progress, final metrics and checkpoints."""

    __tablename__ = "train_jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    algorithm: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    dagster_run_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrainMetricRecord(Base):
    """Metrics of one logging step of a training job (for dashboards)."""

    __tablename__ = "train_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("train_jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentRecord(Base):
    """A served model: which checkpoint, through which engine, and its status."""

    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    model_ref: Mapped[str] = mapped_column(String(200))
    checkpoint_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    engine: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AllocationRecord(Base):
    """A compute allocation: a slot of a named pool held for a duration (Compute Factory)."""

    __tablename__ = "compute_allocations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    pool: Mapped[str] = mapped_column(String(60), index=True)
    gpu_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    count: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True)
    dagster_run_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    owner: Mapped[dict[str, Any]] = mapped_column(JSON)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NodeSampleRecord(Base):
    """One reading of a machine: CPU, memory, GPUs and preemption notices (shared infrastructure, no tenant)."""

    __tablename__ = "compute_node_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(200), index=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    load_1m: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_used_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_total_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpu_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpu_utilization: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpu_memory_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpus: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    preempted: Mapped[bool] = mapped_column(Boolean)
    preemption: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
