"""Training jobs: validate a request, queue it as a Dagster run under a compute pool, execute it with
tracking, register its checkpoint with lineage, stop and resume it.

The life of a job (``train_jobs`` row; statuses ``queued → running → succeeded | failed``, or
``→ stopping → stopped``):

* :func:`submit` checks everything that can be checked without loading a model — algorithm,
  hyperparameters (the algorithm's typed config), the dataset (exists in the tenant, is of the kind
  the algorithm trains on, and its rows fit), the base model (registry reference, converting the
  packaged base model on first use), the job to resume from and the pool name — raising
  :class:`~workbench.errors.ValidationFailed` naming the field; then records the job as ``queued``,
  marks the dataset used by ``train_job:<id>`` and launches a Dagster run for it (see
  :mod:`workbench.train._dagster_job`). The run's op waits for a slot of the requested pool, so
  jobs beyond the pool's size stay ``queued``.
* :func:`execute` (what the op calls) trains with :func:`workbench.train.run_training`: metrics go
  to ``train_metrics`` rows and wandb (offline, under the job's directory), progress to the job
  row; a completed run registers its final model as the next checkpoint of a policy model (a
  reward model for ``rm``) with lineage; a stopped one leaves a resumable checkpoint.
* :func:`stop` asks a running job to stop after its current step (the executor polls the row, so
  this works across processes) or stops a queued one at once; ``resume_from: <job id>`` in a new
  request continues from the stopped (or interrupted) job's checkpoint, global step included.
* :func:`recover_interrupted` reports jobs whose process died (server killed mid-run) as ``failed``
  with ``result.interrupted`` and their last checkpoint, which can be resumed.

Nothing here imports torch or Dagster at module level.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import logging
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field
from sqlalchemy import select, update

from workbench.compute.launcher import StopSignals, mark_run_interrupted, owner_alive, process_owner
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.models import TrainJobRecord, TrainMetricRecord
from workbench.train._types import normalize_algorithm

if TYPE_CHECKING:
    from workbench.services import Services

__all__ = [
    "ACTIVE_STATUSES",
    "ComputeRequirements",
    "TERMINAL_STATUSES",
    "TrainJobInfo",
    "TrainJobRequest",
    "code_version",
    "execute",
    "get_job",
    "job_dir",
    "list_jobs",
    "list_metrics",
    "recover_interrupted",
    "stop",
    "submit",
    "validate_request",
]

log = logging.getLogger("workbench.train.jobs")

ACTIVE_STATUSES = ("queued", "running", "stopping")
TERMINAL_STATUSES = ("succeeded", "failed", "stopped")
# How often a running job re-reads its row for a stop requested from another process.
STOP_POLL_S = 2.0


# --------------------------------------------------------------------------- request and view


class ComputeRequirements(BaseModel):
    """Where and how a job runs: a named pool (Dagster concurrency pool), priority, time limit."""

    model_config = ConfigDict(extra="forbid")

    pool: str | None = Field(None, description="Pool name; default 'cpu', or 'gpu-<gpu_type>' when gpu_type is set.")
    gpu_type: str | None = Field(None, description="Accelerator type, e.g. 'a100' (selects pool 'gpu-<type>').")
    count: int = Field(1, ge=1, le=64, description="Accelerators wanted (recorded; one pool slot per job).")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first among jobs waiting for the pool.")
    max_runtime_s: float | None = Field(None, gt=0, description="Stop (with a resumable checkpoint) after this long.")

    @property
    def resolved_pool(self) -> str:
        """The pool the job asks for."""
        if self.pool:
            return self.pool
        return f"gpu-{self.gpu_type.lower()}" if self.gpu_type else "cpu"


class TrainJobRequest(BaseModel):
    """``POST /train/jobs``: what to train, on what, how, and where."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str | None = Field(None, description="sft | dpo | grpo | ppo | rft | rm (inherited with resume_from).")
    dataset_ref: str | None = Field(None, description="Dataset version id (sft, preference or rl_prompts by algorithm).")
    model_base: str | None = Field(None, description="Registry model id or name to start from; default the base model.")
    model_checkpoint: str | None = Field(None, description="A checkpoint of model_base (default: production, else latest).")
    model_name: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Registry model that receives the checkpoint; default '<base name>-<algorithm>'.",
    )
    hyperparams: dict[str, Any] = Field(default_factory=dict, description="Fields of the algorithm's config.")
    reward_funcs: list[str] = Field(default_factory=list, description="grpo / rft: registered reward function names.")
    verifiers: list[Any] = Field(
        default_factory=list,
        description="rft: Reward/Eval Factory verifier specs (e.g. [\"checker\"]); the first scores each completion.",
    )
    reward_model: str | None = Field(None, description="ppo / grpo: a registry reward model used as reward_model_path.")
    compute_requirements: ComputeRequirements = Field(default_factory=ComputeRequirements)
    resume_from: str | None = Field(None, description="A stopped or interrupted job id to continue (global step too).")


class TrainJobInfo(BaseModel):
    """A job as the API returns it."""

    id: str
    algorithm: str
    status: str
    request: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any]
    dagster_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    latest_metrics: dict[str, float] = Field(default_factory=dict, description="Last value of every metric so far.")
    metrics_steps: int = Field(0, description="Logged steps so far (GET /train/jobs/{id}/metrics lists them).")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def job_id(self) -> str:
        """Same as ``id``."""
        return self.id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pool(self) -> str:
        """The compute pool the job runs in."""
        return self.request.get("resolved", {}).get("pool", "cpu")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """The registered checkpoint (when it succeeded) and the resumable one (stopped or interrupted)."""
        out = []
        if self.result.get("checkpoint_id"):
            out.append({"kind": "registered", "checkpoint_id": self.result["checkpoint_id"],
                        "model_id": self.result.get("model_id"), "version": self.result.get("checkpoint_version"),
                        "uri": self.result.get("final_dir"), "format": self.result.get("format")})  # fmt: skip
        if self.result.get("checkpoint_dir"):
            out.append({"kind": "resumable", "dir": self.result["checkpoint_dir"], "step": self.result.get("global_step")})
        return out

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wandb_dir(self) -> str | None:
        """The job's wandb run directory (offline: ``wandb sync`` it)."""
        return self.result.get("wandb_dir")


def _info(record: TrainJobRecord, latest: dict[str, float] | None = None, steps: int = 0) -> TrainJobInfo:
    return TrainJobInfo(
        id=record.id, algorithm=record.algorithm, status=record.status, request=record.request,
        progress=record.progress, result=record.result, dagster_run_id=record.dagster_run_id,
        created_at=record.created_at, finished_at=record.finished_at, latest_metrics=latest or {}, metrics_steps=steps,
    )  # fmt: skip


# --------------------------------------------------------------------------- in-process registry

_STOPS = StopSignals()


# --------------------------------------------------------------------------- helpers


def job_dir(services: Services, tenant_id: str, job_id: str) -> Path:
    """Where a job writes checkpoints, the final model, wandb and result.json (local disk)."""
    root = services.settings.resolved_artifacts_uri
    base = Path(root) if "://" not in root else services.settings.home / "artifacts"
    return (base / "train_jobs" / tenant_id / job_id).resolve()


@functools.cache
def code_version() -> str:
    """``git:<sha>`` of the checkout the code runs from, else the installed package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"agent-factory-workbench=={importlib.metadata.version('agent-factory-workbench')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _record(services: Services, tenant_id: str | None, job_id: str) -> TrainJobRecord:
    with services.control.session() as session:
        record = session.get(TrainJobRecord, job_id)
    if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
        raise NotFoundError("train job", job_id)
    return record


def _transition(services: Services, job_id: str, from_statuses: tuple[str, ...], to_status: str, **values: Any) -> bool:
    """Move a job to ``to_status`` only if it is in one of ``from_statuses`` (atomic); True if it moved."""
    if to_status in TERMINAL_STATUSES:
        values.setdefault("finished_at", datetime.now(UTC))
    with services.control.session() as session:
        moved = session.execute(
            update(TrainJobRecord).where(TrainJobRecord.id == job_id, TrainJobRecord.status.in_(from_statuses))
            .values(status=to_status, **values)
        ).rowcount  # fmt: skip
    return bool(moved)


def _merge_progress(services: Services, job_id: str, **values: Any) -> None:
    with services.control.session() as session:
        record = session.get(TrainJobRecord, job_id)
        if record is not None:
            record.progress = {**record.progress, **values, "updated_at": datetime.now(UTC).isoformat()}


def _dataset_rows(services: Services, tenant_id: str, info: Any) -> list[dict[str, Any]]:
    from workbench.data.datasets import dataset_file_key

    data = services.artifacts.read_bytes(dataset_file_key(info, tenant_id))
    if info.output_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _rename_field(exc: ValidationFailed) -> ValidationFailed:
    """Map the training library's field names onto the request's (``dataset[3]`` → ``dataset_ref[3]``)."""
    field = exc.field
    if field.startswith("dataset"):
        field = "dataset_ref" + field.removeprefix("dataset")
    elif field == "base_model_dir":
        field = "model_base"
    elif field not in ("algorithm", "resume_from", "reward_funcs", "verifier", "verifiers", "sampler") and not field.startswith(
        ("reward_funcs[", "hyperparams")
    ):
        field = f"hyperparams.{field}"
    return ValidationFailed(field, exc.reason)


# --------------------------------------------------------------------------- validation


class _Plan(BaseModel):
    """A validated request, resolved to ids and local paths."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request: TrainJobRequest
    algorithm: str
    hyperparams: dict[str, Any]
    rows: list[dict[str, Any]]
    dataset: dict[str, Any]
    base: dict[str, Any]
    start_dir: Path
    resume_checkpoint: Path | None
    pool: str
    model_name: str


def _inherit(services: Services, tenant_id: str, request: TrainJobRequest) -> tuple[TrainJobRequest, TrainJobRecord | None]:
    """Fill a resume request's unset fields from the job it resumes."""
    if request.resume_from is None:
        return request, None
    try:
        previous = _record(services, tenant_id, request.resume_from)
    except NotFoundError:
        raise ValidationFailed("resume_from", f"no train job {request.resume_from!r} in this tenant") from None
    before = TrainJobRequest.model_validate({k: v for k, v in previous.request.items() if k != "resolved"})
    given = request.model_dump(exclude_unset=True)
    merged = {**before.model_dump(), **given, "resume_from": request.resume_from}
    # Pin the base to what the first job trained on, so the checkpoint fits the weights.
    resolved = previous.request.get("resolved", {})
    if "model_base" not in given and resolved.get("base_model_id"):
        merged["model_base"], merged["model_checkpoint"] = resolved["base_model_id"], resolved.get("base_checkpoint_id")
    return TrainJobRequest.model_validate(merged), previous


def _plan(services: Services, tenant_id: str, request: TrainJobRequest | dict[str, Any]) -> _Plan:
    from workbench.agents._base_model import BASE_MODEL_NAME
    from workbench.compute import check_pool_name
    from workbench.data.datasets import get_dataset
    from workbench.runtime.serving import resolve_model
    from workbench.train import validate_training
    from workbench.train._configs import make_config
    from workbench.train._data import DATASET_KINDS
    from workbench.train.registry import ModelKind, get_model

    if not isinstance(request, TrainJobRequest):
        try:
            request = TrainJobRequest.model_validate(request)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValidationFailed(".".join(str(p) for p in first["loc"]) or "(body)", first["msg"]) from None
    request, previous = _inherit(services, tenant_id, request)
    if request.algorithm is None:
        raise ValidationFailed("algorithm", "required: sft | dpo | grpo | ppo | rft | rm")
    algorithm = normalize_algorithm(request.algorithm)

    if previous is not None:
        if previous.algorithm != algorithm:
            raise ValidationFailed("resume_from", f"job {previous.id} trained {previous.algorithm}, not {algorithm}")
        checkpoint = previous.result.get("checkpoint_dir")
        if previous.status not in ("stopped", "failed") or not checkpoint:
            raise ValidationFailed("resume_from", f"job {previous.id} is {previous.status} and left no resumable checkpoint")
        resume_checkpoint: Path | None = Path(checkpoint)
    else:
        resume_checkpoint = None

    hyperparams = dict(request.hyperparams)
    # Cost figures use the deployment's prices unless the request sets its own.
    hyperparams.setdefault("cpu_price_per_second", services.settings.cpu_price_per_second)
    hyperparams.setdefault("gpu_price_per_second", services.settings.gpu_price_per_second)
    if request.reward_model is not None:
        if "reward_model_path" in request.hyperparams:
            raise ValidationFailed("reward_model", "give reward_model or hyperparams.reward_model_path, not both")
        try:
            rm = resolve_model(services, tenant_id, {"ref": request.reward_model})
        except ValidationFailed as exc:
            raise ValidationFailed("reward_model", exc.reason) from None
        hyperparams["reward_model_path"] = str(rm.adapter or rm.weights)
    try:
        config = make_config(algorithm, hyperparams)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.field if exc.field == "algorithm" else f"hyperparams.{exc.field}", exc.reason) from None

    if not request.dataset_ref:
        raise ValidationFailed("dataset_ref", f"required: the id of a {DATASET_KINDS[algorithm]} dataset")
    try:
        dataset = get_dataset(services, tenant_id, request.dataset_ref)
    except NotFoundError:
        raise ValidationFailed("dataset_ref", f"no dataset {request.dataset_ref!r} in this tenant") from None
    wanted = DATASET_KINDS[algorithm]
    if dataset.kind != wanted:
        raise ValidationFailed("dataset_ref", f"{algorithm} trains on a {wanted} dataset; {dataset.id} is a {dataset.kind} dataset")
    rows = _dataset_rows(services, tenant_id, dataset)

    try:
        base = resolve_model(services, tenant_id, {"ref": request.model_base or BASE_MODEL_NAME,
                                                   "checkpoint": request.model_checkpoint})  # fmt: skip
    except ValidationFailed as exc:
        field = "model_checkpoint" if exc.field == "model.checkpoint" else "model_base"
        raise ValidationFailed(field, exc.reason) from None
    start_dir = base.adapter or base.weights

    try:
        validate_training(algorithm, config, rows, start_dir, resume_from=resume_checkpoint,
                          reward_funcs=request.reward_funcs,
                          verifier=_verifier(services, tenant_id, request) if algorithm == "rft" else None,
                          sampler=_sampler(request))  # fmt: skip
    except ValidationFailed as exc:
        raise _rename_field(exc) from None

    pool = check_pool_name(request.compute_requirements.resolved_pool)
    model_name = request.model_name or f"{base.model_name}-{algorithm}"
    kind = ModelKind.REWARD if algorithm == "rm" else ModelKind.POLICY
    try:
        existing = get_model(services, tenant_id, model_name)
    except NotFoundError:
        existing = None
    if existing is not None and existing.kind != kind.value:
        raise ValidationFailed("model_name", f"model {model_name!r} is a {existing.kind} model; {algorithm} makes {kind.value} models")
    return _Plan(
        request=request, algorithm=algorithm, hyperparams=hyperparams, rows=rows,
        dataset={"id": dataset.id, "name": dataset.name, "version": dataset.version, "kind": dataset.kind,
                 "content_hash": dataset.content_hash, "rows": dataset.rows},
        base={"model_id": base.model_id, "model_name": base.model_name, "checkpoint_id": base.checkpoint_id,
              "checkpoint_version": base.checkpoint_version, "weights": str(base.weights),
              "adapter": str(base.adapter) if base.adapter else None},
        start_dir=start_dir, resume_checkpoint=resume_checkpoint, pool=pool, model_name=model_name,
    )  # fmt: skip


def validate_request(services: Services, tenant_id: str, request: TrainJobRequest | dict[str, Any]) -> dict[str, Any]:
    """Every check :func:`submit` makes, without recording anything; returns the resolved inputs."""
    plan = _plan(services, tenant_id, request)
    return {"algorithm": plan.algorithm, "dataset": plan.dataset, "base": plan.base, "pool": plan.pool,
            "model_name": plan.model_name, "rows": len(plan.rows)}  # fmt: skip


# --------------------------------------------------------------------------- submit / view / stop


def submit(services: Services, tenant_id: str, request: TrainJobRequest | dict[str, Any], *, launch: bool = True) -> TrainJobInfo:
    """Validate, record as ``queued``, mark the dataset used, and launch the job's Dagster run.

    Raises :class:`ValidationFailed` (HTTP 422) before anything is recorded or computed.
    ``launch=False`` only records the job (a caller that runs :func:`execute` itself).
    """
    from workbench.data.datasets import mark_dataset_used

    plan = _plan(services, tenant_id, request)
    job_id = new_id("job")
    run_id = str(uuid.uuid4()) if launch else None
    stored = plan.request.model_dump(mode="json")
    stored["resolved"] = {
        "base_model_id": plan.base["model_id"], "base_model_name": plan.base["model_name"],
        "base_checkpoint_id": plan.base["checkpoint_id"], "dataset_id": plan.dataset["id"],
        "dataset_version": plan.dataset["version"], "dataset_kind": plan.dataset["kind"], "pool": plan.pool,
        "model_name": plan.model_name, "resume_checkpoint": str(plan.resume_checkpoint or "") or None,
    }  # fmt: skip
    now = datetime.now(UTC)
    record = TrainJobRecord(
        id=job_id, tenant_id=tenant_id, algorithm=plan.algorithm, status="queued", request=stored,
        progress={"step": 0, "max_steps": int(plan.hyperparams.get("max_steps") or 0), "owner": process_owner(),
                  "queued_at": now.isoformat()},
        result={}, dagster_run_id=run_id, created_at=now, finished_at=None,
    )  # fmt: skip
    with services.control.session() as session:
        session.add(record)
    mark_dataset_used(services, tenant_id, plan.dataset["id"], f"train_job:{job_id}")
    if launch:
        from workbench.train._dagster_job import launch as launch_run

        _STOPS.event(job_id)
        try:
            launch_run(services, tenant_id, job_id, run_id, plan.request, plan.pool, plan.dataset, plan.base)
        except Exception as exc:
            _transition(services, job_id, ACTIVE_STATUSES, "failed", result={"error": f"could not launch: {exc}"})
            _STOPS.forget(job_id)
            raise
    return get_job(services, tenant_id, job_id)


def _latest(services: Services, job_ids: list[str]) -> dict[str, tuple[dict[str, float], int]]:
    out: dict[str, tuple[dict[str, float], int]] = {job_id: ({}, 0) for job_id in job_ids}
    if not job_ids:
        return out
    with services.control.session() as session:
        rows = session.scalars(select(TrainMetricRecord).where(TrainMetricRecord.job_id.in_(job_ids))
                               .order_by(TrainMetricRecord.id))  # fmt: skip
        for row in rows:
            latest, steps = out[row.job_id]
            latest.update(row.metrics)
            out[row.job_id] = (latest, steps + 1)
    return out


def get_job(services: Services, tenant_id: str, job_id: str) -> TrainJobInfo:
    """One job of this tenant with its latest metrics (another tenant's job is 404)."""
    record = _record(services, tenant_id, job_id)
    if record.status in ACTIVE_STATUSES and not owner_alive(record.progress.get("owner")):
        recover_interrupted(services, tenant_id)
        record = _record(services, tenant_id, job_id)
    latest, steps = _latest(services, [job_id])[job_id]
    return _info(record, latest, steps)


def list_jobs(services: Services, tenant_id: str, status: str | None = None, limit: int = 100) -> list[TrainJobInfo]:
    """The tenant's jobs, newest first."""
    recover_interrupted(services, tenant_id)
    query = select(TrainJobRecord).where(TrainJobRecord.tenant_id == tenant_id)
    if status is not None:
        query = query.where(TrainJobRecord.status == status)
    with services.control.session() as session:
        records = list(session.scalars(query.order_by(TrainJobRecord.created_at.desc()).limit(max(1, min(limit, 1000)))))
    latest = _latest(services, [r.id for r in records])
    return [_info(r, *latest[r.id]) for r in records]


def list_metrics(services: Services, tenant_id: str, job_id: str, since_step: int | None = None) -> list[dict[str, Any]]:
    """Every logged step of a job: ``{step, metrics, ts}``, in order."""
    _record(services, tenant_id, job_id)
    query = select(TrainMetricRecord).where(TrainMetricRecord.job_id == job_id)
    if since_step is not None:
        query = query.where(TrainMetricRecord.step > since_step)
    with services.control.session() as session:
        return [{"step": r.step, "metrics": r.metrics, "ts": r.ts} for r in session.scalars(query.order_by(TrainMetricRecord.id))]


def stop(services: Services, tenant_id: str, job_id: str) -> TrainJobInfo:
    """Stop a job: a queued one at once, a running one after its current step with a resumable checkpoint.

    Raises :class:`ConflictError` (409) for a job that already ended.
    """
    for _ in range(5):  # the status may move under us (queued → running → done); retry on a lost race
        record = _record(services, tenant_id, job_id)
        if record.status == "queued" and _transition(
            services, job_id, ("queued",), "stopped", result={"stop_reason": "requested", "resumable": False}
        ):
            break
        if record.status == "running" and _transition(services, job_id, ("running",), "stopping"):
            break
        if record.status == "stopping":
            break
        if record.status in TERMINAL_STATUSES:
            raise ConflictError(f"train job {job_id} is {record.status}; only queued or running jobs can be stopped")
    _STOPS.set(job_id)  # this process's executor sees it at once; others poll the row
    return get_job(services, tenant_id, job_id)


# --------------------------------------------------------------------------- execution


class _StopFlag:
    """The run's stop flag: this process's event, the row's ``stopping`` status, or the time limit."""

    def __init__(self, services: Services, job_id: str, event: threading.Event, max_runtime_s: float | None) -> None:
        self.services, self.job_id, self.event = services, job_id, event
        self.deadline = time.monotonic() + max_runtime_s if max_runtime_s else None
        self.reason: str | None = None
        self._polled = time.monotonic()

    def __call__(self) -> bool:
        if self.reason is not None:
            return True
        now = time.monotonic()
        if self.event.is_set():
            self.reason = "requested"
        elif self.deadline is not None and now >= self.deadline:
            self.reason = "max_runtime"
        elif now - self._polled >= STOP_POLL_S:
            self._polled = now
            with self.services.control.session() as session:
                status = session.scalar(select(TrainJobRecord.status).where(TrainJobRecord.id == self.job_id))
            if status == "stopping":
                self.reason = "requested"
        return self.reason is not None


def execute(services: Services, job_id: str, stop_event: threading.Event | None = None) -> TrainJobInfo:
    """Run one recorded job to its end (what the Dagster op calls); never raises for a failed run.

    Returns the job as recorded afterwards: ``succeeded`` with the registered checkpoint,
    ``stopped`` with a resumable checkpoint, or ``failed`` with ``result.error``.
    """
    record = _record(services, None, job_id)
    tenant_id = record.tenant_id
    if record.status in TERMINAL_STATUSES:
        return get_job(services, tenant_id, job_id)  # e.g. stopped while it waited for the pool
    started = datetime.now(UTC)
    if not _transition(services, job_id, ("queued",), "running"):
        if record.status == "stopping":  # stopped between the pool granting a slot and here
            _transition(services, job_id, ("stopping",), "stopped", result={"stop_reason": "requested", "resumable": False})
        return get_job(services, tenant_id, job_id)
    _merge_progress(services, job_id, owner=process_owner(), started_at=started.isoformat())
    event = stop_event or _STOPS.event(job_id)
    out = job_dir(services, tenant_id, job_id)
    request = TrainJobRequest.model_validate({k: v for k, v in record.request.items() if k != "resolved"})
    flag = _StopFlag(services, job_id, event, request.compute_requirements.max_runtime_s)
    wall0 = time.perf_counter()
    try:
        plan = _plan(services, tenant_id, _pinned(record))
        result = _train(services, job_id, plan, out, flag)
    except ValidationFailed as exc:
        _finish_failed(services, job_id, out, f"{exc.field}: {exc.reason}", field=exc.field)
    except Exception as exc:  # noqa: BLE001 - any failure of the run is the job's failure, reported on the job
        log.exception("train job failed", extra={"job_id": job_id})
        if "num_samples=0" in str(exc):
            # TRL dropped every row as longer than max_length; say so instead of the sampler's message.
            _finish_failed(services, job_id, out, "hyperparams.max_length: every training row is longer than "
                           "max_length, so nothing was left to train on; raise max_length", field="hyperparams.max_length")
        else:
            _finish_failed(services, job_id, out, f"{type(exc).__name__}: {str(exc)[:2000]}")
    else:
        summary = _summary(result, wall0)
        if result.status == "completed":
            registered = _register(services, tenant_id, job_id, plan, result)
            _transition(services, job_id, ("running", "stopping"), "succeeded", result={**summary, **registered})
        else:
            _transition(services, job_id, ("running", "stopping"), "stopped",
                        result={**summary, "stop_reason": flag.reason or "requested", "resumable": True})  # fmt: skip
    finally:
        _STOPS.forget(job_id)
    return get_job(services, tenant_id, job_id)


def _pinned(record: TrainJobRecord) -> dict[str, Any]:
    """The stored request with the base model and checkpoint it was validated against."""
    request = {k: v for k, v in record.request.items() if k != "resolved"}
    resolved = record.request.get("resolved", {})
    request["model_base"] = resolved.get("base_model_id") or request.get("model_base")
    request["model_checkpoint"] = resolved.get("base_checkpoint_id") or request.get("model_checkpoint")
    request["model_name"] = resolved.get("model_name") or request.get("model_name")
    return request


def _train(services: Services, job_id: str, plan: _Plan, out: Path, flag: _StopFlag) -> Any:
    from workbench.train import run_training

    max_steps = {"value": 0}

    def sink(step: int, metrics: dict[str, float]) -> None:
        with services.control.session() as session:
            session.add(TrainMetricRecord(job_id=job_id, step=int(step), metrics=metrics, ts=datetime.now(UTC)))

    def progress(step: int, total: int) -> None:
        max_steps["value"] = total
        _merge_progress(services, job_id, step=int(step), max_steps=int(total))

    tenant_id = _record(services, None, job_id).tenant_id
    return run_training(
        plan.algorithm, plan.hyperparams, plan.rows, plan.start_dir, out, metrics_sink=sink, progress=progress,
        stop=flag, resume_from=plan.resume_checkpoint, reward_funcs=plan.request.reward_funcs,
        verifier=_verifier(services, tenant_id, plan.request) if plan.algorithm == "rft" else None,
        sampler=_sampler(plan.request),
    )  # fmt: skip


def _sampler(request: TrainJobRequest) -> Any:
    """Rejection-sampling RFT draws its K samples per prompt from the round's current model, in-process."""
    if request.hyperparams.get("variant") != "rejection_sampling":
        return None

    def sample(prompts: list[Any], k: int, model_dir: Path, adapter_dir: Path | None = None) -> list[list[str]]:
        from workbench.agents import SamplingParams, TransformersEngine, TransformersEngineConfig

        engine = TransformersEngine(TransformersEngineConfig(model_path=model_dir, adapter_path=adapter_dir))
        try:
            # Prompts arrive rendered (tools already in the system message), so no tools are passed again.
            outputs = engine.generate([p for p in prompts for _ in range(k)],
                                      SamplingParams(temperature=0.8, max_new_tokens=64, seed=0))
        finally:
            engine.close()
        texts = [o.text for o in outputs]
        return [texts[i * k : (i + 1) * k] for i in range(len(prompts))]

    return sample


def _verifier(services: Services, tenant_id: str, request: TrainJobRequest) -> Any:
    """RFT's reward: the request's verifiers, playing answers in the rows' scenarios (stored or library)."""
    from workbench.envs.service import get_scenario, parse_stored
    from workbench.evals.verifiers import completion_verifier

    def resolve(scenario_id: str) -> Any:
        try:
            return parse_stored(get_scenario(services, tenant_id, scenario_id))
        except NotFoundError:
            return None

    return completion_verifier(request.verifiers, resolve)


def _summary(result: Any, wall0: float) -> dict[str, Any]:
    data = result.model_dump(mode="json", exclude={"history", "rounds"})
    data["timing"] = {**data.get("timing", {}), "job_wall_s": time.perf_counter() - wall0}
    data["wandb"] = {"mode": result.wandb_mode, "run_id": result.wandb_run_id,
                     "dir": str(result.wandb_dir) if result.wandb_dir else None,
                     "sync": f"wandb sync {result.wandb_dir}" if result.wandb_dir and result.wandb_mode == "offline" else None}
    return data


def _finish_failed(services: Services, job_id: str, out: Path, error: str, *, field: str | None = None) -> None:
    from workbench.train._job import latest_checkpoint

    checkpoint = latest_checkpoint(out / "checkpoints") if (out / "checkpoints").is_dir() else None
    result = {"error": error, "checkpoint_dir": str(checkpoint) if checkpoint else None, "resumable": checkpoint is not None}
    if field:
        result["field"] = field
    _transition(services, job_id, ACTIVE_STATUSES, "failed", result=result)


def _register(services: Services, tenant_id: str, job_id: str, plan: _Plan, result: Any) -> dict[str, Any]:
    """Register the final model as the next checkpoint of the job's policy (or reward) model."""
    from workbench.train.registry import ModelKind, get_model, register_checkpoint, register_model

    kind = ModelKind.REWARD if plan.algorithm == "rm" else ModelKind.POLICY
    try:
        model = get_model(services, tenant_id, plan.model_name)
    except NotFoundError:
        try:
            model = register_model(services, tenant_id, plan.model_name, kind, base_model_id=plan.base["model_id"],
                                   description=f"{plan.algorithm} of {plan.base['model_name']} (train jobs)")  # fmt: skip
        except ConflictError:  # another job registered it meanwhile
            model = get_model(services, tenant_id, plan.model_name)
    lineage = {
        "base_model": plan.base["model_id"], "base_model_name": plan.base["model_name"],
        "base_checkpoint": plan.base["checkpoint_id"], "dataset_id": plan.dataset["id"],
        "dataset_name": plan.dataset["name"], "dataset_version": plan.dataset["version"],
        "dataset_content_hash": plan.dataset["content_hash"], "job_id": job_id, "algorithm": plan.algorithm,
        "hyperparams": plan.request.hyperparams, "reward_funcs": plan.request.reward_funcs,
        "resumed_from_job": plan.request.resume_from, "code_version": code_version(),
    }  # fmt: skip
    metrics = {k: v for k, v in result.metrics.items()}
    metrics.update({"global_step": result.global_step, "cpu_seconds": result.cpu_seconds, "cost": result.cost})
    checkpoint = register_checkpoint(
        services, tenant_id, model.id, uri=str(result.final_dir), format="lora" if result.adapter else "safetensors",
        base_uri=str(result.base_model_dir) if result.adapter else None, lineage=lineage, metrics=metrics,
    )  # fmt: skip
    return {"model_id": model.id, "model_name": model.name, "checkpoint_id": checkpoint.id,
            "checkpoint_version": checkpoint.version, "format": checkpoint.format}  # fmt: skip


# --------------------------------------------------------------------------- recovery


def recover_interrupted(services: Services, tenant_id: str | None = None) -> list[str]:
    """Report active jobs whose owning process died as ``failed`` (interrupted) with their last checkpoint.

    Their Dagster runs are marked failed and their pool slots freed. Returns the job ids.
    """
    from workbench.train._job import latest_checkpoint

    query = select(TrainJobRecord).where(TrainJobRecord.status.in_(ACTIVE_STATUSES))
    if tenant_id is not None:
        query = query.where(TrainJobRecord.tenant_id == tenant_id)
    with services.control.session() as session:
        stale = [r for r in session.scalars(query) if not owner_alive(r.progress.get("owner"))]
    recovered = []
    for record in stale:
        out = job_dir(services, record.tenant_id, record.id)
        checkpoint = latest_checkpoint(out / "checkpoints") if (out / "checkpoints").is_dir() else None
        owner = record.progress.get("owner") or {}
        result = {
            **record.result, "interrupted": True, "resumable": checkpoint is not None,
            "error": f"interrupted: the process running it (pid {owner.get('pid')} on {owner.get('host')}) ended "
                     f"while the job was {record.status}",
            "checkpoint_dir": str(checkpoint) if checkpoint else None,
            "global_step": int(checkpoint.name.split("-")[-1]) if checkpoint else record.progress.get("step", 0),
        }  # fmt: skip
        if _transition(services, record.id, (record.status,), "failed", result=result):
            recovered.append(record.id)
            if record.dagster_run_id:
                try:
                    mark_run_interrupted(services.settings, record.dagster_run_id,
                                         "interrupted: the process running this training job ended")
                except Exception:  # noqa: BLE001 - the job row is the source of truth; Dagster is best effort
                    log.warning("could not mark dagster run %s failed", record.dagster_run_id, exc_info=True)
    return recovered
